"""Cancelling a warp job stops it inside the frame being rendered (a large frame takes seconds),
not after it: the real server, a 2048x1536 job, cancelled while its first frame renders, ends
cancelled with no frame finished and no result file. The cancel latency is printed."""

from __future__ import annotations

import time

import httpx
from server_helpers import Server, plane_scene, submit


def test_a_job_cancels_inside_its_current_frame(tmp_path):
    srv = Server(tmp_path / "jobs").start()
    try:
        with httpx.Client(timeout=60) as http:
            job = submit(http, srv.url, plane_scene(2048, 1536, 3, step=0.05)).json()["id"]
            deadline = time.monotonic() + 120
            while not (st := http.get(f"{srv.url}/v1/jobs/{job}").json())["message"].startswith("rendering frame 1/"):
                assert time.monotonic() < deadline and st["state"] in ("queued", "running"), st
                time.sleep(0.02)
            time.sleep(0.3)  # inside frame 1's splatting
            t0 = time.monotonic()
            assert http.post(f"{srv.url}/v1/jobs/{job}/cancel").status_code == 200
            while (st := http.get(f"{srv.url}/v1/jobs/{job}").json())["state"] == "running":
                time.sleep(0.02)
            latency = time.monotonic() - t0
            print(f"cancel latency inside a 2048x1536 frame: {latency:.2f} s")
            assert st["state"] == "cancelled", st
            assert st["message"] == "cancelled during frame 1 of 3" and st["progress"] == 0.0, st
            assert http.get(f"{srv.url}/v1/jobs/{job}/result").status_code == 409
            assert not list((tmp_path / "jobs" / job).glob("result*")), "a result or partial file is left"
    finally:
        srv.stop()
