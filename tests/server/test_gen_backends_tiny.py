"""Tiny random-weight models for the generative backends, built offline from constructor configs
and saved with ``save_pretrained`` in the real on-disk layout (also imported by the other
``test_gen_backends*`` modules). The tests here check the layout the backends' loaders expect."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

Z_DIM = 4
TEXT_DIM = 16
INNER_DIM = 24  # 2 heads x 12


def build_wan_i2v(folder: Path, seed: int = 0) -> Path:
    """A Wan image-to-video pipeline (no text/image encoder) + ``prompt_embeds.safetensors``."""
    from diffusers import (
        AutoencoderKLWan,
        FlowMatchEulerDiscreteScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from safetensors.torch import save_file

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
    transformer = WanTransformer3DModel(
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
    pipe = WanImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=vae,
        scheduler=FlowMatchEulerDiscreteScheduler(shift=3.0),
        transformer=transformer,
    )
    pipe.save_pretrained(folder)
    g = torch.Generator().manual_seed(seed)
    save_file(
        {"prompt_embeds": torch.randn(1, 8, TEXT_DIM, generator=g), "negative_prompt_embeds": torch.zeros(1, 8, 16)},
        str(folder / "prompt_embeds.safetensors"),
    )
    return folder


def build_depth_anything(folder: Path, metric: bool, seed: int = 0) -> Path:
    """A Depth Anything V2 model (tiny DINOv2 backbone) and its image processor."""
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


def test_wan_folder_has_the_diffusers_layout_and_passes_the_check(tmp_path):
    from bridge_server.backends.weights import check_diffusers_folder

    folder = build_wan_i2v(tmp_path / "wan")
    for rel in ("model_index.json", "scheduler/scheduler_config.json", "vae/config.json", "transformer/config.json"):
        assert (folder / rel).is_file(), rel
    assert (folder / "transformer/diffusion_pytorch_model.safetensors").is_file()
    index = check_diffusers_folder(folder, ("WanImageToVideoPipeline",))
    assert index["text_encoder"] == [None, None]
