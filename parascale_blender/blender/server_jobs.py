"""Server jobs (generate, track, depth): one model for every kind, followed without blocking.

Threading contract: bpy is touched only on the main thread. One persistent ``bpy.app.timers`` timer
ticks every live job every 0.5 s; each :meth:`ServerJob.tick` runs at most one HTTP call on a
background thread and waits for it at most 0.5 s. A submission waits on the operator at most
:data:`SUBMIT_WAIT` seconds (a refusal is then reported by the operator), then goes on under the
timer. The bpy module has no event loop, so tests call :func:`tick_scene` directly.

One model: every kind's state is a :class:`ParaScaleServerJob` at ``scene.parascale_jobs.<kind>``
(saved with the .blend), its ``state`` one of
:data:`STATES`; one Cancel operator (``parascale.server_job_cancel``, ``kind=...``) and one draw
function (:func:`draw_job`) serve every panel section. When a job's result is downloaded, the
handler registered for its kind runs (it validates first and touches the scene last); an error
there is shown as the job's error. What a handler changes is one undo step of its own
(:func:`push_undo`): Ctrl-Z takes back the landed result and nothing before it.

Re-attaching on load (``load_post``) follows only the jobs this installation submitted, to the same
server, and saves each result where it was chosen at submission (:class:`client.ledger.Ledger`, in the
add-on's user folder): a job id or result path read from a ``.blend`` alone is never followed or written.

A job that ends interrupted (the server stopped or restarted under it), failed or lost can be
submitted again as it was sent (``parascale.server_job_retry``; the request is kept in memory for
this session). Closing the file during a job (File > New, Open: ``load_pre``) never drops it: it is
carried on until its result file is on disk at its output path, which the sidebar and the console
say (:func:`draw_carried`); reopening its file takes it back.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable

import bpy
from bpy.app.handlers import persistent

from ..client import (
    DEFAULT_URL,
    TERMINAL,
    BridgeClient,
    BridgeError,
    JobRequest,
    ServerJob,
    ServerNotRunning,
    is_loopback_url,
    wire,
)
from ..client.job import DOWNLOADING, LOST, PENDING
from ..client.ledger import Ledger
from . import local_server, prefs

TIMER_INTERVAL = 0.5
SUBMIT_WAIT = 2.0  # seconds a submission holds its operator (a local server names a job in milliseconds)
KIND_ITEMS = [
    ("generate", "Generate", "A clip generated along the baked target camera"),
    ("track", "Track video", "A reference video tracked on the server"),
    ("depth", "Plate depth", "The plate's depth estimated on the server"),
]
KINDS = tuple(k for k, _, _ in KIND_ITEMS)
LABELS = {k: label for k, label, _ in KIND_ITEMS}
IDLE = "idle"
# The job states (the client's, plus "idle" = no job yet); numbered so saved files stay stable.
STATE_ITEMS = [
    (IDLE, "Idle", "No job yet", 0),
    (PENDING, "Pending", "Not yet submitted", 1),
    (wire.QUEUED, "Queued", "Waiting on the server", 2),
    (wire.RUNNING, "Running", "Running on the server", 3),
    (DOWNLOADING, "Downloading", "Done on the server; the result is being saved", 4),
    (wire.DONE, "Done", "The result is in the scene", 5),
    (wire.FAILED, "Failed", "The job or its result failed (see the error)", 6),
    (wire.CANCELLED, "Cancelled", "Cancelled", 7),
    (wire.INTERRUPTED, "Interrupted", "The server restarted during the job", 8),
    (LOST, "Lost", "The server no longer knows the job", 9),
]
STATES = frozenset(s for s, *_ in STATE_ITEMS)
_JOBS: dict[tuple[str, str], ServerJob] = {}  # (scene.name_full, kind) -> live job
_HANDLERS: dict[str, Callable] = {}  # kind -> handler(scene, record, result_path) -> message
_REQUESTS: dict[tuple[str, str], JobRequest] = {}  # (scene.name_full, kind) -> its last job's request (Retry)
RETRYABLE = frozenset({wire.INTERRUPTED, wire.FAILED, LOST})
_CARRIED: list[dict] = []  # jobs of a file that was closed while they ran: followed to their file on disk


class JobError(ValueError):
    """A server job cannot start; the message is for the artist."""


class ParaScaleServerJob(bpy.types.PropertyGroup):
    """One server job of a scene: what was sent, where it is, what it became."""

    job_id: bpy.props.StringProperty(name="Job")
    state: bpy.props.EnumProperty(name="State", items=STATE_ITEMS, default=IDLE)
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    message: bpy.props.StringProperty(name="Message")
    error: bpy.props.StringProperty(name="Error")
    source_path: bpy.props.StringProperty(name="Source", subtype="FILE_PATH")
    output_path: bpy.props.StringProperty(name="Result", subtype="FILE_PATH")
    result_name: bpy.props.StringProperty(name="Result name", description="What the result became in the scene")
    options: bpy.props.StringProperty(name="Options", description="JSON: what the result handler needs")
    report: bpy.props.StringProperty(name="Report", description="JSON: the done job's closed-loop report (parallax)")


class ParaScaleServerJobs(bpy.types.PropertyGroup):
    """``scene.parascale_jobs``: the scene's job of each kind."""

    generate: bpy.props.PointerProperty(type=ParaScaleServerJob)
    track: bpy.props.PointerProperty(type=ParaScaleServerJob)
    depth: bpy.props.PointerProperty(type=ParaScaleServerJob)


def ledger() -> Ledger:
    """The jobs this installation submitted (the add-on's user folder)."""
    return Ledger(os.path.join(local_server.user_folder(), "submitted-jobs.json"))


def _note(st, job: ServerJob) -> None:
    """Once the server has named ``job``: its id in the record and in this installation's ledger."""
    if job.job_id and st.job_id != job.job_id:
        st.job_id = job.job_id
        ledger().add(job.job_id, job.client.url, job.output_path)


def record(scene, kind: str) -> ParaScaleServerJob:
    """The scene's :class:`ParaScaleServerJob` of ``kind``."""
    return getattr(scene.parascale_jobs, kind)


def register_handler(kind: str, handler: Callable) -> None:
    """``handler(scene, record, result_path) -> str`` imports a finished job's result."""
    _HANDLERS[kind] = handler


def client(context=None, timeout: float = 5.0) -> BridgeClient:
    """The client for the preferences' server URL (loopback, or online access allowed)."""
    p = prefs.get(context)
    url = p.server_url if p else DEFAULT_URL
    if not is_loopback_url(url) and not bpy.app.online_access:
        raise JobError(f"server {url} is not on this machine and Blender's online access is off")
    return BridgeClient(url, token=(p.server_token if p else None) or None, timeout=timeout)


def backend_ready(cl: BridgeClient, backend: str) -> tuple[bool, str]:
    """(True, "") when the server answers and offers ``backend``; else (False, why)."""
    try:
        infos = {b.get("name"): b for b in cl.backends()}
    except ServerNotRunning as e:
        return False, str(e)
    except BridgeError as e:
        return False, f"server at {cl.url}: {e}"
    info = infos.get(backend)
    if info is None:
        return False, f"server at {cl.url} has no {backend!r} backend (an older server?)"
    if not info.get("available", True):
        return False, f"server at {cl.url}: {backend!r} is not available: {info.get('reason') or 'no reason given'}"
    return True, ""


def unique_path(folder: str, stem: str, ext: str) -> str:
    path = os.path.join(folder, f"{stem}{ext}")
    n = 1
    while os.path.exists(path):
        path = os.path.join(folder, f"{stem}_{n:03d}{ext}")
        n += 1
    return path


def output_folder(next_to: str) -> str:
    """The folder of ``next_to`` if writable, else the .blend's folder; JobError if neither."""
    for folder in (os.path.dirname(os.path.abspath(next_to)), os.path.dirname(bpy.data.filepath)):
        if folder and os.path.isdir(folder) and os.access(folder, os.W_OK):
            return folder
    raise JobError(f"cannot write next to {next_to} and the .blend is not saved: save the .blend first")


def check_idle(scene, kind: str) -> None:
    """JobError when the scene's ``kind`` job is still running."""
    if is_running(scene, kind):
        raise JobError(f"a {LABELS[kind]} job is already running for this scene: cancel it first")


def start(scene, kind: str, cl: BridgeClient, request: JobRequest, source: str, output: str, options: dict):
    """Submit ``request`` (:func:`submit_now`) and follow the job until its result lands at ``output``."""
    check_idle(scene, kind)
    return follow(scene, kind, submit_now(ServerJob(cl, request, output)), source, options)


def follow(scene, kind: str, job: ServerJob, source: str = "", options: dict | None = None) -> ServerJob:
    """Record ``job`` (submitted) as the scene's ``kind`` job and tick it until it ends."""
    check_idle(scene, kind)
    st = record(scene, kind)
    st.job_id, st.error, st.result_name = "", "", ""
    st.source_path, st.output_path, st.options = source, str(job.output_path), json.dumps(options or {})
    _note(st, job)
    _mirror(st, job)
    _JOBS[(scene.name_full, kind)] = job
    if job.request is not None:
        _REQUESTS[(scene.name_full, kind)] = job.request
    ensure_timer()
    return job


def submit_now(job: ServerJob, seconds: float = SUBMIT_WAIT) -> ServerJob:
    """Tick ``job`` for at most ``seconds`` while the server names it, so a quick refusal is reported
    by the operator itself (JobError); a slower submission goes on under the timer (the UI never
    waits longer), its outcome shown in the panel."""
    deadline = time.monotonic() + seconds
    while job.job_id is None and not job.finished and time.monotonic() < deadline:
        job.tick()
    if job.finished and job.job_id is None:
        raise JobError(job.error or job.message or "the server did not take the job")
    return job


def can_retry(scene, kind: str) -> bool:
    """The scene's last ``kind`` job ended interrupted, failed or lost and its request is known."""
    st = record(scene, kind)
    return st.state in RETRYABLE and (scene.name_full, kind) in _REQUESTS and not is_running(scene, kind)


def retry(context, scene, kind: str) -> ServerJob:
    """Submit the scene's last ``kind`` request again, as it was sent (same uploads, same options,
    same result path): a new job with its own idempotency key, followed like the first."""
    request = _REQUESTS.get((scene.name_full, kind))
    if request is None:
        raise JobError(f"the {LABELS[kind]} request is no longer in memory (Blender was restarted): start it again")
    check_idle(scene, kind)
    st = record(scene, kind)
    job = submit_now(ServerJob(client(context), request, st.output_path))
    return follow(scene, kind, job, st.source_path, json.loads(st.options or "{}"))


def set_error(scene, kind: str, error) -> None:
    """Show why a ``kind`` job could not start (the record of a running job is left alone)."""
    if not is_running(scene, kind):
        record(scene, kind).error = str(error)[:1000]


def is_running(scene, kind: str) -> bool:
    job = _JOBS.get((scene.name_full, kind))
    return job is not None and not job.finished


def cancel(scene, kind: str) -> bool:
    job = _JOBS.get((scene.name_full, kind))
    if job is None:
        return False
    job.cancel()
    _mirror(record(scene, kind), job)
    return True


def _mirror(st, job: ServerJob) -> None:
    # A state this add-on does not know (a newer client) shows as running until the job ends.
    st.state = job.state if job.state in STATES else (wire.FAILED if job.finished else wire.RUNNING)
    st.progress = min(max(job.progress, 0.0), 1.0)
    st.message = (job.message or "")[:500]
    st.error = (job.error or "")[:1000]


def push_undo(what: str) -> bool:
    """One undo step of its own for a change a job made when it landed (timer-driven changes push
    none, so Ctrl-Z would take the artist's last operator with them): Ctrl-Z then takes back only
    that change. False where Blender keeps no undo stack (e.g. undo turned off)."""
    try:
        bpy.ops.ed.undo_push(message=f"ParaScale: {what}"[:63])
    except RuntimeError:  # its poll refuses (no undo stack, a file being read)
        return False
    return True


def tick_scene(scene, kind: str) -> str:
    """Advance the scene's ``kind`` job by one step; when done, run its handler. Returns the state."""
    st = record(scene, kind)
    job = _JOBS.get((scene.name_full, kind))
    if job is None:
        return st.state
    job.tick()
    _note(st, job)
    _mirror(st, job)
    if job.finished:
        _JOBS.pop((scene.name_full, kind), None)
        if job.job_id:
            ledger().remove(job.job_id)
        if job.state == wire.DONE:
            st.report = json.dumps(job.server_status.get(wire.PARALLAX) or {})
            try:
                st.message = _HANDLERS[kind](scene, st, str(job.result_path))[:500]
            except Exception as e:  # the handler validates before touching the scene
                st.state = wire.FAILED
                st.error = (str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}")[:1000]
            else:
                push_undo(f"{LABELS[kind]} result")
    return st.state


def tick_carried() -> None:
    """Advance the jobs carried over from a closed file; each ends with its result file on disk
    (or its error), said in the panel and on the console."""
    for c in _CARRIED:
        job = c["job"]
        if job.finished:
            continue
        try:
            job.tick()
        except Exception as e:  # noqa: BLE001 - a carried job must not stop the timer
            job.state, job.error = wire.FAILED, f"{type(e).__name__}: {e}"
        if job.finished:
            if job.job_id:
                ledger().remove(job.job_id)
            what = f"{LABELS[c['kind']]} job {job.job_id} of {c['file']} ({c['scene']})"
            if job.state == wire.DONE:
                c["message"] = f"{what}: result saved at {job.result_path}"
            else:
                c["message"] = f"{what} ended {job.state}: {job.error or job.message}"
            print(f"ParaScale: {c['message']}")


def carried() -> list[dict]:
    """The carried jobs: ``kind``, ``file``, ``scene``, ``job`` (a ServerJob), ``message`` once ended."""
    return list(_CARRIED)


def tick_all() -> bool:
    """Tick every live job (and every carried one); True while any is still running."""
    tick_carried()
    for name, kind in list(_JOBS):
        scene = bpy.data.scenes.get(name)
        if scene is None:
            _JOBS.pop((name, kind), None)
            continue
        try:
            tick_scene(scene, kind)
        except Exception as e:  # a timer that raises is unregistered by Blender: keep it alive
            record(scene, kind).error = f"{kind}: {type(e).__name__}: {e}"
    return bool(_JOBS) or any(not c["job"].finished for c in _CARRIED)


def _timer():
    return TIMER_INTERVAL if tick_all() else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TIMER_INTERVAL, persistent=True)


def draw_job(layout, scene, kind: str) -> bool:
    """A job's status in a panel section: progress and Cancel while it runs (True), else its last
    error or outcome (False)."""
    st = record(scene, kind)
    if is_running(scene, kind):
        layout.progress(factor=st.progress, text=f"{LABELS[kind]}: {st.state} {st.message}"[:80])
        layout.operator(PARASCALE_OT_server_job_cancel.bl_idname, icon="CANCEL").kind = kind
        return True
    if st.state == wire.INTERRUPTED:
        layout.label(text=f"{LABELS[kind]} interrupted: the server stopped during the job", icon="ERROR")
    elif st.error:
        layout.label(text=st.error[:200], icon="ERROR")
    elif st.state != IDLE:
        layout.label(text=f"{LABELS[kind]}: {st.state} {st.result_name}".strip()[:200], icon="INFO")
    if can_retry(scene, kind):
        layout.operator(PARASCALE_OT_server_job_retry.bl_idname, icon="FILE_REFRESH").kind = kind
    return False


def draw_carried(layout) -> None:
    """Jobs carried over from a file that was closed while they ran: running, or where their result is."""
    for c in _CARRIED:
        job = c["job"]
        if c.get("message"):
            layout.label(text=c["message"][:300], icon="CHECKMARK" if job.state == wire.DONE else "ERROR")
        else:
            text = f"{LABELS[c['kind']]} of {c['file']}: {job.state} {job.message} → {job.output_path}"
            layout.progress(factor=min(max(job.progress, 0.0), 1.0), text=text[:120])


class PARASCALE_OT_server_job_cancel(bpy.types.Operator):
    """Cancel the scene's running server job of this kind (the server stops at its next step)"""

    bl_idname = "parascale.server_job_cancel"
    bl_label = "Cancel"
    bl_options = {"REGISTER"}  # not undoable: the server has stopped the job either way

    kind: bpy.props.EnumProperty(name="Job", items=KIND_ITEMS)

    def execute(self, context):
        if not cancel(context.scene, self.kind):
            self.report({"WARNING"}, f"{LABELS[self.kind]}: no running job")
            return {"CANCELLED"}
        return {"FINISHED"}


class PARASCALE_OT_server_job_retry(bpy.types.Operator):
    """Submit the job again exactly as it was sent (after the server stopped or restarted during it)"""

    bl_idname = "parascale.server_job_retry"
    bl_label = "Retry"
    bl_options = {"REGISTER"}  # a new server job; not undoable

    kind: bpy.props.EnumProperty(name="Job", items=KIND_ITEMS)

    def execute(self, context):
        try:
            job = retry(context, context.scene, self.kind)
        except (JobError, BridgeError, OSError) as e:
            set_error(context.scene, self.kind, e)
            self.report({"ERROR"}, f"{LABELS[self.kind]}: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"{LABELS[self.kind]}: submitted again as job {(job.job_id or 'being submitted')[:8]}")
        return {"FINISHED"}


def carry_running_jobs(file: str) -> int:
    """The file is being closed: its running jobs are carried on (their results land on disk at
    their output paths, said by :func:`draw_carried` and on the console), never dropped. Returns how many."""
    n = 0
    for (name, kind), job in list(_JOBS.items()):
        if not job.finished:
            _CARRIED.append({"kind": kind, "file": os.path.basename(file) or "the unsaved file", "scene": name,
                             "job": job, "message": ""})  # fmt: skip
            n += 1
    _JOBS.clear()
    _REQUESTS.clear()
    _CARRIED[:] = [c for c in _CARRIED if not c["job"].finished or c["message"]][-8:]
    return n


def reattach(context) -> int:
    """Follow again every job the open file records as unfinished that this installation submitted
    to the configured server (its result saved where the ledger says); returns how many. A job
    carried from the previous file that this file records (reopened, reverted) is taken back. Any
    other recorded job is marked lost, saying why, and nothing is fetched for it."""
    _JOBS.clear()
    n = 0
    for scene in bpy.data.scenes:
        for kind in _HANDLERS:
            st = record(scene, kind)
            mine = next((c for c in _CARRIED if c["job"].job_id == st.job_id and not c["job"].finished), None)
            if st.job_id and mine is not None:
                _CARRIED.remove(mine)
                _JOBS[(scene.name_full, kind)] = mine["job"]
                n += 1
            elif st.job_id and st.state != IDLE and st.state not in TERMINAL:
                try:
                    cl = client(context)
                except JobError as e:
                    st.error = str(e)
                    continue
                mine = ledger().get(st.job_id, cl.url)
                if mine is None:
                    st.state, st.message = LOST, ""
                    st.error = (
                        f"job {st.job_id[:40]} was not submitted from this Blender installation to {cl.url}: "
                        "not followed, nothing fetched"
                    )
                    continue
                st.output_path = mine["output"]
                _JOBS[(scene.name_full, kind)] = ServerJob.attach(cl, st.job_id, mine["output"])
                n += 1
    if n:
        ensure_timer()
    return n


@persistent
def _load_pre(*_args) -> None:
    if carry_running_jobs(bpy.data.filepath):
        ensure_timer()


@persistent
def _load_post(*_args) -> None:
    reattach(bpy.context)


@persistent
def _undo_post(*_args) -> None:
    """Ctrl-Z past a landed result restores its record as it was while the job ran: it is done (its
    file stays on disk), not followed again on the next load."""
    for scene in bpy.data.scenes:
        for kind in _HANDLERS:
            st = record(scene, kind)
            live = (scene.name_full, kind) in _JOBS or any(c["job"].job_id == st.job_id for c in _CARRIED)
            if st.job_id and st.state != IDLE and st.state not in TERMINAL and not live:
                st.state, st.progress = wire.DONE, 1.0
                st.message = f"result undone; the file stays at {st.output_path}"[:500]


classes = (ParaScaleServerJob, ParaScaleServerJobs, PARASCALE_OT_server_job_cancel, PARASCALE_OT_server_job_retry)
_LOAD_HANDLERS = (("load_pre", _load_pre), ("load_post", _load_post), ("undo_post", _undo_post))


def register() -> None:
    bpy.types.Scene.parascale_jobs = bpy.props.PointerProperty(type=ParaScaleServerJobs)
    for name, fn in _LOAD_HANDLERS:
        getattr(bpy.app.handlers, name).append(fn)


def unregister() -> None:
    for name, fn in _LOAD_HANDLERS:
        if fn in getattr(bpy.app.handlers, name):
            getattr(bpy.app.handlers, name).remove(fn)
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    _JOBS.clear()
    del bpy.types.Scene.parascale_jobs
