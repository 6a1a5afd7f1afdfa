"""Weights-backed backend benchmark rows on tiny random-weight models (built offline here, saved in
the real on-disk layout, loaded back through the backends' own loaders): frames/s and peak memory
of ``diffusers-i2v`` on Wan and on CogVideoX (baseline: the same job without noise shaping), ``wan-fun-camera`` and
``depth-anything`` on CPU, and on CUDA when available. The numbers measure the plumbing (preview,
shaping, adapter, encode), not a real model: users add rows for their real weights.

Also holds the tiny model builders the tests use (:func:`build_tiny_wan_i2v`,
:func:`build_tiny_cogvideox_i2v`, :func:`build_tiny_depth_anything`).
"""

from __future__ import annotations

import os
import resource
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np

Z_DIM = 4
TEXT_DIM = 16


def _save_prompt_embeds(folder: Path, seed: int) -> None:
    """``prompt_embeds.safetensors`` standing in for a text encoder (random prompt, zero negative)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    embeds = {
        "prompt_embeds": torch.randn(1, 8, TEXT_DIM, generator=g),
        "negative_prompt_embeds": torch.zeros(1, 8, TEXT_DIM),
    }
    save_file(embeds, str(folder / "prompt_embeds.safetensors"))


def build_tiny_wan_i2v(folder: Path, seed: int = 0) -> Path:
    """A Wan image-to-video pipeline (no text/image encoder) + ``prompt_embeds.safetensors``."""
    import torch
    from diffusers import AutoencoderKLWan, FlowMatchEulerDiscreteScheduler, WanImageToVideoPipeline
    from diffusers import WanTransformer3DModel as Transformer

    torch.manual_seed(seed)
    vae = AutoencoderKLWan(
        base_dim=8,
        z_dim=Z_DIM,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
        latents_mean=[0.1, -0.2, 0.0, 0.3],
        latents_std=[1.5, 0.8, 1.0, 2.0],
    )
    transformer = Transformer(
        patch_size=(1, 2, 2),
        num_attention_heads=2,
        attention_head_dim=12,
        in_channels=2 * Z_DIM + 4,
        out_channels=Z_DIM,
        text_dim=TEXT_DIM,
        freq_dim=16,
        ffn_dim=32,
        num_layers=1,
        image_dim=None,
        rope_max_seq_len=32,
    )
    scheduler = FlowMatchEulerDiscreteScheduler(shift=3.0)
    pipe = WanImageToVideoPipeline(
        tokenizer=None, text_encoder=None, vae=vae, scheduler=scheduler, transformer=transformer
    )
    pipe.save_pretrained(folder)
    _save_prompt_embeds(folder, seed)
    return folder


def build_tiny_cogvideox_i2v(folder: Path, seed: int = 0, patch_size_t: int | None = None) -> Path:
    """A CogVideoX image-to-video pipeline (no text encoder/tokenizer) + ``prompt_embeds.safetensors``.

    ``patch_size_t=2`` gives the CogVideoX 1.5 layout (temporal patches, ofs embedding, and the
    VAE's ``invert_scale_latents`` for the conditioning image). VAE: 4 px spatial, 4 frames temporal.
    """
    import torch
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXImageToVideoPipeline
    from diffusers import CogVideoXTransformer3DModel as Transformer

    torch.manual_seed(seed)
    vae = AutoencoderKLCogVideoX(
        down_block_types=("CogVideoXDownBlock3D",) * 3,
        up_block_types=("CogVideoXUpBlock3D",) * 3,
        block_out_channels=(8, 8, 8),
        latent_channels=Z_DIM,
        layers_per_block=1,
        norm_num_groups=2,
        temporal_compression_ratio=4,
        scaling_factor=0.7,
        invert_scale_latents=patch_size_t is not None,
    )
    v15 = patch_size_t is not None
    transformer = Transformer(
        num_attention_heads=2,
        attention_head_dim=16,
        in_channels=2 * Z_DIM,  # noisy latents + conditioning-image latents
        out_channels=Z_DIM,
        time_embed_dim=16,
        ofs_embed_dim=16 if v15 else None,
        text_embed_dim=TEXT_DIM,
        num_layers=1,
        sample_width=12,
        sample_height=8,
        sample_frames=9,
        patch_size=2,
        patch_size_t=patch_size_t,
        max_text_seq_length=8,
        use_rotary_positional_embeddings=True,
        patch_bias=not v15,
    )
    scheduler = CogVideoXDDIMScheduler(  # the released CogVideoX I2V scheduler config
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        clip_sample=False,
        prediction_type="v_prediction",
        rescale_betas_zero_snr=True,
        set_alpha_to_one=True,
        snr_shift_scale=1.0,
        timestep_spacing="trailing",
    )
    pipe = CogVideoXImageToVideoPipeline(
        tokenizer=None, text_encoder=None, vae=vae, scheduler=scheduler, transformer=transformer
    )
    pipe.save_pretrained(folder)
    _save_prompt_embeds(folder, seed)
    return folder


def build_tiny_depth_anything(folder: Path, metric: bool, seed: int = 0) -> Path:
    """A Depth Anything V2 model (tiny DINOv2 backbone) and its image processor."""
    import torch
    from transformers import DepthAnythingConfig, DepthAnythingForDepthEstimation, DPTImageProcessor

    torch.manual_seed(seed)
    backbone = {
        "model_type": "dinov2",
        "hidden_size": 16,
        "num_hidden_layers": 4,
        "num_attention_heads": 2,
        "intermediate_size": 32,
        "patch_size": 14,
        "image_size": 56,
        "out_features": ["stage1", "stage2", "stage3", "stage4"],
        "reshape_hidden_states": False,
    }
    cfg = DepthAnythingConfig(
        backbone_config=backbone,
        reassemble_hidden_size=16,
        neck_hidden_sizes=[8, 8, 16, 16],
        fusion_hidden_size=16,
        head_hidden_size=8,
        depth_estimation_type="metric" if metric else "relative",
        max_depth=20 if metric else 1,
    )
    DepthAnythingForDepthEstimation(cfg).eval().save_pretrained(folder)
    DPTImageProcessor(
        do_resize=True,
        size={"height": 56, "width": 56},
        keep_aspect_ratio=True,
        ensure_multiple_of=14,
        do_normalize=True,
        image_mean=[0.485, 0.456, 0.406],
        image_std=[0.229, 0.224, 0.225],
    ).save_pretrained(folder)
    return folder


def tiny_camera_adapter(path: Path, dim: int = 24, seed: int = 0) -> Path:
    """A random camera adapter for the tiny Wan transformer (24 packed Plücker channels → ``dim``)."""
    import torch
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    t = {"conv.weight": 0.01 * torch.randn(dim, 24 * 64, 2, 2, generator=g), "conv.bias": torch.zeros(dim)}
    for name in ("conv1", "conv2"):
        t[f"residual_blocks.0.{name}.weight"] = 0.01 * torch.randn(dim, dim, 3, 3, generator=g)
        t[f"residual_blocks.0.{name}.bias"] = torch.zeros(dim)
    save_file(t, str(path))
    return path


def _job(params, width: int, height: int, frames: int, out: Path):
    from bridge_server.backends.base import GenerationJob
    from parascale_blender.core.camera import Trajectory

    rng = np.random.default_rng(0)
    image = (rng.random((height, width, 3)) * 255).astype(np.uint8)
    depth = np.full((height, width), 4.0)
    c2w = np.tile(np.eye(4), (frames, 1, 1))
    c2w[:, 0, 3] = 0.05 * np.arange(frames)
    traj = Trajectory(np.arange(1, frames + 1), c2w, [0.8 * width, 0.8 * width, width / 2, height / 2], width, height)
    return GenerationJob(traj, image, depth, params, out)


def _measure(backend, job, device: str, repeat: int) -> tuple[float, float]:
    """(median seconds after a warm-up run that loads the model, peak memory MiB): the CUDA
    allocator's peak, else the process's peak RSS."""
    import torch

    job.device = device
    backend.generate(job, lambda f, m: None, lambda: False)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        backend.generate(job, lambda f, m: None, lambda: False)
        if device.startswith("cuda"):
            torch.cuda.synchronize()
        times.append(time.perf_counter() - t0)
    secs = sorted(times)[len(times) // 2]
    if device.startswith("cuda"):
        return secs, torch.cuda.max_memory_allocated() / 2**20
    return secs, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def rows(quick: bool = True) -> list[dict]:
    import torch

    from bridge_server.backends.depth_anything import DepthAnythingBackend
    from bridge_server.backends.diffusers_i2v import DiffusersI2VBackend
    from bridge_server.backends.wan_fun_camera import WanFunCameraBackend
    from bridge_server.backends.weights import ENV

    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    width, height, frames, steps = (96, 64, 9, 4) if quick else (192, 128, 17, 8)
    repeat = 1 if quick else 3
    devices = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    root = Path(tempfile.mkdtemp(prefix="parascale-gen-bench-"))
    old = os.environ.get(ENV)
    os.environ[ENV] = str(root)
    out: list[dict] = []
    try:
        wan = build_tiny_wan_i2v(root / "diffusers-i2v" / "default")
        build_tiny_cogvideox_i2v(root / "diffusers-i2v" / "cogvideox")
        shutil.copytree(wan, root / "wan-fun-camera" / "default")
        tiny_camera_adapter(root / "wan-fun-camera" / "default" / "camera_adapter.safetensors")
        build_tiny_depth_anything(root / "depth-anything" / "default", metric=True)
        size = f"{width}x{height}, {frames} frames, {steps} steps"
        mem_unit = {"cpu": "peak RSS of the process", "cuda": "peak CUDA allocation"}
        for dev in devices:
            i2v, cam, da = DiffusersI2VBackend(), WanFunCameraBackend(), DepthAnythingBackend()
            mp4 = root / f"out-{dev}.mp4"
            t_on, mem_on = _measure(i2v, _job(i2v.Params(steps=steps), width, height, frames, mp4), dev, repeat)
            plain = i2v.Params(steps=steps, noise_shaping=False)
            t_off, _ = _measure(i2v, _job(plain, width, height, frames, mp4), dev, repeat)
            cog_on = i2v.Params(model="cogvideox", steps=steps)
            t_cog, mem_cog = _measure(i2v, _job(cog_on, width, height, frames, mp4), dev, repeat)
            cog_off = i2v.Params(model="cogvideox", steps=steps, noise_shaping=False)
            t_cog_off, _ = _measure(i2v, _job(cog_off, width, height, frames, mp4), dev, repeat)
            t_cam, mem_cam = _measure(cam, _job(cam.Params(steps=steps), width, height, frames, mp4), dev, repeat)
            npy = root / f"depth-{dev}.npy"
            t_da, mem_da = _measure(da, _job(da.Params(), 518, 294, 1, npy), dev, repeat)
            out += [
                {
                    "name": f"diffusers-i2v tiny Wan + noise shaping, {size}, {dev}",
                    "value": frames / t_on,
                    "unit": "frames/s",
                    "baseline": frames / t_off,
                    "ratio": t_off / t_on,
                    "note": f"baseline: shaping off; {mem_on:.0f} MiB {mem_unit[dev[:4]]}",
                },
                {
                    "name": f"diffusers-i2v tiny CogVideoX + noise shaping, {size}, {dev}",
                    "value": frames / t_cog,
                    "unit": "frames/s",
                    "baseline": frames / t_cog_off,
                    "ratio": t_cog_off / t_cog,
                    "note": f"baseline: shaping off; {mem_cog:.0f} MiB {mem_unit[dev[:4]]}",
                },
                {
                    "name": f"wan-fun-camera tiny Wan + Plücker adapter, {size}, {dev}",
                    "value": frames / t_cam,
                    "unit": "frames/s",
                    "note": f"{mem_cam:.0f} MiB {mem_unit[dev[:4]]}",
                },
                {
                    "name": f"depth-anything tiny V2 metric, 518x294 image, {dev}",
                    "value": 1.0 / t_da,
                    "unit": "images/s",
                    "note": f"{mem_da:.0f} MiB {mem_unit[dev[:4]]}",
                },
            ]
    finally:
        if old is None:
            os.environ.pop(ENV, None)
        else:
            os.environ[ENV] = old
        shutil.rmtree(root, ignore_errors=True)
    return out
