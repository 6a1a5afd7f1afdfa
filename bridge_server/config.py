"""Server settings and request limits (one object, filled from the command line)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from parascale_blender.client.wire import DEFAULT_PORT


@dataclass
class Limits:
    """What a job request may ask for; beyond these the server answers 413 (upload) or 422."""

    max_frames: int = 2000
    max_side: int = 4096  # output width/height and conditioning image sides, pixels
    max_upload_bytes: int = 256 * 1024 * 1024
    max_trajectory_bytes: int = 32 * 1024 * 1024  # parsed JSON takes ~10x its text in memory
    max_fps: float = 1000.0
    min_fps: float = 0.1  # below this an MP4 frame rate (a fraction over at most 1001) is not honest
    max_abs_coordinate: float = 1e9  # any pose entry or depth value, world units


@dataclass
class ServerConfig:
    jobs_dir: Path
    read_only: bool = False  # the jobs folder cannot be written: existing jobs are served, new ones refused
    host: str = "127.0.0.1"
    port: int = DEFAULT_PORT
    token: str | None = None
    tls: bool = False  # served over HTTPS (--tls-cert/--tls-key)
    devices: list[str] = field(default_factory=lambda: ["cpu"])
    limits: Limits = field(default_factory=Limits)
    allow_hosts: list[str] = field(default_factory=list)  # Host names served besides loopback and the bound host
    allow_origins: list[str] = field(default_factory=list)  # browser origins allowed to call (none by default)
    stale_after: float = 600.0  # seconds after which the janitor removes a job folder without status.json
    stuck_after: float = 900.0  # seconds without progress after which /v1/health calls a worker stuck
    weights_dir: Path | None = None  # root of the local model folders; sets PARASCALE_WEIGHTS for the process
    queue: str = "local"  # "local" (worker threads here) or a redis:// URL (parascale-worker processes)
    heartbeat_timeout: float | None = None  # farm: seconds without a heartbeat before a job is lost (None: env/60)


def default_threads() -> int:
    """torch CPU threads per process: half the cores, at most 4 (oversubscribed intra-op threads
    slow splatting down badly on a busy machine; the benchmark report has the numbers)."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(4, cores // 2))


def float64_device(device: str) -> str:
    """Where float64 tensor work for ``device`` runs: Apple's MPS has no float64, so the CPU."""
    return "cpu" if device.startswith("mps") else device


QUEUE_ENV = "PARASCALE_QUEUE"  # the --queue URL from the environment: a Redis password stays off argv (ps)


def redacted_url(url: str) -> str:
    """``url`` without its password (``redis://:secret@host`` -> ``redis://:***@host``), for logs."""
    import urllib.parse

    parts = urllib.parse.urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.rsplit("@", 1)[1]
    user = parts.username or ""
    return urllib.parse.urlunsplit(parts._replace(netloc=f"{user}:***@{netloc}"))


def setup_logging(level: str = "INFO") -> None:
    """Python ``logging`` to stderr for the server and the worker (loggers ``parascale.*``)."""
    import logging

    logging.basicConfig(level=level.upper(), format="%(asctime)s %(name)s %(levelname)s: %(message)s")
