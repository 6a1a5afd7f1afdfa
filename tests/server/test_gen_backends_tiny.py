"""Tiny random-weight models for the generative backends (built offline from constructor configs by
``parascale_tools.bench.gen_bench`` and saved with ``save_pretrained`` in the real on-disk layout;
imported by the other ``test_gen_backends*`` modules). The tests here check that layout."""

from __future__ import annotations

import os

import pytest

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

torch = pytest.importorskip("torch")
pytest.importorskip("diffusers")
pytest.importorskip("transformers")

from parascale_tools.bench.gen_bench import build_tiny_cogvideox_i2v as build_cogvideox_i2v  # noqa: E402
from parascale_tools.bench.gen_bench import build_tiny_depth_anything as build_depth_anything  # noqa: E402
from parascale_tools.bench.gen_bench import build_tiny_wan_i2v as build_wan_i2v  # noqa: E402

__all__ = ["build_cogvideox_i2v", "build_depth_anything", "build_wan_i2v"]


def test_wan_folder_has_the_diffusers_layout_and_passes_the_check(tmp_path):
    from bridge_server.backends.weights import check_diffusers_folder

    folder = build_wan_i2v(tmp_path / "wan")
    for rel in ("model_index.json", "scheduler/scheduler_config.json", "vae/config.json", "transformer/config.json"):
        assert (folder / rel).is_file(), rel
    assert (folder / "transformer/diffusion_pytorch_model.safetensors").is_file()
    index = check_diffusers_folder(folder, ("WanImageToVideoPipeline",))
    assert index["text_encoder"] == [None, None]


@pytest.mark.parametrize("patch_size_t", [None, 2], ids=["cogvideox", "cogvideox1.5"])
def test_cogvideox_folder_has_the_diffusers_layout_and_passes_the_backend_check(tmp_path, patch_size_t):
    import json

    from bridge_server.backends.diffusers_i2v import FAMILIES, I2VParams
    from bridge_server.backends.weights import WeightsError, check_diffusers_folder

    folder = build_cogvideox_i2v(tmp_path / "cog", patch_size_t=patch_size_t)
    for rel in ("model_index.json", "scheduler/scheduler_config.json", "vae/config.json", "transformer/config.json"):
        assert (folder / rel).is_file(), rel
    assert (folder / "transformer/diffusion_pytorch_model.safetensors").is_file()
    assert (folder / "prompt_embeds.safetensors").is_file()
    index = check_diffusers_folder(folder, tuple(FAMILIES))
    assert index["_class_name"] == "CogVideoXImageToVideoPipeline"
    assert index["scheduler"] == ["diffusers", "CogVideoXDDIMScheduler"]
    assert index["text_encoder"] == [None, None] and index["tokenizer"] == [None, None]
    cfg = json.loads((folder / "transformer/config.json").read_text())
    vae = json.loads((folder / "vae/config.json").read_text())
    assert cfg["in_channels"] == 2 * vae["latent_channels"], "I2V: noisy latents + image latents"
    assert cfg["patch_size_t"] == patch_size_t and vae["invert_scale_latents"] == (patch_size_t is not None)

    I2VParams.check_folder(folder)
    from bridge_server.backends.wan_fun_camera import CameraParams

    with pytest.raises(WeightsError, match="CogVideoXImageToVideoPipeline is not supported here"):
        CameraParams.check_folder(folder)  # the camera adapter hooks Wan's patch embedding only
    (folder / "model_index.json").write_text(json.dumps({**index, "_class_name": "CogVideoXPipeline"}))
    with pytest.raises(WeightsError, match="CogVideoXPipeline is not supported") as err:
        I2VParams.check_folder(folder)
    assert "WanImageToVideoPipeline" in str(err.value) and "CogVideoXImageToVideoPipeline" in str(err.value)
