"""Farm trust (issue 24): real redis-server, API servers and ``parascale-worker`` processes.

Truths the code did not write: the HTTP answers, the processes' exit states, the claim files each
job folder holds and the entries Redis holds. Each scenario of the issue ends with every job
``done`` (or visibly refused): two farms (two jobs folders) on one Redis never take each other's
jobs; a worker whose jobs folder is not a farm's refuses to start; jobs whose messages a FLUSHALL
erased are published again; a queue entry that is not a message leaves the worker running."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
from server_helpers import plane_scene, submit, wait_finished

from bridge_server import farm as farm_mod
from bridge_server.local_farm import ROOT, LocalFarm, farm_available

pytestmark = [pytest.mark.skipif(farm_available() is not None, reason=str(farm_available())), pytest.mark.slow]

HB = {"heartbeat_timeout": 5.0, "heartbeat_interval": 0.25}


def _redis(farm):
    import redis

    return redis.Redis.from_url(farm.queue)


def _claimers(farm, job_id) -> list[str]:
    return [json.loads(p.read_text())["worker"] for p in sorted((farm.jobs_dir / job_id).glob("claim-*"))]


def _submit_many(http, url, n):
    scene = plane_scene(48, 32, 3)
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda _: submit(http, url, scene), range(n)))
    assert all(r.status_code == 201 for r in answers), [r.text for r in answers]
    return [r.json()["id"] for r in answers]


def test_two_farms_on_one_redis_never_take_each_others_jobs(tmp_path, http):
    """Farm A starts Redis; farm B (another jobs folder: another studio, or a second API) uses the
    same Redis and database. 6 + 6 jobs: each done once, claimed only by its own farm's worker."""
    with LocalFarm(tmp_path / "a", workers=1, log_dir=tmp_path, **HB) as a:
        b = LocalFarm(tmp_path / "b", workers=0, redis_url=a.queue, log_dir=tmp_path / "b-logs", **HB)
        (tmp_path / "b-logs").mkdir()
        b.start()
        try:
            b.start_worker(1)
            b.wait_workers()
            id_a, id_b = farm_mod.farm_id(a.jobs_dir), farm_mod.farm_id(b.jobs_dir)
            assert id_a and id_b and id_a != id_b
            jobs_a, jobs_b = _submit_many(http, a.url, 6), _submit_many(http, b.url, 6)
            for farm, jobs, worker in ((a, jobs_a, "w0"), (b, jobs_b, "w1")):
                for j in jobs:
                    st = wait_finished(http, farm.url, j, timeout=120)
                    assert st["state"] == "done" and st["worker"] == worker, st
                    assert _claimers(farm, j) == [worker]
        finally:
            b.stop()


def test_a_worker_whose_jobs_folder_is_not_a_farms_refuses_to_start(tmp_path):
    """A missing mount (an empty folder) or a typo: exit status 2 naming farm.json, at once."""
    (tmp_path / "empty").mkdir()
    cmd = [sys.executable, "-m", "bridge_server.worker", "--queue", "redis://127.0.0.1:1/0"]
    r = subprocess.run([*cmd, "--jobs-dir", str(tmp_path / "empty")], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 2 and "farm.json" in r.stderr, (r.returncode, r.stderr)


def test_jobs_whose_messages_a_flushall_erased_are_published_again(tmp_path, http):
    """6 jobs queued with no worker; FLUSHALL erases their messages; a worker then starts: all done."""
    with LocalFarm(tmp_path / "jobs", workers=0, log_dir=tmp_path, **HB) as f:
        jobs = _submit_many(http, f.url, 6)
        r = _redis(f)
        queue = farm_mod.queue_name(farm_mod.farm_id(f.jobs_dir))
        assert r.llen(queue) >= 6
        r.flushall()
        assert r.llen(queue) == 0
        f.start_worker(0)
        f.wait_workers()
        for j in jobs:
            st = wait_finished(http, f.url, j, timeout=120)
            assert st["state"] == "done" and _claimers(f, j) == ["w0"], st
            assert "published again" in (f.jobs_dir / j / "log.txt").read_text()


def test_queue_entries_that_are_not_messages_leave_the_worker_running(tmp_path, http):
    """``LPUSH <queue> x`` (and a JSON entry that is no message) ended a worker with exit status 0:
    now each is dropped with a log line and the worker goes on to run the next job."""
    with LocalFarm(tmp_path / "jobs", workers=1, log_dir=tmp_path, **HB) as f:
        r = _redis(f)
        queue = farm_mod.queue_name(farm_mod.farm_id(f.jobs_dir))
        r.lpush(queue, b"x")
        r.lpush(queue, b"\xff\xfe")
        r.lpush(queue, json.dumps({"not": "a message"}))
        deadline = time.monotonic() + 10
        while r.llen(queue) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert r.llen(queue) == 0
        time.sleep(1.0)
        assert f.workers[0].poll() is None, "the worker stopped"
        (job,) = _submit_many(http, f.url, 1)
        assert wait_finished(http, f.url, job, timeout=120)["state"] == "done"
        assert f.workers[0].poll() is None
    assert "not a message" in (tmp_path / "w0.log").read_text()


def test_a_worker_exits_non_zero_when_celery_stops_unasked_and_zero_on_sigterm(tmp_path, http):
    """Celery stopping without a signal (here: a remote ``shutdown`` broadcast, as a broker error
    would) is a failure for the supervisor to restart (exit status 1); SIGTERM is a clean stop (0)."""
    with LocalFarm(tmp_path / "jobs", workers=2, log_dir=tmp_path, **HB) as f:
        fid = farm_mod.farm_id(f.jobs_dir)
        app = farm_mod.celery_app(f.queue, fid)
        app.control.broadcast("shutdown", destination=["w0@" + __import__("socket").gethostname()])
        assert f.workers[0].wait(60) == 1
        f.workers[1].terminate()
        assert f.workers[1].wait(60) == 0
    assert "Celery stopped without being asked" in (tmp_path / "w0.log").read_text()


def test_a_worker_that_cannot_see_a_job_hands_it_back(tmp_path, http):
    """A worker whose folder carries the farm's id but not its jobs (a stale copy, a lagging mount)
    takes 6 messages and hands each back (never acknowledged and dropped); a worker that sees the
    folder then runs all 6 once."""
    with LocalFarm(tmp_path / "jobs", workers=0, log_dir=tmp_path, **HB) as f:
        blind = tmp_path / "blind"
        blind.mkdir()
        (blind / farm_mod.FARM_FILE).write_bytes((f.jobs_dir / farm_mod.FARM_FILE).read_bytes())
        cmd = [sys.executable, "-m", "bridge_server.worker", "--queue", f.queue, "--jobs-dir", str(blind)]
        log = open(tmp_path / "blind.log", "wb")
        proc = subprocess.Popen([*cmd, "--name", "blind"], cwd=ROOT, env=f.env, stdout=log, stderr=subprocess.STDOUT)
        try:
            jobs = _submit_many(http, f.url, 6)
            deadline = time.monotonic() + 60
            while (tmp_path / "blind.log").read_text().count("handed back") < 2 and time.monotonic() < deadline:
                time.sleep(0.2)
            assert (tmp_path / "blind.log").read_text().count("handed back") >= 2
            assert all(http.get(f"{f.url}/v1/jobs/{j}").json()["state"] == "queued" for j in jobs)
            f.start_worker(0)
            for j in jobs:
                st = wait_finished(http, f.url, j, timeout=180)
                assert st["state"] == "done" and _claimers(f, j) == ["w0"], st
            assert proc.poll() is None
        finally:
            proc.terminate()
            proc.wait(30)
            log.close()
