"""Server settings and request limits (one object, filled from the command line)."""

from __future__ import annotations

import ipaddress
import os
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_PORT = 8765


@dataclass
class Limits:
    """What a job request may ask for; beyond these the server answers 413 (upload) or 422."""

    max_frames: int = 2000
    max_side: int = 4096  # output width/height and conditioning image sides, pixels
    max_upload_bytes: int = 256 * 1024 * 1024
    max_fps: float = 1000.0
    max_abs_coordinate: float = 1e9  # any pose entry or depth value, world units


@dataclass
class ServerConfig:
    jobs_dir: Path
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    limits: Limits = field(default_factory=Limits)
    weights_dir: Path | None = None  # root of the local model folders; sets PARASCALE_WEIGHTS for the process


def default_threads() -> int:
    """torch CPU threads per process: half the cores, at most 4. Oversubscribed intra-op threads
    slow splatting ~10x on a busy machine (measured: 2 threads on 2 busy cores, 16x slower)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores // 2))


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False
