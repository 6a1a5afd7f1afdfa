"""The backends on models built from the published configs (``tests/fixtures/published``, shrunk in
depth/width only), in the layout each model is released in:

- the fixtures reproduce the released checkpoints' key-and-shape hashes (DiffSynth-Studio's);
- Wan-Fun Control-Camera as released (VideoX-Fun layout) converts and runs with its 32 input
  channels: the start image's latent in frame 0, zeros after, no mask (the stock I2V pipeline
  feeds it 36 and fails);
- CogVideoX-5b-I2V runs at its only size, frame count and prompt length from its config;
- the 480P Wan model caps a 1080p shot to its native token count;
- memory advice and per-model defaults.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from published_models import (
    COGVIDEOX,
    FIXTURES,
    WAN_FUN,
    WAN_I2V,
    build_cogvideox_5b_i2v,
    build_wan_fun_videox,
    build_wan_i2v_480p,
    fun_config,
    fun_state_dicts,
    key_hash,
    published,
    to_original_wan_keys,
)
from pydantic import ValidationError
from server_helpers import decode_mp4, plane_scene
from test_gen_backends import make_job, run

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")

from bridge_server.backends.base import JobCancelled, JobFailed  # noqa: E402
from bridge_server.backends.weights import ENV, WeightsError  # noqa: E402

W, H, N = 48, 32, 6


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    from bridge_server.backends.wan_fun import convert_videox_fun

    root = tmp_path_factory.mktemp("published")
    build_wan_i2v_480p(root / "diffusers-i2v" / "default")
    build_cogvideox_5b_i2v(root / "diffusers-i2v" / "cogvideox-5b")
    build_wan_fun_videox(root / "released" / "fun")
    convert_videox_fun(
        root / "released" / "fun", root / "wan-fun-camera" / "default", root / "diffusers-i2v" / "default"
    )
    old = os.environ.get(ENV)
    os.environ[ENV] = str(root)
    yield root
    os.environ.pop(ENV) if old is None else os.environ.__setitem__(ENV, old)


def test_fixture_configs_give_the_released_checkpoints_key_hashes():
    """Full size on the meta device: the keys and shapes the released files hold (DiffSynth-Studio
    recognises them by these md5 hashes, see SOURCES.md)."""
    from diffusers import WanTransformer3DModel

    sd, vae = fun_state_dicts(fun_config(shrink=False), device="meta")
    assert key_hash(sd) == "ac6a5aa74f4a0aab6f64eb9a72f19901"  # Wan2.1-Fun-V1.1-1.3B-Control-Camera
    assert key_hash(vae) == "ccc42284ea13e1ad04693284c7a09be6"  # Wan2.1_VAE.pth
    cfg = {k: v for k, v in published(WAN_I2V, "transformer/config.json").items() if not k.startswith("_")}
    with torch.device("meta"):
        i2v = WanTransformer3DModel(**cfg)
    assert key_hash(to_original_wan_keys(i2v.state_dict())) == "6bfcfb3b342cb286ce886889d519a77e"  # Wan2.1 I2V 14B


def test_wan_fun_conversion_keeps_videox_funs_scheduler_and_the_adapter(weights):
    import yaml
    from safetensors.torch import load_file

    out = weights / "wan-fun-camera" / "default"
    sched = json.loads((out / "scheduler" / "scheduler_config.json").read_text())
    kwargs = yaml.safe_load((FIXTURES / WAN_FUN / "wan_civitai.yaml").read_text())["scheduler_kwargs"]
    assert sched["_class_name"] == "FlowMatchEulerDiscreteScheduler"  # VideoX-Fun's "Flow" sampler
    assert {k: sched[k] for k in kwargs if k in sched} == {k: v for k, v in kwargs.items() if k in sched}
    assert set(kwargs) - set(sched) == {"scheduler_subpath"}
    released = load_file(str(weights / "released" / "fun" / "diffusion_pytorch_model.safetensors"))
    adapter = load_file(str(out / "camera_adapter.safetensors"))
    assert adapter.keys() == {k for k in released if k.startswith("control_adapter.")}
    assert all(torch.equal(adapter[k], released[k]) for k in adapter)
    tcfg = json.loads((out / "transformer" / "config.json").read_text())
    assert tcfg["in_channels"] == published(WAN_FUN, "config.json")["in_dim"] == 32


def test_wan_fun_control_camera_runs_with_the_start_image_latent_and_no_mask(weights, tmp_path):
    from diffusers import WanImageToVideoPipeline
    from diffusers.video_processor import VideoProcessor
    from PIL import Image

    from bridge_server.backends.wan_fun_camera import WanFunCameraBackend

    backend = WanFunCameraBackend()
    job, logs = make_job(backend, tmp_path, steps=2, seed=3)
    seen = []
    folder = weights / "wan-fun-camera" / "default"
    from bridge_server.backends.diffusers_i2v import load_pipeline

    pipe = load_pipeline(folder, "cpu", job.params, job.log)
    handle = pipe.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["hidden_states"].clone()), with_kwargs=True
    )
    try:
        run(backend, job)
    finally:
        handle.remove()
    frames, _, w, h = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, h) == (N, W, H)
    assert type(pipe).__name__ == "WanFunControlPipeline"
    x = seen[0]
    assert x.shape[1] == 32  # published in_dim: 16 noisy + 16 conditioning channels, no 4 mask channels
    # Truth: the start image, preprocessed as diffusers does, encoded alone by the VAE and normalised.
    vae = pipe.vae
    img = VideoProcessor(vae_scale_factor=8).preprocess(Image.fromarray(job.image), height=H, width=W)
    with torch.no_grad():
        z = vae.encode(img[:, :, None].to(vae.dtype)).latent_dist.mode()
    mean = torch.tensor(vae.config.latents_mean).view(1, -1, 1, 1, 1)
    std = torch.tensor(vae.config.latents_std).view(1, -1, 1, 1, 1)
    expect = (z - mean) / std
    for xi in seen:
        cond = xi[:, 16:]
        assert torch.allclose(cond[:1, :, :1], expect, atol=1e-4)
        assert torch.count_nonzero(cond[:, :, 1:]) == 0

    # Today's pipeline on the same weights builds 36 channels (mask + image-then-black video): it fails.
    stock = WanImageToVideoPipeline(**pipe.components)
    with pytest.raises(RuntimeError, match="expected input.*to have 32 channels, but got 36"):
        stock(
            image=Image.fromarray(job.image),
            height=H,
            width=W,
            num_frames=5,
            num_inference_steps=1,
            guidance_scale=1.0,
            prompt_embeds=torch.zeros(1, 4, 4096),
            output_type="latent",
        )


def test_wan_fun_camera_features_follow_the_capped_generation_size(weights, tmp_path):
    """A shot above the model's native size (its config's cap, no max_pixels): the adapter's
    features are built at the size the latents are generated at (before, the features kept the
    shot's size and the patch hook refused the mismatch)."""
    from bridge_server.backends.wan_fun_camera import WanFunCameraBackend

    backend = WanFunCameraBackend()
    scene = plane_scene(1344, 768, 2, step=0.05, yaw_deg=0.1)
    job, logs = make_job(backend, tmp_path, scene=scene, steps=1, seed=3, noise_shaping=False, vae_tiling=False)
    shapes = []
    backend.injection_hook = lambda feats: shapes.append(tuple(feats.shape))
    try:
        run(backend, job)
    finally:
        backend.injection_hook = None
    frames, _, w, h = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, h) == (2, 1344, 768)
    capped = [line for line in logs if "capped to" in line]
    assert capped and "1344x768 capped to" in capped[0], logs
    cw, ch = (int(v) for v in capped[0].split("capped to ")[1].split(" ")[0].split("x"))
    # Wan: 8x VAE, 2x2 patches → a cw x ch generation has (ch/16, cw/16) patch cells per latent frame
    assert shapes and shapes[0][-2:] == (ch // 16, cw // 16), shapes


def test_the_released_layout_is_refused_with_the_command_that_converts_it(weights, tmp_path, capsys):
    from bridge_server.backends.wan_fun_camera import CameraParams
    from parascale_tools.cli import main

    os.symlink(weights / "released" / "fun", weights / "wan-fun-camera" / "released")
    with pytest.raises(ValidationError, match="VideoX-Fun layout as released.*parascale convert-wan-fun"):
        CameraParams(model="released")
    src, enc = weights / "released" / "fun", weights / "diffusers-i2v" / "default"
    assert main(["convert-wan-fun", str(src), str(tmp_path / "out"), "--encoders", str(enc), "--json"]) == 0
    assert json.loads(capsys.readouterr().out.splitlines()[-1]) == {"output": str(tmp_path / "out")}
    CameraParams.check_folder(tmp_path / "out")
    assert main(["convert-wan-fun", str(src), str(tmp_path / "out2")]) == 2  # no encoders for the CLIP input
    assert "needs the CLIP image encoder" in capsys.readouterr().err
    assert main(["convert-wan-fun", str(enc), str(tmp_path / "out3")]) == 2
    assert "not a VideoX-Fun folder" in capsys.readouterr().err


def test_cogvideox_5b_i2v_runs_at_its_config_size_frames_and_prompt_length(weights, tmp_path):
    """Any requested size becomes sample_width x sample_height x 8, any clip 49 frames, with the
    learned positional embedding in use (today: the pipeline raises at other sizes). Cancelled after
    one step: decoding 49 frames at 720x480 is left to the server test."""
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend, load_pipeline

    cfg = published(COGVIDEOX, "transformer/config.json")
    backend = DiffusersI2VBackend()
    job, logs = make_job(backend, tmp_path, model="cogvideox-5b", steps=2, noise_shaping=False)
    pipe = load_pipeline(weights / "diffusers-i2v" / "cogvideox-5b", "cpu", job.params, job.log)
    seen, replaced = [], []
    pe = pipe.transformer.patch_embed
    sincos = pe._get_positional_embeddings  # what replaces the learned embedding at any other size/length
    pe._get_positional_embeddings = lambda *a, **kw: replaced.append(a) or sincos(*a, **kw)
    hook = pipe.transformer.register_forward_pre_hook(lambda m, a, kw: seen.append(kw), with_kwargs=True)
    try:
        with pytest.raises(JobCancelled, match="after denoising step 1 of 2"):
            run(backend, job, cancel_after=1)
    finally:
        hook.remove()
        del pe._get_positional_embeddings
    x, text = seen[0]["hidden_states"], seen[0]["encoder_hidden_states"]
    lat = (cfg["sample_frames"] - 1) // cfg["temporal_compression_ratio"] + 1
    assert x.shape[1:] == (lat, cfg["in_channels"], cfg["sample_height"], cfg["sample_width"])
    assert text.shape[1:] == (cfg["max_text_seq_length"], cfg["text_embed_dim"])
    assert replaced == [], "the learned positional embedding was replaced by a sinusoidal one"
    assert any(f"{W}x{H} -> 720x480" in line and "sample_width" in line for line in logs)
    assert any("49 frames at 720x480" in line for line in logs), logs


def test_content_box_keeps_the_aspect_on_a_fixed_canvas():
    from bridge_server.backends.diffusers_i2v import content_box, to_canvas

    assert content_box(1440, 960, 720, 480) is None  # 3:2 already
    assert content_box(64, 96, 720, 480) == (200, 0, 320, 480)  # 2:3 portrait: pillars
    assert content_box(1920, 800, 720, 480) == (0, 88, 720, 304)  # 2.4:1: letterbox
    canvas = to_canvas(np.ones((2, 480, 320, 3), np.uint8), (200, 0, 320, 480), 720, 480)
    assert canvas.shape == (2, 480, 720, 3) and canvas[:, :, 200:520].all() and not canvas[:, :, :200].any()


def test_cogvideox_5b_gets_a_portrait_shot_with_its_aspect_kept(weights, tmp_path):
    """A 2:3 shot on the 720x480-only model: the conditioning image is the shot scaled uniformly to
    320x480 between black pillars (not stretched 2.25x across), the warp preview is rendered at
    320x480, and the pillars are cut off the generated frames before they go back to the shot's size."""
    import cv2

    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend, load_pipeline

    backend = DiffusersI2VBackend()
    portrait = plane_scene(64, 96, 5, step=0.05, yaw_deg=0.2)
    job, logs = make_job(backend, tmp_path, scene=portrait, model="cogvideox-5b", steps=2)
    pipe = load_pipeline(weights / "diffusers-i2v" / "cogvideox-5b", "cpu", job.params, job.log)
    given = []
    preprocess = pipe.video_processor.preprocess
    pipe.video_processor.preprocess = lambda image, *a, **kw: (
        given.append(np.asarray(image)) or preprocess(image, *a, **kw)
    )
    try:
        with pytest.raises(JobCancelled):
            run(backend, job, cancel_after=1)
    finally:
        del pipe.video_processor.preprocess
    img = given[0]
    assert img.shape == (480, 720, 3)
    assert not img[:, :200].any() and not img[:, 520:].any()
    assert np.array_equal(img[:, 200:520], cv2.resize(job.image, (320, 480), interpolation=cv2.INTER_AREA))
    assert any("64x96 shot fills 320x480 of 720x480" in line for line in logs), logs


def test_cogvideox_5b_refuses_long_clips_and_wrong_prompt_lengths_naming_the_field(weights, tmp_path):
    from safetensors.torch import save_file

    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend

    backend = DiffusersI2VBackend()
    long = plane_scene(W, H, 60, step=0.05, yaw_deg=0.1)
    job, _ = make_job(backend, tmp_path, scene=long, model="cogvideox-5b", steps=1, noise_shaping=False)
    with pytest.raises(JobFailed, match=r"60 frames.*at most 49 \(transformer/config.json sample_width.*sample_frames"):
        run(backend, job)
    assert not job.output.exists()

    short = weights / "diffusers-i2v" / "cogvideox-short"
    import shutil

    shutil.copytree(weights / "diffusers-i2v" / "cogvideox-5b", short)
    eight = {"prompt_embeds": torch.zeros(1, 8, 4096), "negative_prompt_embeds": torch.zeros(1, 8, 4096)}
    save_file(eight, str(short / "prompt_embeds.safetensors"))
    job, _ = make_job(backend, tmp_path, model="cogvideox-short", steps=1, noise_shaping=False)
    with pytest.raises(WeightsError, match=r"prompt_embeds has shape \(1, 8, 4096\).*exactly 226 tokens.*max_text_seq"):
        run(backend, job)


def test_wan_480p_caps_a_1080p_shot_to_its_native_token_count(weights, tmp_path):
    """1920x1080 → at most 832x480 pixels (the 480P model's size; flow_shift 3.0 in its scheduler
    config), same aspect within a patch; the transformer sees at most the native token count."""
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend, load_pipeline

    backend = DiffusersI2VBackend()
    scene = plane_scene(1920, 1080, 2, step=0.05, yaw_deg=0.1)
    job, logs = make_job(
        backend, tmp_path, scene=scene, steps=1, noise_shaping=False, guidance_scale=1.0, vae_tiling=False
    )
    pipe = load_pipeline(weights / "diffusers-i2v" / "default", "cpu", job.params, job.log)
    seen = []
    h = pipe.transformer.register_forward_pre_hook(
        lambda m, a, kw: seen.append(kw["hidden_states"].shape), with_kwargs=True
    )
    try:
        run(backend, job)
    finally:
        h.remove()
    frames, _, w, hh = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, hh) == (2, 1920, 1080)
    _, _, f, lh, lw = seen[0]
    assert lw * 8 * lh * 8 <= 832 * 480 and abs(lw / lh - 1920 / 1080) < 0.1
    assert f * (lh // 2) * (lw // 2) <= 2 * (480 // 16) * (832 // 16)
    capped = [line for line in logs if "capped to" in line]
    assert capped and "1920x1080 capped to 832x464" in capped[0] and "Wan 2.1 I2V 480P (no native_size" in capped[0]


def test_out_of_memory_advice_names_what_works_on_these_pipelines():
    from bridge_server.backends.weights import NotEnoughMemory, memory_guard

    with pytest.raises(NotEnoughMemory) as err, memory_guard("cuda:0", "81 frames at 832x480"):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")
    text = str(err.value)
    assert "cpu_offload" in text and "vae_tiling" in text and "smaller" in text
    assert "attention_slicing" not in text


def test_defaults_auto_dtype_and_vae_tiling_on_cpu(weights, tmp_path):
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend, load_pipeline

    schema = DiffusersI2VBackend().parameters_schema()
    assert schema["properties"]["dtype"]["default"] == "auto"
    defaults = schema["x-model-defaults"]
    assert (defaults["native_width"], defaults["native_height"], defaults["max_frames"]) == (832, 480, 81)
    job, logs = make_job(DiffusersI2VBackend(), tmp_path)
    pipe = load_pipeline(weights / "diffusers-i2v" / "default", "cpu", job.params, job.log)
    assert {pipe.transformer.dtype, pipe.vae.dtype, pipe.image_encoder.dtype} == {torch.float32}
    assert pipe.vae.use_tiling


def test_auto_dtype_for_cuda_loads_a_bf16_transformer_with_fp32_vae_and_image_encoder(weights):
    """The per-component mapping ``auto`` gives on CUDA, loaded by diffusers (on the CPU here): the
    upstream Wan recipe, bf16 transformer with the VAE and CLIP in fp32."""
    from diffusers import WanImageToVideoPipeline

    from bridge_server.backends.diffusers_i2v import FP32_COMPONENTS
    from bridge_server.backends.weights import component_dtypes

    dtypes = component_dtypes("auto", "cuda:0", FP32_COMPONENTS["WanImageToVideoPipeline"])
    folder = weights / "diffusers-i2v" / "default"
    pipe = WanImageToVideoPipeline.from_pretrained(folder, dtype=dtypes, text_encoder=None, tokenizer=None)
    assert pipe.transformer.dtype == torch.bfloat16
    assert pipe.vae.dtype == pipe.image_encoder.dtype == torch.float32
    assert component_dtypes("auto", "cpu") == {"default": torch.float32}
    assert component_dtypes("fp16", "cuda:0", ("vae",)) == {"default": torch.float16}  # explicit: every part


def test_convert_wan_fun_names_a_truncated_or_mismatched_file_without_a_traceback(weights, tmp_path, capsys):
    import shutil

    from parascale_tools.cli import main

    enc = weights / "diffusers-i2v" / "default"
    cut = Path(shutil.copytree(weights / "released" / "fun", tmp_path / "cut"))
    body = cut / "diffusion_pytorch_model.safetensors"
    body.write_bytes(body.read_bytes()[: body.stat().st_size // 2])
    assert main(["convert-wan-fun", str(cut), str(tmp_path / "o1"), "--encoders", str(enc)]) == 2
    err = capsys.readouterr().err
    assert f"{body}: not a readable safetensors file" in err and "Traceback" not in err, err

    other = Path(shutil.copytree(weights / "released" / "fun", tmp_path / "other"))
    cfg = json.loads((other / "config.json").read_text())
    (other / "config.json").write_text(json.dumps(cfg | {"ffn_dim": cfg["ffn_dim"] + 8}))
    assert main(["convert-wan-fun", str(other), str(tmp_path / "o2"), "--encoders", str(enc)]) == 2
    err = capsys.readouterr().err
    assert "transformer weights do not match config.json" in err and "Traceback" not in err, err
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()
