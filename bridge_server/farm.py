"""The farm queue: Celery + Redis in front of the same job folders (``--queue redis://HOST:PORT/DB``).

The job folders stay the truth; Redis only carries job ids. The API server (:class:`RedisExecutor`)
writes a job folder and publishes its id; a ``parascale-worker`` process (one per GPU, concurrency 1,
prefetch 1, late acks) receives the id and calls :func:`run_job`, the one task body, which a studio
can also call from any other farm manager (OpenCue, Flamenco): ``parascale-worker --run-job ID``.

Because API and workers are separate processes (often machines) sharing the jobs folder:

- :class:`DiskJobStore` reads every status from ``status.json`` and changes it under an exclusive
  ``flock`` of ``<jobs>/.lock`` (read, change, write atomically), so the API's cancel and a worker's
  start are one or the other, never both.
- Claim: a worker turns a job from ``queued`` to ``running`` under that lock and creates
  ``claim-<attempt>`` in the job folder with ``O_EXCL``; a second delivery of the same id (a rebuilt
  queue, a redelivered message) finds the job not queued, or the claim file there, and is skipped.
  Writes by a worker to a job it no longer owns (reaped, re-queued, finished) are dropped.
- Heartbeat: the worker stamps ``heartbeat`` in the running job's status every interval, and its own
  ``<jobs>/workers/<name>.json`` (what ``/v1/health`` lists).
- Reaper (a thread of the API server): a running job whose heartbeat has not changed for the
  heartbeat timeout, on the API's own monotonic clock (a worker's clock is never compared with the
  API's: machines' clocks differ), ends ``interrupted``; if the request asked for ``retries``, it
  is queued again (``attempt`` + 1) instead, once per retry, and runs on whichever worker takes it.
- Cancel: queued jobs are cancelled in the store at once; for a running one the API creates the
  flag file ``cancel`` in the job folder, which the worker's cancel check reads between frames.
- Rebuild: at start and whenever Redis comes back with a new ``run_id`` (a restart that lost its
  data) or a publish failed, every ``queued`` job on disk is published again, oldest first.
  Duplicates are harmless (see Claim).

Identity: the API server writes ``<jobs>/farm.json`` (a random id) when it first serves a jobs folder;
the id names the farm's Redis queue (``parascale.<id>``) and travels in every message. A worker reads
it from its own ``--jobs-dir`` at start and refuses to start without it (a missing mount, a typo),
so workers and servers of different jobs folders on one Redis never take each other's jobs; a
message naming another farm is refused, and a job the worker cannot see in its folder is handed
back to the queue (never acknowledged and dropped). The reaper also publishes again every
``queued`` job that has no message in Redis (not waiting, not taken): after a FLUSHALL, or when a
message was lost anyhow.

The broker's visibility timeout (a message taken by a worker that never acknowledged it comes back
after it) is set to the longest job (``--visibility-timeout``, default 6 h); a crash is found sooner
by the heartbeat, so a redelivered message finds its job already finished and is skipped.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import socket
import sys
import threading
import time
import uuid
from pathlib import Path

from parascale_blender.client.wire import CANCELLED, FINISHED, INTERRUPTED, QUEUED, RUNNING

from .backends import backend_names
from .config import Limits
from .jobs import JOB_ID, JobQueue, JobStore, _why, _write_atomic, log
from .models import JobStatus, WorkerInfo

TASK = "parascale.run_job"
QUEUE_NAME = "parascale"  # the farm's queue is parascale.<farm id>
FARM_FILE = "farm.json"  # the farm's identity, in the jobs folder
JOB_HEADER, FARM_HEADER = "parascale_job", "parascale_farm"  # message headers naming the job and farm
CANCEL_FLAG = "cancel"
CLAIM = "claim-"
WORKERS = "workers"
HEARTBEAT_TIMEOUT_ENV = "PARASCALE_HEARTBEAT_TIMEOUT"  # seconds without a heartbeat before a job is lost
HEARTBEAT_INTERVAL_ENV = "PARASCALE_HEARTBEAT_INTERVAL"  # seconds between a worker's heartbeats
DEFAULT_HEARTBEAT_TIMEOUT = 60.0
DEFAULT_VISIBILITY_TIMEOUT = 6 * 3600.0


def heartbeat_timeout() -> float:
    return float(os.environ.get(HEARTBEAT_TIMEOUT_ENV, DEFAULT_HEARTBEAT_TIMEOUT))


def heartbeat_interval() -> float:
    return float(os.environ.get(HEARTBEAT_INTERVAL_ENV, heartbeat_timeout() / 6))


def farm_id(root: Path, create: bool = False) -> str | None:
    """The id in ``<root>/farm.json``; made (once, atomically) when absent and ``create``, else None."""
    path = Path(root) / FARM_FILE
    try:
        doc = json.loads(path.read_text())
        fid = doc.get("id") if isinstance(doc, dict) else None
        if not isinstance(fid, str) or not re.fullmatch(r"[0-9a-f]{32}", fid):
            raise ValueError("no 32-hex-digit id")
        return fid
    except FileNotFoundError:
        if not create:
            return None
    except (OSError, ValueError) as e:
        raise ValueError(f"{path} is not a ParaScale farm identity ({e}); remove it to make a new farm") from None
    new = uuid.uuid4().hex
    tmp = path.with_name(f".{FARM_FILE}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"id": new, "created": time.time(), "host": socket.gethostname()}))
    try:
        os.link(tmp, path)  # atomic create-if-absent: two servers starting at once agree on one id
    except FileExistsError:
        return farm_id(root)
    finally:
        tmp.unlink(missing_ok=True)
    return new


def queue_name(farm: str) -> str:
    return f"{QUEUE_NAME}.{farm}"


class _DiskLock:
    """Re-entrant within a process (an RLock), exclusive across processes (``flock`` of one file)."""

    def __init__(self, path: Path):
        self._path, self._rlock, self._depth, self._fd = path, threading.RLock(), 0, -1

    def __enter__(self):
        self._rlock.acquire()
        if self._depth == 0:
            try:
                self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
                fcntl.flock(self._fd, fcntl.LOCK_EX)
            except BaseException:
                self._rlock.release()
                raise
        self._depth += 1
        return self

    def __exit__(self, *exc):
        self._depth -= 1
        if self._depth == 0:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
        self._rlock.release()


class DiskJobStore(JobStore):
    """A :class:`JobStore` whose statuses live only on disk (shared by the API and the workers).

    ``worker`` is None in the API server; in a worker it names the worker, and writes to jobs this
    worker does not own (see the module docstring) are dropped."""

    def __init__(self, root: Path, worker: str | None = None):
        super().__init__(root)
        self._lock = _DiskLock(self.root / ".lock")  # type: ignore[assignment]
        self.worker = worker
        self._claimed: dict[str, int] = {}

    def folder(self, job_id: str) -> Path:
        if not JOB_ID.match(job_id):
            raise KeyError(f"no such job {job_id}")
        return self.root / job_id

    def get(self, job_id: str) -> JobStatus | None:
        if not JOB_ID.match(job_id):
            return None
        try:
            return JobStatus.model_validate_json(self.path(job_id, "status.json").read_bytes())
        except (OSError, ValueError):
            return None

    def current(self, job_id: str) -> JobStatus | None:
        return self.get(job_id)  # the disk is the only record here

    def retry_unsaved(self) -> int:
        return 0  # a failed write raises here: nothing is kept pending

    def all(self) -> list[JobStatus]:
        if not self.root.is_dir():  # the shared folder is unmounted or gone: no jobs to report
            return []
        found = (self.get(f.name) for f in self.root.iterdir() if JOB_ID.match(f.name))
        return sorted((s for s in found if s is not None), key=lambda s: s.created)

    def update(self, job_id: str, **changes) -> JobStatus:
        with self._lock:
            cur = self.get(job_id)
            if cur is None:
                raise KeyError(f"no job {job_id}")
            if self.worker is not None:
                if changes.get("state") == RUNNING and cur.state == QUEUED:
                    self._claim(job_id, cur.attempt)
                    changes.update(worker=self.worker, heartbeat=time.time())
                elif not self.owns(cur):
                    return cur  # reaped, re-queued or finished meanwhile: no longer this worker's job
            status = cur.model_copy(update=changes)
            try:
                _write_atomic(self.path(job_id, "status.json"), status.model_dump_json(indent=1).encode())
            except OSError as e:
                self.write_error = (time.monotonic(), f"{type(e).__name__}: {e.strerror or e}")
                raise
            if status.state != cur.state:
                log.info("job %s: %s -> %s%s", job_id, cur.state, status.state, _why(status))
            return status

    def owns(self, status: JobStatus) -> bool:
        return (
            status.state == RUNNING and status.worker == self.worker and self._claimed.get(status.id) == status.attempt
        )

    def _claim(self, job_id: str, attempt: int) -> None:
        """``claim-<attempt>`` created exclusively (raises FileExistsError when taken)."""
        fd = os.open(self.folder(job_id) / f"{CLAIM}{attempt}", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        with os.fdopen(fd, "w") as f:
            f.write(json.dumps({"worker": self.worker, "time": time.time()}))
        self._claimed[job_id] = attempt

    def claims(self, job_id: str) -> list[dict]:
        """Every claim of a job, attempt order (``{"attempt", "worker", "time"}``)."""
        out = []
        for p in sorted(self.folder(job_id).glob(CLAIM + "*")):
            with contextlib.suppress(OSError, ValueError):
                out.append({"attempt": int(p.name[len(CLAIM) :]), **json.loads(p.read_text())})
        return out

    def recover(self) -> list[str]:
        """Queued job ids, oldest first. Running jobs are left to the reaper (their worker may be alive)."""
        return [s.id for s in self.all() if s.state == QUEUED]

    # -- workers seen ------------------------------------------------------------------------
    def write_worker(self, info: WorkerInfo) -> None:
        folder = self.root / WORKERS
        folder.mkdir(exist_ok=True)
        _write_atomic(folder / f"{_safe(info.name)}.json", info.model_dump_json().encode())

    def remove_worker(self, name: str) -> None:
        (self.root / WORKERS / f"{_safe(name)}.json").unlink(missing_ok=True)

    def workers(self, max_age: float | None) -> list[WorkerInfo]:
        """The workers registered in the jobs folder (``max_age``: only those whose own heartbeat
        time is that recent on this machine's clock; None: all with a heartbeat)."""
        out, now = [], time.time()
        for p in sorted((self.root / WORKERS).glob("*.json")):
            with contextlib.suppress(OSError, ValueError):
                w = WorkerInfo.model_validate_json(p.read_bytes())
                if w.heartbeat is not None and (max_age is None or now - w.heartbeat <= max_age):
                    out.append(w)
        return out


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name)[:120]


class _FlagEvent(threading.Event):
    """Set in this process, or by the API through the job folder's ``cancel`` flag file."""

    def __init__(self, flag: Path):
        super().__init__()
        self.flag = flag

    def is_set(self) -> bool:
        return super().is_set() or self.flag.exists()


class FarmRunner(JobQueue):
    """Runs one job at a time in this process (a worker): the claim, heartbeats, the cancel flag.
    The job body itself is :meth:`JobQueue._run`, the same as the local queue's."""

    def __init__(self, jobs_dir: Path, device: str, limits: Limits | None = None, name: str | None = None):
        self.name = name or f"{socket.gethostname()}:{device}:{os.getpid()}"
        store = DiskJobStore(jobs_dir, worker=self.name)
        super().__init__(store, [device], limits or Limits())
        self.disk: DiskJobStore = store
        self.device = device
        self.current: str | None = None
        self._beat: threading.Thread | None = None
        self._stop = threading.Event()

    def info(self) -> WorkerInfo:
        return WorkerInfo(
            name=self.name,
            host=socket.gethostname(),
            device=self.device,
            backends=backend_names(),
            heartbeat=time.time(),
            job=self.current,
        )

    def beat(self) -> None:
        with contextlib.suppress(OSError):
            self.disk.write_worker(self.info())
        job = self.current
        if job is not None:
            with contextlib.suppress(KeyError, OSError):
                self.disk.update(job, heartbeat=time.time())

    def start_heartbeat(self) -> None:
        if self._beat is None:
            self.beat()
            self._beat = threading.Thread(target=self._beat_loop, name="parascale-heartbeat", daemon=True)
            self._beat.start()

    def _beat_loop(self) -> None:
        while not self._stop.wait(heartbeat_interval()):
            self.beat()

    def stop_heartbeat(self) -> None:
        self._stop.set()
        self.disk.remove_worker(self.name)

    def run(self, job_id: str) -> str:
        """Run job ``job_id`` if it is still queued; returns its state afterwards."""
        if not JOB_ID.match(job_id):
            raise ValueError(f"not a job id: {job_id!r}")
        self.start_heartbeat()
        self._cancel[job_id] = _FlagEvent(self.disk.folder(job_id) / CANCEL_FLAG)
        self.current = job_id
        try:
            self._run(job_id, self.device)
        except FileExistsError:
            pass  # another worker claimed this attempt first
        finally:
            self.current = None
            self._cancel.pop(job_id, None)
            self.beat()
        status = self.disk.get(job_id)
        return status.state if status is not None else "missing"


_RUNNERS: dict[tuple[str, str], FarmRunner] = {}


def run_job(job_id: str, jobs_dir: str | Path | None = None, device: str | None = None) -> str:
    """The task body: run one queued job from the jobs folder on this machine; returns its final state.

    ``jobs_dir`` / ``device`` default to ``$PARASCALE_JOBS_DIR`` / ``$PARASCALE_DEVICE`` (else ``cpu``).
    The runner (and so each backend's loaded models) stays warm in the process between calls."""
    root = str(Path(jobs_dir or os.environ["PARASCALE_JOBS_DIR"]).expanduser().resolve())
    dev = device or os.environ.get("PARASCALE_DEVICE", "cpu")
    runner = _RUNNERS.get((root, dev))
    if runner is None:
        runner = _RUNNERS[(root, dev)] = FarmRunner(Path(root), dev)
    return runner.run(job_id)


def celery_app(url: str, farm: str, visibility_timeout: float = DEFAULT_VISIBILITY_TIMEOUT):
    """The Celery app of both sides: the farm's one queue, late acks, prefetch 1, no result backend."""
    from celery import Celery

    app = Celery("parascale", broker=url, set_as_current=False)
    app.conf.update(
        task_default_queue=queue_name(farm),
        task_acks_late=True,
        task_reject_on_worker_lost=False,
        worker_prefetch_multiplier=1,
        task_ignore_result=True,
        broker_transport_options={"visibility_timeout": visibility_timeout},
        broker_connection_retry_on_startup=True,
        broker_connection_timeout=2.0,
        broker_connection_max_retries=None,
        worker_hijack_root_logger=False,
        worker_cancel_long_running_tasks_on_connection_loss=False,
    )
    return app


def drop_unreadable_entries() -> None:
    """Make this process's Redis consumer log and drop a queue entry that is not JSON (``LPUSH q x``)
    instead of letting the error stop the worker: kombu has popped it already, nothing else is lost."""
    from kombu.transport import redis as kombu_redis

    channel = kombu_redis.Channel
    if getattr(channel, "_parascale_safe", False):
        return
    read = channel._brpop_read

    def _brpop_read(self, **options):
        try:
            return read(self, **options)
        except ValueError as e:  # json.JSONDecodeError and UnicodeDecodeError are ValueErrors
            from queue import Empty

            print(f"parascale-worker: dropped a queue entry that is not a message ({e})", file=sys.stderr)
            raise Empty() from None

    channel._brpop_read = _brpop_read
    channel._parascale_safe = True


class RedisExecutor:
    """The API server's side of the farm: publish, cancel, count, reap, rebuild (see the module doc)."""

    def __init__(self, store: DiskJobStore, url: str, timeout: float | None = None):
        self.store, self.url = store, url
        self.timeout = timeout or heartbeat_timeout()
        self.farm = farm_id(store.root, create=True)
        self.queue = queue_name(self.farm)
        self._app = celery_app(url, self.farm)
        self._published: dict[str, float] = {}  # job id -> when this API last published it (monotonic)
        self._redis_ok = True  # the last time the reaper asked, Redis answered
        self._lost_at: tuple[float, int] | None = None  # (monotonic, count) when lost messages were last found
        self._beats: dict[tuple, tuple] = {}  # (job or worker key) -> (heartbeat seen, monotonic when it changed)
        self._publish_lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._run_id: str | None = None
        self._need_rebuild = True

    # -- the five calls ----------------------------------------------------------------------
    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="parascale-reaper", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, job_id: str) -> None:
        if not self._publish(job_id):
            self._need_rebuild = True  # the job is queued on disk; published when Redis answers

    def cancel(self, job_id: str) -> JobStatus | None:
        with self.store._lock:
            status = self.store.get(job_id)
            if status is None or status.state in FINISHED:
                return status
            if status.state == QUEUED:
                return self.store.update(job_id, state=CANCELLED, finished=time.time(), message="cancelled")
            (self.store.folder(job_id) / CANCEL_FLAG).touch()
            return self.store.update(job_id, message="cancelling")

    def counts(self) -> tuple[int, int]:
        states = [s.state for s in self.store.all()]
        return states.count(QUEUED), states.count(RUNNING)

    def workers(self, stuck_after: float) -> list[WorkerInfo]:
        """The workers whose heartbeat changed within 3 heartbeat timeouts on this API's clock (a dead
        worker drops out; its job is reaped)."""
        now = time.monotonic()
        found = self.store.workers(max_age=None)
        return [w for w in found if self.silent_for(("worker", w.name), w.heartbeat, now) <= 3 * self.timeout]

    def silent_for(self, key: tuple, beat: float | None, now: float) -> float:
        """Seconds (API monotonic clock) since ``beat``, a heartbeat value of ``key``, last changed;
        a value first seen counts from ``now``."""
        seen = self._beats.get(key)
        if seen is None or seen[0] != beat:
            self._beats[key] = (beat, now)
            return 0.0
        return now - seen[1]

    def problems(self) -> list[str]:
        """For /v1/health: Redis not answering, no live worker, or queued jobs found without their
        message in Redis within the last 3 heartbeat timeouts (published again)."""
        out = []
        if not self._redis_ok:
            out.append("Redis does not answer: jobs wait on disk until it does")
        if not self.workers(0):
            out.append(f"no live worker (none sent a heartbeat in {3 * self.timeout:g} s): queued jobs wait")
        if self._lost_at and time.monotonic() - self._lost_at[0] < 3 * self.timeout:
            out.append(f"{self._lost_at[1]} queued job(s) had no message in Redis (a flush?): published again")
        return out

    # -- the rest ----------------------------------------------------------------------------
    def _publish(self, job_id: str) -> bool:
        try:
            with self._publish_lock:
                self._published[job_id] = time.monotonic()
                self._app.send_task(
                    TASK,
                    args=[job_id, self.farm],
                    queue=self.queue,
                    headers={JOB_HEADER: job_id, FARM_HEADER: self.farm},
                    retry=True,
                    retry_policy={"max_retries": 1, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.2},
                )
            return True
        except Exception as e:  # Redis down: the job folder keeps it queued
            print(f"parascale-server: could not publish job {job_id}: {e}", file=sys.stderr)
            return False

    def _redis_run_id(self) -> str | None:
        try:
            client = self._redis()
            try:
                return str(client.info("server")["run_id"])
            finally:
                client.close()
        except Exception:
            return None

    def _redis(self):
        import redis

        return redis.Redis.from_url(self.url, socket_timeout=2, socket_connect_timeout=1)

    def in_redis(self) -> set[str] | None:
        """Ids of the jobs with a message in Redis, waiting in this farm's queue or taken by a worker
        and not yet acknowledged (None when Redis cannot be read)."""
        lists = [self.queue] + [f"{self.queue}\x06\x16{p}" for p in (3, 6, 9)]  # kombu's priority lists
        try:
            client = self._redis()
            try:
                raw = [m for name in lists for m in client.lrange(name, 0, -1)]
                raw += [m for m in client.hvals("unacked")]
            finally:
                client.close()
        except Exception:
            return None
        ids = set()
        for item in raw:
            with contextlib.suppress(ValueError, TypeError, AttributeError, IndexError):
                doc = json.loads(item)
                doc = doc[0] if isinstance(doc, list) else doc  # unacked: [message, exchange, routing key]
                job = doc["headers"].get(JOB_HEADER)
                if isinstance(job, str):
                    ids.add(job)
        return ids

    def republish_stale(self, grace: float | None = None) -> list[str]:
        """Publish again each queued job that has had no message in Redis for ``grace`` seconds
        since this API last published it (a FLUSHALL, a lost message); the ids published."""
        grace = max(1.0, self.timeout / 3) if grace is None else grace
        queued = self.store.recover()
        if not queued:
            return []
        present = self.in_redis()
        if present is None:
            return []
        now, again = time.monotonic(), []
        for job_id in queued:
            if job_id in present:
                continue
            seen = self._published.setdefault(job_id, now)  # queued by another API: wait one grace too
            if now - seen >= grace:
                self.store.log(job_id, "published again: its message was not in Redis")
                again.append(job_id)
                if not self._publish(job_id):
                    self._need_rebuild = True
                    break
        for job_id in set(self._published) - set(queued):
            del self._published[job_id]
        if again:
            self._lost_at = (time.monotonic(), len(again))
        return again

    def rebuild(self) -> bool:
        """Publish every queued job on disk again (oldest first); False if Redis refused one."""
        return all(self._publish(job_id) for job_id in self.store.recover())

    def _loop(self) -> None:
        tick = max(0.05, min(1.0, self.timeout / 6))
        while True:
            run_id = self._redis_run_id()
            self._redis_ok = run_id is not None
            if run_id is not None and (run_id != self._run_id or self._need_rebuild):
                self._need_rebuild = False
                if not self.rebuild():
                    self._need_rebuild = True
                self._run_id = run_id
            with contextlib.suppress(OSError):
                self.reap()
            with contextlib.suppress(OSError):
                self.republish_stale()
            if self._stop.wait(tick):
                return

    def reap(self) -> list[str]:
        """Running jobs whose heartbeat has not changed for the timeout (this API's monotonic clock):
        interrupted, or queued again."""
        reaped, keys = [], set()

        def silent(s: JobStatus) -> float:
            key = ("job", s.id, s.attempt, s.worker)
            keys.add(key)
            return self.silent_for(key, s.heartbeat or s.started or s.created, time.monotonic())

        for s in self.store.all():
            if s.state != RUNNING or silent(s) <= self.timeout:
                continue
            requeue = False
            with self.store._lock:
                s = self.store.get(s.id)
                if s is None or s.state != RUNNING or silent(s) <= self.timeout:
                    continue
                self.store.discard_partial(s.id)
                try:
                    retries = int(json.loads(self.store.path(s.id, "request.json").read_text()).get("retries", 0))
                except (OSError, ValueError):
                    retries = 0
                lost = f"worker {s.worker} sent no heartbeat for {self.timeout:g} s"
                # each log line goes first: a client that sees the new state finds its reason in the log
                if (self.store.folder(s.id) / CANCEL_FLAG).exists():
                    self.store.log(s.id, f"cancelled: {lost}")
                    self.store.update(s.id, state=CANCELLED, finished=time.time(), message="cancelled")
                elif s.attempt < retries:
                    self.store.log(s.id, f"queued again (attempt {s.attempt + 1} of {retries}): {lost}")
                    self.store.update(
                        s.id,
                        state=QUEUED,
                        attempt=s.attempt + 1,
                        worker=None,
                        heartbeat=None,
                        started=None,
                        progress=0.0,
                        message=f"queued again: {lost}",
                    )
                    requeue = True
                else:
                    self.store.log(s.id, f"marked interrupted: {lost}")
                    self.store.update(
                        s.id,
                        state=INTERRUPTED,
                        finished=time.time(),
                        error=f"{lost} (it crashed or lost the jobs folder); submit the job again",
                        message="interrupted",
                    )
                reaped.append(s.id)
            if requeue:
                self.submit(s.id)
        for key in [k for k in list(self._beats) if k[0] == "job" and k not in keys]:
            del self._beats[key]
        return reaped
