"""The jobs folder under storage faults: a file or an unwritable folder at start is a clear message
and exit code 2 (no traceback); a full disk is a 507 that leaves no folder behind; the janitor
removes old folders without status.json at start."""

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


@pytest.mark.parametrize("case", ["file", "read-only", "cannot-create"])
def test_unusable_jobs_dir_is_a_clear_error_without_traceback(tmp_path, case):
    if case == "file":
        jobs = tmp_path / "jobs"
        jobs.write_text("not a folder")
        expect = "is a file, not a folder"
    elif case == "read-only":
        jobs = "/sys/kernel"  # sysfs: a folder no one can write, even root
        if not os.path.isdir(jobs) or os.access("/sys/kernel/.x", os.W_OK):
            pytest.skip("no read-only sysfs here")
        expect = "is not writable"
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
