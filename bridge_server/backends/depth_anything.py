"""``depth-anything``: Depth Anything V2 (transformers ``DepthAnythingForDepthEstimation``) from a
local folder, for plates that have no depth.

The model folder holds ``config.json``, the weights and ``preprocessor_config.json`` (as written
by ``save_pretrained`` of the model and its image processor). The prediction is resized
(bicubic) to the image size. Metric models (``depth_estimation_type: metric``) give z-depth in
metres. Relative models predict affine-invariant inverse depth; they are returned as
``1 / disparity`` normalised to a median of 1 (world units unknown: scale it), NaN where the
disparity is not positive.

As a backend, a job takes only the ``image`` upload and its result file holds the depth map as
``.npy`` (H, W float32 z-depth, the image's size, NaN invalid) instead of a video.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import field_validator

from parascale_blender.client import wire

from .base import Backend, CancelledFn, GenerationJob, JobCancelled, ProgressFn
from .weights import (
    ModelCache,
    WeightsError,
    WeightsParams,
    availability,
    check_transformers_folder,
    folder_stamp,
    memory_guard,
    model_folder,
    torch_dtype,
)


def check_depth_folder(folder: Path) -> None:
    check_transformers_folder(folder)
    if not (folder / "preprocessor_config.json").is_file():
        raise WeightsError(f"weights folder {folder}: missing preprocessor_config.json (the image processor)")


class DepthParams(WeightsParams):
    """Parameters of ``depth-anything``."""

    backend_folder: ClassVar[str] = wire.DEPTH_ANYTHING

    @field_validator("model")
    @classmethod
    def _weights_present(cls, model: str) -> str:
        check_depth_folder(model_folder(cls.backend_folder, model))
        return model


_CACHE = ModelCache()


def load_depth_model(folder: Path, device: str, dtype: str):
    """(image processor, model in eval mode on ``device``) from ``folder`` (cached)."""
    check_depth_folder(folder)
    td = torch_dtype(dtype, device)

    def load():
        from transformers import AutoImageProcessor, AutoModelForDepthEstimation

        proc = AutoImageProcessor.from_pretrained(folder, local_files_only=True)
        with memory_guard(device, f"loading {folder}"):
            model = AutoModelForDepthEstimation.from_pretrained(folder, local_files_only=True, dtype=td)
            model = model.to(device).eval()
        if type(model).__name__ != "DepthAnythingForDepthEstimation":
            raise WeightsError(f"{folder / 'config.json'}: {type(model).__name__} is not Depth Anything")
        return proc, model

    return _CACHE.get((str(folder), folder_stamp(folder), device, dtype), load)


def estimate_depth(image: np.ndarray, folder: Path, device: str = "cpu", dtype: str = "fp32") -> tuple[np.ndarray, str]:
    """Depth of ``image`` (H, W, 3 uint8 RGB) → (depth (H, W) float32, ``"metric"`` or ``"relative"``)."""
    proc, model = load_depth_model(folder, device, dtype)
    h, w = image.shape[:2]
    inputs = proc(images=image, return_tensors="pt")
    pixels = inputs["pixel_values"].to(device, next(model.parameters()).dtype)
    with torch.inference_mode(), memory_guard(device, f"a {w}x{h} depth estimate"):
        pred = model(pixel_values=pixels).predicted_depth  # (1, h', w')
        pred = torch.nn.functional.interpolate(pred[:, None].float(), size=(h, w), mode="bicubic", align_corners=False)
    pred = pred[0, 0].cpu().numpy().astype(np.float32)
    kind = getattr(model.config, "depth_estimation_type", "relative") or "relative"
    if kind == "metric":
        return np.where(pred > 0, pred, np.nan).astype(np.float32), "metric"
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(pred > 0, 1.0 / pred, np.nan)
    med = np.nanmedian(z) if np.isfinite(z).any() else np.nan
    return (z / med if np.isfinite(med) and med > 0 else z).astype(np.float32), "relative"


class DepthAnythingBackend(Backend):
    name = wire.DEPTH_ANYTHING
    description = "Depth Anything V2 depth of the conditioning image (local weights); the result is a .npy"
    Params = DepthParams
    result_media_type = wire.NPY
    result_suffix = ".npy"
    uploads = (wire.IMAGE,)

    def available(self) -> tuple[bool, str]:
        return availability(DepthParams.backend_folder, check_depth_folder)

    def weights_present(self) -> bool:
        return self.available()[0]

    def generate(self, job: GenerationJob, progress: ProgressFn, cancelled: CancelledFn) -> None:
        p: DepthParams = job.params  # type: ignore[assignment]
        if cancelled():
            raise JobCancelled("cancelled before the depth estimate")
        folder = model_folder(p.backend_folder, p.model)
        depth, kind = estimate_depth(job.image, folder, job.device, p.dtype)
        valid = np.isfinite(depth)
        job.log(f"depth-anything ({kind}): {depth.shape[1]}x{depth.shape[0]}, {valid.mean():.0%} valid")
        with open(job.output, "wb") as f:
            np.save(f, depth, allow_pickle=False)
        progress(1.0, f"{kind} depth estimated")
