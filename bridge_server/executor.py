"""The executor seam: the five calls the API makes of its queue (``start``, ``stop``, ``submit``,
``cancel``, ``counts``) plus ``workers`` for ``/v1/health``, behind one interface.

- ``--queue local`` (the default): :class:`LocalExecutor`, today's :class:`~bridge_server.jobs.JobQueue`
  (one worker thread per device inside the server process); nothing new to install.
- ``--queue redis://HOST:PORT/DB``: :class:`bridge_server.farm.RedisExecutor`, Celery + Redis with
  ``parascale-worker`` processes (``pip install parascale[farm]``), imported only when asked for.
"""

from __future__ import annotations

import socket
from typing import Protocol

from .backends import backend_names
from .config import ServerConfig
from .jobs import JobQueue, JobStore
from .models import JobStatus, WorkerInfo

LOCAL = "local"


class Executor(Protocol):
    """What the routes and the app's lifespan call; jobs themselves live in the job store."""

    def start(self) -> None: ...

    def stop(self, timeout: float = 5.0) -> None: ...

    def submit(self, job_id: str) -> None: ...

    def cancel(self, job_id: str) -> JobStatus | None: ...

    def counts(self) -> tuple[int, int]: ...

    def workers(self, stuck_after: float) -> list[WorkerInfo]: ...


class LocalExecutor(JobQueue):
    """Today's queue unchanged: one worker thread per device in this process."""

    def workers(self, stuck_after: float) -> list[WorkerInfo]:
        """Each device's thread: alive, its job, and stuck when that job made no progress for
        ``stuck_after`` seconds."""
        host, names = socket.gethostname(), backend_names()
        return [
            WorkerInfo(name=f"local:{h['device']}", host=host, backends=names, **h)
            for h in self.thread_health(stuck_after)
        ]


def is_farm_queue(spec: str) -> bool:
    return spec.startswith(("redis://", "rediss://"))


def farm_missing() -> str | None:
    """Why the farm queue cannot run here (Celery or redis-py missing), or None."""
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError as exc:
        return f"the farm queue needs Celery and redis ({exc.name} is missing): pip install 'parascale[farm]'"
    return None


def make_store_and_executor(config: ServerConfig) -> tuple[JobStore, Executor]:
    """The job store and executor ``config.queue`` names (``local`` or a ``redis://`` URL)."""
    if config.queue == LOCAL:
        store = JobStore(config.jobs_dir, stale_after=config.stale_after, read_only=config.read_only)
        return store, LocalExecutor(store, config.devices, config.limits)
    if not is_farm_queue(config.queue):
        raise ValueError(f"--queue must be 'local' or a redis:// URL, not {config.queue!r}")
    from .farm import DiskJobStore, RedisExecutor  # needs celery[redis]: parascale[farm]

    store = DiskJobStore(config.jobs_dir)
    return store, RedisExecutor(store, config.queue, config.heartbeat_timeout)
