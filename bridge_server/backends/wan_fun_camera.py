"""``wan-fun-camera``: Wan image-to-video with Plücker-ray camera control through a camera adapter.

The trajectory's Plücker maps (``bridge_server.plucker``, relative to frame 0, at the
generation size) are packed the way Wan-Fun Control-Camera expects: the first frame is repeated
to fill the first group of ``s`` frames (``s`` = the VAE's temporal stride, 4), then every group of
``s`` frames is stacked into channels (channel ``c * s + j`` = Plücker channel ``c`` of frame ``j``
of the group): ``(6, 4k + 1, H, W) -> (24, k + 1, H, W)``. The :class:`CameraAdapter` (pixel
unshuffle by the VAE's spatial stride, a conv with the transformer's patch as kernel and stride,
residual blocks) maps it to the transformer's width; its output is added to the output of the
transformer's ``patch_embedding`` by a forward hook, on every denoising step.

Weights: a diffusers Wan folder plus ``camera_adapter.safetensors`` (keys ``conv.weight``,
``conv.bias``, ``residual_blocks.<i>.conv1/conv2.weight/bias``; a ``control_adapter.`` prefix is
stripped), as ``parascale convert-wan-fun`` writes it from the released Wan-Fun Control-Camera
(VideoX-Fun layout, see ``wan_fun``). Its 32-channel transformer runs as ``WanFunControlPipeline``
(start-image latent in frame 0, zeros after, no mask). Noise shaping is available too but off by
default.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field
from torch import nn

from parascale_blender.client import wire
from parascale_blender.core.camera import relative_to_first

from ..plucker import conditioning_scale, plucker_from_poses
from .base import CancelledFn, GenerationJob, ProgressFn
from .diffusers_i2v import (
    WAN_NEGATIVE_PROMPT,
    DiffusersI2VBackend,
    I2VParams,
    SamplingDefaults,
    check_frames,
    generation_size,
    load_pipeline,
    run_pipeline,
    write_video,
)
from .model_limits import model_limits
from .wan_fun import ADAPTER_FILE, ADAPTER_PREFIX, is_videox_fun_folder
from .weights import WeightsError, check_diffusers_folder, model_folder

PIPELINES = ("WanImageToVideoPipeline",)  # the adapter hooks Wan's ``patch_embedding``
# RealEstate10K (Wan-Fun Control-Camera's training set) has ORB-SLAM poses; ORB-SLAM's monocular map
# starts at median depth 1, so scenes sit at about 1 unit. An assumption: set ``gauge_depth`` otherwise.
GAUGE_DEPTH = 1.0


class ResidualBlock(nn.Module):
    def __init__(self, dim: int):
        super().__init__()
        self.conv1 = nn.Conv2d(dim, dim, 3, padding=1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(dim, dim, 3, padding=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(self.relu(self.conv1(x)))


class CameraAdapter(nn.Module):
    """Packed Plücker maps (B, in_dim, F', H, W) → features (B, out_dim, F', H/(d*ph), W/(d*pw))."""

    def __init__(self, in_dim: int, out_dim: int, patch: tuple[int, int], downscale: int = 8, residual_blocks: int = 1):
        super().__init__()
        self.pixel_unshuffle = nn.PixelUnshuffle(downscale)
        self.conv = nn.Conv2d(in_dim * downscale * downscale, out_dim, kernel_size=patch, stride=patch)
        self.residual_blocks = nn.Sequential(*[ResidualBlock(out_dim) for _ in range(residual_blocks)])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, c, f, h, w = x.shape
        y = self.pixel_unshuffle(x.permute(0, 2, 1, 3, 4).reshape(b * f, c, h, w))
        y = self.residual_blocks(self.conv(y))
        return y.reshape(b, f, *y.shape[1:]).permute(0, 2, 1, 3, 4)


def pack_plucker(maps: np.ndarray, temporal: int = 4) -> np.ndarray:
    """(6, s*k + 1, H, W) → (6*s, k + 1, H, W): first frame repeated s times, groups of s into channels."""
    c, f, h, w = maps.shape
    if (f - 1) % temporal:
        raise ValueError(f"Plücker maps have {f} frames; Wan-Fun needs {temporal}k + 1")
    full = np.concatenate([np.repeat(maps[:, :1], temporal, axis=1), maps[:, 1:]], axis=1)  # (c, s(k+1), h, w)
    groups = full.reshape(c, -1, temporal, h, w).transpose(1, 0, 2, 3, 4)  # (k+1, c, s, h, w)
    return np.ascontiguousarray(groups.reshape(-1, c * temporal, h, w).transpose(1, 0, 2, 3))


def load_adapter(path: Path, downscale: int = 8) -> CameraAdapter:
    """A :class:`CameraAdapter` with its size read from the tensors in ``path``."""
    from safetensors.torch import load_file

    if not path.is_file():
        raise WeightsError(f"weights folder {path.parent}: missing {path.name}")
    try:
        raw = load_file(str(path))
    except Exception as e:  # safetensors raises its own error types for corrupt headers
        raise WeightsError(f"{path}: not a readable safetensors file ({e})") from None
    sd = {k[len(ADAPTER_PREFIX) :] if k.startswith(ADAPTER_PREFIX) else k: v for k, v in raw.items()}
    if "conv.weight" not in sd:
        raise WeightsError(f"{path}: no tensor 'conv.weight' (has {', '.join(sorted(sd)[:6]) or 'none'})")
    out_dim, cin, kh, kw = sd["conv.weight"].shape
    if cin % (downscale * downscale):
        raise WeightsError(f"{path}: conv.weight has {cin} input channels, not a multiple of {downscale}²")
    n_res = len({k.split(".")[1] for k in sd if k.startswith("residual_blocks.")})
    adapter = CameraAdapter(cin // downscale**2, out_dim, (kh, kw), downscale, n_res)
    missing, unexpected = adapter.load_state_dict(sd, strict=False)
    if missing or unexpected:
        raise WeightsError(f"{path}: missing tensors {missing[:4]}, unexpected {unexpected[:4]}")
    return adapter.eval()


class CameraParams(I2VParams):
    """Parameters of ``wan-fun-camera`` (noise shaping off by default)."""

    backend_folder: ClassVar[str] = wire.WAN_FUN_CAMERA
    # VideoX-Fun examples/wan2.1_fun/predict_v2v_control_camera.py: 50 steps, guidance 6.0, Wan's negative prompt
    SAMPLING: ClassVar[dict[str, SamplingDefaults]] = {
        "wan": SamplingDefaults(50, 6.0, WAN_NEGATIVE_PROMPT, "VideoX-Fun predict_v2v_control_camera.py"),
    }
    noise_shaping: bool = Field(False, description="also paste the noised warp preview (RealCam-I2V style)")
    camera_scale: float = Field(1.0, ge=0.0, le=10.0, allow_inf_nan=False, description="adapter output multiplier")
    gauge_depth: float | None = Field(
        GAUGE_DEPTH,
        gt=0.0,
        le=1e6,
        allow_inf_nan=False,
        description="the model's typical scene depth in its training units: translations are scaled by "
        "gauge_depth x the conditioning depth's mean inverse depth (parallax kept); null: metres as given",
    )

    @classmethod
    def check_folder(cls, folder: Path) -> None:
        if is_videox_fun_folder(folder):
            raise WeightsError(
                f"weights folder {folder}: the VideoX-Fun layout as released; convert it once with "
                f"'parascale convert-wan-fun {folder} <new folder> --encoders <a diffusers Wan 2.1 I2V folder>'"
            )
        check_diffusers_folder(folder, PIPELINES)
        if not (folder / ADAPTER_FILE).is_file():
            raise WeightsError(f"weights folder {folder}: missing {ADAPTER_FILE} (the camera adapter)")


def camera_features(
    job: GenerationJob, pipe, adapter: CameraAdapter, width: int, height: int, gauge_depth: float | None = GAUGE_DEPTH
) -> torch.Tensor:
    """Adapter features for the trajectory, padded to the generated frame count (4k + 1), its
    translations in the model's gauge (:func:`bridge_server.plucker.conditioning_scale`).

    Built one latent frame at a time (the adapter maps each packed latent frame on its own): the
    Plücker maps of ``s`` frames exist at once, in float32 into the adapter, so host memory stays
    that of one latent frame whatever the clip's length (the whole clip's float64 maps at 1280x720x81
    were ~10 GB). Same values as :func:`pack_plucker` of the whole clip."""
    traj = job.trajectory
    s = pipe.vae_scale_factor_temporal
    n = len(traj)
    n_gen = s * (-(-(n - 1) // s)) + 1
    c2w = np.concatenate([traj.c2w, np.repeat(traj.c2w[-1:], n_gen - n, axis=0)])
    K = np.concatenate([traj.intrinsics, np.repeat(traj.intrinsics[-1:], n_gen - n, axis=0)])
    K = K * np.array([width / traj.width, height / traj.height] * 2)
    rel = relative_to_first(c2w)
    rel[:, :3, 3] *= conditioning_scale(job.depth, gauge_depth)
    p = next(adapter.parameters())
    feats = []
    with torch.inference_mode():
        for j in range((n_gen - 1) // s + 1):
            idx = [0] * s if j == 0 else list(range(s * (j - 1) + 1, s * j + 1))  # frame 0 repeated s times
            maps = plucker_from_poses(rel[idx], K[idx], width, height)  # (6, s, H, W) float32
            packed = torch.as_tensor(maps.reshape(6 * s, 1, height, width), device=p.device, dtype=p.dtype)
            feats.append(adapter(packed[None]))  # channel c * s + i: Plücker channel c of frame i
            del maps, packed
        return torch.cat(feats, dim=2)


class WanFunCameraBackend(DiffusersI2VBackend):
    """``diffusers-i2v`` on a Wan folder, plus the camera adapter's features on every step."""

    name = wire.WAN_FUN_CAMERA
    description = "Wan image-to-video with Plücker camera control through a camera adapter (local weights)"
    Params = CameraParams
    injection_hook: Callable[[torch.Tensor], None] | None = None  # sees every added feature tensor

    def generate(self, job: GenerationJob, progress: ProgressFn, cancelled: CancelledFn) -> dict:
        p: CameraParams = job.params  # type: ignore[assignment]
        folder = model_folder(p.backend_folder, p.model)
        check_frames(len(job.trajectory), p, model_limits(folder))  # before any weights or Plücker maps
        pipe = load_pipeline(folder, job.device, p, job.log)
        transformers = [t for t in (pipe.transformer, getattr(pipe, "transformer_2", None)) if t is not None]
        t0 = transformers[0]
        dim, patch = t0.patch_embedding.out_channels, tuple(t0.config.patch_size[1:])
        adapter = load_adapter(folder / ADAPTER_FILE, pipe.vae_scale_factor_spatial)
        if adapter.conv.out_channels != dim or adapter.conv.kernel_size != patch:
            raise WeightsError(
                f"{folder / ADAPTER_FILE}: adapter outputs {adapter.conv.out_channels} channels with patch "
                f"{adapter.conv.kernel_size}, the transformer needs {dim} with {patch}"
            )
        expected_in = 6 * pipe.vae_scale_factor_temporal
        if adapter.conv.in_channels != expected_in * pipe.vae_scale_factor_spatial**2:
            raise WeightsError(f"{folder / ADAPTER_FILE}: adapter input is not {expected_in} packed Plücker channels")
        adapter.to(pipe._execution_device, t0.dtype)  # not the offloaded transformer's CPU
        # one size for the adapter features and the latents: the model's caps apply to both
        W, H = generation_size(pipe, job.trajectory.width, job.trajectory.height, p, model_limits(folder), job.log)
        gauge = conditioning_scale(job.depth, p.gauge_depth)
        job.log(
            f"camera gauge: translations x {gauge:.6g} "
            + (f"(model depth {p.gauge_depth} x mean inverse depth)" if p.gauge_depth else "(metres as given)")
        )
        feats = camera_features(job, pipe, adapter, W, H, p.gauge_depth) * p.camera_scale
        job.log(f"camera adapter: features {tuple(feats.shape)} from {ADAPTER_FILE}")

        def add_camera(module, inputs, output):
            if output.shape[2:] != feats.shape[2:]:
                raise RuntimeError(f"camera features {tuple(feats.shape)} do not match patches {tuple(output.shape)}")
            if self.injection_hook is not None:
                self.injection_hook(feats)
            return output + feats.to(output.device, output.dtype)  # offload: features may sit elsewhere

        handles = [t.patch_embedding.register_forward_hook(add_camera) for t in transformers]
        try:
            frames = run_pipeline(job, progress, cancelled, pipe, folder, p, self.shaping_hook, size=(W, H))
        finally:
            for h in handles:
                h.remove()
        write_video(job, frames, p.crf)
        progress(1.0, "done")
        return {"camera_gauge": gauge}
