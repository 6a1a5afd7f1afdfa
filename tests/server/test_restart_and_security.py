"""Persistence across a SIGKILL, and the token / bind-address rules."""

from __future__ import annotations

import subprocess
import sys
import time

import httpx
import pytest
from server_helpers import ROOT, Server, decode_mp4, plane_scene, submit, wait_finished


def test_sigkill_mid_job_then_restart_keeps_results_and_marks_interrupted(tmp_path):
    jobs = tmp_path / "jobs"
    srv = Server(jobs).start()
    try:
        with httpx.Client(timeout=30) as http:
            finished = submit(http, srv.url, plane_scene(64, 40, 3)).json()["id"]
            assert wait_finished(http, srv.url, finished)["state"] == "done"
            long = submit(http, srv.url, plane_scene(256, 160, 400, step=0.001, yaw_deg=0.01)).json()["id"]
            waiting = submit(http, srv.url, plane_scene(64, 40, 3)).json()["id"]
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                st = http.get(f"{srv.url}/v1/jobs/{long}").json()
                if st["state"] == "running" and st["progress"] > 0:
                    break
                time.sleep(0.02)
            assert st["state"] == "running", st
            assert http.get(f"{srv.url}/v1/jobs/{waiting}").json()["state"] == "queued"
            srv.kill()
            assert not (jobs / long / "result.mp4").exists()
            srv = Server(jobs).start()  # a new process, a new port, the same jobs folder
            st = http.get(f"{srv.url}/v1/jobs/{long}").json()
            assert st["state"] == "interrupted" and "stopped" in st["error"], st
            assert http.get(f"{srv.url}/v1/jobs/{long}/result").status_code == 409
            assert not (jobs / long / "result.partial.mp4").exists()
            frames, *_ = decode_mp4(http.get(f"{srv.url}/v1/jobs/{finished}/result").content)
            assert len(frames) == 3
            assert wait_finished(http, srv.url, waiting)["state"] == "done", "queued jobs run after a restart"
            assert "interrupted" in (jobs / long / "log.txt").read_text()
    finally:
        srv.stop()


def test_token_is_required_on_every_request(tmp_path):
    token = "s3cret-token-123"
    srv = Server(tmp_path / "jobs", ["--token", token]).start()
    try:
        with httpx.Client(timeout=30) as http:
            for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": token}):
                for method, path in (("GET", "/v1/health"), ("GET", "/openapi.json"), ("POST", "/v1/jobs")):
                    r = http.request(method, srv.url + path, headers=headers)
                    assert r.status_code == 401, (headers, path)
                    assert r.json()["error"] == "missing or wrong token"
            ok = {"Authorization": f"Bearer {token}"}
            assert http.get(srv.url + "/v1/health", headers=ok).status_code == 200
            for twice in ([("Authorization", "Bearer wrong"), ("Authorization", f"Bearer {token}")],
                          [("Authorization", f"Bearer {token}"), ("Authorization", "Bearer wrong")]):  # fmt: skip
                r = http.get(srv.url + "/v1/health", headers=httpx.Headers(twice))  # no copy wins: refused
                assert r.status_code == 400 and "authorization header is sent twice" in r.json()["error"], r.text
            r = http.post(srv.url + "/v1/jobs", files=plane_scene(64, 40, 3).files(), headers=ok)
            assert r.status_code == 201
            assert wait_finished(httpx.Client(headers=ok), srv.url, r.json()["id"])["state"] == "done"
    finally:
        srv.stop()


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.20", "::"])
def test_non_loopback_bind_without_token_is_refused(tmp_path, host):
    cmd = [sys.executable, "-m", "bridge_server", "--host", host, "--port", "1", "--jobs-dir", str(tmp_path)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert p.returncode == 2
    assert "refusing to bind" in p.stderr and "--token" in p.stderr
