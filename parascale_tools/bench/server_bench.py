"""Generation server benchmark rows: ``warp`` backend frames/s (render + fill + H.264 encode) at
512x320 and 1024x576 on CPU (and CUDA when present), against real time at 24 fps; and the round-trip
overhead of a 120-frame job through the real server process and client (submit → done, minus the
time spent inside the backend), against the 300 ms aim.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REALTIME_FPS = 24.0
OVERHEAD_AIM_S = 0.3


def _scene(width: int, height: int, frames: int, seed: int = 0):
    """A textured wall with a box in front, and a truck + dolly + pan move (OpenCV c2w)."""
    import cv2

    from parascale_blender.core.camera import Trajectory

    rng = np.random.default_rng(seed)
    img = sum(
        a * cv2.resize(rng.random((max(2, c * height // width), c, 3)), (width, height), interpolation=cv2.INTER_CUBIC)
        for c, a in ((6, 0.5), (32, 0.3), (width // 4, 0.2))
    )
    image = np.clip(img * 255, 0, 255).astype(np.uint8)
    depth = np.full((height, width), 8.0)
    depth[height // 4 : 3 * height // 4, width // 3 : 2 * width // 3] = 3.0
    f = 0.8 * width
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    for i in range(frames):
        a = np.radians(0.1 * i)
        c2w[i, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        c2w[i, :3, 3] = [0.01 * i, 0.0, 0.01 * i]
    traj = Trajectory(np.arange(1, frames + 1), c2w, [f, f, width / 2, height / 2], width, height, fps=REALTIME_FPS)
    return traj, image, depth


def warp_fps(width: int, height: int, frames: int, device: str = "cpu") -> float:
    """Frames per second of the warp backend's ``generate`` (median of 3 runs)."""
    from bridge_server.backends import GenerationJob
    from bridge_server.backends.warp import WarpBackend, WarpParams

    from .table import median_time

    traj, image, depth = _scene(width, height, frames)
    backend = WarpBackend()
    with tempfile.TemporaryDirectory() as tmp:
        job = GenerationJob(traj, image, depth, WarpParams(), Path(tmp) / "out.mp4", device=device)
        t = median_time(lambda: backend.generate(job, lambda f, m: None, lambda: False), repeat=3, warmup=1)
    return frames / t


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def round_trip_overhead(frames: int = 120, width: int = 512, height: int = 320, repeat: int = 5) -> tuple[float, float]:
    """(median submit→done minus generation seconds, median generation seconds) via the real server."""
    import cv2

    from parascale_blender.client import BridgeClient, ServerNotRunning, wire
    from parascale_blender.formats.parascale_json import dumps

    traj, image, depth = _scene(width, height, frames)
    ok, png = cv2.imencode(".png", image[..., ::-1])
    buf = io.BytesIO()
    np.save(buf, depth)
    body = (dumps(traj).encode(), png.tobytes(), buf.getvalue())
    port = _free_port()
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "bridge_server", "--port", str(port), "--jobs-dir", tmp, "--device", "cpu"]
        proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            client = BridgeClient(f"http://127.0.0.1:{port}", timeout=30)
            for _ in range(300):
                try:
                    client.health()
                    break
                except ServerNotRunning:
                    time.sleep(0.1)
            overheads, gens = [], []
            for _ in range(repeat + 1):
                t0 = time.perf_counter()
                job = client.submit(*body, params={}, num_frames=frames)
                while (st := client.status(job["id"]))["state"] in (wire.QUEUED, wire.RUNNING):
                    time.sleep(0.01)  # faster polling steals the GIL from the worker
                total = time.perf_counter() - t0
                if st["state"] != wire.DONE:
                    raise RuntimeError(f"benchmark job ended {st['state']}: {st.get('error')}")
                overheads.append(total - st["generation_seconds"])
                gens.append(st["generation_seconds"])
            return float(np.median(overheads[1:])), float(np.median(gens[1:]))
        finally:
            proc.terminate()
            proc.wait(10)


def rows(quick: bool = False) -> list[dict]:
    import torch

    from bridge_server.config import default_threads

    torch.set_num_threads(default_threads())  # what the server uses

    n = 12 if quick else 48
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    out = []
    for dev in devices:
        for w, h in ((512, 320), (1024, 576)):
            fps = warp_fps(w, h, n, dev)
            out.append(
                {
                    "name": f"warp frames/s {w}x{h} {dev}",
                    "value": fps,
                    "unit": "frames/s",
                    "baseline": REALTIME_FPS,
                    "ratio": fps / REALTIME_FPS,
                    "note": f"render + hole fill + H.264, {n} frames; baseline = real time at 24 fps",
                }
            )
    overhead, gen = round_trip_overhead(120, repeat=2 if quick else 5)
    out.append(
        {
            "name": "job round-trip overhead, 120 frames 512x320",
            "value": overhead * 1000,
            "unit": "ms",
            "baseline": OVERHEAD_AIM_S * 1000,
            "ratio": overhead / OVERHEAD_AIM_S,
            "note": f"submit→done minus {gen:.2f} s generation; upload, validation, queue, polling; aim ≤ 300 ms",
        }
    )
    return out


if __name__ == "__main__":
    print(json.dumps(rows(quick="--quick" in sys.argv), indent=1))
