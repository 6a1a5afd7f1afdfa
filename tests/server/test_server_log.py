"""``parascale-server`` says what it is doing (issue 24): a start line (version, URL, device, jobs
folder, weights, queue) and one line per job state change, through Python's ``logging``; its
``--help`` shows the defaults. Read from the real process's output."""

from __future__ import annotations

import subprocess
import sys

from server_helpers import ROOT, Server, plane_scene, submit, wait_finished


def test_start_line_and_a_line_per_job_state(tmp_path, http):
    weights = tmp_path / "weights"
    weights.mkdir()
    srv = Server(tmp_path / "jobs", ["--weights", str(weights)]).start()
    try:
        job = submit(http, srv.url, plane_scene(48, 32, 3)).json()["id"]
        assert wait_finished(http, srv.url, job)["state"] == "done"
    finally:
        srv.stop()
    out = srv.output()
    start = f"parascale-server 0.1.0: http://127.0.0.1:{srv.port}, device cpu, jobs folder {tmp_path / 'jobs'}"
    assert start in out and f"weights {weights}" in out and "queue local" in out, out
    assert f"job {job}: queued -> running" in out and f"job {job}: running -> done" in out, out


def test_help_shows_the_defaults():
    r = subprocess.run([sys.executable, "-m", "bridge_server", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and "(default: 8765)" in r.stdout and "(default: 256)" in r.stdout, r.stdout


def _lan_address() -> str | None:
    """This machine's non-loopback IPv4 address (the route a datagram would take), if it has one."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("192.0.2.1", 9))  # TEST-NET: nothing is sent
            addr = s.getsockname()[0]
        except OSError:
            return None
    return None if addr.startswith("127.") else addr


def test_server_paths_are_told_to_loopback_clients_only(tmp_path):
    """/v1/health and /v1/backends name the weights folder to a client on this machine, to no other."""
    import httpx
    import pytest

    lan = _lan_address()
    if lan is None:
        pytest.skip("no non-loopback address on this machine")
    weights = tmp_path / "weights"
    weights.mkdir()
    token = {"Authorization": "Bearer t0ken-for-the-test"}
    srv = Server(tmp_path / "jobs", ["--token", "t0ken-for-the-test", "--weights", str(weights)], host="0.0.0.0")
    srv.start(headers=token)
    try:
        here = httpx.get(f"http://127.0.0.1:{srv.port}/v1/health", headers=token, timeout=30).json()
        assert here["weights_dir"] == str(weights.resolve())
        there = httpx.get(f"http://{lan}:{srv.port}/v1/health", headers=token, timeout=30)
        assert there.status_code == 200 and there.json()["weights_dir"] is None, there.text
        assert str(tmp_path) not in there.text
        backends = httpx.get(f"http://{lan}:{srv.port}/v1/backends", headers=token, timeout=30)
        assert backends.status_code == 200 and str(tmp_path) not in backends.text
    finally:
        srv.stop()
