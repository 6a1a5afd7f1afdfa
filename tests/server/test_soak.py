"""Soak (bounded, loopback only): 30 concurrent warp jobs while the server is SIGKILLed at random
moments and restarted on the same jobs folder. Every job ends done, failed or interrupted; none is
lost or duplicated (submissions retried with their Idempotency-Key); every result served is whole
(its bytes match Content-Length and the X-Content-SHA256 digest, and PyAV decodes every frame)."""

from __future__ import annotations

import hashlib
import random
import threading
import time

import httpx
from server_helpers import Server, decode_mp4, plane_scene

JOBS, KILLS, FRAMES = 30, 4, 4


def test_thirty_concurrent_jobs_survive_random_sigkills(tmp_path):
    rnd = random.Random(13)
    srv = Server(tmp_path / "jobs").start()
    files = plane_scene(48, 30, FRAMES).files()
    ids: dict[str, str] = {}  # idempotency key -> job id
    lock = threading.Lock()
    t_end = time.monotonic() + 80

    def submit(key: str) -> None:
        with httpx.Client(timeout=10) as http:
            while time.monotonic() < t_end:
                try:
                    r = http.post(srv.url + "/v1/jobs", files=files, headers={"Idempotency-Key": key})
                except httpx.TransportError:
                    time.sleep(0.2)  # the server is down: retry with the same key
                    continue
                if r.status_code in (200, 201):
                    with lock:
                        assert ids.setdefault(key, r.json()["id"]) == r.json()["id"], "a retry made a new job"
                    return
                assert r.status_code == 409, r.text  # the same key still being stored: retry
                time.sleep(0.1)

    kills = 0
    try:
        threads = [threading.Thread(target=submit, args=(f"soak-{i:02d}",)) for i in range(JOBS)]
        for t in threads:
            t.start()
        while kills < KILLS and time.monotonic() < t_end:
            time.sleep(rnd.uniform(0.3, 1.5))
            srv.kill()  # SIGKILL: no cleanup at all
            kills += 1
            srv.start()
        for t in threads:
            t.join(max(1.0, t_end - time.monotonic()))
        assert len(ids) == JOBS, f"only {len(ids)} of {JOBS} submissions got an id"
        with httpx.Client(timeout=30) as http:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                listed = {j["id"]: j for j in http.get(srv.url + "/v1/jobs").json()["jobs"]}
                if all(j["state"] not in ("queued", "running") for j in listed.values()):
                    break
                time.sleep(0.2)
            assert set(ids.values()) <= set(listed), "a job was lost"
            assert len(listed) == len(set(ids.values())) == JOBS, "a job was duplicated or appeared from nowhere"
            states = [listed[i]["state"] for i in ids.values()]
            assert set(states) <= {"done", "failed", "interrupted"}, states
            done = [i for i in ids.values() if listed[i]["state"] == "done"]
            for job_id in done:
                r = http.get(f"{srv.url}/v1/jobs/{job_id}/result")
                assert r.status_code == 200
                assert int(r.headers["Content-Length"]) == len(r.content)
                assert r.headers["X-Content-SHA256"] == hashlib.sha256(r.content).hexdigest()
                frames, *_ = decode_mp4(r.content)
                assert len(frames) == FRAMES
            for job_id in set(ids.values()) - set(done):
                assert http.get(f"{srv.url}/v1/jobs/{job_id}/result").status_code == 409
            assert not list((tmp_path / "jobs").glob("*/result.partial*")), "a partial result is left"
            print(
                f"soak: {JOBS} jobs, {kills} SIGKILLs: {states.count('done')} done, "
                f"{states.count('interrupted')} interrupted, {states.count('failed')} failed"
            )
            assert kills == KILLS and len(done) >= 1
    finally:
        srv.stop()
