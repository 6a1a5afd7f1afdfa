"""Server jobs (Generate, reference-video tracking, plate depth), followed without blocking.

Threading contract: no threads. One persistent ``bpy.app.timers`` timer ticks every live job every
0.5 s on the main thread; each :meth:`ServerJob.tick` makes at most one short HTTP call. The bpy
module has no event loop, so tests call :func:`tick_scene` directly. A job's state is mirrored
into a property group on the scene (:class:`ParaScaleServerJob`, or the group a kind registers;
saved with the .blend, so ``load_post`` re-attaches to unfinished jobs) and the panel shows
progress and Cancel. When a job's result is downloaded, the handler registered for its kind runs
(it validates first and touches the scene last); an error there is shown as the job's error.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable

import bpy
from bpy.app.handlers import persistent

from ..client import TERMINAL, BridgeClient, BridgeError, ServerJob, ServerNotRunning, is_loopback_url
from . import prefs

TIMER_INTERVAL = 0.5
KINDS = ("track", "depth")  # scene.parascale_<kind>_job, a ParaScaleServerJob
_JOBS: dict[tuple[str, str], ServerJob] = {}  # (scene.name_full, kind) -> live job
_HANDLERS: dict[str, Callable] = {}  # kind -> handler(scene, settings, result_path) -> message
_SETTINGS: dict[str, Callable] = {}  # kind -> settings(scene), for kinds with their own property group


class JobError(ValueError):
    """A server job cannot start; the message is for the artist."""


class ParaScaleServerJob(bpy.types.PropertyGroup):
    job_id: bpy.props.StringProperty(name="Job")
    state: bpy.props.StringProperty(name="State")
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    message: bpy.props.StringProperty(name="Message")
    error: bpy.props.StringProperty(name="Error")
    source_path: bpy.props.StringProperty(name="Source", subtype="FILE_PATH")
    output_path: bpy.props.StringProperty(name="Result", subtype="FILE_PATH")
    options: bpy.props.StringProperty(name="Options", description="JSON: what the result handler needs")


def settings(scene, kind: str):
    """The property group mirroring the scene's ``kind`` job (state, progress, message, error, job_id)."""
    get = _SETTINGS.get(kind)
    return get(scene) if get is not None else getattr(scene, f"parascale_{kind}_job")


def register_handler(kind: str, handler: Callable, settings: Callable | None = None) -> None:
    """``handler(scene, settings, result_path) -> str`` imports a finished job's result;
    ``settings(scene)`` gives the kind's property group when it is not ``scene.parascale_<kind>_job``."""
    _HANDLERS[kind] = handler
    if settings is not None:
        _SETTINGS[kind] = settings


def client(context=None, timeout: float = 5.0) -> BridgeClient:
    """The client for the preferences' server URL (loopback, or online access allowed)."""
    p = prefs.get(context)
    url = p.server_url if p else "http://127.0.0.1:8765"
    if not is_loopback_url(url) and not bpy.app.online_access:
        raise JobError(f"server {url} is not on this machine and Blender's online access is off")
    return BridgeClient(url, token=(p.token if p else None) or None, timeout=timeout)


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


def start(scene, kind: str, cl: BridgeClient, status: dict, source: str, output: str, options: dict) -> ServerJob:
    """Follow a submitted job (``status`` from the submission) until its result lands at ``output``."""
    if is_running(scene, kind):
        raise JobError(f"a {kind} job is already running for this scene: cancel it first")
    job = ServerJob.attach(cl, status["id"], output)
    st = settings(scene, kind)
    st.source_path, st.output_path, st.options = source, output, json.dumps(options)
    return follow(scene, kind, job)


def follow(scene, kind: str, job: ServerJob) -> ServerJob:
    """Mirror ``job`` (submitted) into the scene's ``kind`` settings and tick it until it ends."""
    st = settings(scene, kind)
    st.job_id, st.error = job.job_id, ""
    _mirror(st, job)
    _JOBS[(scene.name_full, kind)] = job
    ensure_timer()
    return job


def is_running(scene, kind: str) -> bool:
    job = _JOBS.get((scene.name_full, kind))
    return job is not None and not job.finished


def cancel(scene, kind: str) -> bool:
    job = _JOBS.get((scene.name_full, kind))
    if job is None:
        return False
    job.cancel()
    _mirror(settings(scene, kind), job)
    return True


def _mirror(st, job: ServerJob) -> None:
    st.state, st.progress = job.state, min(max(job.progress, 0.0), 1.0)
    st.message = (job.message or "")[:500]
    st.error = (job.error or "")[:1000]


def tick_scene(scene, kind: str) -> str:
    """Advance the scene's ``kind`` job by one step; when done, run its handler. Returns the state."""
    st = settings(scene, kind)
    job = _JOBS.get((scene.name_full, kind))
    if job is None:
        return st.state
    job.tick()
    _mirror(st, job)
    if job.finished:
        _JOBS.pop((scene.name_full, kind), None)
        if job.state == "done":
            try:
                st.message = _HANDLERS[kind](scene, st, str(job.result_path))[:500]
            except Exception as e:  # the handler validates before touching the scene
                st.state = "failed"
                st.error = (str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}")[:1000]
    return st.state


def tick_all() -> bool:
    """Tick every live job; True while any is still running."""
    for name, kind in list(_JOBS):
        scene = bpy.data.scenes.get(name)
        if scene is None:
            _JOBS.pop((name, kind), None)
            continue
        try:
            tick_scene(scene, kind)
        except Exception as e:  # a timer that raises is unregistered by Blender: keep it alive
            settings(scene, kind).error = f"{kind}: {type(e).__name__}: {e}"
    return bool(_JOBS)


def _timer():
    return TIMER_INTERVAL if tick_all() else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TIMER_INTERVAL, persistent=True)


def draw_job(layout, scene, kind: str, cancel_op: str) -> bool:
    """Progress + Cancel while running, else the last error; True while running."""
    st = settings(scene, kind)
    if is_running(scene, kind):
        layout.progress(factor=st.progress, text=f"{st.state} {st.message}"[:80])
        layout.operator(cancel_op, icon="CANCEL")
        return True
    if st.error:
        layout.label(text=st.error[:200], icon="ERROR")
    return False


def reattach(context) -> int:
    """Follow again every job the open file records as unfinished; returns how many."""
    _JOBS.clear()
    n = 0
    for scene in bpy.data.scenes:
        for kind in _HANDLERS:
            st = settings(scene, kind)
            if st.job_id and st.state not in TERMINAL:
                try:
                    cl = client(context)
                except JobError as e:
                    st.error = str(e)
                    continue
                _JOBS[(scene.name_full, kind)] = ServerJob.attach(cl, st.job_id, st.output_path)
                n += 1
    if n:
        ensure_timer()
    return n


@persistent
def _load_post(*_args) -> None:
    reattach(bpy.context)


classes = (ParaScaleServerJob,)


def register() -> None:
    for kind in KINDS:
        setattr(bpy.types.Scene, f"parascale_{kind}_job", bpy.props.PointerProperty(type=ParaScaleServerJob))
    bpy.app.handlers.load_post.append(_load_post)


def unregister() -> None:
    if _load_post in bpy.app.handlers.load_post:
        bpy.app.handlers.load_post.remove(_load_post)
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
    _JOBS.clear()
    for kind in KINDS:
        delattr(bpy.types.Scene, f"parascale_{kind}_job")
