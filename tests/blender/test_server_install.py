"""Real bpy: the preferences find a server installed from the wheel (tests/wheel_env.py: a fresh venv,
no checkout on the path) on PATH, as a configured environment and in a usual folder, and Start / Stop
it with the per-install token; Set Up Server creates an environment with the artist's own Python and
installs the wheel into it without blocking, then Start / Stop runs that one."""

from __future__ import annotations

import os
import shutil
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_helpers import free_port  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def prefs(scene, ext, monkeypatch):
    import bpy

    monkeypatch.delenv("PYTHONPATH", raising=False)  # the server must import from its own environment
    monkeypatch.delenv("PARASCALE_TOKEN", raising=False)
    p = ext("blender.prefs").get(bpy.context)
    names = ("server_url", "server_python", "token", "server_device", "server_folder", "server_package")
    names += ("setup_python", "setup_pip_args", "weights_dir")
    old = {n: getattr(p, n) for n in names}
    p.server_python, p.server_token = "", ""
    yield p
    ext("blender.local_server").stop()
    ext("blender.local_server").cancel_setup()
    for n, v in old.items():
        setattr(p, n, v)


def _follow(tick, busy: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = tick()
        if state != busy:
            return state
        time.sleep(0.2)
    raise AssertionError("not decided in time")


def _start_check_stop(bpy, ext, prefs, expect_exe: Path, device: str = "cpu") -> None:
    ls, client = ext("blender.local_server"), ext("client")
    url = f"http://127.0.0.1:{free_port()}"
    prefs.server_url = url
    assert bpy.ops.parascale.server_start() == {"FINISHED"}
    proc = ls.running_proc()
    assert Path(proc.args[0]) == expect_exe, proc.args
    assert proc.args[proc.args.index("--device") + 1] == device
    assert _follow(ls.tick, "starting", 90) == "running", ls.status()
    assert "cpu" in ls.status()[1]
    assert len(prefs.server_token) >= 16 and prefs.server_token == ls.install_token()
    assert client.BridgeClient(url, token=prefs.server_token, timeout=5).health()["status"] == "ok"
    with pytest.raises(client.BridgeError, match="token"):
        client.BridgeClient(url, timeout=5).health()  # the server took the token from PARASCALE_TOKEN
    assert bpy.ops.parascale.server_stop() == {"FINISHED"}
    assert proc.poll() is not None and ls.running_proc() is None


@pytest.mark.slow
def test_the_preferences_find_the_installed_server_and_start_and_stop_it(prefs, ext, installed_server, monkeypatch):
    import bpy

    ls = ext("blender.local_server")
    prefs.server_device = "CPU"
    monkeypatch.setattr(ls, "common_folders", lambda: [])
    monkeypatch.setenv("PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if "parascale" not in p))
    if ls.shutil.which(ls.SERVER_SCRIPT):
        pytest.skip("another parascale-server is on PATH")
    with pytest.raises(RuntimeError, match="no ParaScale server found"):
        bpy.ops.parascale.server_start()

    # 1. parascale-server on PATH (as after activating the environment, or with pipx)
    monkeypatch.setenv("PATH", str(installed_server.bin) + os.pathsep + os.environ["PATH"])
    assert ls.find_server("") == ([str(installed_server.server_script)], "PATH")
    _start_check_stop(bpy, ext, prefs, installed_server.server_script)

    # 2. in one of the usual folders; Find Server fills in Server Python
    monkeypatch.setenv(
        "PATH", os.pathsep.join(p for p in os.environ["PATH"].split(os.pathsep) if p != str(installed_server.bin))
    )
    monkeypatch.setattr(ls, "common_folders", lambda: [str(installed_server.venv)])
    assert bpy.ops.parascale.server_find() == {"FINISHED"}
    venv_python = Path(ls.env_python(str(installed_server.venv)))
    assert Path(prefs.server_python) == venv_python and venv_python.parent == installed_server.bin

    # 3. a configured environment folder
    prefs.server_python = str(installed_server.venv)
    _start_check_stop(bpy, ext, prefs, venv_python)


@pytest.mark.slow
def test_set_up_server_installs_the_wheel_with_the_artists_python_and_starts_it(
    prefs, ext, installed_server, tmp_path, monkeypatch
):
    import bpy

    ls = ext("blender.local_server")
    base = getattr(sys, "_base_executable", sys.executable)  # the Python this venv was made from
    constraints = tmp_path / "constraints.txt"  # torch: this machine's CPU build, nothing large downloaded
    constraints.write_text(
        "".join(
            f"{line}\n"
            for line in (ROOT / "requirements" / "dev.lock").read_text().splitlines()
            if not line.startswith("bpy==")
        )
    )
    monkeypatch.setenv("PIP_CONSTRAINT", str(constraints))
    monkeypatch.setattr(ls, "online_access", lambda: True)  # Allow Online Access on (the bpy module has it off)
    folder = tmp_path / "my server"
    prefs.server_folder, prefs.server_package, prefs.setup_python = str(folder), str(installed_server.wheel), base
    prefs.server_device = "AUTO"
    assert bpy.ops.parascale.server_setup() == {"FINISHED"}
    assert ls.setup_status()[0] == "running" and bpy.app.timers.is_registered(ls._timer)
    with pytest.raises(RuntimeError, match="still running"):
        bpy.ops.parascale.server_setup()
    seen = set()

    def tick():
        state = ls.tick_setup()
        seen.add(ls.setup_status()[1].split(":")[0])
        return state

    assert _follow(tick, "running", 600) == "done", ls.setup_status()
    assert {"step 1/3", "step 2/3", "step 3/3"} <= seen, seen
    assert "ok: torch" in ls.setup_status()[1]
    log = (folder / "setup.log").read_text()
    assert "-m venv" in log and "pip install" in log and "Successfully installed" in log
    assert Path(prefs.server_python) == folder  # Start now uses the new environment
    py = Path(ls.env_python(str(folder)))
    assert (py.parent / "parascale-server").exists()
    _start_check_stop(bpy, ext, prefs, py, device="auto")  # the server resolves "auto" to the CPU here
    shutil.rmtree(folder, ignore_errors=True)  # 1.3 GB


def test_set_up_refusals_and_a_failing_step(prefs, ext, tmp_path):
    import bpy

    ls = ext("blender.local_server")
    prefs.setup_pip_args = "--no-index"  # installs from local files: allowed with Online Access off
    prefs.server_folder, prefs.server_package = str(tmp_path / "a"), ""
    with pytest.raises(RuntimeError, match="set 'Server package'"):
        bpy.ops.parascale.server_setup()
    prefs.server_package = str(tmp_path / "parascale-0.1.0-py3-none-any.whl")
    with pytest.raises(RuntimeError, match="no such wheel"):
        bpy.ops.parascale.server_setup()
    (tmp_path / "parascale-0.1.0-py3-none-any.whl").write_bytes(b"")
    busy = tmp_path / "busy"
    busy.mkdir()
    (busy / "notes.txt").write_text("mine")
    prefs.server_folder = str(busy)
    with pytest.raises(RuntimeError, match="neither empty nor a Python environment"):
        bpy.ops.parascale.server_setup()

    prefs.server_folder = str(tmp_path / "b")
    old = tmp_path / "python3.9"
    old.write_text("#!/bin/sh\necho 3 9\n")
    old.chmod(0o755)
    prefs.setup_python = str(old)
    with pytest.raises(RuntimeError, match=r"no Python 3\.11 found .*Python 3\.9"):
        bpy.ops.parascale.server_setup()

    broken = tmp_path / "python3.11"
    broken.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then echo 3 11; exit 0; fi\necho "venv: disk full" >&2\nexit 3\n')
    broken.chmod(0o755)
    prefs.setup_python = str(broken)
    assert bpy.ops.parascale.server_setup() == {"FINISHED"}
    assert _follow(ls.tick_setup, "running", 30) == "failed"
    message = ls.setup_status()[1]
    assert "step 1/3 (creating the environment) failed with code 3" in message and "disk full" in message
    assert "setup.log" in message


def test_blenders_own_python_is_refused(prefs, ext, monkeypatch):
    import bpy

    ls = ext("blender.local_server")
    monkeypatch.setattr(ls, "_is_blender_python", lambda path: True)
    prefs.server_python, prefs.server_url = sys.executable, f"http://127.0.0.1:{free_port()}"
    with pytest.raises(RuntimeError, match="Blender's own Python"):
        bpy.ops.parascale.server_start()
    prefs.setup_python, prefs.server_package = sys.executable, "parascale[server]"
    with pytest.raises(RuntimeError, match="Blender's own Python"):
        bpy.ops.parascale.server_setup()


def test_set_up_refuses_options_as_packages_unsaved_relative_folders_and_the_network_when_offline(
    prefs, ext, tmp_path, monkeypatch
):
    import bpy

    ls = ext("blender.local_server")
    assert not bpy.data.filepath
    broken = tmp_path / "python3.11"  # answers the version check, then fails creating the venv
    broken.write_text('#!/bin/sh\nif [ "$1" = "-c" ]; then echo 3 11; exit 0; fi\nexit 3\n')
    broken.chmod(0o755)
    prefs.setup_python, prefs.setup_pip_args = str(broken), "--no-index"
    prefs.server_folder, prefs.server_package = str(tmp_path / "env"), "--index-url=http://evil.example/simple"
    with pytest.raises(RuntimeError, match="starts with '-', which pip reads as an option"):
        bpy.ops.parascale.server_setup()
    prefs.server_folder, prefs.server_package = "//server", "parascale[server]"
    with pytest.raises(RuntimeError, match=r"Set-up folder: //server is relative to the \.blend, which is not saved"):
        bpy.ops.parascale.server_setup()
    assert not (Path.cwd() / "server").exists()
    # Online Access off (as the bpy module has it): pip would download, so Set Up refuses and makes nothing.
    prefs.server_folder, prefs.setup_pip_args = str(tmp_path / "env"), "--extra-index-url https://example.org/whl"
    with pytest.raises(RuntimeError, match="Allow Online Access is off"):
        bpy.ops.parascale.server_setup()
    assert not (tmp_path / "env").exists()
    # A relative wheel path is made absolute once (pip runs in the set-up folder, not Blender's cwd).
    (tmp_path / "wheels").mkdir()
    (tmp_path / "wheels" / "parascale-0.1.0-py3-none-any.whl").write_bytes(b"")
    monkeypatch.chdir(tmp_path)
    prefs.server_package, prefs.setup_pip_args = "wheels/parascale-0.1.0-py3-none-any.whl", "--no-index"
    assert bpy.ops.parascale.server_setup() == {"FINISHED"}
    pip = ls._SETUP["steps"][1][1]
    assert pip[-1] == f"{tmp_path / 'wheels' / 'parascale-0.1.0-py3-none-any.whl'}[server]"
    assert _follow(ls.tick_setup, "running", 30) == "failed"
    # Windows: the quotes around a word are not kept in pip's arguments.
    words = ls.pip_options('--extra-index-url "https://download.pytorch.org/whl/cu128" --cert "C:\\my certs\\ca.pem"',
                           windows=True)  # fmt: skip
    assert words == ["--extra-index-url", "https://download.pytorch.org/whl/cu128", "--cert", "C:\\my certs\\ca.pem"]
