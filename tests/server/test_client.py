"""The bpy-free client and the ServerJob state machine against the real server."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest
from server_helpers import ROOT, decode_mp4, free_port, npy_bytes, plane_scene, png_bytes

from parascale_blender.client import BridgeClient, BridgeError, JobRequest, ServerJob, ServerNotRunning, wire


def _request(scene, **kw) -> JobRequest:
    return JobRequest(json.dumps(scene.doc).encode(), png_bytes(scene.image), npy_bytes(scene.depth), **kw)


def _drive(job: ServerJob, limit: float = 60.0) -> list[str]:
    """Tick until finished (real time, like Blender's timer); the distinct states seen, in order."""
    seen, deadline = [], time.monotonic() + limit
    while not job.finished and time.monotonic() < deadline:
        state = job.tick()
        if not seen or seen[-1] != state:
            seen.append(state)
        time.sleep(0.01)
    return seen


def test_tick_drives_a_job_to_a_saved_mp4(server, tmp_path):
    client = BridgeClient(server.url)
    assert client.health()["status"] == "ok"
    (tmp_path / "shot").mkdir()  # the artist's folder: the client never creates folders
    job = ServerJob(client, _request(plane_scene(64, 40, 5)), tmp_path / "shot" / "clip.mp4", poll_interval=0.0)
    assert job.state == "pending"
    states = _drive(job)
    assert job.state == "done", (states, job.error)
    assert states[-2:] == ["downloading", "done"] and states[0] in ("queued", "running")
    assert job.result_path == tmp_path / "shot" / "clip.mp4" and job.progress == 1.0
    frames, fps, w, h = decode_mp4(job.result_path.read_bytes())
    assert (len(frames), fps, w, h) == (5, 24.0, 64, 40)
    assert not list((tmp_path / "shot").glob(".*part"))
    # Re-attaching by id (reopened .blend) downloads the same finished result.
    again = ServerJob.attach(client, job.job_id, tmp_path / "again.mp4", poll_interval=0.0)
    _drive(again)
    assert again.state == "done" and again.result_path.read_bytes() == job.result_path.read_bytes()


def test_cancel_from_the_client(server, tmp_path):
    client = BridgeClient(server.url)
    job = ServerJob(client, _request(plane_scene(256, 160, 300, 0.001, 0.01)), tmp_path / "c.mp4", poll_interval=0)
    job.tick()
    while job.tick() == "queued":
        time.sleep(0.01)
    assert job.state == "running", job.error
    job.cancel()
    _drive(job)
    assert job.state == "cancelled" and not (tmp_path / "c.mp4").exists()


def test_rejected_submission_fails_the_job_with_the_server_reason(server, tmp_path):
    scene = plane_scene(64, 40, 3)
    scene.doc["frames"][1]["intrinsics"][0] = -10.0
    job = ServerJob(BridgeClient(server.url), _request(scene), tmp_path / "x.mp4")
    job.tick()
    assert job.state == "failed" and "focal lengths must be positive" in job.error
    with pytest.raises(BridgeError) as e:
        BridgeClient(server.url).status("0" * 32)
    assert e.value.status == 404


def test_server_not_running_says_how_to_start_it(tmp_path):
    url = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(ServerNotRunning, match=rf"server not running at {url}: start it with `parascale-server`"):
        BridgeClient(url, timeout=2).health()
    job = ServerJob(BridgeClient(url, timeout=2), _request(plane_scene(64, 40, 3)), tmp_path / "x.mp4")
    assert job.tick() == "failed" and "parascale-server" in job.error
    lost = ServerJob.attach(BridgeClient(url, timeout=2), "a" * 32, tmp_path / "y.mp4", max_unreachable=3)
    states = [lost.tick(now=float(i)) for i in range(3)]
    assert states == ["queued", "queued", "failed"] and "waiting for the server" not in lost.error


def test_loopback_calls_bypass_a_broken_system_proxy(server, monkeypatch):
    import socket

    with socket.socket() as held:  # bound, never listening: connecting to it is refused, and no test reuses it
        held.bind(("127.0.0.1", 0))
        dead_proxy = f"http://127.0.0.1:{held.getsockname()[1]}"
        for var in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
            monkeypatch.setenv(var, dead_proxy)
        for var in ("no_proxy", "NO_PROXY"):
            monkeypatch.delenv(var, raising=False)
        with pytest.raises(urllib.error.URLError):  # what a naive urllib call does with that proxy
            urllib.request.build_opener().open(server.url + "/v1/health", timeout=5)  # not a cached global opener
        assert BridgeClient(server.url).health()["status"] == "ok"


def test_every_call_works_on_the_installed_requests_and_urllib3(server, tmp_path):
    """The calls the panels make, on the requests/urllib3 installed: Blender 5.0's in .venv, Blender 4.2's
    (requests 2.27.1, urllib3 1.26.8: requirements/lts.lock) under ``./scripts/dev test-lts``."""
    import requests
    import urllib3

    if os.environ.get("PARASCALE_LTS"):  # the LTS run really runs what Blender 4.2 bundles
        lines = (ROOT / "requirements" / "lts.lock").read_text().splitlines()
        pins = dict(line.split("==") for line in lines if "==" in line and not line.startswith("#"))
        assert (requests.__version__, urllib3.__version__) == (pins["requests"], pins["urllib3"])
        assert urllib3.__version__.startswith("1.26.")
    client = BridgeClient(server.url)
    health = client.health()
    assert health["status"] == "ok" and health["api"] == wire.API_VERSION and wire.api_mismatch(health) is None
    assert "warp" in {b["name"] for b in client.backends()}
    job = ServerJob(client, _request(plane_scene(32, 24, 3)), tmp_path / "clip.mp4", poll_interval=0.0)
    _drive(job)
    assert job.state == "done", job.error
    assert job.job_id in {j["id"] for j in client.jobs()}
    assert decode_mp4(job.result_path.read_bytes())[2:] == (32, 24)


def test_job_folders_and_files_are_the_owners_only(tmp_path):
    """Each job folder is 0700 (no other user reads an artist's uploads or results), its status, request
    and log 0600."""
    import stat

    from server_helpers import Server

    srv = Server(tmp_path / "jobs").start()
    try:
        client = BridgeClient(srv.url)
        job = ServerJob(client, _request(plane_scene(32, 24, 3)), tmp_path / "c.mp4", poll_interval=0.0)
        _drive(job)
        assert job.state == "done", job.error
    finally:
        srv.stop()
    mode = lambda p: stat.S_IMODE(p.stat().st_mode)  # noqa: E731
    folder = srv.jobs_dir / job.job_id
    assert mode(folder) == mode(srv.jobs_dir) == 0o700  # the jobs folder too (the server made it)
    assert {n: mode(folder / n) for n in ("status.json", "request.json", "log.txt")} == dict.fromkeys(
        ("status.json", "request.json", "log.txt"), 0o600
    )
