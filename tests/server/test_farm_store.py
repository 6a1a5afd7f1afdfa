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
