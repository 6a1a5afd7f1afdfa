"""bpy-free client of the ParaScale generation server: :class:`BridgeClient` (HTTP, urllib only)
and :class:`GenerateJob` (the submit / poll / download state machine driven by ``tick()``)."""

from .http import DEFAULT_URL, BridgeClient, BridgeError, ServerNotRunning, is_loopback_url
from .job import TERMINAL, GenerateJob, GenerateRequest

__all__ = [
    "DEFAULT_URL",
    "BridgeClient",
    "BridgeError",
    "ServerNotRunning",
    "is_loopback_url",
    "GenerateJob",
    "GenerateRequest",
    "TERMINAL",
]
