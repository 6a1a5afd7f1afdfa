"""The weights-backed backends called directly on tiny random-weight models saved in the real
on-disk layout: frame count and size, noise shaping only inside the mask on the high-noise steps
(observed through the shaping hook), camera-adapter features equal to Plücker rays computed
here, cancel between steps, Depth Anything against transformers, and clear weights errors."""

from __future__ import annotations

import io
import json
import os
import shutil

import numpy as np
import pytest
from pydantic import ValidationError
from server_helpers import decode_mp4, plane_scene
from test_gen_backends_tiny import build_cogvideox_i2v, build_depth_anything, build_wan_i2v

torch = pytest.importorskip("torch")

from bridge_server.backends.base import GenerationJob, JobCancelled  # noqa: E402
from bridge_server.backends.weights import ENV, WeightsError  # noqa: E402
from bridge_server.config import Limits  # noqa: E402
from bridge_server.inputs import parse_trajectory  # noqa: E402

W, H, N = 48, 32, 6  # 6 frames -> 9 generated (4k + 1), latents 3 x 4 x 6


def camera_adapter_tensors() -> dict:
    """An adapter whose output channel o at latent cell (Y, X) is packed channel o at pixel (16Y, 16X):
    conv picks unshuffled channel o*64 (sub-pixel (0, 0)) at kernel tap (0, 0); residual blocks are identity."""
    dim = 24
    w = torch.zeros(dim, 24 * 64, 2, 2)
    for o in range(dim):
        w[o, o * 64, 0, 0] = 1.0
    t = {"control_adapter.conv.weight": w, "control_adapter.conv.bias": torch.zeros(dim)}
    g = torch.Generator().manual_seed(3)
    t["control_adapter.residual_blocks.0.conv1.weight"] = torch.randn(dim, dim, 3, 3, generator=g)
    t["control_adapter.residual_blocks.0.conv1.bias"] = torch.zeros(dim)
    t["control_adapter.residual_blocks.0.conv2.weight"] = torch.zeros(dim, dim, 3, 3)
    t["control_adapter.residual_blocks.0.conv2.bias"] = torch.zeros(dim)
    return t


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from safetensors.torch import save_file

    root = tmp_path_factory.mktemp("weights")
    build_wan_i2v(root / "diffusers-i2v" / "default")
    build_cogvideox_i2v(root / "diffusers-i2v" / "cogvideox")
    build_cogvideox_i2v(root / "diffusers-i2v" / "cogvideox15", patch_size_t=2)
    shutil.copytree(root / "diffusers-i2v" / "default", root / "wan-fun-camera" / "default")
    save_file(camera_adapter_tensors(), str(root / "wan-fun-camera" / "default" / "camera_adapter.safetensors"))
    build_depth_anything(root / "depth-anything" / "default", metric=True)
    build_depth_anything(root / "depth-anything" / "relative", metric=False, seed=1)
    old = os.environ.get(ENV)
    os.environ[ENV] = str(root)
    yield root
    if old is None:
        os.environ.pop(ENV, None)
    else:
        os.environ[ENV] = old


def make_job(backend, tmp_path, scene=None, **params):
    sc = scene or plane_scene(W, H, N, step=0.25, yaw_deg=1.0)
    traj = parse_trajectory(json.dumps(sc.doc).encode(), Limits())
    logs: list[str] = []
    job = GenerationJob(
        traj, sc.image, sc.depth, backend.Params(**params), tmp_path / "result.partial.mp4", log=logs.append
    )
    return job, logs


def run(backend, job, cancel_after: int | None = None):
    messages = []

    def progress(f, m):
        messages.append(m)

    def cancelled():
        return cancel_after is not None and sum(m.startswith("step ") for m in messages) >= cancel_after

    backend.generate(job, progress, cancelled)
    return messages


def shaped_cells(events, channel_dim: int):
    """Per shaped step after the first: (shaped, kept) latent-cell masks (F', h, w). Checks on the way
    that unshaped steps change nothing, that the initial shaping at pure noise is the noise itself,
    that every cell is either replaced in all channels or untouched, and that frame 0 is shaped."""
    import torch

    for e in events:
        if not e.applied:
            assert torch.equal(e.after, e.before)
            continue
        if e.step == -1:  # at t = 1 (or zero terminal SNR) the noised preview is the initial noise itself
            assert torch.allclose(e.target, e.before) and torch.allclose(e.after, e.before)
            continue
        shaped = torch.isclose(e.after, e.target, atol=1e-6).all(dim=channel_dim)[0]
        kept = torch.isclose(e.after, e.before, atol=1e-6).all(dim=channel_dim)[0]
        assert (shaped | kept).all(), "each latent cell is either replaced or untouched"
        assert (shaped & ~kept).float().mean() > 0.5 and (kept & ~shaped).any()
        assert shaped[0].all(), "latent frame 0 (the conditioning image) is always shaped"
        yield shaped, kept


def test_i2v_shapes_only_masked_high_noise_steps_and_writes_every_frame(weights, tmp_path):
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend

    backend = DiffusersI2VBackend()
    events = []
    backend.shaping_hook = events.append
    job, logs = make_job(backend, tmp_path, steps=6, shaping_threshold=0.7, erode_px=2)
    run(backend, job)
    frames, fps, w, h = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, h, fps) == (N, W, H, 24.0)

    assert [e.step for e in events] == list(range(-1, 6))
    levels = [e.t for e in events]  # the level the latents are at after each step (first: before step 0)
    assert levels[0] == 1.0 and levels[-1] == 0.0
    assert all(a > b for a, b in zip(levels, levels[1:])), "levels must fall"
    applied = [e for e in events if e.applied]
    assert [e.step for e in applied] == [e.step for e in events if e.t >= 0.7 and e.step < 5]
    assert 2 <= len(applied) < len(events), "some but not all steps are shaped"
    for shaped, kept in shaped_cells(events, channel_dim=1):
        assert (kept & ~shaped)[-1, :, -1].all(), "the disoccluded right edge of the last frames is left alone"
        assert shaped[1:, 1:-1, 1:-2].all(), "the visible interior is shaped"
    assert sum("applied" in line for line in logs) == len(applied)

    # The targets are the same clean preview at different noise levels: x_t = (1 - t) x0 + t eps.
    e0, e1 = applied[0], applied[1]  # t = 1 (pure noise) and the next level
    assert e0.t == pytest.approx(1.0)
    x0 = (e1.target - e1.t * e0.target) / (1.0 - e1.t)
    from diffusers import AutoencoderKLWan
    from PIL import Image

    vae = AutoencoderKLWan.from_pretrained(weights / "diffusers-i2v" / "default" / "vae")
    img = np.asarray(Image.fromarray(job.image).resize((W, H), Image.BOX), dtype=np.float32)
    with torch.no_grad():
        z = vae.encode(torch.from_numpy(img / 127.5 - 1).permute(2, 0, 1)[None, :, None]).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    assert torch.allclose(x0[:, :, :1], (z - mean) / std, atol=0.05), "latent frame 0 = the encoded image"


def test_i2v_cancel_stops_between_steps(weights, tmp_path):
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend

    backend = DiffusersI2VBackend()
    job, _ = make_job(backend, tmp_path, steps=8, noise_shaping=False)
    with pytest.raises(JobCancelled, match="after denoising step 2 of 8"):
        run(backend, job, cancel_after=2)
    assert not job.output.exists()


def cogvideox_x0(weights, model: str, steps: int, events, k: int) -> torch.Tensor:
    """The clean preview behind the target of the event at schedule index ``k`` (DDPM marginal:
    target = sqrt(a) x0 + sqrt(1 - a) eps, eps = the initial noise, i.e. the latents before step 0)."""
    from diffusers import CogVideoXDDIMScheduler

    sched = CogVideoXDDIMScheduler.from_pretrained(weights / "diffusers-i2v" / model / "scheduler")
    sched.set_timesteps(steps)
    ev = events[k]  # events[k] shapes the latents entering schedule index k
    a = float(sched.alphas_cumprod[sched.timesteps[k]])
    assert ev.t == pytest.approx((1 - a) ** 0.5 / (a**0.5 + (1 - a) ** 0.5)), "the flow sigma of the same SNR"
    eps = events[0].before
    return (ev.target - (1 - a) ** 0.5 * eps) / a**0.5


def cogvideox_image_latent(weights, model: str, image: np.ndarray) -> torch.Tensor:
    """``scaling_factor`` x the VAE's mode of the image resized to W x H, as (1, 1, C, h, w)."""
    from diffusers import AutoencoderKLCogVideoX
    from PIL import Image

    vae = AutoencoderKLCogVideoX.from_pretrained(weights / "diffusers-i2v" / model / "vae")
    img = np.asarray(Image.fromarray(image).resize((W, H), Image.BOX), dtype=np.float32)
    with torch.no_grad():
        z = vae.encode(torch.from_numpy(img / 127.5 - 1).permute(2, 0, 1)[None, :, None]).latent_dist.mode()
    return (vae.config.scaling_factor * z).permute(0, 2, 1, 3, 4)


def test_cogvideox_i2v_shapes_only_masked_high_noise_steps_and_writes_every_frame(weights, tmp_path):
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend

    backend = DiffusersI2VBackend()
    events = []
    backend.shaping_hook = events.append
    job, logs = make_job(backend, tmp_path, model="cogvideox", steps=6, shaping_threshold=0.7, erode_px=2)
    run(backend, job)
    frames, fps, w, h = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, h, fps) == (N, W, H, 24.0)
    assert f"CogVideoXImageToVideoPipeline: 9 frames at {W}x{H} for a {N}-frame trajectory, 6 steps" in logs
    assert not [line for line in logs if "pipeline returned" in line], logs

    assert [e.step for e in events] == list(range(-1, 6))
    assert events[0].before.shape == (1, 3, 4, H // 4, W // 4), "(B, F', C, h, w)"
    levels = [e.t for e in events]  # DDPM family: the flow sigma of the same SNR (zero-SNR 999 first: 1)
    assert levels[0] == pytest.approx(1.0) and levels[-1] == 0.0
    assert all(a > b for a, b in zip(levels, levels[1:])), "levels must fall"
    applied = [e for e in events if e.applied]
    assert [e.step for e in applied] == [e.step for e in events if e.t >= 0.7 and e.step < 5] == [-1, 0, 1]
    for shaped, kept in shaped_cells(events, channel_dim=2):
        assert (kept & ~shaped)[-1, :, -1].all(), "the disoccluded right edge of the last frames is left alone"
        assert shaped[1:, :, : 2 * (W // 4) // 3].all(), "the visible left two thirds are shaped"
    assert sum("applied" in line for line in logs) == len(applied)

    x0 = cogvideox_x0(weights, "cogvideox", 6, events, 1)
    z = cogvideox_image_latent(weights, "cogvideox", job.image)
    assert torch.allclose(x0[:, :1], z, atol=1e-3), "latent frame 0 = scaling_factor x the encoded image"


def test_cogvideox15_generates_odd_latents_padded_in_front_like_its_pipeline(weights, tmp_path):
    """CogVideoX 1.5 (patch_size_t = 2): 10 frames -> 17 generated (5 latents: an even count would
    decode to 4 F' frames), one padding latent in front that shaping leaves alone; the shaped latents
    use scaling_factor although the VAE has invert_scale_latents (conditioning channels only)."""
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend

    backend = DiffusersI2VBackend()
    events = []
    backend.shaping_hook = events.append
    sc = plane_scene(W, H, 10, step=0.25, yaw_deg=1.0)
    job, logs = make_job(backend, tmp_path, scene=sc, model="cogvideox15", steps=3, shaping_threshold=0.6)
    run(backend, job)
    frames, _, w, h = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, h) == (10, W, H)
    assert f"CogVideoXImageToVideoPipeline: 17 frames at {W}x{H} for a 10-frame trajectory, 3 steps" in logs
    assert any("adds 1 padding latent frame" in line for line in logs)
    assert not [line for line in logs if "pipeline returned" in line], logs
    assert events[0].before.shape == (1, 6, 4, H // 4, W // 4), "1 padding + 5 latent frames"
    assert [e.step for e in events if e.applied] == [-1, 0]
    e = events[1]
    assert torch.equal(e.after[:, 0], e.before[:, 0]), "the padding latent is not shaped"
    assert torch.allclose(e.after[:, 1], e.target[:, 1], atol=1e-6), "latent 1 (the image) is shaped"
    x0 = cogvideox_x0(weights, "cogvideox15", 3, events, 1)
    assert torch.allclose(x0[:, 1:2], cogvideox_image_latent(weights, "cogvideox15", job.image), atol=1e-3)


def test_cogvideox_frame_count_is_what_its_vae_decodes(weights):
    """For every trajectory length the family's frame count encodes to latents that decode back to
    exactly that many frames (the 4k + 1 of Wan would not: 13 frames -> 4 latents -> 16 frames)."""
    from diffusers import DiffusionPipeline

    from bridge_server.backends.diffusers_i2v import FAMILIES

    pipe = DiffusionPipeline.from_pretrained(weights / "diffusers-i2v" / "cogvideox", text_encoder=None, tokenizer=None)
    fam = FAMILIES[type(pipe).__name__]
    got = {n: fam.num_frames(pipe, n) for n in (1, 2, 6, 9, 10, 17, 18)}
    assert got == {1: 1, 2: 9, 6: 9, 9: 9, 10: 17, 17: 17, 18: 25}
    with torch.no_grad():
        for n_gen in (9, 17, 13):
            z = pipe.vae.encode(torch.zeros(1, 3, n_gen, 16, 16)).latent_dist.mode()
            out = pipe.vae.decode(z).sample.shape[2]
            assert (out == n_gen) == (n_gen != 13), (n_gen, z.shape[2], out)


def test_cogvideox_cancel_stops_between_steps(weights, tmp_path):
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend

    backend = DiffusersI2VBackend()
    job, _ = make_job(backend, tmp_path, model="cogvideox", steps=8, noise_shaping=False)
    with pytest.raises(JobCancelled, match="after denoising step 2 of 8"):
        run(backend, job, cancel_after=2)
    assert not job.output.exists()


def test_wan_fun_camera_adds_plucker_adapter_features_to_the_patch_embedding(weights, tmp_path):
    from bridge_server.backends.wan_fun_camera import WanFunCameraBackend

    backend = WanFunCameraBackend()
    seen = []
    backend.injection_hook = seen.append
    job, logs = make_job(backend, tmp_path, steps=2)
    result = backend.generate(job, lambda f, m: None, lambda: False)
    frames, _, w, h = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, h) == (N, W, H)
    assert len(seen) == 4, "one injection per transformer call (2 steps x cond/uncond)"
    # Translations in the model's gauge: default model depth 1 x the depth map's mean inverse depth.
    gauge = 1.0 * np.mean(1.0 / job.depth[np.isfinite(job.depth)])
    assert result == {"camera_gauge": pytest.approx(gauge, rel=1e-12)}
    assert any(f"translations x {gauge:.6g}" in m for m in logs)
    feats = seen[0].float()
    assert feats.shape == (1, 24, 3, H // 16, W // 16)

    # Truth: Plücker rays computed here per pixel, relative to frame 0, frames padded to 9 with the last pose.
    traj = job.trajectory
    c2w = np.concatenate([traj.c2w, np.repeat(traj.c2w[-1:], 3, axis=0)])
    rel = np.linalg.inv(c2w[0]) @ c2w
    fx, fy, cx, cy = traj.intrinsics[0] * np.array([W / traj.width, H / traj.height] * 2)
    for lf in range(3):
        for j in range(4):
            frame = 0 if lf == 0 else 4 * (lf - 1) + 1 + j
            for Y, X in ((0, 0), (1, 2), (1, 1)):
                u, v = 16 * X, 16 * Y
                d = rel[frame, :3, :3] @ np.array([(u + 0.5 - cx) / fx, (v + 0.5 - cy) / fy, 1.0])
                d /= np.linalg.norm(d)
                emb = np.concatenate([np.cross(gauge * rel[frame, :3, 3], d), d])
                got = feats[0, [c * 4 + j for c in range(6)], lf, Y, X].numpy()
                assert got == pytest.approx(emb, abs=1e-5), (lf, j, Y, X)


def test_depth_anything_metric_matches_transformers_and_relative_is_normalised(weights, tmp_path):
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    from bridge_server.backends.depth_anything import DepthAnythingBackend

    backend = DepthAnythingBackend()
    assert backend.available() == (True, "")
    job, _ = make_job(backend, tmp_path)
    run(backend, job)
    depth = np.load(io.BytesIO(job.output.read_bytes()), allow_pickle=False)
    assert depth.shape == job.image.shape[:2] and depth.dtype == np.float32

    folder = weights / "depth-anything" / "default"
    proc = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(**proc(images=job.image, return_tensors="pt"))
    ref = proc.post_process_depth_estimation(out, target_sizes=[job.image.shape[:2]])[0]["predicted_depth"]
    assert np.allclose(depth, ref.numpy(), rtol=1e-4, atol=1e-4)
    assert np.isfinite(depth).all() and 0 < depth.min() and depth.max() <= model.config.max_depth

    job, _ = make_job(backend, tmp_path, model="relative")
    run(backend, job)
    rel = np.load(io.BytesIO(job.output.read_bytes()))
    assert rel.shape == job.image.shape[:2]
    assert np.nanmedian(rel) == pytest.approx(1.0, rel=1e-5)


def test_missing_or_wrong_weights_name_the_missing_file(weights, tmp_path, monkeypatch):
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend, I2VParams
    from bridge_server.backends.wan_fun_camera import CameraParams

    broken = weights / "diffusers-i2v" / "broken"
    shutil.copytree(weights / "diffusers-i2v" / "default", broken)
    (broken / "vae" / "diffusion_pytorch_model.safetensors").unlink()
    with pytest.raises(ValidationError, match=r"broken/vae: missing the weights"):
        I2VParams(model="broken")
    with pytest.raises(ValidationError, match="model_index.json"):
        I2VParams(model="nothing-here")
    with pytest.raises(ValidationError, match="folder name"):
        I2VParams(model="../depth-anything/default")
    nocam = weights / "wan-fun-camera" / "nocam"
    shutil.copytree(weights / "diffusers-i2v" / "default", nocam)
    with pytest.raises(ValidationError, match="missing camera_adapter.safetensors"):
        CameraParams(model="nocam")
    (broken / "vae" / "diffusion_pytorch_model.safetensors").symlink_to(
        weights / "diffusers-i2v" / "default" / "vae" / "diffusion_pytorch_model.safetensors"
    )
    (broken / "prompt_embeds.safetensors").unlink()
    with pytest.raises(ValidationError, match="missing prompt_embeds.safetensors"):
        I2VParams(model="broken")
    index = json.loads((broken / "model_index.json").read_text())
    (broken / "model_index.json").write_text(json.dumps({**index, "_class_name": "StableDiffusionPipeline"}))
    with pytest.raises(ValidationError, match="StableDiffusionPipeline is not supported"):
        I2VParams(model="broken")

    monkeypatch.setenv(ENV, str(tmp_path / "empty"))
    ok, reason = DiffusersI2VBackend().available()
    assert not ok and "model_index.json" in reason and str(tmp_path / "empty") in reason
    monkeypatch.delenv(ENV)
    ok, reason = DiffusersI2VBackend().available()
    assert not ok and ENV in reason


def test_fp16_on_cpu_is_refused_with_a_clear_error(weights, tmp_path):
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend

    backend = DiffusersI2VBackend()
    job, _ = make_job(backend, tmp_path, dtype="fp16", steps=1)
    with pytest.raises(ValueError, match="fp16 needs a CUDA device"):
        run(backend, job)
    assert isinstance(WeightsError("x"), ValueError)
