"""Backend registry: name → :class:`Backend` instance. The contract is in ``base.py``."""

from __future__ import annotations

from .base import UPLOADS, Backend, GenerationJob, JobCancelled, JobFailed
from .depth_anything import DepthAnythingBackend
from .diffusers_i2v import DiffusersI2VBackend
from .track_video import TrackVideoBackend
from .wan_fun_camera import WanFunCameraBackend
from .warp import WarpBackend

_REGISTRY: dict[str, Backend] = {}


def register_backend(backend: Backend) -> None:
    """Add (or replace) a backend under its ``name``."""
    if not backend.name:
        raise ValueError("a backend needs a name")
    _REGISTRY[backend.name] = backend


def get_backend(name: str) -> Backend | None:
    return _REGISTRY.get(name)


def backend_names() -> list[str]:
    return sorted(_REGISTRY)


register_backend(WarpBackend())
register_backend(DiffusersI2VBackend())
register_backend(WanFunCameraBackend())
register_backend(DepthAnythingBackend())
register_backend(TrackVideoBackend())

__all__ = [
    "UPLOADS",
    "Backend",
    "GenerationJob",
    "JobCancelled",
    "JobFailed",
    "register_backend",
    "get_backend",
    "backend_names",
]
