"""Non-video jobs through the real server process: ``track-video`` (a rendered clip with known
cameras → ParaScale JSON with visible points), ``depth-anything`` from an image alone (tiny
model under ``--weights``), result media types, restart keeping a JSON result, per-backend
upload rules (422 for missing or unexpected uploads) and readable tracking failures."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import time

import httpx
import numpy as np
import pytest
from server_helpers import ROOT, Server, plane_scene, png_bytes, textured_image, wait_finished

pytest.importorskip("pycolmap")
pytest.importorskip("transformers")

from bridge_server.backends.weights import ENV  # noqa: E402
from bridge_server.tracking.video import write_video  # noqa: E402
from parascale_blender.client import (  # noqa: E402
    BridgeClient,
    BridgeError,
    ServerJob,
    submit_depth,
    submit_tracking,
    tracking_request,
)
from parascale_blender.core.camera import Camera  # noqa: E402
from parascale_blender.formats.registry import read_trajectory  # noqa: E402
from parascale_tools.bench.gen_bench import build_tiny_depth_anything  # noqa: E402
from parascale_tools.tracking.evaluate import pose_errors  # noqa: E402
from parascale_tools.tracking.synthetic import orbit_path, render_clip  # noqa: E402

CAM = Camera(200.0, 200.0, 128.0, 80.0, 256, 160)
N = 10


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    """A server whose weights come from ``--weights`` only (the environment variable is unset)."""
    root = tmp_path_factory.mktemp("weights")
    build_tiny_depth_anything(root / "depth-anything" / "default", metric=True)
    old = os.environ.pop(ENV, None)
    args = ["--max-upload-mb", "4", "--max-frames", "300", "--weights", str(root)]
    try:
        server = Server(tmp_path_factory.mktemp("jobs"), args).start(60)
    finally:
        if old is not None:
            os.environ[ENV] = old
    server.weights = root
    yield server
    server.stop()


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    """(moving clip bytes, its true c2w, static clip bytes): H.264 renders of the textured room."""
    folder = tmp_path_factory.mktemp("clips")
    poses = orbit_path(N)
    images, _ = render_clip(poses, CAM, supersample=1)
    write_video(folder / "room.mp4", images)
    write_video(folder / "static.mp4", [images[0]] * N)
    return (folder / "room.mp4").read_bytes(), poses, (folder / "static.mp4").read_bytes()


def _drive(job: ServerJob, limit: float = 300.0) -> None:
    """Tick until the job ends (the limit only guards against a hang: CI machines are slow and shared)."""
    deadline = time.monotonic() + limit
    while not job.finished and time.monotonic() < deadline:
        job.tick()
        time.sleep(0.02)


def test_track_video_job_gives_a_json_track_that_survives_a_restart(srv, clips, tmp_path):
    video, poses, _ = clips
    client = BridgeClient(srv.url)
    job = ServerJob(client, tracking_request(video, "C:\\shots\\room.mp4"), tmp_path / "room.json", poll_interval=0)
    _drive(job)
    assert job.state == "done", (job.error, job.message)
    assert job.result_media_type == "application/json"
    track = read_trajectory(job.result_path)  # the formats package reads the result back
    assert len(track) == N and list(track.frames) == list(range(1, N + 1))
    assert (track.width, track.height) == (256, 160)
    assert track.points is not None and len(track.points.visibility) == N
    assert min(len(v) for v in track.points.visibility) > 100
    rot, direction = pose_errors(track.c2w, poses)
    assert rot.max() <= 1.0 and np.nanmax(direction) <= 3.0, (rot, direction)
    assert track.metadata["source"] == "room.mp4"  # the plain uploaded name, never a server path
    status = client.status(job.job_id)
    assert (status["frames"], status["width"], status["height"], status["first_frame"]) == (N, 256, 160, 1)
    listed = {j["id"]: j for j in client.jobs()}
    assert listed[job.job_id]["result_media_type"] == "application/json"
    assert sorted(p.name for p in (srv.jobs_dir / job.job_id).iterdir()) == [
        "log.txt",
        "request.json",
        "result.json",
        "status.json",
        "video.mp4",
    ]
    srv.stop()
    srv.start(60)
    r = httpx.get(f"{srv.url}/v1/jobs/{job.job_id}/result", timeout=30)
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    assert r.content == job.result_path.read_bytes()


def test_static_clip_is_a_stationary_track(srv, clips):
    """A locked-off shot is a valid (zero) move: the job succeeds with a camera that does not move."""
    client = BridgeClient(srv.url)
    job_id = submit_tracking(client, clips[2], "static.mp4", {"mapper": "incremental"})["id"]
    with httpx.Client(timeout=30) as http:
        assert wait_finished(http, srv.url, job_id, 60)["state"] == "done"
        doc = json.loads(http.get(f"{srv.url}/v1/jobs/{job_id}/result").content)
    assert doc["metadata"]["tripod"] == "stationary"
    c2w = np.array([f["c2w"] for f in doc["frames"]])
    np.testing.assert_allclose(c2w, np.broadcast_to(np.eye(4), c2w.shape), atol=1e-3)


def test_textureless_clip_fails_with_the_trackers_message_and_the_server_stays_healthy(srv, clips, tmp_path):
    write_video(tmp_path / "flat.mp4", [np.full((CAM.height, CAM.width, 3), 128, np.uint8)] * N)
    client = BridgeClient(srv.url)
    job_id = submit_tracking(client, (tmp_path / "flat.mp4").read_bytes(), "flat.mp4", {"mapper": "incremental"})["id"]
    with httpx.Client(timeout=30) as http:
        st = wait_finished(http, srv.url, job_id, 60)
        assert st["state"] == "failed", st
        assert st["error"].startswith("flat.mp4: too few feature matches"), st["error"]
        assert "Traceback" not in st["error"] and str(srv.jobs_dir) not in st["error"]
        assert http.get(f"{srv.url}/v1/jobs/{job_id}/result").status_code == 409
        assert http.get(srv.url + "/v1/health").json()["status"] == "ok"


def test_cancel_stops_a_running_track(srv, clips):
    client = BridgeClient(srv.url)
    job_id = submit_tracking(client, clips[0], "room.mp4", {"max_side": None})["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and client.status(job_id)["progress"] <= 0.05:
        time.sleep(0.02)
    client.cancel(job_id)
    with httpx.Client(timeout=30) as http:
        st = wait_finished(http, srv.url, job_id, 60)
    assert st["state"] == "cancelled", st
    assert not list((srv.jobs_dir / job_id).glob("result*"))


def test_depth_job_from_an_image_alone_gives_an_npy_of_its_size(srv, tmp_path):
    client = BridgeClient(srv.url)
    health = client.health()
    assert health["weights_dir"] == str(srv.weights.resolve())
    infos = {b["name"]: b for b in client.backends()}
    assert infos["depth-anything"]["weights_dir"] == str(srv.weights.resolve() / "depth-anything")
    assert infos["depth-anything"]["available"] and infos["depth-anything"]["uploads"] == ["image"]
    assert infos["track-video"]["uploads"] == ["video"] and infos["warp"]["result_media_type"] == "video/mp4"
    status = submit_depth(client, png_bytes(textured_image(70, 45)))
    assert status["result_media_type"] == "application/octet-stream"
    assert (status["frames"], status["width"], status["height"]) == (1, 70, 45)
    with httpx.Client(timeout=30) as http:
        assert wait_finished(http, srv.url, status["id"], 60)["state"] == "done"
        r = http.get(f"{srv.url}/v1/jobs/{status['id']}/result")
    assert r.headers["content-type"] == "application/octet-stream"
    depth = np.load(io.BytesIO(r.content), allow_pickle=False)
    assert depth.shape == (45, 70) and depth.dtype == np.float32 and np.nanmin(depth) > 0
    saved = client.download(status["id"], tmp_path / "plate_depth.npy")
    assert saved.read_bytes() == r.content


def _post(http, url, backend, files, params=None):
    data = {"backend": backend, "params": json.dumps(params or {})}
    return http.post(url + "/v1/jobs", files=files, data=data)


def test_uploads_are_checked_per_backend(srv, clips):
    scene = plane_scene(64, 40, 4).files()
    clip = ("room.mp4", clips[0])
    cases = [
        ("depth-anything", {"image": scene["image"], "trajectory": scene["trajectory"]}, {}, "trajectory: not taken"),
        ("depth-anything", {"depth": scene["depth"]}, {}, "image: required"),
        ("track-video", {"image": scene["image"]}, {}, "video: required"),
        ("track-video", {"video": clip, "depth": scene["depth"]}, {}, "depth: not taken"),
        ("warp", {**scene, "video": clip}, {}, "video: not taken"),
        ("track-video", {"video": ("x.mp4", b"not a video" * 50)}, {}, "video: not a recognised video"),
        ("track-video", {"video": ("x.mp4", clips[0][: len(clips[0]) // 2])}, {}, "video: cannot be decoded"),
        ("track-video", {"video": clip}, {"every": 0}, "params.every"),
        ("track-video", {"video": clip}, {"mapper": "magic"}, "params.mapper"),
        ("track-video", {"video": clip}, {"intrinsics": [200, 200, 128]}, "params.intrinsics"),
        ("track-video", {"video": clip}, {"max_side": 10}, "params.max_side"),
        ("track-video", {"video": clip}, {"max_overlap": 3}, "params.max_overlap"),
        ("track-video", {"video": ("../room.mp4", clips[0])}, {}, "plain name"),
    ]
    with httpx.Client(timeout=30) as http:
        for backend, files, params, needle in cases:
            r = _post(http, srv.url, backend, files, params)
            assert r.status_code == 422, (backend, needle, r.text)
            assert needle in " ".join(r.json()["detail"]), (needle, r.json())
        assert http.get(srv.url + "/v1/health").json()["status"] == "ok"
    with pytest.raises(BridgeError, match="video: required"):
        BridgeClient(srv.url).submit(backend="track-video", image=png_bytes(textured_image(8, 8)))


def test_video_beyond_the_upload_limit_gets_413(srv):
    video = b"\x00\x00\x00\x20ftypisom" + bytes(5 * 2**20)  # the server's limit is 4 MiB
    with httpx.Client(timeout=30) as http:
        r = _post(http, srv.url, "track-video", {"video": ("big.mp4", video)})
        assert r.status_code == 413 and "limit" in r.json()["error"]
        assert http.get(srv.url + "/v1/health").json()["status"] == "ok"


def test_weights_option_must_name_a_folder(tmp_path):
    cmd = [sys.executable, "-m", "bridge_server", "--port", "1", "--jobs-dir", str(tmp_path / "jobs")]
    p = subprocess.run([*cmd, "--weights", str(tmp_path / "absent")], cwd=ROOT, capture_output=True, text=True)
    assert p.returncode == 2 and "--weights" in p.stderr and "absent" in p.stderr
