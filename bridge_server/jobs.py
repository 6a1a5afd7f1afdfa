"""Jobs on disk (one folder each) and the worker queue (one thread per device).

Threading contract: HTTP handlers and worker threads share one :class:`JobStore`; every status
change goes through :meth:`JobStore.update` under one lock and is written atomically to
``status.json`` (temporary file + ``os.replace``). A worker reads its job's inputs back from the
job folder, never from the request. Cancelling sets an :class:`threading.Event` that the backend
checks between frames. Files inside a folder have fixed names chosen here; job ids are 32 hex
digits generated here, so nothing a client sends ever becomes a path.

Folder layout: ``request.json`` (backend, params, depth_scale — world units per stored depth
value, null for the format's default — and the uploaded names), the uploads the backend takes
(``trajectory.json``, ``image.png|jpg``, ``depth.npy|png|exr``, ``video.mp4|mov|mkv|avi|mpg|ts``;
decoded by ``uploads.decode_uploads`` when submitted and again when loaded), ``status.json``,
``log.txt`` and ``result<suffix>`` (``.mp4``, ``.npy`` or ``.json``: the backend's
``result_suffix``), written as ``result.partial<suffix>``
first and renamed when the job is done. A video result along a trajectory is then measured
(``clip_parallax``: its realized Π and PCE, in the status's ``parallax``) before the job is done.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import queue
import re
import shutil
import sys
import threading
import time
import traceback
import uuid
from pathlib import Path

from parascale_blender.client import wire
from parascale_blender.client.wire import CANCELLED, DONE, FAILED, FINISHED, INTERRUPTED, QUEUED, RUNNING

from .backends import Backend, GenerationJob, JobCancelled, JobFailed, get_backend
from .config import Limits, float64_device
from .models import ClipParallax, JobStatus
from .uploads import decode_uploads, stored_uploads

JOB_ID = re.compile(r"^[0-9a-f]{32}$")
RESULT_SHAPE = frozenset({"frames", "width", "height", "fps", "first_frame", "camera_gauge"})
RESULT_SUFFIXES = (".mp4", ".npy", ".json")
FILE_NAMES = frozenset(
    {"request.json", "trajectory.json", "status.json", "log.txt"}
    | {f"image{x}" for x in wire.IMAGE_SUFFIXES}
    | {f"depth{x}" for x in wire.DEPTH_SUFFIXES}
    | {f"video{x}" for x in wire.VIDEO_SUFFIXES}
    | {f"result{x}" for x in RESULT_SUFFIXES}
    | {f"result.partial{x}" for x in RESULT_SUFFIXES}
)


STOPPED = "the server stopped while this job was running; submit it again"


class KeyPending(Exception):
    """A submission with this idempotency key is still being stored."""


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def new_job_id() -> str:
    return uuid.uuid4().hex


def queued_status(backend: Backend, shape: dict, job_id: str | None = None) -> JobStatus:
    """The status of a new job of ``backend`` whose result has ``shape`` (frames, width, height, fps, first_frame)."""
    return JobStatus(
        id=job_id or new_job_id(),
        backend=backend.name,
        state=QUEUED,
        message="queued",
        created=time.time(),
        result_media_type=backend.result_media_type,
        **shape,
    )


FOLDER_MODE, FILE_MODE = 0o700, 0o600  # jobs folder and job folders: the owner's only (uploads are artists' work)
log = logging.getLogger("parascale.server")


def _why(status: JobStatus) -> str:
    """What a log line adds to a job's new state: its error (first line), or its worker."""
    if status.error:
        return f": {status.error.splitlines()[0][:200]}"
    return f" on {status.worker}" if status.worker else ""


def _write_atomic(path: Path, data: bytes) -> None:
    tmp = path.with_name(f".{path.name}.{threading.get_ident()}.tmp")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE), "wb") as f:
        f.write(data)
    os.replace(tmp, path)


class JobStore:
    """Job folders under ``root`` plus an in-memory index of their statuses."""

    def __init__(self, root: Path, stale_after: float = 600.0, read_only: bool = False):
        self.root = Path(root).resolve()
        self.stale_after = stale_after  # seconds after which a folder without status.json is debris
        # A read-only folder: jobs and results are served, status changes live in memory only,
        # and nothing new is stored.
        self.read_only = read_only
        if not read_only:
            self.root.mkdir(parents=True, exist_ok=True, mode=FOLDER_MODE)  # the mode of a folder made here
        self._lock = threading.RLock()
        self._jobs: dict[str, JobStatus] = {}  # the statuses as status.json holds them (served)
        self._unsaved: dict[str, JobStatus] = {}  # a job's newer status its status.json lacks (a failed write)
        self.write_error: tuple[float, str] | None = None  # (monotonic time, what) of the last failed write
        self._keys: dict[str, str] = {}  # idempotency key -> job id (from request.json after a restart)

    def path(self, job_id: str, name: str) -> Path:
        """The file ``name`` (one of :data:`FILE_NAMES`) of job ``job_id`` (32 hex digits)."""
        if not JOB_ID.match(job_id) or name not in FILE_NAMES:
            raise KeyError(f"no such job file {job_id}/{name}")
        return self.root / job_id / name

    def find(self, job_id: str, stem: str) -> Path | None:
        """The stored file called ``stem`` (``image``/``depth``/``video``/``result``), whatever its extension."""
        for name in sorted(FILE_NAMES):
            if name.startswith(stem + ".") and ".partial." not in name:
                p = self.path(job_id, name)
                if p.exists():
                    return p
        return None

    def result_path(self, job_id: str) -> Path | None:
        """The finished result file of a job (any kind), or None."""
        return self.find(job_id, "result")

    def by_key(self, key: str | None) -> JobStatus | None:
        """The job submitted with idempotency ``key``; raises :class:`KeyPending` while its
        submission is still being stored."""
        if not key:
            return None
        with self._lock:
            job_id = self._keys.get(key)
            if job_id is None:
                return None
            status = self._jobs.get(job_id)
            if status is None:
                raise KeyPending(key)
            return status

    def stage(self, job_id: str) -> Path:
        """Create the folder of new job ``job_id``, for its uploads to be streamed into before
        :meth:`create` (until then it has no ``status.json``: never listed, swept by the janitor)."""
        if self.read_only:
            raise OSError(errno.EROFS, "the jobs folder is read-only; this server only serves the jobs it holds")
        folder = self.path(job_id, "status.json").parent
        folder.mkdir(mode=FOLDER_MODE)
        return folder

    def discard(self, job_id: str) -> None:
        """Remove a staged folder that never became a job."""
        shutil.rmtree(self.path(job_id, "status.json").parent, ignore_errors=True)

    def create(self, status: JobStatus, request: dict, key: str | None = None) -> JobStatus:
        """Store a new job whose uploads are already in its :meth:`stage`-d folder; with an
        idempotency ``key`` already used, remove that folder and return the first job's status.
        A failure (disk full, read-only) removes the folder too."""
        with self._lock:
            try:
                existing = self.by_key(key)
            except KeyPending:
                self.discard(status.id)
                raise
            if existing is not None:
                self.discard(status.id)
                return existing
            if key:
                self._keys[key] = status.id
                request = {**request, "idempotency_key": key}
        try:
            self.path(status.id, "status.json").parent.mkdir(mode=FOLDER_MODE, exist_ok=True)
            _write_atomic(self.path(status.id, "request.json"), json.dumps(request, indent=1).encode())
            with self._lock:
                _write_atomic(self.path(status.id, "status.json"), status.model_dump_json(indent=1).encode())
                self._jobs[status.id] = status
        except BaseException:
            with self._lock:
                if key:
                    self._keys.pop(key, None)
            self.discard(status.id)
            raise
        return status

    def get(self, job_id: str) -> JobStatus | None:
        """The status clients are told: what ``status.json`` holds. While a newer status could not
        be written (disk full, folder gone), the saved one with a message saying so: a client is
        never told a state (``done``, ``failed``) that a restart would not find."""
        with self._lock:
            saved, pending = self._jobs.get(job_id), self._unsaved.get(job_id)
            if saved is None or pending is None:
                return saved
            what = self.write_error[1] if self.write_error else "a write failed"
            return saved.model_copy(update={"message": f"{pending.state}, but not yet saved ({what}); retrying"})

    def current(self, job_id: str) -> JobStatus | None:
        """The newest status, saved or not: what this process's own decisions go by."""
        with self._lock:
            return self._unsaved.get(job_id) or self._jobs.get(job_id)

    def all(self) -> list[JobStatus]:
        with self._lock:
            found = (self.get(job_id) for job_id in self._jobs)
            return sorted((s for s in found if s is not None), key=lambda s: s.created)

    def update(self, job_id: str, **changes) -> JobStatus:
        """Change a job's status: written to ``status.json``, then served. A write that fails (disk
        full, an I/O error) keeps the change pending: it is written by the next update or
        :meth:`retry_unsaved`, and :meth:`get` serves the saved status until then. A job whose
        folder was deleted is served from memory (nothing on disk contradicts it). Returns the
        newest status."""
        with self._lock:
            status = (self._unsaved.get(job_id) or self._jobs[job_id]).model_copy(update=changes)
            before = self._jobs[job_id].state
            if self.read_only:  # nothing is written: memory is the only record
                self._jobs[job_id] = status
            elif self._save(status):
                self._unsaved.pop(job_id, None)
            else:
                self._unsaved[job_id] = status
            if status.state != before:
                log.info("job %s: %s -> %s%s", job_id, before, status.state, _why(status))
            return status

    def _save(self, status: JobStatus) -> bool:
        try:
            _write_atomic(self.path(status.id, "status.json"), status.model_dump_json(indent=1).encode())
        except OSError as e:
            if not self.path(status.id, "status.json").parent.is_dir():  # the folder is gone (deleted): no
                self._jobs[status.id] = status  # status.json left to contradict this one after a restart
                log.warning("job %s: its folder is gone; status %s kept in memory only", status.id, status.state)
                return True
            self.write_error = (time.monotonic(), f"{type(e).__name__}: {e.strerror or 'write failed'}")
            log.error("job %s: status %s not saved: %s", status.id, status.state, e)
            return False
        self._jobs[status.id] = status
        return True

    def retry_unsaved(self) -> int:
        """Write the pending statuses again; how many are still unsaved."""
        with self._lock:
            for job_id, status in list(self._unsaved.items()):
                if self._save(status):
                    del self._unsaved[job_id]
            return len(self._unsaved)

    def log(self, job_id: str, line: str) -> None:
        if self.read_only:
            return
        try:
            fd = os.open(self.path(job_id, "log.txt"), os.O_WRONLY | os.O_CREAT | os.O_APPEND, FILE_MODE)
            with self._lock, open(fd, "a", encoding="utf-8") as f:
                f.write(f"{time.strftime('%Y-%m-%d %H:%M:%S')} {line}\n")
        except OSError as e:
            print(f"parascale-server: job {job_id}: log not written ({e}): {line}", file=sys.stderr)

    def discard_partial(self, job_id: str) -> None:
        """Remove a job's unfinished result files (a failed removal is logged, not raised)."""
        for x in RESULT_SUFFIXES:
            try:
                self.path(job_id, f"result.partial{x}").unlink(missing_ok=True)
            except OSError as e:
                print(f"parascale-server: job {job_id}: partial result not removed: {e}", file=sys.stderr)

    def recover(self) -> list[str]:
        """Load every job folder; running jobs become ``interrupted``. Returns queued ids, oldest first."""
        queued = []
        for folder in sorted(self.root.iterdir()):
            if not (folder.is_dir() and JOB_ID.match(folder.name)):
                continue
            try:
                status = JobStatus.model_validate_json(self.path(folder.name, "status.json").read_bytes())
            except FileNotFoundError:
                if not self.read_only:
                    self._sweep(folder)
                continue
            except (OSError, ValueError):
                continue  # a folder without a readable status is not a job (never served)
            try:
                key = json.loads(self.path(folder.name, "request.json").read_bytes()).get("idempotency_key")
            except (OSError, ValueError, AttributeError):
                key = None
            with self._lock:
                self._jobs[status.id] = status
                if isinstance(key, str) and key:
                    self._keys[key] = status.id
            if status.state in (RUNNING, QUEUED) and self.read_only:
                self.update(
                    status.id,
                    state=INTERRUPTED,
                    finished=time.time(),
                    error=f"the jobs folder is read-only, so this {status.state} job cannot run; restart the "
                    "server on a writable folder (queued jobs then resume) or submit it again",
                    message="interrupted",
                )
            elif status.state == RUNNING:
                self.discard_partial(status.id)
                self.update(
                    status.id,
                    state=INTERRUPTED,
                    finished=time.time(),
                    error=STOPPED,
                    message="interrupted",
                )
                self.log(status.id, "marked interrupted after a server restart")
            elif status.state == QUEUED:
                queued.append(status)
        return [s.id for s in sorted(queued, key=lambda s: s.created)]

    def _sweep(self, folder: Path) -> None:
        """The janitor: a job folder without ``status.json`` (a submission that failed half-way,
        e.g. on a full disk) older than ``stale_after`` seconds is removed; younger ones may still
        be being written by a submission in progress and are left alone."""
        try:
            age = time.time() - folder.stat().st_mtime
        except OSError:
            return
        if age > self.stale_after:
            shutil.rmtree(folder, ignore_errors=True)
            print(f"parascale-server: removed {folder.name}, a job folder without status.json", file=sys.stderr)


class JobQueue:
    """A FIFO of job ids served by one worker thread per torch device."""

    def __init__(self, store: JobStore, devices: list[str], limits: Limits):
        self.store, self.devices, self.limits = store, list(devices), limits
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._cancel: dict[str, threading.Event] = {}
        self._threads: list[threading.Thread] = []
        self._asked: set[str] = set()  # jobs a client asked to cancel (the rest stop only at shutdown)
        self._stopping = False
        # device -> (job id, monotonic time of its last progress) while a worker runs a job
        self._busy: dict[str, tuple[str, float]] = {}

    def start(self) -> None:
        for job_id in self.store.recover():
            self.submit(job_id)
        for dev in self.devices:
            t = threading.Thread(target=self._work, args=(dev,), name=f"parascale-worker-{dev}", daemon=True)
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 5.0) -> None:
        """Stop the workers: a running job stops before its next frame and ends ``interrupted``
        (the server stopped it, nobody cancelled it: a client may submit it again)."""
        self._stopping = True
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
        return states.count(QUEUED), states.count(RUNNING)

    def cancel(self, job_id: str) -> JobStatus:
        """Queued jobs are cancelled at once; running ones stop before their next frame."""
        with self.store._lock:
            status = self.store.current(job_id)
            if status is None or status.state in FINISHED:
                return status
            self._asked.add(job_id)
            self._cancel.setdefault(job_id, threading.Event()).set()
            if status.state == QUEUED:
                return self.store.update(job_id, state=CANCELLED, finished=time.time(), message="cancelled")
            return self.store.update(job_id, message="cancelling")

    def thread_health(self, stuck_after: float) -> list[dict]:
        """One line per worker: device, alive, the job it runs, seconds since that job's last
        progress, and ``stuck`` when that exceeds ``stuck_after`` seconds."""
        now, out = time.monotonic(), []
        for dev, t in zip(self.devices, self._threads, strict=False):
            job_id, since = self._busy.get(dev, (None, now))
            idle = now - since if job_id else 0.0
            out.append(
                {
                    "device": dev,
                    "alive": t.is_alive(),
                    "job": job_id,
                    "seconds_since_progress": round(idle, 3),
                    "stuck": bool(job_id) and idle > stuck_after,
                }
            )
        return out

    def _work(self, device: str) -> None:
        """The worker loop: no exception of a job, or of writing its status, ends it."""
        while True:
            job_id = self._queue.get()
            if job_id is None:
                return
            self._busy[device] = (job_id, time.monotonic())
            try:
                self._run(job_id, device)
            except BaseException as e:  # noqa: BLE001 - the worker must outlive any job
                self._fail_quietly(job_id, f"{type(e).__name__}: {e}")
                if not isinstance(e, Exception):
                    raise
            finally:
                self._busy.pop(device, None)
                self._cancel.pop(job_id, None)
                self._asked.discard(job_id)

    def _fail_quietly(self, job_id: str, reason: str) -> None:
        try:
            with self.store._lock:
                status = self.store.current(job_id)
                if status is not None and status.state not in FINISHED:
                    self.store.update(job_id, state=FAILED, error=reason, message="failed", finished=time.time())
        except Exception as e:  # noqa: BLE001
            print(f"parascale-server: job {job_id}: could not be marked failed: {e}", file=sys.stderr)

    def _run(self, job_id: str, device: str) -> None:
        store = self.store
        with store._lock:
            status = store.current(job_id)
            if status is None or status.state != QUEUED:
                return
            store.update(job_id, state=RUNNING, started=time.time(), message="loading inputs")
        cancel = self._cancel.setdefault(job_id, threading.Event())
        partial: Path | None = None
        t_gen = None
        try:
            request = json.loads(store.path(job_id, "request.json").read_text())
            backend = get_backend(request["backend"])
            if backend is None:
                raise JobFailed(f"backend {request['backend']!r} is no longer served by this server")
            partial = store.path(job_id, f"result.partial{backend.result_suffix}")
            job = self.load_job(job_id, backend, request, partial, device)
            last = [0.0]

            def progress(fraction: float, message: str) -> None:
                now = time.monotonic()
                self._busy[device] = (job_id, now)
                if fraction >= 1.0 or now - last[0] > 0.05:
                    last[0] = now
                    store.update(job_id, progress=min(max(fraction, 0.0), 1.0), message=message)

            what = f"{len(job.trajectory)} frames" if job.trajectory is not None else ", ".join(backend.uploads)
            store.log(job_id, f"start: backend {backend.name} on {device}, {what}")
            t_gen = time.perf_counter()
            shape = backend.generate(job, progress, cancel.is_set) or {}
            t_gen = time.perf_counter() - t_gen
            digest = file_sha256(partial)
            result = store.path(job_id, f"result{backend.result_suffix}")
            os.replace(partial, result)
            shape = {k: v for k, v in shape.items() if k in RESULT_SHAPE}
            conditioned = all(x is not None for x in (job.trajectory, job.image, job.depth))
            if backend.result_media_type == wire.MP4 and conditioned:
                progress(1.0, "measuring the clip's parallax")
                shape[wire.PARALLAX] = self.measure(job_id, job, result)
            store.update(
                job_id,
                state=DONE,
                progress=1.0,
                message="done",
                finished=time.time(),
                generation_seconds=t_gen,
                result_sha256=digest,
                **shape,
            )
            store.log(job_id, f"done in {t_gen:.3f} s")
        except JobCancelled as e:
            self._discard(partial)
            if self._stopping and job_id not in self._asked:  # the server is stopping, nobody cancelled
                store.update(job_id, state=INTERRUPTED, error=STOPPED, message="interrupted", finished=time.time())
                store.log(job_id, f"interrupted: the server stopped ({e})")
            else:
                store.update(job_id, state=CANCELLED, message=str(e) or "cancelled", finished=time.time())
                store.log(job_id, f"cancelled: {e}")
        except JobFailed as e:  # a user-facing reason, kept verbatim
            self._discard(partial)
            store.update(job_id, state=FAILED, error=str(e), message="failed", finished=time.time())
            store.log(job_id, f"failed: {e}")
        except Exception as e:  # a failing backend fails its job, never the server
            self._discard(partial)
            store.update(job_id, state=FAILED, error=f"{type(e).__name__}: {e}", message="failed", finished=time.time())
            store.log(job_id, "failed:\n" + traceback.format_exc())

    def measure(self, job_id: str, job: GenerationJob, clip: Path) -> ClipParallax:
        """The clip's closed-loop report (``clip_parallax``); a clip that cannot be measured is still
        a result: the report then says why."""
        from .clip_parallax import measure_clip

        try:
            sky = bool(getattr(job.params, "sky", True))
            device = float64_device(job.device)
            report = ClipParallax(**measure_clip(clip, job.trajectory, job.image, job.depth, sky, device))
        except Exception as e:  # noqa: BLE001 - the clip is done; only its measurement failed
            self.store.log(job_id, "parallax not measured:\n" + traceback.format_exc())
            return ClipParallax(error=f"the clip's parallax could not be measured: {type(e).__name__}: {e}")
        cost = f"{report.seconds:.2f} s ({report.seconds_per_frame:.3f} s/frame)"
        self.store.log(job_id, f"parallax: {report.label} {report.pce}, {cost}")
        return report

    @staticmethod
    def _discard(partial: Path | None) -> None:
        if partial is not None:
            partial.unlink(missing_ok=True)

    def load_job(self, job_id: str, backend, request: dict, output: Path, device: str) -> GenerationJob:
        """The :class:`GenerationJob` from the job folder: the uploads the backend takes, decoded by
        the same :func:`~bridge_server.uploads.decode_uploads` that validated them at submission."""
        store = self.store
        params = backend.Params.model_validate(request["params"])
        paths = stored_uploads(lambda stem: store.find(job_id, stem), backend.uploads)
        uploads = decode_uploads(paths, self.limits, params, request.get("depth_scale"))
        return GenerationJob(
            trajectory=uploads.trajectory,
            image=uploads.image,
            depth=uploads.depth,
            params=params,
            output=output,
            device=device,
            log=lambda line: store.log(job_id, line),
            video=paths.get(wire.VIDEO),
            video_name=str(request.get("uploaded_names", {}).get(wire.VIDEO) or "video"),
        )
