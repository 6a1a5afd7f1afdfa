"""The jobs folder under storage faults: a file or a folder that cannot be created is a clear
message and exit code 2 (no traceback); a read-only folder (a read-only bind mount, made in a user
namespace) is served read-only: the server starts, its jobs and results are served, a job the
killed server was running is interrupted, new jobs get 507, and nothing on disk changes; a full
disk is a 507 that leaves no folder behind; the janitor removes old folders without status.json
at start."""

from __future__ import annotations

import os
import re
import resource
import subprocess
import sys
import time

import httpx
import pytest
from server_helpers import ROOT, Server, plane_scene, submit, wait_finished

JOB_DIR = re.compile(r"^[0-9a-f]{32}$")


def _start_fails(jobs_dir) -> subprocess.CompletedProcess:
    cmd = [sys.executable, "-m", "bridge_server", "--port", "1", "--jobs-dir", str(jobs_dir), "--device", "cpu"]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)


@pytest.mark.parametrize("case", ["file", "cannot-create"])
def test_unusable_jobs_dir_is_a_clear_error_without_traceback(tmp_path, case):
    if case == "file":
        jobs = tmp_path / "jobs"
        jobs.write_text("not a folder")
        expect = "is a file, not a folder"
    else:
        jobs = "/sys/parascale-jobs"
        expect = "cannot create"
    p = _start_fails(jobs)
    assert p.returncode == 2, p.stderr
    assert expect in p.stderr and "--jobs-dir" in p.stderr, p.stderr
    assert "Traceback" not in p.stderr + p.stdout


def _small_files_only():
    resource.setrlimit(resource.RLIMIT_FSIZE, (96 * 1024, 96 * 1024))  # no file over 96 KiB: a "full disk"


def test_full_disk_is_a_507_and_leaves_no_orphan_folder(tmp_path):
    jobs = tmp_path / "jobs"
    srv = Server(jobs, preexec=_small_files_only).start()
    try:
        with httpx.Client(timeout=60) as http:
            for _ in range(3):
                r = submit(http, srv.url, plane_scene(192, 120, 3))  # a 184 KB depth upload
                assert r.status_code == 507, r.text
                assert "cannot store" in r.json()["error"] and "too large" in r.json()["error"].lower()
            assert [p.name for p in jobs.iterdir() if JOB_DIR.match(p.name)] == []
            assert http.get(srv.url + "/v1/jobs").json()["jobs"] == []
            small = submit(http, srv.url, plane_scene(48, 30, 3)).json()["id"]  # still serves what fits
            assert wait_finished(http, srv.url, small)["state"] == "done"
    finally:
        srv.stop()


def test_janitor_removes_old_folders_without_status_at_start(tmp_path):
    jobs = tmp_path / "jobs"
    old, fresh = jobs / ("a" * 32), jobs / ("b" * 32)
    for folder in (old, fresh):
        folder.mkdir(parents=True)
        (folder / "image.png").write_bytes(b"half a submission")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    srv = Server(jobs).start()
    try:
        assert not old.exists(), "an hour-old folder without status.json is debris"
        assert fresh.exists(), "a fresh one may be a submission being written"
        assert httpx.get(srv.url + "/v1/jobs").json()["jobs"] == []
    finally:
        srv.stop()


# Runs the command in "$@" with the folder "$0" bind-mounted read-only (a user namespace: no root needed).
READ_ONLY = 'mount --bind "$0" "$0" && mount -o remount,bind,ro "$0" && exec "$@"'


def _read_only_mounts() -> bool:
    cmd = ["unshare", "-rm", "sh", "-c", READ_ONLY, "/tmp", "true"]
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def _wait_state(http, url, job_id, state, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if (st := http.get(f"{url}/v1/jobs/{job_id}").json())["state"] == state:
            return st
        time.sleep(0.05)
    raise AssertionError(f"job {job_id} never became {state}: {st}")


def _snapshot(folder):
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.skipif(not _read_only_mounts(), reason="needs user namespaces (unshare -rm) for a read-only mount")
def test_read_only_jobs_dir_holding_a_running_job_is_served_read_only(tmp_path):
    jobs = tmp_path / "jobs"
    srv = Server(jobs).start()
    with httpx.Client(timeout=60) as http:
        done = submit(http, srv.url, plane_scene(48, 30, 3)).json()["id"]
        wait_finished(http, srv.url, done)
        running = submit(http, srv.url, plane_scene(256, 160, 300, step=0.001, yaw_deg=0.01)).json()["id"]
        queued = submit(http, srv.url, plane_scene(48, 30, 3)).json()["id"]
        _wait_state(http, srv.url, running, "running")
        srv.kill()  # SIGKILL mid-job: status.json still says running (and queued)
        before = _snapshot(jobs)
        ro = Server(jobs, prefix=["unshare", "-rm", "sh", "-c", READ_ONLY, str(jobs)]).start()
        try:
            health = http.get(ro.url + "/v1/health").json()
            assert health["read_only"] is True and health["status"] == "degraded", health
            states = {j["id"]: j for j in http.get(ro.url + "/v1/jobs").json()["jobs"]}
            assert states[done]["state"] == "done"
            assert states[running]["state"] == "interrupted" and "read-only" in states[running]["error"]
            assert states[queued]["state"] == "interrupted" and "read-only" in states[queued]["error"]
            r = http.get(f"{ro.url}/v1/jobs/{done}/result")
            assert r.status_code == 200 and r.content == (jobs / done / "result.mp4").read_bytes()
            r = submit(http, ro.url, plane_scene(48, 30, 3))
            assert r.status_code == 507 and "read-only" in r.json()["error"], r.text
            assert http.post(f"{ro.url}/v1/jobs/{running}/cancel").status_code == 200
        finally:
            ro.stop()
        assert ro.proc.returncode == 0 or ro.proc.returncode < 0, ro.output()
        assert _snapshot(jobs) == before, "a read-only server changed the jobs folder"
        rw = Server(jobs).start()  # writable again: the queued job runs, the running one is interrupted
        try:
            assert wait_finished(http, rw.url, queued)["state"] == "done"
            assert http.get(f"{rw.url}/v1/jobs/{running}").json()["state"] == "interrupted"
        finally:
            rw.stop()


def test_a_full_temporary_folder_is_a_507_naming_no_path(tmp_path):
    """An upload over 1 MiB is spooled to the temporary folder while the form is parsed; when that
    cannot be written (here: no file over 96 KiB) the answer is 507 (it was 400, blaming the
    client), and no answer names a server path."""
    srv = Server(tmp_path / "jobs", preexec=_small_files_only, env={"TMPDIR": str(tmp_path)}).start()
    try:
        with httpx.Client(timeout=60) as http:
            r = submit(http, srv.url, plane_scene(640, 400, 3))  # a 2 MB depth upload
            assert r.status_code == 507, r.text
            assert "cannot hold this upload" in r.json()["error"], r.text
            assert str(tmp_path) not in r.text
            small = submit(http, srv.url, plane_scene(48, 30, 3)).json()["id"]
            assert wait_finished(http, srv.url, small)["state"] == "done"
            assert str(tmp_path) not in http.get(srv.url + "/v1/health").text
    finally:
        srv.stop()
