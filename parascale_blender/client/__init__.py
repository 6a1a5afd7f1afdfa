"""bpy-free client of the ParaScale generation server: :class:`BridgeClient` (HTTP on ``requests``),
:class:`ServerJob` (the submit / poll / download state machine driven by ``tick()``, for any
backend: generate, track, depth), the tracking and depth shortcuts of ``jobs.py``, and ``wire``
(the protocol vocabulary shared with ``bridge_server``)."""

from . import wire
from .http import BridgeClient, BridgeError, ServerNotRunning
from .job import TERMINAL, JobRequest, ServerJob
from .jobs import submit_depth, submit_tracking, tracking_request
from .wire import DEFAULT_URL, is_loopback_url

__all__ = [
    "DEFAULT_URL",
    "BridgeClient",
    "BridgeError",
    "ServerNotRunning",
    "is_loopback_url",
    "ServerJob",
    "JobRequest",
    "TERMINAL",
    "submit_tracking",
    "submit_depth",
    "tracking_request",
    "wire",
]
