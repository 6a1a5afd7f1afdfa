"""``track-video``: a reference clip → its camera track with sparse depth (pycolmap), as a job.

The job takes only a ``video`` upload. Its result is the ParaScale trajectory JSON (version 1)
written by ``parascale_blender.formats.registry.write_trajectory``: poses and intrinsics at the
video's own size, frame numbers from 1 (``every`` keeps the original numbers), and the sparse
points with per-frame visibility (usable as ``--reference-depth track``). A clip that cannot be
tracked (static camera, too little parallax, too few matches, undecodable) fails the job with
the tracker's own message.
"""

from __future__ import annotations

import importlib.util
import math
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from parascale_blender.client import wire

from .base import Backend, CancelledFn, GenerationJob, JobCancelled, JobFailed, ProgressFn


class TrackParams(BaseModel):
    """The tracking options a request may set (``bridge_server.tracking.TrackOptions``)."""

    model_config = ConfigDict(extra="forbid")

    intrinsics: (
        Annotated[list[Annotated[float, Field(gt=0, le=1e6, allow_inf_nan=False)]], Field(min_length=4, max_length=4)]
        | None
    ) = Field(None, description="fx, fy, cx, cy in pixels of the video's size (held fixed); null: self-calibrate")
    every: int = Field(1, ge=1, le=100, description="track every N-th frame (original frame numbers are kept)")
    max_frames: int | None = Field(None, ge=2, le=2000, description="track at most this many frames")
    mapper: Literal["global", "incremental"] = Field("global", description="pycolmap mapper")
    max_side: int | None = Field(
        960, ge=64, le=4096, description="downsize frames to this longest side for features; null: full size"
    )

    @field_validator("intrinsics")
    @classmethod
    def _finite(cls, v: list[float] | None) -> list[float] | None:
        if v is not None and not all(math.isfinite(x) for x in v):
            raise ValueError("intrinsics must be finite")
        return v


class TrackVideoBackend(Backend):
    name = wire.TRACK_VIDEO
    description = "Camera track + sparse depth of a reference video (pycolmap SfM); the result is ParaScale JSON"
    Params = TrackParams
    uploads = (wire.VIDEO,)
    result_media_type = wire.JSON
    result_suffix = ".json"

    def available(self) -> tuple[bool, str]:
        if importlib.util.find_spec("pycolmap") is None:
            return False, "pycolmap is not installed in the server's Python environment (pip install pycolmap)"
        return True, ""

    def generate(self, job: GenerationJob, progress: ProgressFn, cancelled: CancelledFn) -> dict:
        from parascale_blender.formats.registry import write_trajectory

        from ..tracking import TrackingError, track_video
        from ..tracking.errors import TrackingCancelled

        if job.video is None:
            raise JobFailed("track-video needs a video upload")
        p: TrackParams = job.params  # type: ignore[assignment]
        options = p.model_dump()
        if options["intrinsics"] is not None:
            options["intrinsics"] = tuple(options["intrinsics"])
        try:
            traj = track_video(job.video, options, progress, cancelled)
        except TrackingCancelled as e:
            raise JobCancelled(str(e)) from None
        except TrackingError as e:
            raise JobFailed(str(e).replace(str(job.video), job.video_name)) from None
        traj.metadata["source"] = job.video_name
        interpolated = traj.metadata.get("interpolated_frames") or []
        n_points = 0 if traj.points is None else len(traj.points.xyz)
        job.log(f"track-video: {len(traj)} frames, {n_points} points, {len(interpolated)} interpolated")
        write_trajectory(traj, job.output, "parascale")
        return {
            "frames": len(traj),
            "width": traj.width,
            "height": traj.height,
            "fps": float(traj.fps),
            "first_frame": int(traj.frames[0]),
        }
