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
