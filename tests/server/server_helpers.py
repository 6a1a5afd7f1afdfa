"""Helpers for the server tests: start the real server process, build synthetic scenes with
known geometry (a textured tilted plane), submit jobs and wait for them over HTTP."""

from __future__ import annotations

import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import httpx
import numpy as np

ROOT = Path(__file__).resolve().parents[2]

# The plane n·X = d in world coordinates (world = frame-0 camera, OpenCV axes): z - 0.5 x = 4.
PLANE_N = np.array([-0.5, 0.0, 1.0])
PLANE_D = 4.0
# The Python that runs the server: this one, or (the client tests under Blender 4.2's requests/urllib3,
# ``./scripts/dev test-lts``) the dev environment's, which has torch.
SERVER_PYTHON = os.environ.get("PARASCALE_SERVER_PYTHON") or sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    """A ``python -m bridge_server`` process on a free loopback port."""

    jobs_dir: Path
    args: list[str] = field(default_factory=list)
    host: str = "127.0.0.1"
    port: int = 0
    proc: subprocess.Popen | None = None
    env: dict = field(default_factory=dict)  # extra environment variables of the server process
    preexec: object = None  # run in the child before exec (e.g. resource limits)
    scheme: str = "http"
    prefix: list[str] = field(default_factory=list)  # a command the server runs under (e.g. unshare)
    verify: object = True  # what httpx verifies an HTTPS server with (an ssl.SSLContext for a test CA)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    def start(self, timeout: float = 30.0, headers: dict | None = None) -> Server:
        self.port = self.port or free_port()
        cmd = [*self.prefix, SERVER_PYTHON, "-m", "bridge_server", "--host", self.host, "--port", str(self.port)]
        cmd += ["--jobs-dir", str(self.jobs_dir), "--device", "cpu", *self.args]
        env = {**os.environ, "OMP_NUM_THREADS": "1", **self.env}
        self._out = tempfile.TemporaryFile()  # a file, not a pipe: a chatty server never blocks on it
        self.proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=self._out, stderr=subprocess.STDOUT, preexec_fn=self.preexec
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}: {self.output()}")
            try:
                answer = httpx.get(self.url + "/v1/health", headers=headers, timeout=1, verify=self.verify)
                if answer.status_code in (200, 401):
                    return self
            except httpx.TransportError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError("server did not answer /v1/health in time")

    def output(self) -> str:
        """What the server process wrote to stdout and stderr so far."""
        self._out.seek(0)
        return self._out.read().decode(errors="replace")

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def textured_image(width: int, height: int, seed: int = 0) -> np.ndarray:
    """Smooth multi-scale random texture (good for optical flow), uint8 RGB."""
    rng = np.random.default_rng(seed)
    img = np.zeros((height, width, 3))
    for cells, amp in ((6, 0.5), (24, 0.3), (width // 4, 0.2)):
        small = rng.random((max(2, cells * height // width), cells, 3))
        img += amp * cv2.resize(small, (width, height), interpolation=cv2.INTER_CUBIC)
    return np.clip(img * 255, 0, 255).astype(np.uint8)


def plane_depth(width: int, height: int, K: tuple[float, float, float, float]) -> np.ndarray:
    """z-depth of the plane z - 0.5 x = 4 seen from the identity camera, per pixel centre."""
    fx, fy, cx, cy = K
    xn = (np.arange(width) + 0.5 - cx) / fx
    return np.broadcast_to(PLANE_D / (1.0 - 0.5 * xn), (height, width)).copy()


def trajectory_doc(c2w: np.ndarray, K, width: int, height: int, fps: float = 24.0, first: int = 1) -> dict:
    frames = [
        {"frame": first + i, "c2w": np.asarray(m).tolist(), "intrinsics": [float(v) for v in K]}
        for i, m in enumerate(c2w)
    ]
    return {
        "format": "parascale-trajectory",
        "version": 1,
        "convention": {"pose": "camera_to_world", "axes": "opencv", "intrinsics": "pixels"},
        "fps": fps,
        "width": width,
        "height": height,
        "frames": frames,
    }


def truck_and_pan(n: int, step: float = 0.1, yaw_deg: float = 0.3) -> np.ndarray:
    """c2w per frame: camera moves +x by ``step`` and yaws by ``yaw_deg`` per frame (frame 0 = identity)."""
    out = np.tile(np.eye(4), (n, 1, 1))
    for i in range(n):
        a = np.radians(yaw_deg * i)
        out[i, :3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
        out[i, 0, 3] = step * i
    return out


def png_bytes(img: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", np.ascontiguousarray(img[..., ::-1]))
    assert ok
    return buf.tobytes()


def npy_bytes(arr: np.ndarray) -> bytes:
    b = io.BytesIO()
    np.save(b, arr)
    return b.getvalue()


@dataclass
class Scene:
    doc: dict
    image: np.ndarray
    depth: np.ndarray
    K: tuple

    def files(self, **names) -> dict:
        return {
            "trajectory": (names.get("trajectory", "trajectory.json"), json.dumps(self.doc).encode()),
            "image": (names.get("image", "image.png"), png_bytes(self.image)),
            "depth": (names.get("depth", "depth.npy"), npy_bytes(self.depth)),
        }


def plane_scene(width: int = 96, height: int = 64, frames: int = 6, step: float = 0.1, yaw_deg: float = 0.3) -> Scene:
    K = (0.78 * width, 0.78 * width, width / 2, height / 2)
    c2w = truck_and_pan(frames, step, yaw_deg)
    return Scene(trajectory_doc(c2w, K, width, height), textured_image(width, height), plane_depth(width, height, K), K)


def plane_flow(c2w_a: np.ndarray, c2w_b: np.ndarray, K, width: int, height: int) -> tuple[np.ndarray, np.ndarray]:
    """Ground-truth flow a→b per pixel of frame a, by ray-plane intersection; and each point's frame-0 pixel."""
    fx, fy, cx, cy = K
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    rays = np.stack([(u - cx) / fx, (v - cy) / fy, np.ones_like(u)], -1) @ c2w_a[:3, :3].T
    C = c2w_a[:3, 3]
    s = (PLANE_D - PLANE_N @ C) / (rays @ PLANE_N)
    X = C + s[..., None] * rays

    def project(c2w):
        Xc = (X - c2w[:3, 3]) @ c2w[:3, :3]
        return np.stack([fx * Xc[..., 0] / Xc[..., 2] + cx, fy * Xc[..., 1] / Xc[..., 2] + cy], -1)

    flow = project(c2w_b) - np.stack([u, v], -1)
    return flow, project(np.eye(4))


def submit(client: httpx.Client, url: str, scene: Scene, data: dict | None = None, **names) -> httpx.Response:
    return client.post(url + "/v1/jobs", files=scene.files(**names), data=data or {})


def wait_finished(client: httpx.Client, url: str, job_id: str, timeout: float = 60.0) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        st = client.get(f"{url}/v1/jobs/{job_id}").json()
        if st["state"] not in ("queued", "running"):
            return st
        time.sleep(0.02)
    raise AssertionError(f"job {job_id} not finished after {timeout} s: {st}")


def decode_mp4(data: bytes) -> tuple[list[np.ndarray], float, int, int]:
    """(RGB frames, fps, width, height) decoded with PyAV."""
    import av

    with av.open(io.BytesIO(data)) as c:
        s = c.streams.video[0]
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(s)]
        return frames, float(s.average_rate), s.width, s.height
