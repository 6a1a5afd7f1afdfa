"""Jobs on disk (one folder each) and the worker queue (one thread per device).

Threading contract: HTTP handlers and worker threads share one :class:`JobStore`; every status
change goes through :meth:`JobStore.update` under one lock and is written atomically to
``status.json`` (temporary file + ``os.replace``). A worker reads its job's inputs back from the
job folder, never from the request. Cancelling sets an :class:`threading.Event` that the backend
checks between frames. Files inside a folder have fixed names chosen here; job ids are 32 hex
digits generated here, so nothing a client sends ever becomes a path.

Folder layout: ``request.json`` (backend, params, depth_scale), ``trajectory.json``,
``image.png|jpg``, ``depth.npy|png|exr``, ``status.json``, ``log.txt``, ``result.mp4``.
"""

from __future__ import annotations

import json
import os
import queue
import re
import threading
import time
import traceback
import uuid
from pathlib import Path

from .backends import GenerationJob, JobCancelled, get_backend
from .config import Limits
from .inputs import decode_depth, decode_image, match_sizes, parse_trajectory
from .models import FINISHED, JobStatus

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
FILE_NAMES = frozenset(
    {"request.json", "trajectory.json", "image.png", "image.jpg", "depth.npy", "depth.png", "depth.exr"}
    | {"status.json", "log.txt", "result.mp4", "result.partial.mp4"}
)


def new_job_id() -> str:
    return uuid.uuid4().hex


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


class JobStore:
    """Job folders under ``root`` plus an in-memory index of their statuses."""

    def __init__(self, root: Path):
        self.root = Path(root).resolve()
        self.root.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._jobs: dict[str, JobStatus] = {}

    def path(self, job_id: str, name: str) -> Path:
        """The file ``name`` (one of :data:`FILE_NAMES`) of job ``job_id`` (32 hex digits)."""
        if not JOB_ID.match(job_id) or name not in FILE_NAMES:
            raise KeyError(f"no such job file {job_id}/{name}")
        return self.root / job_id / name

    def find(self, job_id: str, stem: str) -> Path | None:
        """The stored input called ``stem`` (``image``/``depth``), whatever its extension."""
        for name in sorted(FILE_NAMES):
            if name.startswith(stem + "."):
                p = self.path(job_id, name)
                if p.exists():
                    return p
        return None

    def create(self, status: JobStatus, request: dict, files: dict[str, bytes]) -> None:
        folder = self.path(status.id, "status.json").parent
        folder.mkdir()
        for name, data in files.items():
            _write_atomic(self.path(status.id, name), data)
        _write_atomic(self.path(status.id, "request.json"), json.dumps(request, indent=1).encode())
        with self._lock:
            self._jobs[status.id] = status
            _write_atomic(self.path(status.id, "status.json"), status.model_dump_json(indent=1).encode())

    def get(self, job_id: str) -> JobStatus | None:
        with self._lock:
            return self._jobs.get(job_id)

    def all(self) -> list[JobStatus]:
        with self._lock:
            return sorted(self._jobs.values(), key=lambda s: s.created)

    def update(self, job_id: str, **changes) -> JobStatus:
        with self._lock:
            status = self._jobs[job_id].model_copy(update=changes)
            self._jobs[job_id] = status
            _write_atomic(self.path(job_id, "status.json"), status.model_dump_json(indent=1).encode())
            return status

    def log(self, job_id: str, line: str) -> None:
        with self._lock, open(self.path(job_id, "log.txt"), "a", encoding="utf-8") as f:
            f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")

    def recover(self) -> list[str]:
        """Load every job folder; running jobs become ``interrupted``. Returns queued ids, oldest first."""
        queued = []
        for folder in sorted(self.root.iterdir()):
            if not (folder.is_dir() and JOB_ID.match(folder.name)):
                continue
            try:
                status = JobStatus.model_validate_json(self.path(folder.name, "status.json").read_bytes())
            except (OSError, ValueError):
                continue  # a folder without a readable status is not a job (never served)
            with self._lock:
                self._jobs[status.id] = status
            if status.state == "running":
                self.path(status.id, "result.partial.mp4").unlink(missing_ok=True)
                self.update(
                    status.id,
                    state="interrupted",
                    finished=time.time(),
                    error="the server stopped while this job was running; submit it again",
                    message="interrupted",
                )
                self.log(status.id, "marked interrupted after a server restart")
            elif status.state == "queued":
                queued.append(status)
        return [s.id for s in sorted(queued, key=lambda s: s.created)]


class JobQueue:
    """A FIFO of job ids served by one worker thread per torch device."""

    def __init__(self, store: JobStore, devices: list[str], limits: Limits):
        self.store, self.devices, self.limits = store, list(devices), limits
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        for job_id in self.store.recover():
            self.submit(job_id)
        for dev in self.devices:
            t = threading.Thread(target=self._work, args=(dev,), name=f"parascale-worker-{dev}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        for ev in list(self._cancel.values()):
            ev.set()
        for _ in self._threads:
            self._queue.put(None)
        for t in self._threads:
            t.join(timeout)

    def submit(self, job_id: str) -> None:
        self._cancel[job_id] = threading.Event()
        self._queue.put(job_id)

    def counts(self) -> tuple[int, int]:
        states = [s.state for s in self.store.all()]
        return states.count("queued"), states.count("running")

    def cancel(self, job_id: str) -> JobStatus:
        """Queued jobs are cancelled at once; running ones stop before their next frame."""
        with self.store._lock:
            status = self.store.get(job_id)
            if status is None or status.state in FINISHED:
                return status
            self._cancel.setdefault(job_id, threading.Event()).set()
            if status.state == "queued":
                return self.store.update(job_id, state="cancelled", finished=time.time(), message="cancelled")
            return self.store.update(job_id, message="cancelling")

    def _work(self, device: str) -> None:
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            try:
                self._run(job_id, device)
            finally:
                self._cancel.pop(job_id, None)

    def _run(self, job_id: str, device: str) -> None:
        store = self.store
        with store._lock:
            status = store.get(job_id)
            if status is None or status.state != "queued":
                return
            store.update(job_id, state="running", started=time.time(), message="loading inputs")
        cancel = self._cancel.setdefault(job_id, threading.Event())
        partial = store.path(job_id, "result.partial.mp4")
        t_gen = None
        try:
            request = json.loads(store.path(job_id, "request.json").read_text())
            backend = get_backend(request["backend"])
            traj = parse_trajectory(store.path(job_id, "trajectory.json").read_bytes(), self.limits)
            image = decode_image(store.find(job_id, "image").read_bytes(), self.limits)
            depth = decode_depth(store.find(job_id, "depth").read_bytes(), request["depth_scale"], self.limits)
            depth = match_sizes(traj, image, depth)
            job = GenerationJob(
                trajectory=traj,
                image=image,
                depth=depth,
                params=backend.Params.model_validate(request["params"]),
                output=partial,
                device=device,
                log=lambda line: store.log(job_id, line),
            )
            last = [0.0]

            def progress(fraction: float, message: str) -> None:
                now = time.monotonic()
                if fraction >= 1.0 or now - last[0] > 0.05:
                    last[0] = now
                    store.update(job_id, progress=min(max(fraction, 0.0), 1.0), message=message)

            store.log(job_id, f"start: backend {backend.name} on {device}, {len(traj)} frames")
            t_gen = time.perf_counter()
            backend.generate(job, progress, cancel.is_set)
            t_gen = time.perf_counter() - t_gen
            os.replace(partial, store.path(job_id, "result.mp4"))
            store.update(
                job_id, state="done", progress=1.0, message="done", finished=time.time(), generation_seconds=t_gen
            )
            store.log(job_id, f"done in {t_gen:.3f} s")
        except JobCancelled as e:
            partial.unlink(missing_ok=True)
            store.update(job_id, state="cancelled", message=str(e) or "cancelled", finished=time.time())
            store.log(job_id, f"cancelled: {e}")
        except Exception as e:  # a failing backend fails its job, never the server
            partial.unlink(missing_ok=True)
            store.update(
                job_id, state="failed", error=f"{type(e).__name__}: {e}", message="failed", finished=time.time()
            )
            store.log(job_id, "failed:\n" + traceback.format_exc())
