"""The farm queue (``--queue redis://…``) with real processes: a private redis-server on a free
loopback port, the API server and two ``parascale-worker`` processes sharing one jobs folder.

Truths the code did not write: process states (a SIGKILLed worker, a killed and restarted Redis),
the files in each job folder (one exclusive claim file per run, the result file, the log's start
lines) and the HTTP answers. The API scenarios of ``test_api_jobs`` run here against the farm too.
Skipped when there is no ``redis-server`` binary or no Celery (CI installs both). Under xdist the
farm is a module fixture: ``--dist loadfile`` (what .ci/run passes) starts one per run."""

from __future__ import annotations

import json
import os
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
import test_api_jobs
from server_helpers import decode_mp4, plane_scene, submit, wait_finished

from bridge_server.local_farm import LocalFarm, farm_available

if os.environ.get("PARASCALE_REQUIRE_FARM") == "1" and farm_available() is not None:  # CI: never skip
    raise RuntimeError(f"PARASCALE_REQUIRE_FARM=1 but {farm_available()}")

pytestmark = [
    pytest.mark.skipif(farm_available() is not None, reason=str(farm_available())),
    pytest.mark.slow,
]

HEARTBEAT_TIMEOUT = 5.0  # seconds; test-only (the default is 60)


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    f = LocalFarm(
        tmp_path_factory.mktemp("farm-jobs"),
        workers=2,
        heartbeat_timeout=HEARTBEAT_TIMEOUT,
        heartbeat_interval=0.25,
        server_args=("--max-upload-mb", "2", "--max-frames", "300", "--max-side", "1024"),
        log_dir=tmp_path_factory.mktemp("farm-logs"),
    )
    f.start()
    yield f
    f.stop()


@pytest.fixture(scope="module")
def server(farm):
    return farm


# The API scenarios of test_api_jobs again, against two remote workers (`server` is the farm).
def test_api_health_and_backends(server, http):
    test_api_jobs.test_health_and_backends(server, http)


def test_api_full_job_mp4_moves_like_the_trajectory(server, http):
    test_api_jobs.test_full_job_mp4_moves_like_the_trajectory(server, http)


def test_api_cancel_stops_a_running_job_between_frames(server, http):
    test_api_jobs.test_cancel_stops_a_running_job_between_frames(server, http)


def _claims(farm, job_id):
    return sorted(p.name for p in (farm.jobs_dir / job_id).glob("claim-*"))


def _claim_worker(farm, job_id, attempt=0):
    return json.loads((farm.jobs_dir / job_id / f"claim-{attempt}").read_text())["worker"]


def _starts(farm, job_id):
    log = farm.jobs_dir / job_id / "log.txt"
    return log.read_text().count(" start: ") if log.exists() else 0


def _wait_running(http, url, job_id, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = http.get(f"{url}/v1/jobs/{job_id}").json()
        if st["state"] == "running" and st["progress"] > 0:
            return st
        assert st["state"] in ("queued", "running"), st
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} did not start: {st}")


def _alive(farm):
    return [w is not None and w.poll() is None for w in farm.workers]


def test_twenty_jobs_spread_over_two_workers_each_done_once(farm, http):
    h = http.get(farm.url + "/v1/health").json()
    assert h["queue"] == "redis" and {w["name"] for w in h["workers"]} == {"w0", "w1"}
    assert all(w["heartbeat"] > time.time() - HEARTBEAT_TIMEOUT and "warp" in w["backends"] for w in h["workers"])
    (warp,) = [b for b in http.get(farm.url + "/v1/backends").json() if b["name"] == "warp"]
    assert set(warp["workers"]) == {"w0", "w1"}
    scene = plane_scene(64, 40, 4)
    with ThreadPoolExecutor(10) as pool:
        ids = list(pool.map(lambda _: submit(http, farm.url, scene).json()["id"], range(20)))
    assert len(set(ids)) == 20
    done = [wait_finished(http, farm.url, i, timeout=120) for i in ids]
    assert [s["state"] for s in done] == ["done"] * 20
    for s in done:  # each ran exactly once: one claim file, one start line, the worker named in both
        assert _claims(farm, s["id"]) == ["claim-0"] and _starts(farm, s["id"]) == 1
        assert _claim_worker(farm, s["id"]) == s["worker"]
        assert (farm.jobs_dir / s["id"] / "result.mp4").is_file()
    assert {s["worker"] for s in done} == {"w0", "w1"}, "both workers took jobs"
    for i in ids[:2]:
        frames, *_ = decode_mp4(http.get(f"{farm.url}/v1/jobs/{i}/result").content)
        assert len(frames) == 4
    h = http.get(farm.url + "/v1/health").json()
    assert (h["queued"], h["running"]) == (0, 0)


def test_cancel_while_queued_and_while_running_on_remote_workers(farm, http):
    long_scene = plane_scene(256, 160, 300, step=0.002, yaw_deg=0.01)
    running = [submit(http, farm.url, long_scene).json()["id"] for _ in range(2)]
    queued = submit(http, farm.url, plane_scene(64, 40, 3)).json()["id"]
    sts = [_wait_running(http, farm.url, j) for j in running]
    assert {s["worker"] for s in sts} == {"w0", "w1"}  # both workers busy, so the third job waits
    assert http.get(f"{farm.url}/v1/jobs/{queued}").json()["state"] == "queued"
    st = http.post(f"{farm.url}/v1/jobs/{queued}/cancel").json()
    assert st["state"] == "cancelled"
    t0 = time.monotonic()
    for j in running:
        assert http.post(f"{farm.url}/v1/jobs/{j}/cancel").status_code == 200
    ends = [wait_finished(http, farm.url, j, timeout=20) for j in running]
    latency = time.monotonic() - t0
    assert [e["state"] for e in ends] == ["cancelled"] * 2 and all(e["progress"] < 1 for e in ends), ends
    assert latency < 3.0, latency
    for j in running:
        assert (farm.jobs_dir / j / "cancel").exists()
        assert not list((farm.jobs_dir / j).glob("result*")), "no result, no partial file left"
    assert all(_alive(farm)), "a cancel stops the job, not the worker"
    # The cancelled queued job's message is still delivered and must be skipped: never claimed.
    after = submit(http, farm.url, plane_scene(64, 40, 3)).json()["id"]
    assert wait_finished(http, farm.url, after)["state"] == "done"
    time.sleep(0.5)
    assert _claims(farm, queued) == [] and _starts(farm, queued) == 0
    assert http.get(f"{farm.url}/v1/jobs/{queued}").json()["state"] == "cancelled"


def _kill_the_worker_of(farm, http, job_id):
    st = _wait_running(http, farm.url, job_id)
    index = int(st["worker"][1:])
    farm.kill_worker(index)
    assert farm.workers[index].poll() is not None
    return index, st["worker"], time.monotonic()


def test_sigkill_worker_mid_job_ends_interrupted_within_the_heartbeat_timeout(farm, http):
    job = submit(http, farm.url, plane_scene(256, 160, 300, step=0.002, yaw_deg=0.01)).json()["id"]
    index, name, t_kill = _kill_the_worker_of(farm, http, job)
    try:
        st = wait_finished(http, farm.url, job, timeout=HEARTBEAT_TIMEOUT + 10)
        latency = time.monotonic() - t_kill
        assert st["state"] == "interrupted" and name in st["error"], st
        assert latency < HEARTBEAT_TIMEOUT + 3.0, latency
        assert not list((farm.jobs_dir / job).glob("result*"))
        assert "marked interrupted" in (farm.jobs_dir / job / "log.txt").read_text()
        assert http.get(f"{farm.url}/v1/jobs/{job}/result").status_code == 409
        # the surviving worker still serves jobs
        other = submit(http, farm.url, plane_scene(64, 40, 3)).json()
        assert wait_finished(http, farm.url, other["id"])["worker"] != name
    finally:
        farm.start_worker(index)
        farm.wait_workers()


def test_sigkill_worker_with_retries_reruns_the_job_on_the_other_worker(farm, http):
    scene = plane_scene(192, 120, 120, step=0.002, yaw_deg=0.01)
    job = submit(http, farm.url, scene, {"retries": "1"}).json()["id"]
    index, name, t_kill = _kill_the_worker_of(farm, http, job)
    try:
        st = wait_finished(http, farm.url, job, timeout=HEARTBEAT_TIMEOUT + 60)
        assert st["state"] == "done" and st["attempt"] == 1 and st["worker"] != name, st
        assert _claims(farm, job) == ["claim-0", "claim-1"]
        assert _claim_worker(farm, job, 0) == name and _claim_worker(farm, job, 1) == st["worker"]
        assert _starts(farm, job) == 2
        frames, *_ = decode_mp4(http.get(f"{farm.url}/v1/jobs/{job}/result").content)
        assert len(frames) == 120
    finally:
        farm.start_worker(index)
        farm.wait_workers()


def test_redis_restarted_mid_run_loses_no_job(farm, http):
    scene = plane_scene(128, 80, 60, step=0.005, yaw_deg=0.05)
    ids = [submit(http, farm.url, scene).json()["id"] for _ in range(8)]
    _wait_running(http, farm.url, ids[0])
    farm.kill_redis()  # SIGKILL, no persistence: every message in Redis is gone
    assert farm.redis.poll() is not None
    with httpx.Client(timeout=30) as c:  # jobs submitted while Redis is down are accepted (on disk)
        down = [submit(c, farm.url, scene) for _ in range(2)]
    assert [r.status_code for r in down] == [201, 201], [r.text for r in down]
    ids += [r.json()["id"] for r in down]
    time.sleep(1.0)
    farm.start_redis()  # the same port, empty: the queue is rebuilt from the job folders
    done = [wait_finished(http, farm.url, i, timeout=120) for i in ids]
    assert [s["state"] for s in done] == ["done"] * 10, [(s["state"], s["error"]) for s in done]
    for s in done:
        assert _claims(farm, s["id"]) == ["claim-0"] and _starts(farm, s["id"]) == 1
    assert all(_alive(farm))


@pytest.mark.skipif(not os.environ.get("PARASCALE_FARM_REDIS"), reason="no PARASCALE_FARM_REDIS (set by .ci/run)")
def test_one_worker_on_an_existing_redis_server(tmp_path, http):
    """The Redis that .ci/run started (a system redis-server, not one of ours): one job end to end."""
    url = os.environ["PARASCALE_FARM_REDIS"].rsplit("/", 1)[0] + "/7"  # a database of its own
    with LocalFarm(tmp_path / "jobs", workers=1, redis_url=url, log_dir=tmp_path) as f:
        st = wait_finished(http, f.url, submit(http, f.url, plane_scene(64, 40, 3)).json()["id"])
        assert st["state"] == "done" and st["worker"] == "w0"
        assert _claims(f, st["id"]) == ["claim-0"]


def test_the_redis_password_is_on_no_command_line(farm):
    """`ps` shows every user the command lines: the farm's Redis password travels in the children's
    environment ($PARASCALE_QUEUE), never in their arguments."""
    password = farm.redis_password
    assert password and password in farm.queue
    procs = [p for p in (farm.server, *farm.workers) if p is not None and p.poll() is None]
    assert farm.server in procs and len(procs) >= 2  # the API and at least one worker (others may be killed)
    for p in procs:
        argv = Path(f"/proc/{p.pid}/cmdline").read_bytes().split(b"\0")
        assert not any(password.encode() in a for a in argv), argv
        assert password.encode() in Path(f"/proc/{p.pid}/environ").read_bytes()
