"""Farm queue benchmark rows (``--queue redis://…``, a local farm: redis-server, the API server and
``parascale-worker`` processes on this machine): jobs/minute of small warp jobs with 2 workers
against 1 worker (ratio in the same run), cancel latency of a job running on a worker, and the
submit→start latency through Redis against the local queue's. Skipped without ``redis-server`` or
``celery[redis]``. On one machine the workers share its cores: the 2-vs-1 ratio is a floor for
workers on separate GPUs/machines.
"""

from __future__ import annotations

import io
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

HEARTBEAT_S = 5.0  # the heartbeat timeout of the benchmark's farm


def _files(width: int, height: int, frames: int) -> dict:
    import cv2

    from parascale_blender.formats.parascale_json import dumps

    from .server_bench import _scene

    traj, image, depth = _scene(width, height, frames)
    ok, png = cv2.imencode(".png", image[..., ::-1])
    buf = io.BytesIO()
    np.save(buf, depth)
    return {
        "trajectory": ("t.json", dumps(traj).encode()),
        "image": ("i.png", png.tobytes()),
        "depth": ("d.npy", buf.getvalue()),
    }


def _wait(http, url: str, job_id: str, states=("done", "failed", "cancelled", "interrupted"), timeout=600.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = http.get(f"{url}/v1/jobs/{job_id}").json()
        if st["state"] in states:
            return st
        time.sleep(0.01)
    raise RuntimeError(f"job {job_id} did not reach {states}: {st}")


def _wait_progress(http, url: str, job_id: str) -> dict:
    """Until the job runs and has reported progress (or ended); its status."""
    while True:
        st = http.get(f"{url}/v1/jobs/{job_id}").json()
        if st["progress"] > 0 or st["state"] not in ("queued", "running"):
            return st
        time.sleep(0.01)


def _throughput(http, url: str, files: dict, n: int) -> float:
    """Jobs per minute: n jobs submitted at once, first submit → last done."""
    t0 = time.monotonic()
    ids = [http.post(url + "/v1/jobs", files=files).json()["id"] for _ in range(n)]
    states = [_wait(http, url, i)["state"] for i in ids]
    if states != ["done"] * n:
        raise RuntimeError(f"farm jobs did not all finish: {states}")
    return n / (time.monotonic() - t0) * 60


def _start_latency(http, url: str, files: dict, repeat: int) -> float:
    """Median submit→start seconds of a job on an idle queue (the job's own created/started stamps)."""
    out = []
    for _ in range(repeat):
        st = _wait(http, url, http.post(url + "/v1/jobs", files=files).json()["id"])
        out.append(st["started"] - st["created"])
    return statistics.median(out)


def _cancel_latency(http, url: str, files: dict, repeat: int) -> float:
    """Median seconds from the cancel request to the job's ``cancelled`` state (running on a worker)."""
    out = []
    for _ in range(repeat):
        job = http.post(url + "/v1/jobs", files=files).json()["id"]
        _wait_progress(http, url, job)
        t0 = time.monotonic()
        http.post(f"{url}/v1/jobs/{job}/cancel")
        if _wait(http, url, job)["state"] != "cancelled":
            raise RuntimeError("the job finished before it was cancelled: make it longer")
        out.append(time.monotonic() - t0)
    return statistics.median(out)


def _kill_latency(farm, http, files: dict) -> float:
    """Seconds from SIGKILL of the worker running a job to the job's ``interrupted`` state."""
    job = http.post(farm.url + "/v1/jobs", files=files).json()["id"]
    st = _wait_progress(http, farm.url, job)
    index = next(i for i in range(len(farm.workers)) if st["worker"] == f"w{i}")
    t0 = time.monotonic()
    farm.kill_worker(index)
    if _wait(http, farm.url, job)["state"] != "interrupted":
        raise RuntimeError("the job was not interrupted")
    return time.monotonic() - t0


def _local_start_latency(files: dict, repeat: int) -> float:
    import subprocess

    import httpx

    from bridge_server.local_farm import ROOT, _stop, free_port

    with tempfile.TemporaryDirectory() as tmp:
        port = free_port()
        cmd = [sys.executable, "-m", "bridge_server", "--port", str(port), "--jobs-dir", str(Path(tmp) / "jobs")]
        proc = subprocess.Popen([*cmd, "--device", "cpu", "--threads", "1"], cwd=ROOT, stdout=subprocess.DEVNULL)
        url = f"http://127.0.0.1:{port}"
        try:
            with httpx.Client(timeout=60) as http:
                for _ in range(600):
                    try:
                        http.get(url + "/v1/health")
                        break
                    except httpx.TransportError:
                        time.sleep(0.1)
                return _start_latency(http, url, files, repeat)
        finally:
            _stop(proc)


def rows(quick: bool = False) -> list[dict]:
    import httpx

    from bridge_server.local_farm import LocalFarm, farm_available

    reason = farm_available()
    if reason is not None:
        missing = "redis-server" if "redis-server" in reason else "celery"
        raise ModuleNotFoundError(reason, name=missing)
    n = 8 if quick else 20
    small = _files(160, 96, 12 if quick else 24)
    long = _files(256, 160, 300)
    out = []
    with tempfile.TemporaryDirectory() as tmp, LocalFarm(Path(tmp) / "jobs", 1, heartbeat_timeout=HEARTBEAT_S) as farm:
        with httpx.Client(timeout=60) as http:
            _throughput(http, farm.url, small, 2)  # warm the worker (imports, first frames)
            one = _throughput(http, farm.url, small, n)
            farm.start_worker(1)  # a second worker joins the running farm
            farm.wait_workers()
            _throughput(http, farm.url, small, 4)
            two = _throughput(http, farm.url, small, n)
            cancel = _cancel_latency(http, farm.url, long, 3)
            redis_start = _start_latency(http, farm.url, small, 5)
            killed = _kill_latency(farm, http, long)
    local_start = _local_start_latency(small, 5)
    what = f"{n} warp jobs 160x96, {12 if quick else 24} frames, CPU, 1 torch thread per worker"
    out.append(
        {
            "name": "farm jobs/minute, 2 workers vs 1",
            "value": two,
            "unit": "jobs/min",
            "baseline": one,
            "ratio": two / one,
            "note": f"{what}; both workers on this machine's cores",
        }
    )
    out.append(
        {
            "name": "farm cancel latency, running job",
            "value": cancel * 1000,
            "unit": "ms",
            "note": "POST cancel → state cancelled (flag file read between frames by the worker), median of 3",
        }
    )
    out.append(
        {
            "name": "submit→start latency, Redis vs local queue",
            "value": redis_start * 1000,
            "unit": "ms",
            "baseline": local_start * 1000,
            "ratio": redis_start / local_start if local_start > 0 else float("nan"),
            "note": "job created → started on an idle queue, median of 5; baseline = --queue local",
        }
    )
    out.append(
        {
            "name": "worker SIGKILL → job interrupted",
            "value": killed,
            "unit": "s",
            "baseline": HEARTBEAT_S,
            "ratio": killed / HEARTBEAT_S,
            "note": f"--heartbeat-timeout {HEARTBEAT_S:g} s for this run (default 60 s); found by the API's reaper",
        }
    )
    return out


if __name__ == "__main__":
    print(json.dumps(rows(quick="--quick" in sys.argv), indent=1))
