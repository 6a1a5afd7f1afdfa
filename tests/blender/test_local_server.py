"""Preferences "Start local server" in real bpy: the project's Python starts the real server on the
URL's port (it answers /v1/health), Stop ends it; a Python without the server is reported with its
log; a missing path or a non-loopback URL is refused before anything runs."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_helpers import free_port  # noqa: E402


def _follow(ls, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = ls.tick()
        if state != "starting":
            return state
        time.sleep(0.1)
    raise AssertionError("the start was not decided in time")


@pytest.fixture
def prefs(scene, ext, monkeypatch):
    import bpy

    # The .venv's editable install predates bridge_server/__init__.py and maps it as a namespace
    # package outside the repository root; the server's cwd is the add-on's user folder.
    monkeypatch.setenv("PYTHONPATH", str(Path(__file__).resolve().parents[2]))

    p = ext("blender.prefs").get(bpy.context)
    old = p.server_url, p.server_python, p.server_token
    yield p
    ext("blender.local_server").stop()
    p.server_url, p.server_python, p.server_token = old


def test_start_and_stop_the_local_server(prefs, ext):
    import bpy

    ls = ext("blender.local_server")
    url = f"http://127.0.0.1:{free_port()}"
    prefs.server_url, prefs.server_python = url, sys.executable
    assert bpy.ops.parascale.server_start() == {"FINISHED"}
    assert ls.status()[0] == "starting" and bpy.app.timers.is_registered(ls._timer)
    proc = ls.running_proc()
    assert _follow(ls) == "running", ls.status()
    assert len(prefs.server_token) >= 16  # the per-install token, passed in PARASCALE_TOKEN and sent by the client
    client = ext("client").BridgeClient(url, token=prefs.server_token, timeout=2)
    assert client.health()["status"] == "ok"
    with pytest.raises(ext("client").BridgeError, match="token"):
        ext("client").BridgeClient(url, timeout=2).health()
    with pytest.raises(RuntimeError, match="still running: stop it first"):
        bpy.ops.parascale.server_start()
    assert bpy.ops.parascale.server_stop() == {"FINISHED"}
    assert proc.poll() is not None and ls.running_proc() is None
    with pytest.raises(ext("client").ServerNotRunning):
        client.health()
    assert bpy.ops.parascale.server_stop() == {"CANCELLED"}  # a warning: nothing of ours to stop


def test_a_python_without_the_server_is_reported_with_its_log(prefs, ext, tmp_path):
    import bpy

    ls = ext("blender.local_server")
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\necho 'No module named bridge_server' >&2\nexit 1\n")
    fake.chmod(0o755)
    prefs.server_url, prefs.server_python = f"http://127.0.0.1:{free_port()}", str(fake)
    assert bpy.ops.parascale.server_start() == {"FINISHED"}
    assert _follow(ls, 20) == "failed"
    assert "exited with code 1" in ls.status()[1] and "No module named bridge_server" in ls.status()[1]


def test_a_server_that_never_answers_times_out(prefs, ext, tmp_path):
    ls = ext("blender.local_server")
    hang = tmp_path / "python"
    hang.write_text("#!/bin/sh\nexec sleep 30\n")
    hang.chmod(0o755)
    proc = ls.start(str(hang), f"http://127.0.0.1:{free_port()}", timeout=0.5)
    time.sleep(0.6)
    assert ls.tick() == "failed" and "did not answer" in ls.status()[1]
    assert proc.poll() is not None, "a server that never answered is stopped"


@pytest.mark.parametrize(
    ("python", "url", "needle"),
    [
        ("", "http://127.0.0.1:8765", "set 'Server Python'"),  # nothing found on PATH or in the usual folders
        ("/no/such/python", "http://127.0.0.1:8765", "not an executable"),
        (sys.executable, "http://192.0.2.7:8765", "not on this machine"),
    ],
)
def test_refusals_before_anything_runs(prefs, ext, python, url, needle):
    import bpy

    prefs.server_url, prefs.server_python = url, python
    with pytest.raises(RuntimeError, match=needle):
        bpy.ops.parascale.server_start()
    assert ext("blender.local_server").running_proc() is None
