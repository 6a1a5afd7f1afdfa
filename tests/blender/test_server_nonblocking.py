"""The add-on's calls never hold Blender's UI past their budgets (issue 24, item 8), and a server of
another API version is refused saying what to update; in real bpy against misbehaving loopback peers."""

from __future__ import annotations

import json
import socket
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
import test_generate  # noqa: E402
from test_client_faults import Peer, _send  # noqa: E402

shot, server = test_generate.shot, test_generate.server
WARP = {"name": "warp", "description": "", "parameters": {}, "available": True, "uploads": ["trajectory", "image"]}


def _health(api=None) -> bytes:
    doc = {"status": "ok", "version": "9.9.9", "device": "cpu", "devices": ["cpu"], "backends": ["warp"]}
    return json.dumps(doc | ({} if api is None else {"api": api})).encode()


@pytest.fixture
def peer():
    made = []
    yield lambda respond: made.append(Peer(respond)) or made[-1]
    for p in made:
        p.close()


def test_refresh_against_a_hung_server_returns_at_once_and_says_so_later(scene, ext):
    import bpy

    ss = ext("blender.server_status")
    with socket.socket() as s:  # takes connections, never answers
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        ext("blender.prefs").get(bpy.context).server_url = url
        t0 = time.monotonic()
        assert bpy.ops.parascale.server_refresh() == {"FINISHED"}
        assert time.monotonic() - t0 < 1.5 and not ss.finish_refresh()  # REFRESH_WAIT is 0.5 s
        assert "asking the server" in ss._CACHE["error"]
        deadline = time.monotonic() + 10
        while not ss.finish_refresh() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert time.monotonic() - t0 < 4.0  # the health call's 2 s overall deadline
        assert f"server at {url} did not pass its health check" in ss._CACHE["error"] and ss._CACHE["health"] is None


@pytest.mark.parametrize(("api", "update"), [(2, "update the ParaScale add-on"), (0, "update the server")])
def test_a_server_of_another_api_version_is_refused_saying_what_to_update(scene, ext, peer, api, update):
    import bpy

    p = peer(lambda h: _send(h, 200, _health(api) if h.path == "/v1/health" else json.dumps([WARP]).encode()))
    ext("blender.prefs").get(bpy.context).server_url = p.url
    with pytest.raises(RuntimeError, match=f"speaks API version {api}, this add-on 1: {update}"):
        bpy.ops.parascale.server_refresh()
    assert [r[1] for r in p.requests] == ["/v1/health"]  # nothing more asked of it


def test_generate_against_a_server_that_hangs_on_post_frees_the_ui(shot, ext, peer):
    import bpy

    jobs = ext("blender.server_jobs")

    def respond(h):
        if h.command == "POST":
            time.sleep(30)  # reads the upload, never answers
        elif h.path == "/v1/health":
            _send(h, 200, _health())
        else:
            _send(h, 200, json.dumps([WARP]).encode())

    p = peer(respond)
    ext("blender.prefs").get(bpy.context).server_url = p.url
    t0 = time.monotonic()
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    assert time.monotonic() - t0 < 5.0, "SUBMIT_WAIT (2 s) on top of the bake, not the 60 s submission deadline"
    rec = shot.parascale_jobs.generate
    assert rec.state == "pending" and jobs.is_running(shot, "generate")
    t0, longest = time.monotonic(), 0.0
    for _ in range(5):
        t = time.monotonic()
        jobs.tick_scene(shot, "generate")
        longest = max(longest, time.monotonic() - t)
    assert longest < 0.7
    assert bpy.ops.parascale.server_job_cancel(kind="generate") == {"FINISHED"}
    assert [r[0] for r in p.requests].count("POST") <= 1
