"""The server under faults: a job folder deleted under a running or queued job, health of the workers."""

from __future__ import annotations

import shutil
import time

import httpx
from server_helpers import Server, plane_scene, submit, wait_finished

from bridge_server.config import Limits
from bridge_server.executor import LocalExecutor
from bridge_server.jobs import JobStore


def _wait_running(http, url, job_id, timeout=60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = http.get(f"{url}/v1/jobs/{job_id}").json()
        if st["state"] == "running" and st["progress"] > 0:
            return st
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} never ran: {st}")


def test_deleting_job_folders_fails_those_jobs_and_the_worker_goes_on(tmp_path):
    jobs = tmp_path / "jobs"
    srv = Server(jobs).start()
    try:
        with httpx.Client(timeout=30) as http:
            running = submit(http, srv.url, plane_scene(256, 160, 300, step=0.001, yaw_deg=0.01)).json()["id"]
            queued = submit(http, srv.url, plane_scene(64, 40, 3)).json()["id"]
            _wait_running(http, srv.url, running)
            assert http.get(f"{srv.url}/v1/jobs/{queued}").json()["state"] == "queued"
            shutil.rmtree(jobs / queued)  # the OS removes both folders under the server's feet
            shutil.rmtree(jobs / running)
            st = wait_finished(http, srv.url, running)
            assert st["state"] == "failed" and st["error"], st
            st = wait_finished(http, srv.url, queued)
            assert st["state"] == "failed" and "No such file" in st["error"], st
            cancel = http.post(f"{srv.url}/v1/jobs/{running}/cancel")
            assert cancel.status_code == 200 and cancel.json()["state"] == "failed"
            later = submit(http, srv.url, plane_scene(64, 40, 3)).json()["id"]
            assert wait_finished(http, srv.url, later)["state"] == "done", "the worker survived"
            health = http.get(f"{srv.url}/v1/health").json()
            assert health["status"] == "ok" and health["workers"][0]["alive"] is True, health
    finally:
        srv.stop()
    assert srv.proc.returncode is not None


def test_health_reports_a_dead_worker_thread(tmp_path):
    store = JobStore(tmp_path)
    jobs = LocalExecutor(store, ["cpu"], Limits())  # the server's --queue local
    jobs.start()
    assert [w.alive for w in jobs.workers(stuck_after=60)] == [True]
    jobs.stop()  # the thread really ends (joined by the OS-level thread)
    [w] = jobs.workers(stuck_after=60)
    assert w.alive is False and w.device == "cpu"


def test_health_reports_a_stuck_worker_and_recovers(tmp_path):
    srv = Server(tmp_path / "jobs", ["--stuck-after", "0.3"]).start()
    try:
        with httpx.Client(timeout=30) as http:
            assert http.get(f"{srv.url}/v1/health").json()["status"] == "ok"
            job = submit(http, srv.url, plane_scene(2048, 1536, 3, step=0.05)).json()["id"]
            deadline = time.monotonic() + 120
            while not (h := http.get(f"{srv.url}/v1/health").json())["workers"][0]["stuck"]:
                assert time.monotonic() < deadline, h
                time.sleep(0.05)  # a frame of seconds: no progress for longer than --stuck-after
            assert h["status"] == "degraded" and h["workers"][0]["job"] == job, h
            http.post(f"{srv.url}/v1/jobs/{job}/cancel")
            wait_finished(http, srv.url, job)
            deadline = time.monotonic() + 10  # the worker lets go of the job just after its state is saved
            while (h := http.get(f"{srv.url}/v1/health").json())["status"] != "ok":
                assert time.monotonic() < deadline, h
                time.sleep(0.05)
            assert not h["workers"][0]["stuck"] and h["workers"][0]["job"] is None, h
    finally:
        srv.stop()
