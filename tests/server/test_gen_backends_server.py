"""The weights-backed backends through the real server process: PARASCALE_WEIGHTS points at tiny
random models saved in the real layout; jobs run end to end over HTTP, noise shaping shows in
the job log, cancel stops between steps, and a missing weights folder is a 422 naming the file."""

from __future__ import annotations

import io
import json
import os
import time

import numpy as np
import pytest
from published_models import build_cogvideox_5b_i2v, build_wan_fun_videox, build_wan_i2v_480p
from server_helpers import Server, decode_mp4, plane_scene, submit, wait_finished
from test_gen_backends_tiny import build_cogvideox_i2v, build_depth_anything, build_wan_i2v

from bridge_server.backends.weights import ENV

W, H, N = 48, 32, 6


@pytest.fixture(scope="module")
def gen_server(tmp_path_factory):
    """Weights: small hand-made Wan/CogVideoX folders (``default``, ``cogvideox``) and the published
    models in their released layouts (``wan480p``, ``cogvideox-5b``; Wan-Fun Control-Camera converted
    from the VideoX-Fun layout by the ``parascale convert-wan-fun`` command)."""
    from parascale_tools.cli import main as parascale

    root = tmp_path_factory.mktemp("weights")
    build_wan_i2v(root / "diffusers-i2v" / "default")
    build_cogvideox_i2v(root / "diffusers-i2v" / "cogvideox")
    build_wan_i2v_480p(root / "diffusers-i2v" / "wan480p")
    build_cogvideox_5b_i2v(root / "diffusers-i2v" / "cogvideox-5b")
    build_wan_fun_videox(root / "released" / "wan-fun")
    convert = ["convert-wan-fun", str(root / "released" / "wan-fun"), str(root / "wan-fun-camera" / "default")]
    assert parascale([*convert, "--encoders", str(root / "diffusers-i2v" / "wan480p")]) == 0
    build_depth_anything(root / "depth-anything" / "default", metric=True)
    old = os.environ.get(ENV)
    os.environ[ENV] = str(root)  # the server process inherits it
    try:
        srv = Server(tmp_path_factory.mktemp("jobs"), ["--max-upload-mb", "2", "--max-frames", "300"]).start(60)
    finally:
        os.environ.pop(ENV) if old is None else os.environ.__setitem__(ENV, old)
    yield srv
    srv.stop()


def scene():
    return plane_scene(W, H, N, step=0.25, yaw_deg=1.0)


def run_job(http, srv, backend, params, timeout=120.0):
    files = scene().files()
    if backend == "depth-anything":
        files = {"image": files["image"]}  # it takes the image only
    r = http.post(srv.url + "/v1/jobs", files=files, data={"backend": backend, "params": json.dumps(params)})
    assert r.status_code == 201, r.text
    st = wait_finished(http, srv.url, r.json()["id"], timeout)
    assert st["state"] == "done", st
    return st, http.get(f"{srv.url}/v1/jobs/{st['id']}/result").content


def test_backends_are_listed_available_with_their_parameters(gen_server, http):
    infos = {b["name"]: b for b in http.get(gen_server.url + "/v1/backends").json()}
    for name in ("diffusers-i2v", "wan-fun-camera", "depth-anything"):
        assert infos[name]["available"] and infos[name]["weights_present"], infos[name]
        props = infos[name]["parameters"]["properties"]
        assert {"model", "dtype"} <= set(props)
    assert {"steps", "shaping_threshold", "cpu_offload", "attention_slicing", "vae_tiling", "max_pixels"} <= set(
        infos["diffusers-i2v"]["parameters"]["properties"]
    )
    defaults = infos["diffusers-i2v"]["parameters"]["x-model-defaults"]  # the default folder: Wan 480P
    assert (defaults["native_width"], defaults["native_height"], defaults["max_frames"]) == (832, 480, 81)
    assert defaults["prompt_tokens"] == 512 and "480P" in defaults["source"]


def test_i2v_job_round_trip_with_noise_shaping_in_the_log(gen_server, http):
    st, mp4 = run_job(http, gen_server, "diffusers-i2v", {"steps": 4, "shaping_threshold": 0.7, "erode_px": 2})
    frames, fps, w, h = decode_mp4(mp4)
    assert (len(frames), w, h) == (N, W, H)
    log = (gen_server.jobs_dir / st["id"] / "log.txt").read_text()
    shaped = [line for line in log.splitlines() if "noise shaping: step" in line]
    assert len(shaped) == 5  # before step 0 and after each of the 4 steps
    flags = [(float(line.split("t=")[1].split()[0]), line.endswith("applied")) for line in shaped]
    assert [a for _, a in flags] == [t >= 0.7 for t, _ in flags[:-1]] + [False]
    assert any(a for _, a in flags) and not all(a for _, a in flags)


def test_cogvideox_i2v_job_round_trip_with_noise_shaping_in_the_log(gen_server, http):
    params = {"model": "cogvideox", "steps": 4, "shaping_threshold": 0.7, "erode_px": 2, "guidance_scale": 6.0}
    st, mp4 = run_job(http, gen_server, "diffusers-i2v", params)
    frames, fps, w, h = decode_mp4(mp4)
    assert (len(frames), w, h, fps) == (N, W, H, 24.0)
    log = (gen_server.jobs_dir / st["id"] / "log.txt").read_text()
    assert f"CogVideoXImageToVideoPipeline: 9 frames at {W}x{H} for a {N}-frame trajectory, 4 steps" in log
    shaped = [line for line in log.splitlines() if "noise shaping: step" in line]
    flags = [(float(line.split("t=")[1].split()[0]), line.endswith("applied")) for line in shaped]
    # the levels: the flow sigma of each timestep's SNR, sqrt(1 - a) / (sqrt(a) + sqrt(1 - a)) of the DDIM
    # scheduler's alphas_cumprod at 999, 749, 499, 249 (zero-SNR rescaled: 1 at 999)
    assert flags == [(1.0, True), (0.844, True), (0.639, False), (0.421, False), (0.0, False)]


def test_camera_and_depth_jobs_round_trip(gen_server, http):
    st, mp4 = run_job(http, gen_server, "wan-fun-camera", {"steps": 2})
    frames, _, w, h = decode_mp4(mp4)
    assert (len(frames), w, h) == (N, W, H)
    assert "camera adapter: features (1, 24, 3, 2, 3)" in (gen_server.jobs_dir / st["id"] / "log.txt").read_text()
    depth = scene().depth  # the uploaded depth: the gauge is the model depth (1) x its mean inverse depth
    assert st["camera_gauge"] == pytest.approx(np.mean(1.0 / depth[np.isfinite(depth)]), rel=1e-6)
    _, npy = run_job(http, gen_server, "depth-anything", {})
    depth = np.load(io.BytesIO(npy), allow_pickle=False)
    assert depth.shape == (H, W) and np.isfinite(depth).all() and depth.min() > 0


def test_missing_weights_are_a_422_naming_the_file_and_the_server_stays_healthy(gen_server, http):
    for backend, params, needle in (
        ("diffusers-i2v", {"model": "absent"}, "diffusers-i2v/absent: no such folder"),
        ("wan-fun-camera", {"model": "../x"}, "folder name"),
        ("depth-anything", {"model": "absent"}, "config.json"),
    ):
        files = scene().files()
        files = {"image": files["image"]} if backend == "depth-anything" else files
        r = http.post(gen_server.url + "/v1/jobs", files=files, data={"backend": backend, "params": json.dumps(params)})
        assert r.status_code == 422, r.text
        body = r.json()
        assert any(line.startswith("params.model") and needle in line for line in body["detail"]), body
    assert http.get(gen_server.url + "/v1/health").json()["status"] == "ok"


def test_an_over_long_shot_is_refused_at_submission_with_what_fits(gen_server, http):
    """Wan generates at most 81 frames (its limits come from configs alone): a 90-frame shot is a 422
    naming the cap and the way out, and no job is created (nothing queued, nothing loaded)."""
    before = {j["id"] for j in http.get(gen_server.url + "/v1/jobs").json()["jobs"]}
    for backend in ("diffusers-i2v", "wan-fun-camera"):
        long = plane_scene(W, H, 90, step=0.01, yaw_deg=0.1)
        r = http.post(gen_server.url + "/v1/jobs", files=long.files(), data={"backend": backend, "params": "{}"})
        assert r.status_code == 422, r.text
        (line,) = r.json()["detail"]
        assert "90 frames" in line and "at most 81" in line and "split the shot" in line, line
    data = {"backend": "diffusers-i2v", "params": '{"max_frames": 50}'}
    r = http.post(gen_server.url + "/v1/jobs", files=long.files(), data=data)
    assert r.status_code == 422 and "at most 50 (max_frames)" in r.json()["detail"][0], r.text
    assert {j["id"] for j in http.get(gen_server.url + "/v1/jobs").json()["jobs"]} == before


def test_cancel_stops_a_running_diffusion_job_between_steps(gen_server, http):
    r = submit(http, gen_server.url, scene(), {"backend": "diffusers-i2v", "params": json.dumps({"steps": 300})})
    job_id = r.json()["id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        st = http.get(f"{gen_server.url}/v1/jobs/{job_id}").json()
        if st["message"].startswith("step "):
            break
        time.sleep(0.05)
    http.post(f"{gen_server.url}/v1/jobs/{job_id}/cancel")
    st = wait_finished(http, gen_server.url, job_id, 60)
    assert st["state"] == "cancelled", st
    assert "after denoising step" in st["message"] and "of 300" in st["message"]
    assert int(st["message"].split("step ")[1].split()[0]) < 300


def test_published_layouts_produce_clips_of_the_trajectorys_size(gen_server, http):
    """Wan2.1-I2V-14B-480P (UniPC, CLIP image encoder) with shaping, and Wan-Fun Control-Camera as
    converted from its release; the log names the pipeline that ran and what it was fed."""
    st, mp4 = run_job(http, gen_server, "diffusers-i2v", {"model": "wan480p", "steps": 2, "erode_px": 2})
    frames, _, w, h = decode_mp4(mp4)
    assert (len(frames), w, h) == (N, W, H)
    log = (gen_server.jobs_dir / st["id"] / "log.txt").read_text()
    assert f"WanImageToVideoPipeline: 9 frames at {W}x{H}" in log and "image_encoder float32" in log
    st, mp4 = run_job(http, gen_server, "wan-fun-camera", {"steps": 2})
    frames, _, w, h = decode_mp4(mp4)
    assert (len(frames), w, h) == (N, W, H)
    log = (gen_server.jobs_dir / st["id"] / "log.txt").read_text()
    assert f"WanFunControlPipeline: 9 frames at {W}x{H}" in log


@pytest.mark.slow
def test_cogvideox_5b_i2v_produces_a_clip_at_its_only_size(gen_server, http):
    """CogVideoX-5b-I2V generates 49 frames at 720x480 whatever the shot (its config's sample size
    and frames); the clip comes back at the trajectory's size and length. Decoding 49 frames at
    720x480 on the CPU takes minutes: marked slow."""
    params = {"model": "cogvideox-5b", "steps": 1, "noise_shaping": False, "guidance_scale": 1.0}
    st, mp4 = run_job(http, gen_server, "diffusers-i2v", params, timeout=1800.0)
    frames, _, w, h = decode_mp4(mp4)
    assert (len(frames), w, h) == (N, W, H)
    log = (gen_server.jobs_dir / st["id"] / "log.txt").read_text()
    assert "49 frames at 720x480" in log and "sample_width" in log
