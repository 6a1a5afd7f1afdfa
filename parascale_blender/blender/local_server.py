"""The local ParaScale server from the preferences: find it, set it up, start and stop it.

**Find** (:func:`find_server`): the preferences' *Server Python* when set (a Python with the server,
its environment folder, or a ``parascale-server`` script); else ``parascale-server`` on PATH; else
an environment holding ``parascale-server`` in a common location (:func:`common_folders`: the
default set-up folder of this OS, ``~/.parascale/venv``, pipx's ``~/.local/bin``).

**Set up** (:func:`setup`): a virtual environment created by the artist's own Python 3.11 (never
Blender's: it has no venv module worth using and must not be modified) in a folder the artist
picks, then ``pip install`` of the ParaScale wheel or requirement with its ``server`` extra, then an
import check. Each step is a child process writing to ``setup.log`` in that folder; a timer (tests:
:func:`tick_setup`) follows it without blocking Blender, and the last log line is the progress.
On success *Server Python* is set to the new environment.

**Start** (:func:`start`): the server runs detached (its own session / process group, so it
outlives a Blender crash) on the port of the loopback server URL, with the weights folder and
device of the preferences and a per-install token in ``PARASCALE_TOKEN`` (never on the command
line); the same token becomes the preferences' bearer token, so the add-on's client sends it. Its
output goes to ``server.log`` in the extension's user folder. A timer (tests: :func:`tick`) waits
for ``/v1/health`` and reports a process that exits or does not answer within ``STARTUP_TIMEOUT``
seconds. Stop ends only the process this module started.
"""

from __future__ import annotations

import os
import secrets
import shlex
import shutil
import subprocess
import sys
import time
import urllib.parse

import bpy

from ..client import BridgeClient, BridgeError, ServerNotRunning, is_loopback_url, wire
from . import prefs

STARTUP_TIMEOUT = 60.0
TIMER_INTERVAL = 0.5
SERVER_SCRIPT = "parascale-server"
SERVER_MODULE = "bridge_server"
REQUIRED_PYTHON = (3, 11)  # pyproject's requires-python
_STATE = {"proc": None, "state": "", "message": "", "deadline": 0.0, "url": "", "log": ""}
_SETUP = {"proc": None, "state": "", "message": "", "steps": [], "step": 0, "folder": "", "log": ""}
_IS_WINDOWS = sys.platform == "win32"


class ServerStartError(ValueError):
    """The server cannot be started (or set up); the message is for the artist."""


# --- where a server lives ---------------------------------------------------------------------


def _bin(folder: str) -> str:
    return os.path.join(folder, "Scripts" if _IS_WINDOWS else "bin")


def env_python(folder: str) -> str | None:
    """The interpreter of the environment ``folder`` (venv layout of any OS), or None."""
    for rel in ("bin/python3", "bin/python", "Scripts/python.exe", "python.exe"):
        exe = os.path.join(folder, rel)
        if os.path.isfile(exe):
            return exe
    return None


def env_server_script(folder: str) -> str | None:
    """``parascale-server`` installed in the environment ``folder``, or None."""
    for rel in (f"bin/{SERVER_SCRIPT}", f"Scripts/{SERVER_SCRIPT}.exe", f"Scripts/{SERVER_SCRIPT}"):
        path = os.path.join(folder, rel)
        if os.path.isfile(path):
            return path
    return None


def default_server_folder() -> str:
    """Where Set Up puts the server unless the artist picks another folder."""
    home = os.path.expanduser("~")
    if _IS_WINDOWS:
        base = os.environ.get("LOCALAPPDATA") or os.path.join(home, "AppData", "Local")
        return os.path.join(base, "ParaScale", "server")
    if sys.platform == "darwin":
        return os.path.join(home, "Library", "Application Support", "ParaScale", "server")
    base = os.environ.get("XDG_DATA_HOME") or os.path.join(home, ".local", "share")
    return os.path.join(base, "parascale", "server")


def common_folders() -> list[str]:
    """Environment folders searched for an installed server, in order."""
    return [default_server_folder(), os.path.join(os.path.expanduser("~"), ".parascale", "venv")]


def _is_blender_python(path: str) -> bool:
    """``path`` is the Python bundled with this Blender (inside its resource folders)."""
    real = os.path.realpath(path)
    roots = [bpy.utils.resource_path(kind) for kind in ("LOCAL", "SYSTEM")]
    roots += [os.path.dirname(bpy.app.binary_path)] if bpy.app.binary_path else []
    for root in filter(None, roots):
        root = os.path.realpath(root)
        if os.path.commonpath([real, root]) == root:
            return True
    return bool(bpy.app.binary_path) and os.path.abspath(path) == os.path.abspath(sys.executable)


def server_command(path: str) -> list[str]:
    """The command that runs the server for a configured path: a Python executable (``-m
    bridge_server``), an environment folder holding one, or a ``parascale-server`` script."""
    path = bpy.path.abspath(path.strip()) if path.strip() else ""
    if not path:
        raise ServerStartError(
            "set 'Server Python' in the ParaScale preferences: a Python environment with torch and the server"
        )
    if os.path.isdir(path):
        exe = env_python(path)
        if exe is None:
            raise ServerStartError(f"{path}: no bin/python3 or Scripts/python.exe in this folder")
        return [exe, "-m", SERVER_MODULE]
    if not os.path.isfile(path) or not os.access(path, os.X_OK):
        raise ServerStartError(f"{path}: not an executable Python interpreter")
    if os.path.basename(path).lower().startswith(SERVER_SCRIPT):
        return [path]
    if _is_blender_python(path):
        raise ServerStartError(
            f"{path} is Blender's own Python, which has no server: use Set Up Server, or set 'Server Python' "
            "to the Python environment where the ParaScale server is installed"
        )
    return [path, "-m", SERVER_MODULE]


def find_server(configured: str = "") -> tuple[list[str], str]:
    """(command, where it was found): the configured path, PATH, then the common folders."""
    if configured.strip():
        return server_command(configured), "Server Python"
    script = shutil.which(SERVER_SCRIPT)
    if script:
        return [script], "PATH"
    for folder in common_folders():
        exe = env_python(folder)
        if exe and env_server_script(folder):
            return [exe, "-m", SERVER_MODULE], folder
    pipx = os.path.join(os.path.expanduser("~"), ".local", "bin", SERVER_SCRIPT + (".exe" if _IS_WINDOWS else ""))
    if os.path.isfile(pipx):
        return [pipx], os.path.dirname(pipx)
    raise ServerStartError(
        "no ParaScale server found on PATH or in " + ", ".join(common_folders()) + ": use Set Up Server, "
        "or set 'Server Python' in the ParaScale preferences to a Python environment with the server"
    )


# --- per-install token, log ---------------------------------------------------------------------


def user_folder() -> str:
    try:
        return bpy.utils.extension_path_user(prefs.addon_package(), create=True)
    except ValueError:  # not running as an extension (legacy add-on path)
        return bpy.app.tempdir or os.path.expanduser("~")


def log_path() -> str:
    return os.path.join(user_folder(), "server.log")


def token_path() -> str:
    return os.path.join(user_folder(), "server-token")


def write_private(path: str, text: str) -> None:
    """``text`` as the owner-only (0600) file ``path``, replaced whole."""
    tmp = f"{path}.{secrets.token_hex(4)}.tmp"
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def install_token() -> str:
    """This installation's server token, made once and kept (owner-only) in the extension's user folder."""
    path = token_path()
    try:
        with open(path, encoding="utf-8") as f:
            token = f.read().strip()
        if len(token) >= 16:
            return token
    except (OSError, ValueError):
        pass
    token = secrets.token_urlsafe(24)
    write_private(path, token + "\n")
    return token


# --- start / stop --------------------------------------------------------------------------------


def status() -> tuple[str, str]:
    """(state, message): state is '', 'starting', 'running', 'failed' or 'stopped'."""
    return _STATE["state"], _STATE["message"]


def running_proc():
    proc = _STATE["proc"]
    return proc if proc is not None and proc.poll() is None else None


def port_of(url: str) -> int:
    if not is_loopback_url(url):
        raise ServerStartError(f"server URL {url} is not on this machine: only a loopback server can be started here")
    parts = urllib.parse.urlsplit(url)
    return parts.port or (443 if parts.scheme == "https" else 80)


def _detached() -> dict:
    if sys.platform == "win32":
        return {"creationflags": subprocess.DETACHED_PROCESS | subprocess.CREATE_NEW_PROCESS_GROUP}
    return {"start_new_session": True}


def _child_env(**extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONHOME", "PYTHONEXECUTABLE")}
    env.update(extra)
    return env


def start(
    server: str | list[str],
    url: str,
    timeout: float = STARTUP_TIMEOUT,
    *,
    weights: str = "",
    device: str = "auto",
    token: str = "",
) -> subprocess.Popen:
    """Launch the server (returns at once); :func:`tick` follows it until it answers.

    ``server`` is a configured path (see :func:`server_command`) or a command from :func:`find_server`.
    """
    if running_proc() is not None:
        raise ServerStartError("the server started from Blender is still running: stop it first")
    cmd = list(server) if isinstance(server, list) else server_command(server)
    port = port_of(url)
    try:
        BridgeClient(url, timeout=1.0, token=token or None).health()
        raise ServerStartError(f"a server already answers at {url}")
    except ServerNotRunning:
        pass
    except BridgeError as e:
        if e.status is not None:  # it answered, with an error (another token?)
            raise ServerStartError(f"a server already answers at {url}: {e}") from None
    cmd += ["--host", "127.0.0.1", "--port", str(port), "--device", device or "auto"]
    if weights.strip():
        folder = bpy.path.abspath(weights.strip())
        if not os.path.isdir(folder):
            raise ServerStartError(f"weights folder {folder} does not exist")
        cmd += ["--weights", folder]
    log = log_path()
    env = _child_env(PARASCALE_TOKEN=token) if token else _child_env()
    with open(log, "wb") as out:
        try:
            proc = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=env,
                cwd=os.path.dirname(log), **_detached(),
            )  # fmt: skip
        except OSError as e:
            raise ServerStartError(f"could not run {cmd[0]}: {e}") from None
    _STATE.update(proc=proc, state="starting", url=url, log=log, deadline=time.monotonic() + timeout)
    what = " ".join(os.path.basename(c) if i == 0 else c for i, c in enumerate(cmd[: cmd.index("--host")]))
    _STATE["message"] = f"starting {what} on port {port}, device {device or 'auto'} (log: {log})"
    ensure_timer()
    return proc


def _log_tail(path: str, n: int = 400) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, os.SEEK_END)
            f.seek(max(0, f.tell() - n))
            return f.read().decode("utf-8", "replace").strip().replace("\r", "\n").replace("\n", " | ")
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
        _STATE.update(
            state="failed", message=f"the server exited with code {proc.returncode}: {_log_tail(_STATE['log'])}"
        )
    else:
        p = prefs.get()
        try:
            h = BridgeClient(_STATE["url"], token=(p.server_token if p else None) or None, timeout=1.0).health()
            _STATE.update(state="running", message=f"running at {_STATE['url']} (pid {proc.pid}, {h.get('device')})")
        except BridgeError:
            if now > _STATE["deadline"]:
                stop()
                _STATE.update(
                    state="failed",
                    message=f"the server did not answer {_STATE['url']}{wire.HEALTH} in time and was stopped: "
                    f"{_log_tail(_STATE['log'])}",
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


# --- set up ----------------------------------------------------------------------------------------


def _python_version(exe: list[str]) -> tuple[int, int] | None:
    try:
        out = subprocess.run(
            [*exe, "-c", "import sys, venv; print(*sys.version_info[:2])"],
            capture_output=True, text=True, timeout=20, stdin=subprocess.DEVNULL, env=_child_env(),
        )  # fmt: skip
        major, minor = out.stdout.split()
        return int(major), int(minor)
    except (OSError, ValueError, subprocess.TimeoutExpired):
        return None


def base_python_candidates() -> list[list[str]]:
    """The artist's own Pythons to create the environment with, best first (3.11 launchers first)."""
    cands: list[list[str]] = []
    if _IS_WINDOWS:
        if shutil.which("py"):
            cands.append(["py", "-3.11"])
        local = os.environ.get("LOCALAPPDATA", "")
        cands.append([os.path.join(local, "Programs", "Python", "Python311", "python.exe")])
    else:
        cands += [["/opt/homebrew/bin/python3.11"], ["/usr/local/bin/python3.11"]]
        cands.append(["/Library/Frameworks/Python.framework/Versions/3.11/bin/python3.11"])
    for name in ("python3.11", "python3", "python"):
        exe = shutil.which(name)
        if exe:
            cands.append([exe])
    return [c for c in cands if c[0] == "py" or os.path.isfile(c[0])]


def find_base_python(configured: str = "") -> list[str]:
    """A Python 3.11 of the artist's that can create the server's environment (never Blender's)."""
    cands = [[local_path(configured, "Setup Python")]] if configured.strip() else base_python_candidates()
    seen = []
    for cand in cands:
        if cand[0] != "py" and _is_blender_python(cand[0]):
            seen.append(f"{cand[0]} (Blender's own Python)")
            continue
        version = _python_version(cand)
        if version == REQUIRED_PYTHON:
            return cand
        found = "Python {}.{}".format(*version) if version else "does not run"
        seen.append(f"{' '.join(cand)} ({found})")
    need = "Python {}.{}".format(*REQUIRED_PYTHON)
    raise ServerStartError(
        f"no {need} found to create the server's environment"
        + (f" (tried: {'; '.join(seen)})" if seen else "")
        + f": install {need} from python.org (or your package manager) and set 'Setup Python' to it"
    )


def online_access() -> bool:
    """Blender's *Allow Online Access* (Preferences > System; Blender 4.2+)."""
    return bool(getattr(bpy.app, "online_access", True))


def local_path(value: str, what: str) -> str:
    """A path setting as an absolute path: ``//`` is the saved .blend's folder (refused when the
    .blend is not saved), any other relative path is taken from Blender's working folder, once, here."""
    value = value.strip()
    if value.startswith("//") and not bpy.data.filepath:
        raise ServerStartError(
            f"{what}: {value} is relative to the .blend, which is not saved: save it first or choose an absolute path"
        )
    return os.path.abspath(bpy.path.abspath(value))


def pip_options(text: str, windows: bool = _IS_WINDOWS) -> list[str]:
    """The pip options of the preferences as arguments: shell words (on Windows, where a backslash is
    a path separator, with the quotes around a word removed, as cmd.exe would)."""
    if not text.strip():
        return []
    try:
        words = shlex.split(text, posix=not windows)
    except ValueError as e:
        raise ServerStartError(f"pip options: {e} in {text!r}") from None
    if windows:
        words = [w[1:-1] if len(w) >= 2 and w[0] == w[-1] and w[0] in "\"'" else w for w in words]
    return words


def package_requirement(spec: str) -> str:
    """What pip installs: a wheel file (its absolute path) gets the ``server`` extra, a requirement
    is taken as written; never a pip option."""
    spec = spec.strip()
    if not spec:
        raise ServerStartError(
            "set 'Server package' to the ParaScale server wheel (parascale-<version>-py3-none-any.whl) "
            "or to a pip requirement such as parascale[server]"
        )
    if spec.startswith("-"):
        raise ServerStartError(
            f"Server package {spec!r} starts with '-', which pip reads as an option: put options in 'pip options' "
            "and the wheel or requirement here"
        )
    if spec.lower().endswith(".whl"):
        path = local_path(spec, "Server package")
        if not os.path.isfile(path):
            raise ServerStartError(f"{path}: no such wheel")
        return f"{path}[server]"
    return spec


def setup_status() -> tuple[str, str]:
    """(state, message): state is '', 'running', 'done', 'failed' or 'cancelled'."""
    return _SETUP["state"], _SETUP["message"]


def setup(folder: str, package: str, base_python: str = "", pip_args: str = "") -> subprocess.Popen:
    """Create the environment in ``folder`` and install the server into it; returns at once."""
    proc = _SETUP["proc"]
    if proc is not None and proc.poll() is None:
        raise ServerStartError("the server set-up is still running")
    folder = local_path(folder, "Set-up folder") if folder.strip() else default_server_folder()
    requirement = package_requirement(package)
    extra = pip_options(pip_args)
    if os.path.isdir(folder) and os.listdir(folder) and env_python(folder) is None:
        raise ServerStartError(f"{folder} is neither empty nor a Python environment: choose an empty folder")
    base = find_base_python(base_python)
    if not online_access() and "--no-index" not in extra:
        raise ServerStartError(
            "Blender's Allow Online Access is off (Preferences > System): Set Up Server downloads the server's "
            "packages (about 3 GB) with pip. Turn it on, or install from local files with the pip options "
            "--no-index --find-links <folder of wheels>"
        )
    os.makedirs(folder, exist_ok=True)
    py = os.path.join(_bin(folder), "python.exe" if _IS_WINDOWS else "python")
    check = f"import {SERVER_MODULE}, torch; print('ok: torch', torch.__version__)"
    steps = [
        ("creating the environment", [*base, "-m", "venv", folder]),
        ("installing the server (torch is large: minutes)", [py, "-m", "pip", "install", *extra, requirement]),
        ("checking the installation", [py, "-c", check]),
    ]
    log = os.path.join(folder, "setup.log")
    with open(log, "w", encoding="utf-8") as f:
        f.write(f"ParaScale server set-up in {folder}\n")
    _SETUP.update(steps=steps, step=-1, folder=folder, log=log, proc=None, state="running")
    _next_step()
    ensure_timer()
    return _SETUP["proc"]


def _next_step() -> None:
    _SETUP["step"] += 1
    label, cmd = _SETUP["steps"][_SETUP["step"]]
    with open(_SETUP["log"], "a", encoding="utf-8") as out:
        out.write(f"\n$ {subprocess.list2cmdline(cmd)}\n")
        out.flush()
        try:
            _SETUP["proc"] = subprocess.Popen(
                cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT, env=_child_env(),
                cwd=_SETUP["folder"],
            )  # fmt: skip
        except OSError as e:
            _SETUP.update(proc=None, state="failed", message=f"could not run {cmd[0]}: {e} (log: {_SETUP['log']})")
            return
    n = len(_SETUP["steps"])
    _SETUP["message"] = f"step {_SETUP['step'] + 1}/{n}: {label}"


def _last_log_line() -> str:
    tail = _log_tail(_SETUP["log"], 300).split(" | ")
    return tail[-1][:120] if tail else ""


def tick_setup() -> str:
    """Follow the set-up by one look at its current step; returns the state."""
    proc = _SETUP["proc"]
    if _SETUP["state"] != "running" or proc is None:
        return _SETUP["state"]
    n, i = len(_SETUP["steps"]), _SETUP["step"]
    code = proc.poll()
    if code is None:
        _SETUP["message"] = f"step {i + 1}/{n}: {_SETUP['steps'][i][0]} — {_last_log_line()}"
    elif code != 0:
        _SETUP.update(
            state="failed",
            message=f"step {i + 1}/{n} ({_SETUP['steps'][i][0]}) failed with code {code}: {_last_log_line()} "
            f"(log: {_SETUP['log']})",
        )
    elif i + 1 < n:
        _next_step()
    else:
        _SETUP.update(state="done", message=f"set up in {_SETUP['folder']}: {_last_log_line()}")
        p = prefs.get()
        if p is not None:
            p.server_python = _SETUP["folder"]
    return _SETUP["state"]


def cancel_setup() -> bool:
    proc = _SETUP["proc"]
    if _SETUP["state"] != "running" or proc is None:
        return False
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
    _SETUP.update(state="cancelled", message=f"set-up cancelled (log: {_SETUP['log']})")
    return True


# --- timer, operators, draw ------------------------------------------------------------------------


def _timer():
    tick()
    tick_setup()
    return TIMER_INTERVAL if _SETUP["state"] == "running" or _STATE["state"] == "starting" else None


def ensure_timer() -> None:
    if not bpy.app.timers.is_registered(_timer):
        bpy.app.timers.register(_timer, first_interval=TIMER_INTERVAL, persistent=True)


class PARASCALE_OT_server_start(bpy.types.Operator):
    """Start the ParaScale server found by the preferences (Server Python, PATH, common folders; loopback only)"""

    bl_idname = "parascale.server_start"
    bl_label = "Start Local Server"

    def execute(self, context):
        p = prefs.get(context)
        try:
            if p is None:
                raise ServerStartError("the ParaScale add-on preferences are not available")
            command, _where = find_server(p.server_python)
            if not p.server_token:
                p.server_token = install_token()  # the client sends what the server was started with
            start(command, p.server_url, weights=p.weights_dir, device=p.server_device.lower(), token=p.server_token)
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


class PARASCALE_OT_server_find(bpy.types.Operator):
    """Look for an installed ParaScale server (PATH, common folders) and use it as Server Python"""

    bl_idname = "parascale.server_find"
    bl_label = "Find Server"

    def execute(self, context):
        p = prefs.get(context)
        try:
            if p is None:
                raise ServerStartError("the ParaScale add-on preferences are not available")
            command, where = find_server("")
        except ServerStartError as e:
            self.report({"WARNING"}, f"Find server: {e}")
            return {"CANCELLED"}
        p.server_python = command[0]
        self.report({"INFO"}, f"found {command[0]} ({where})")
        return {"FINISHED"}


class PARASCALE_OT_server_setup(bpy.types.Operator):
    """Create a Python environment in the set-up folder with your own Python 3.11 and install the server"""

    bl_idname = "parascale.server_setup"
    bl_label = "Set Up Server"

    def execute(self, context):
        p = prefs.get(context)
        try:
            if p is None:
                raise ServerStartError("the ParaScale add-on preferences are not available")
            setup(p.server_folder, p.server_package, p.setup_python, p.setup_pip_args)
        except ServerStartError as e:
            if _SETUP["state"] != "running":  # a running set-up keeps its state
                _SETUP.update(state="failed", message=str(e))
            self.report({"ERROR"}, f"Set up server: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"{_SETUP['message']} (log: {_SETUP['log']})")
        return {"FINISHED"}


class PARASCALE_OT_server_setup_cancel(bpy.types.Operator):
    """Stop the server set-up"""

    bl_idname = "parascale.server_setup_cancel"
    bl_label = "Cancel Set-Up"

    def execute(self, context):
        if not cancel_setup():
            self.report({"WARNING"}, "Cancel set-up: no set-up is running")
            return {"CANCELLED"}
        self.report({"INFO"}, _SETUP["message"])
        return {"FINISHED"}


def _found() -> str:
    p = prefs.get()
    try:
        command, where = find_server(p.server_python if p is not None else "")
    except ServerStartError:
        return "no server found: Set Up Server, or set Server Python"
    return f"server: {command[0]} ({where})"


def draw(layout, p=None) -> None:
    """The preferences' server section: where the server is, Start / Stop, set-up (the properties of
    ``p``, the preferences being drawn), states."""
    layout.label(text=_found()[:200], icon="FILE_SCRIPT")
    row = layout.row(align=True)
    row.operator("parascale.server_start", icon="PLAY")
    row.operator("parascale.server_stop", icon="PAUSE")
    row.operator("parascale.server_find", icon="VIEWZOOM")
    state, message = status()
    if message:
        layout.label(text=message[:200], icon="ERROR" if state == "failed" else "INFO")
    if p is not None:
        box = layout.box()
        box.label(text="Set up a server (a new Python environment)")
        box.prop(p, "server_folder")
        box.prop(p, "server_package")
        box.prop(p, "setup_python")
        box.prop(p, "setup_pip_args")
        row = box.row(align=True)
        row.operator("parascale.server_setup", icon="IMPORT")
        row.operator("parascale.server_setup_cancel", icon="CANCEL")
    state, message = setup_status()
    if message:
        layout.label(text=message[:200], icon="ERROR" if state == "failed" else "INFO")


classes = (
    PARASCALE_OT_server_start,
    PARASCALE_OT_server_stop,
    PARASCALE_OT_server_find,
    PARASCALE_OT_server_setup,
    PARASCALE_OT_server_setup_cancel,
)


def unregister() -> None:
    if bpy.app.timers.is_registered(_timer):
        bpy.app.timers.unregister(_timer)
