"""Backend registry: name → :class:`Backend` instance. The contract is in ``base.py``."""

from __future__ import annotations

from .base import Backend, GenerationJob, JobCancelled
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

__all__ = ["Backend", "GenerationJob", "JobCancelled", "register_backend", "get_backend", "backend_names"]
