"""Start / stop a local ParaScale server from the preferences.

``<python> -m bridge_server --host 127.0.0.1 --port <port of the server URL>`` runs detached (its
own session / process group, so it outlives a Blender crash); its output goes to
``server.log`` in the extension's user folder. Only loopback URLs can be served this way. The
start is followed without blocking: a timer (tests: :func:`tick`) waits for ``/v1/health`` and
reports a process that exits or does not answer within ``STARTUP_TIMEOUT`` seconds. Stop ends
only the process this module started.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.parse

import bpy

from ..client import BridgeClient, BridgeError, is_loopback_url, wire
from . import prefs

STARTUP_TIMEOUT = 60.0
TIMER_INTERVAL = 0.5
_STATE = {"proc": None, "state": "", "message": "", "deadline": 0.0, "url": "", "log": ""}


class ServerStartError(ValueError):
    """The server cannot be started; the message is for the artist."""


def python_executable(path: str) -> str:
    """The interpreter for ``path``: a Python executable, or an environment folder holding one."""
    path = bpy.path.abspath(path.strip()) if path.strip() else ""
    if not path:
        raise ServerStartError(
            "set 'Server Python' in the ParaScale preferences: a Python environment with torch and the server"
        )
    if os.path.isdir(path):
        for rel in ("bin/python3", "bin/python", "Scripts/python.exe", "python.exe"):
            exe = os.path.join(path, rel)
            if os.path.isfile(exe):
                return exe
        raise ServerStartError(f"{path}: no bin/python3 or Scripts/python.exe in this folder")
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ServerStartError(f"{path}: not an executable Python interpreter")
    return path


def port_of(url: str) -> int:
    if not is_loopback_url(url):
        raise ServerStartError(f"server URL {url} is not on this machine: only a loopback server can be started here")
    parts = urllib.parse.urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def log_path() -> str:
    try:
        folder = bpy.utils.extension_path_user(prefs.addon_package(), create=True)
    except ValueError:  # not running as an extension (legacy add-on path)
        folder = bpy.app.tempdir or os.path.expanduser("~")
    return os.path.join(folder, "server.log")


def status() -> tuple[str, str]:
    """(state, message): state is '', 'starting', 'running', 'failed' or 'stopped'."""
    return _STATE["state"], _STATE["message"]


def running_proc():
    proc = _STATE["proc"]
    return proc if proc is not None and proc.poll() is None else None


def start(python: str, url: str, timeout: float = STARTUP_TIMEOUT) -> subprocess.Popen:
    """Launch the server (returns at once); :func:`tick` follows it until it answers."""
    if running_proc() is not None:
        raise ServerStartError("the server started from Blender is still running: stop it first")
    exe, port = python_executable(python), port_of(url)
    try:
        BridgeClient(url, timeout=1.0).health()
        raise ServerStartError(f"a server already answers at {url}")
    except BridgeError:
        pass
    log = log_path()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONEXECUTABLE")}
    cmd = [exe, "-m", "bridge_server", "--host", "127.0.0.1", "--port", str(port)]
    kw: dict = {"start_new_session": True}
    if sys.platform == "win32":
        kw = {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
    with open(log, "wb") as out:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=os.path.dirname(log), **kw,
            )  # fmt: skip
        except OSError as e:
            raise ServerStartError(f"could not run {exe}: {e}") from None
    _STATE.update(proc=proc, state="starting", url=url, log=log, deadline=time.monotonic() + timeout)
    _STATE["message"] = f"starting {os.path.basename(exe)} -m bridge_server on port {port} (log: {log})"
    ensure_timer()
    return proc


def _log_tail(n: int = 400) -> str:
    try:
        with open(_STATE["log"], "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace").strip().replace("\n", " | ")
    except OSError:
        return ""


def tick(now: float | None = None) -> str:
    """Follow a starting server by one health check; returns the state."""
    now = time.monotonic() if now is None else now
    proc = _STATE["proc"]
    if _STATE["state"] != "starting" or proc is None:
        if _STATE["state"] == "running" and proc is not None and proc.poll() is not None:
            _STATE.update(state="stopped", message=f"the server exited with code {proc.returncode}")
        return _STATE["state"]
    if proc.poll() is not None:
        _STATE.update(state="failed", message=f"the server exited with code {proc.returncode}: {_log_tail()}")
    else:
        try:
            h = BridgeClient(_STATE["url"], timeout=1.0).health()
            _STATE.update(state="running", message=f"running at {_STATE['url']} (pid {proc.pid}, {h.get('device')})")
        except BridgeError:
            if now > _STATE["deadline"]:
                stop()
                _STATE.update(
                    state="failed",
                    message=f"the server did not answer {_STATE['url']}{wire.HEALTH} in time and was stopped: "
                    f"{_log_tail()}",
                )
    return _STATE["state"]


def stop(timeout: float = 10.0) -> bool:
    """End the server this module started; False if there is none."""
    proc = running_proc()
    if proc is None:
        return False
    proc.terminate()
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout)
    _STATE.update(state="stopped", message=f"stopped (pid {proc.pid})")
    return True


def _timer():
    tick()
    return TIMER_INTERVAL if _STATE["state"] == "starting" else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TIMER_INTERVAL, persistent=True)


class PARASCALE_OT_server_start(bpy.types.Operator):
    """Start the ParaScale server with the preferences' Python environment (loopback only)"""

    bl_idname = "parascale.server_start"
    bl_label = "Start Local Server"

    def execute(self, context):
        p = prefs.get(context)
        try:
            if p is None:
                raise ServerStartError("the ParaScale add-on preferences are not available")
            start(p.server_python, p.server_url)
        except ServerStartError as e:
            _STATE.update(state="failed", message=str(e))
            self.report({"ERROR"}, f"Start server: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, _STATE["message"])
        return {"FINISHED"}


class PARASCALE_OT_server_stop(bpy.types.Operator):
    """Stop the ParaScale server started from Blender"""

    bl_idname = "parascale.server_stop"
    bl_label = "Stop Local Server"

    def execute(self, context):
        if not stop():
            self.report({"WARNING"}, "Stop server: no server was started from Blender")
            return {"CANCELLED"}
        self.report({"INFO"}, _STATE["message"])
        return {"FINISHED"}


def draw(layout) -> None:
    """The preferences' server section: Python path, Start / Stop, state."""
    state, message = status()
    row = layout.row(align=True)
    row.operator("parascale.server_start", icon="PLAY")
    row.operator("parascale.server_stop", icon="PAUSE")
    if message:
        layout.label(text=message[:200], icon="ERROR" if state == "failed" else "INFO")


classes = (PARASCALE_OT_server_start, PARASCALE_OT_server_stop)


def unregister() -> None:
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
