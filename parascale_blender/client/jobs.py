"""Shortcuts for the non-video jobs: camera tracking of a reference clip and plate depth.

``submit_*`` upload a job and return its status dict at once (``id``, ``state``,
``result_media_type``); :func:`tracking_request` builds a :class:`JobRequest` for the tick-driven
:class:`ServerJob`. Results: ``track-video`` → ParaScale trajectory JSON (``application/json``),
``depth-anything`` → ``.npy`` float32 (H, W) z-depth, NaN invalid (``application/octet-stream``).
"""

from __future__ import annotations

from . import wire
from .http import BridgeClient
from .job import JobRequest, Upload


def tracking_request(video: Upload, filename: str | None = None, params: dict | None = None) -> JobRequest:
    """A ``track-video`` request. ``params``: ``intrinsics`` [fx, fy, cx, cy] | None, ``every``,
    ``max_frames``, ``mapper`` (``global``/``incremental``), ``max_side`` (see ``GET /v1/backends``)."""
    return JobRequest(backend=wire.TRACK_VIDEO, params=dict(params or {}), video=video, video_name=filename)


def submit_tracking(
    client: BridgeClient, video_bytes: Upload, filename: str | None = None, params: dict | None = None
) -> dict:
    """Submit a reference clip for camera tracking; returns the job status."""
    return client.submit(backend=wire.TRACK_VIDEO, params=params, video=video_bytes, video_name=filename)


def submit_depth(client: BridgeClient, image_bytes: Upload, params: dict | None = None) -> dict:
    """Submit a plate image for depth estimation; returns the job status."""
    return client.submit(image=image_bytes, backend=wire.DEPTH_ANYTHING, params=params)
