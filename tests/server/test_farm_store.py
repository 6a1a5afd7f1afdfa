"""The farm's job store without Redis or Celery: claims between processes are exclusive (checked
with real processes racing on one job folder), a worker's writes to a job it no longer owns are
dropped, and the API's view is what is on disk."""

from __future__ import annotations

import json
import multiprocessing as mp
import time

from bridge_server.farm import DiskJobStore
from bridge_server.models import JobStatus


def _job(store: DiskJobStore) -> str:
    st = JobStatus(
        id="0" * 31 + "1", backend="warp", state="queued", created=time.time(), frames=1, width=8, height=8, fps=1,
        first_frame=1,
    )  # fmt: skip
    store.stage(st.id)
    store.create(st, {"backend": "warp", "params": {}})
    return st.id


def _try_claim(root, name, job_id, start, out):
    store = DiskJobStore(root, worker=name)
    start.wait()
    try:
        with store._lock:
            cur = store.get(job_id)
            if cur.state != "queued":
                out.put((name, "skipped"))
                return
            store.update(job_id, state="running", started=time.time())
        out.put((name, "claimed"))
    except FileExistsError:
        out.put((name, "taken"))


def test_claims_are_exclusive_between_processes(tmp_path):
    job = _job(DiskJobStore(tmp_path))
    ctx = mp.get_context("fork")  # the children only touch files
    start, out = ctx.Event(), ctx.Queue()
    procs = [ctx.Process(target=_try_claim, args=(tmp_path, f"w{i}", job, start, out)) for i in range(4)]
    for p in procs:
        p.start()
    start.set()
    for p in procs:
        p.join(60)
    results = dict(out.get(timeout=5) for _ in procs)
    assert sorted(results.values()) == ["claimed", "skipped", "skipped", "skipped"], results
    (winner,) = [n for n, r in results.items() if r == "claimed"]
    assert [p.name for p in (tmp_path / job).glob("claim-*")] == ["claim-0"]
    assert json.loads((tmp_path / job / "claim-0").read_text())["worker"] == winner
    on_disk = json.loads((tmp_path / job / "status.json").read_text())
    assert on_disk["state"] == "running" and on_disk["worker"] == winner


def test_writes_of_a_worker_that_lost_its_job_are_dropped(tmp_path):
    api = DiskJobStore(tmp_path)
    job = _job(api)
    w = DiskJobStore(tmp_path, worker="w0")
    w.update(job, state="running", started=time.time())
    assert api.get(job).state == "running" and api.get(job).worker == "w0"
    w.update(job, progress=0.5)
    assert api.get(job).progress == 0.5
    api.update(job, state="interrupted", finished=time.time())  # what the reaper does
    w.update(job, state="done", progress=1.0)
    assert json.loads((tmp_path / job / "status.json").read_text())["state"] == "interrupted"
    api.update(job, state="queued", attempt=1, worker=None, heartbeat=None)  # or re-queued for a retry
    other = DiskJobStore(tmp_path, worker="w1")
    other.update(job, state="running", started=time.time())
    w.update(job, progress=0.9, message="stale")
    st = api.get(job)
    assert (st.worker, st.attempt, st.message) == ("w1", 1, "")
    assert sorted(p.name for p in (tmp_path / job).glob("claim-*")) == ["claim-0", "claim-1"]
    assert api.recover() == [] and [s.id for s in api.all()] == [job]


def _skewed_worker(root, job, skew, stop, interval=0.05):
    """A worker whose wall clock is ``skew`` seconds off the API's: claims ``job`` and stamps its
    heartbeat (its own clock's time) every ``interval`` until ``stop`` is set."""
    import threading

    w = DiskJobStore(root, worker="w-skewed")
    w.update(job, state="running", started=time.time() + skew)
    w.update(job, heartbeat=time.time() + skew)

    def beat():
        while not stop.wait(interval):
            w.update(job, heartbeat=time.time() + skew)

    t = threading.Thread(target=beat, daemon=True)
    t.start()
    return t


def _reap_until(executor, seconds):
    """Reap every 0.05 s for ``seconds``; the reaped ids and when (seconds from the start)."""
    t0, out = time.monotonic(), []
    while time.monotonic() - t0 < seconds and not out:
        out = [(j, time.monotonic() - t0) for j in executor.reap()]
        time.sleep(0.05)
    return out


def test_liveness_is_judged_on_the_apis_own_clock(tmp_path):
    """A worker 120 s slow keeps its live job (it was reaped in 0.3 s); one 120 s fast that stops
    beating is noticed within the timeout (it took 126 s); /v1/health's worker list likewise."""
    import threading

    from bridge_server.farm import RedisExecutor
    from bridge_server.models import WorkerInfo

    api = DiskJobStore(tmp_path)
    ex = RedisExecutor(api, "redis://127.0.0.1:1/0", timeout=1.0)  # never connects: reap reads the disk
    slow = _job(api)
    stop = threading.Event()
    t = _skewed_worker(tmp_path, slow, -120.0, stop)
    assert _reap_until(ex, 2.5) == []  # alive: its heartbeat changes, whatever its clock says
    assert api.get(slow).state == "running"
    stop.set()
    t.join()
    (reaped,) = _reap_until(ex, 3.0)  # it stops beating: lost after the timeout
    assert reaped[0] == slow and 0.9 < reaped[1] < 1.6 and api.get(slow).state == "interrupted"

    fast = _job_named(api, "0" * 31 + "2")
    stop = threading.Event()
    _skewed_worker(tmp_path, fast, +120.0, stop).join(0.3)
    stop.set()
    (reaped,) = _reap_until(ex, 3.0)
    assert reaped[0] == fast and reaped[1] < 1.6 and api.get(fast).state == "interrupted"

    info = dict(host="h", device="cpu", backends=["warp"], job=None)
    api.write_worker(WorkerInfo(name="slow", heartbeat=time.time() - 120, **info))
    api.write_worker(WorkerInfo(name="fast", heartbeat=time.time() + 120, **info))
    assert {w.name for w in ex.workers(0)} == {"slow", "fast"}  # both beating as far as the API knows
    time.sleep(1.0)
    api.write_worker(WorkerInfo(name="slow", heartbeat=time.time() - 120, **info))  # only "slow" beats on
    time.sleep(2.2)
    assert {w.name for w in ex.workers(0)} == {"slow"}


def _job_named(store: DiskJobStore, job_id: str) -> str:
    st = JobStatus(
        id=job_id, backend="warp", state="queued", created=time.time(), frames=1, width=8, height=8, fps=1,
        first_frame=1,
    )  # fmt: skip
    store.stage(st.id)
    store.create(st, {"backend": "warp", "params": {}})
    return st.id
