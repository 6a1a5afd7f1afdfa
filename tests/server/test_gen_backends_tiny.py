"""Tiny random-weight models for the generative backends (built offline from constructor configs by
``parascale_blender.bench.gen_bench`` and saved with ``save_pretrained`` in the real on-disk layout;
imported by the other ``test_gen_backends*`` modules). The tests here check that layout."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from parascale_blender.bench.gen_bench import build_tiny_depth_anything as build_depth_anything  # noqa: E402
from parascale_blender.bench.gen_bench import build_tiny_wan_i2v as build_wan_i2v  # noqa: E402

__all__ = ["build_depth_anything", "build_wan_i2v"]


def test_wan_folder_has_the_diffusers_layout_and_passes_the_check(tmp_path):
    from bridge_server.backends.weights import check_diffusers_folder

    folder = build_wan_i2v(tmp_path / "wan")
    for rel in ("model_index.json", "scheduler/scheduler_config.json", "vae/config.json", "transformer/config.json"):
        assert (folder / rel).is_file(), rel
    assert (folder / "transformer/diffusion_pytorch_model.safetensors").is_file()
    index = check_diffusers_folder(folder, ("WanImageToVideoPipeline",))
    assert index["text_encoder"] == [None, None]
