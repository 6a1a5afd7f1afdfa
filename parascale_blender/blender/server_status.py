"""The server as the sidebar shows it: its last health check, its backends (``GET /v1/backends``,
with each one's availability) and Start / Stop of the local server (``local_server``).

Nothing here calls the server while drawing: :func:`check` (Generate's first step) asks
``/v1/health`` then ``/v1/backends``, each within a short overall deadline, and caches both;
:func:`refresh` (the Refresh operator) asks the same on a background thread, holding the UI at most
:data:`REFRESH_WAIT` seconds (a timer caches a later answer). A server of another API version
(``wire.API_VERSION``) is refused, saying whether the add-on or the server needs updating. The
Generate backend menu (:func:`backend_items`) is built from that cache.
"""

from __future__ import annotations

import threading
import time

import bpy

from ..client import BridgeError, ServerNotRunning, wire
from . import local_server, server_jobs

CHECK_TIMEOUT = 2.0  # seconds: a server on this machine answers its health check in milliseconds
REFRESH_WAIT = 0.5  # seconds Refresh holds the UI before it goes on in the background
_CACHE: dict = {"url": "", "health": None, "backends": [], "error": "", "time": 0.0}
_REFRESH: dict = {"thread": None, "box": None, "url": ""}  # a Refresh still asking in the background
_ITEMS: list = []  # enum items must outlive the callback (Blender keeps pointers to the strings)


class ServerDown(server_jobs.JobError):
    """The server does not answer, refuses the token, or cannot run the chosen backend."""


def ask(cl) -> tuple[dict | None, list, str]:
    """(health, backends, "") from the server, or (None, [], why) with a sentence for the artist:
    nothing answers, the token is refused, another API version, or an error. No bpy: runs on any thread."""
    try:
        health = cl.health()
        if why := wire.api_mismatch(health, f"server at {cl.url}"):
            return None, [], why
        backends = cl.backends()
    except ServerNotRunning:
        start = "press Start in the ParaScale panel (5 Generate) or run parascale-server"
        return None, [], f"server not running at {cl.url}: {start}"
    except BridgeError as e:
        if e.status == 401:
            why = (
                f"the server at {cl.url} refused the token: set the token it was started with in the ParaScale "
                "preferences (Start in the panel sets it for a server it starts)"
            )
            return None, [], why
        return None, [], f"server at {cl.url} did not pass its health check: {e}"
    return health, [b for b in backends if isinstance(b, dict)], ""


def _store(url: str, answer: tuple[dict | None, list, str]) -> dict:
    health, backends, why = answer
    _CACHE.update(url=url, time=time.time(), health=health, error=why)
    if health is None:
        raise ServerDown(why)
    _CACHE["backends"] = backends
    return health


def check(context, timeout: float = CHECK_TIMEOUT) -> dict:
    """Health check then backend list, cached for the panel; returns the health answer (Generate's
    first step: bounded by ``timeout`` per call, the whole call included).

    Raises :class:`ServerDown` with a sentence for the artist (see :func:`ask`)."""
    cl = server_jobs.client(context, timeout=timeout)
    return _store(cl.url, ask(cl))


def refresh(context, wait: float = REFRESH_WAIT) -> dict | None:
    """Ask the server on a background thread: its answer is cached at once when it comes within
    ``wait`` seconds (a local server), else by a timer when it comes (the UI never waits longer).
    Returns the health answer when cached now, None while asking; :class:`ServerDown` when refused."""
    cl = server_jobs.client(context, timeout=CHECK_TIMEOUT)
    box: dict = {}

    def run() -> None:
        try:
            box["answer"] = ask(cl)
        except Exception as e:  # noqa: BLE001 - shown in the panel, never a traceback
            box["answer"] = (None, [], f"server at {cl.url}: {type(e).__name__}: {e}")

    thread = threading.Thread(target=run, name="parascale-refresh", daemon=True)
    thread.start()
    thread.join(wait)
    _REFRESH.update(thread=thread, box=box, url=cl.url)
    if not thread.is_alive():
        _REFRESH["thread"] = None
        return _store(cl.url, box["answer"])
    _CACHE.update(url=cl.url, health=None, error=f"asking the server at {cl.url}…")
    if not bpy.app.timers.is_registered(_refresh_timer):
        bpy.app.timers.register(_refresh_timer, first_interval=0.1)
    return None


def finish_refresh() -> bool:
    """Cache the answer of a Refresh still asking once it has come; True when none is asking any more."""
    thread = _REFRESH["thread"]
    if thread is None:
        return True
    if thread.is_alive():
        return False
    _REFRESH["thread"] = None
    try:
        _store(_REFRESH["url"], _REFRESH["box"]["answer"])
    except ServerDown:
        pass  # the panel shows why
    _redraw()
    return True


def _refresh_timer():
    return None if finish_refresh() else 0.1


def _redraw() -> None:
    for window in getattr(bpy.context.window_manager, "windows", ()):
        for area in window.screen.areas:
            area.tag_redraw()


def backend_info(name: str) -> dict | None:
    """The cached ``/v1/backends`` entry of ``name`` (None: not listed, or never checked)."""
    return next((b for b in _CACHE["backends"] if b.get("name") == name), None)


def require_backend(name: str) -> dict:
    """The cached entry of a backend Generate can use; :class:`ServerDown` naming why not."""
    info = backend_info(name)
    url = _CACHE["url"]
    if info is None:
        raise ServerDown(f"server at {url} has no {name!r} backend (offered: {', '.join(generators()) or 'none'})")
    if wire.TRAJECTORY not in info.get("uploads", ()):
        raise ServerDown(f"{name!r} does not generate clips along a camera (it takes {info.get('uploads')})")
    if not info.get("available", True):
        raise ServerDown(f"backend {name!r} is not available: {info.get('reason') or 'no reason given'}")
    return info


def takes_param(name: str, param: str) -> bool:
    """Whether backend ``name``'s parameter schema (from the server) has ``param``."""
    info = backend_info(name) or {}
    return param in (info.get("parameters") or {}).get("properties", {})


def generators() -> list[str]:
    """Names of the cached backends that generate a clip along a trajectory."""
    return [b["name"] for b in _CACHE["backends"] if wire.TRAJECTORY in b.get("uploads", ())]


def backend_items(settings, _context=None):
    """Generate's backend menu: every generating backend the server lists; an unavailable one
    says why in its tooltip and carries an error icon (Generate refuses it with that reason)."""
    _ITEMS.clear()
    for i, b in enumerate(b for b in _CACHE["backends"] if wire.TRAJECTORY in b.get("uploads", ())):
        ok = bool(b.get("available", True))
        label = b["name"] if ok else f"{b['name']} (unavailable)"
        tip = b.get("description", "") if ok else f"Unavailable: {b.get('reason') or 'no reason given'}"
        _ITEMS.append((b["name"], label, tip, "NONE" if ok else "ERROR", i))
    current = getattr(settings, "backend", "")  # Generate's settings: the chosen backend's name
    if current and all(current != it[0] for it in _ITEMS):  # not checked yet, or not listed
        _ITEMS.append((current, current, "Not listed by the server (press Refresh)", "QUESTION", len(_ITEMS)))
    return _ITEMS


def draw(layout, context) -> None:
    """Server row of the Generate section: status, Start / Stop (only a server Blender started), Refresh."""
    box = layout.box()
    state, message = local_server.status()
    ours = local_server.running_proc() is not None
    h = _CACHE["health"]
    if state == "starting" or (state == "running" and ours and h is None):
        box.label(text=message[:200], icon="SORTTIME" if state == "starting" else "CHECKMARK")
    elif state == "stopped" and not ours:
        box.label(text=f"Local server {message}"[:200], icon="PAUSE")
    elif h is not None:
        text = f"Server {h.get('status', 'ok')} at {_CACHE['url']} ({h.get('device', '?')})"
        box.label(text=text[:200], icon="CHECKMARK")
    elif _CACHE["error"]:
        box.label(text=_CACHE["error"][:200], icon="ERROR")
    else:
        box.label(text="Server not checked yet (Refresh)", icon="QUESTION")
    if state == "failed" and message:
        box.label(text=message[:200], icon="ERROR")
    row = box.row(align=True)
    sub = row.row(align=True)
    sub.enabled = not ours
    sub.operator("parascale.server_start", text="Start", icon="PLAY")
    sub = row.row(align=True)
    sub.enabled = ours
    sub.operator("parascale.server_stop", text="Stop", icon="PAUSE")
    row.operator(PARASCALE_OT_server_refresh.bl_idname, text="", icon="FILE_REFRESH")


def draw_options(layout, g) -> None:
    """Backend (from the server, with availability), seed, frames and resolution of Generate."""
    layout.prop(g, "backend_menu")
    info = backend_info(g.backend)
    if info is not None and not info.get("available", True):
        layout.label(text=f"{g.backend}: {info.get('reason') or 'unavailable'}"[:200], icon="ERROR")
    row = layout.row(align=True)
    row.enabled = takes_param(g.backend, "seed")
    row.prop(g, "seed")
    row.prop(g, "random_seed", text="", icon="FILE_REFRESH")
    layout.prop(g, "frames")
    row = layout.row(align=True)
    row.prop(g, "resolution_x")
    row.prop(g, "resolution_y")


class PARASCALE_OT_server_refresh(bpy.types.Operator):
    """Ask the server for its health and its backends (with their availability)"""

    bl_idname = "parascale.server_refresh"
    bl_label = "Refresh Server"
    bl_options = {"REGISTER"}

    def execute(self, context):
        try:
            h = refresh(context)
        except server_jobs.JobError as e:
            self.report({"ERROR"}, f"Server: {e}")
            return {"CANCELLED"}
        if h is None:
            self.report({"INFO"}, f"Server: {_CACHE['error']}")
            return {"FINISHED"}
        ok = [b["name"] for b in _CACHE["backends"] if b.get("available", True)]
        self.report({"INFO"}, f"Server {h.get('status')} {h.get('version', '')}: available {', '.join(ok)}")
        return {"FINISHED"}


classes = (PARASCALE_OT_server_refresh,)
