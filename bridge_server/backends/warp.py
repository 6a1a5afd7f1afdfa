"""The default ``warp`` backend: the depth point cloud of the conditioning image, splatted along
the trajectory (see ``bridge_server.render``), holes filled, encoded as H.264. Needs no weights."""

from __future__ import annotations

import torch
from pydantic import BaseModel, ConfigDict, Field

from parascale_blender.client import wire

from ..config import float64_device
from ..render import MAX_FOOTPRINT, fill_holes, splat, to_uint8, unproject_image
from ..video import Mp4Writer
from .base import Backend, CancelledFn, GenerationJob, JobCancelled, ProgressFn


class WarpParams(BaseModel):
    """Parameters of the warp preview renderer."""

    model_config = ConfigDict(extra="forbid")

    sky: bool = Field(True, description="pixels without depth are infinitely far (move with rotation only)")
    fill_holes: bool = Field(True, description="fill disocclusions by push-pull (background-biased)")
    max_footprint: float = Field(
        MAX_FOOTPRINT,
        ge=1.0,
        le=256.0,
        allow_inf_nan=False,
        description="largest splat side, px (splats follow the magnification up to this)",
    )
    depth_tolerance: float = Field(
        0.01, ge=0.0, le=1.0, allow_inf_nan=False, description="relative depth treated as the same surface"
    )
    crf: int = Field(18, ge=0, le=51, description="H.264 constant rate factor (lower = better)")


class WarpBackend(Backend):
    name = wire.WARP
    description = "Depth point-cloud splatting preview (torch, CPU or CUDA); geometrically exact, no weights"
    Params = WarpParams

    def generate(self, job: GenerationJob, progress: ProgressFn, cancelled: CancelledFn) -> None:
        p: WarpParams = job.params  # type: ignore[assignment]
        traj = job.trajectory
        h, w = job.depth.shape
        src_cam = traj.camera(0).scaled_to(w, h)
        with torch.inference_mode():
            device = float64_device(job.device)  # the splatting is float64
            cloud = unproject_image(job.image, job.depth, traj.c2w[0], src_cam, sky=p.sky, device=device)
            job.log(f"warp: {len(cloud)} points from a {w}x{h} image on {device}")
            W, H = traj.width - traj.width % 2, traj.height - traj.height % 2
            if (W, H) != (traj.width, traj.height):
                job.log(f"warp: cropped {traj.width}x{traj.height} to even {W}x{H} for yuv420p")
            n = len(traj)
            with Mp4Writer(job.output, W, H, traj.fps, crf=p.crf) as mp4:
                for i in range(n):
                    if cancelled():
                        raise JobCancelled(f"cancelled before frame {i + 1} of {n}")
                    progress(i / n, f"rendering frame {i + 1}/{n}")

                    def check(i=i) -> None:  # a large frame takes seconds: cancel within it
                        if cancelled():
                            raise JobCancelled(f"cancelled during frame {i + 1} of {n}")

                    cam = traj.camera(i)
                    rgb, zbuf = splat(cloud, traj.c2w[i], cam, p.max_footprint, p.depth_tolerance, check=check)
                    if p.fill_holes:
                        rgb = fill_holes(rgb, zbuf, check=check)
                    mp4.write(to_uint8(rgb)[:H, :W])
                    progress((i + 1) / n, f"frame {i + 1}/{n}")
