"""Shortcuts for the non-video jobs: camera tracking of a reference clip and plate depth.

``submit_*`` upload a job and return its status dict at once (``id``, ``state``,
``result_media_type``); ``*_request`` build a :class:`GenerateRequest` for the tick-driven
:class:`GenerateJob`. Results: ``track-video`` → ParaScale trajectory JSON (``application/json``),
``depth-anything`` → ``.npy`` float32 (H, W) z-depth, NaN invalid (``application/octet-stream``).
"""

from __future__ import annotations

from .http import BridgeClient
from .job import GenerateRequest, Upload

TRACK_BACKEND = "track-video"
DEPTH_BACKEND = "depth-anything"
JSON_MEDIA_TYPE = "application/json"
NPY_MEDIA_TYPE = "application/octet-stream"


def tracking_request(video: Upload, filename: str | None = None, params: dict | None = None) -> GenerateRequest:
    """A ``track-video`` request. ``params``: ``intrinsics`` [fx, fy, cx, cy] | None, ``every``,
    ``max_frames``, ``mapper`` (``global``/``incremental``), ``max_side`` (see ``GET /v1/backends``)."""
    return GenerateRequest(backend=TRACK_BACKEND, params=dict(params or {}), video=video, video_name=filename)


def depth_request(image: Upload, params: dict | None = None) -> GenerateRequest:
    """A ``depth-anything`` request for a PNG/JPEG plate. ``params``: ``model``, ``dtype``."""
    return GenerateRequest(image=image, backend=DEPTH_BACKEND, params=dict(params or {}))


def submit_tracking(
    client: BridgeClient, video_bytes: Upload, filename: str | None = None, params: dict | None = None
) -> dict:
    """Submit a reference clip for camera tracking; returns the job status."""
    return client.submit(backend=TRACK_BACKEND, params=params, video=video_bytes, video_name=filename)


def submit_depth(client: BridgeClient, image_bytes: Upload, params: dict | None = None) -> dict:
    """Submit a plate image for depth estimation; returns the job status."""
    return client.submit(image=image_bytes, backend=DEPTH_BACKEND, params=params)
