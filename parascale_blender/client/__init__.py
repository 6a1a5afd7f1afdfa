"""bpy-free client of the ParaScale generation server: :class:`BridgeClient` (HTTP, urllib only)
and :class:`GenerateJob` (the submit / poll / download state machine driven by ``tick()``, for any
backend), plus the tracking and depth shortcuts of ``jobs.py``."""

from .http import DEFAULT_URL, BridgeClient, BridgeError, ServerNotRunning, is_loopback_url
from .job import TERMINAL, GenerateJob, GenerateRequest
from .jobs import depth_request, submit_depth, submit_tracking, tracking_request

__all__ = [
    "DEFAULT_URL",
    "BridgeClient",
    "BridgeError",
    "ServerNotRunning",
    "is_loopback_url",
    "GenerateJob",
    "GenerateRequest",
    "TERMINAL",
    "submit_tracking",
    "submit_depth",
    "tracking_request",
    "depth_request",
]
