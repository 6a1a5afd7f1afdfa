"""``depth-anything``: Depth Anything V2 (transformers ``DepthAnythingForDepthEstimation``) from a
local folder, for plates that have no depth.

The model folder holds ``config.json``, the weights and ``preprocessor_config.json`` (as written
by ``save_pretrained`` of the model and its image processor). The prediction is resized
(bicubic) to the image size. Metric models (``depth_estimation_type: metric``) give z-depth in
metres. Relative models predict affine-invariant disparity ``d = s / Z + t``: both the scale
``s`` and the shift ``t`` are unknown. With two or more ``anchors`` (pixels of known z-depth)
both are fitted (``parascale_blender.core.depth.depth_from_affine_disparity``) and the depth is
``s / (d - t)`` in the anchors' units. Without anchors the shift cannot be known from one image:
the result is ``1 / d`` normalised to a median of 1, which is the depth only up to that unknown
shift (the log says so), NaN where the disparity is not positive.

As a backend, a job takes only the ``image`` upload and its result file holds the depth map as
``.npy`` (H, W float32 z-depth, the image's size, NaN invalid) instead of a video.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator

from parascale_blender.client import wire
from parascale_blender.core.depth import depth_from_affine_disparity

from .base import Backend, CancelledFn, GenerationJob, JobCancelled, JobFailed, ProgressFn
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

    anchors: list[tuple[float, float, float]] = Field(
        default_factory=list,
        max_length=100_000,
        description="relative models: (x, y, z) = pixel position in the image and its known z-depth; two or "
        "more fix the disparity's scale and shift (without them the shift is unknown)",
    )

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

    return _CACHE.get((str(folder), folder_stamp(folder), device, dtype), load, slot=device)


def estimate_depth(
    image: np.ndarray, folder: Path, device: str = "cpu", dtype: str = "fp32", anchors=()
) -> tuple[np.ndarray, str, str]:
    """Depth of ``image`` (H, W, 3 uint8 RGB) → (depth (H, W) float32, ``"metric"`` or ``"relative"``,
    how a relative disparity became depth). ``anchors`` (K, 3) = (x, y, z) fix a relative model's
    scale and shift (ValueError when they cannot)."""
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
        return np.where(pred > 0, pred, np.nan).astype(np.float32), "metric", ""
    if len(anchors):
        a = np.asarray(anchors, dtype=np.float64)
        depth, s, t = depth_from_affine_disparity(pred, a[:, :2], a[:, 2])
        return depth.astype(np.float32), "relative", f"scale {s:.6g} and shift {t:.6g} fitted to {len(a)} anchors"
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.where(pred > 0, 1.0 / pred, np.nan)
    med = np.nanmedian(z) if np.isfinite(z).any() else np.nan
    note = "no anchors: disparity shift unknown, depth = 1/disparity up to it, median 1"
    return (z / med if np.isfinite(med) and med > 0 else z).astype(np.float32), "relative", note


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
        try:
            depth, kind, how = estimate_depth(job.image, folder, job.device, p.dtype, p.anchors)
        except ValueError as e:  # anchors that cannot fix the disparity
            raise JobFailed(f"params.anchors: {e}") from None
        valid = np.isfinite(depth)
        job.log(f"depth-anything ({kind}): {depth.shape[1]}x{depth.shape[0]}, {valid.mean():.0%} valid")
        if how:
            job.log(f"depth-anything: {how}")
        if p.anchors and kind == "metric":
            job.log("depth-anything: anchors ignored (a metric model gives metres)")
        with open(job.output, "wb") as f:
            np.save(f, depth, allow_pickle=False)
        progress(1.0, f"{kind} depth estimated")
