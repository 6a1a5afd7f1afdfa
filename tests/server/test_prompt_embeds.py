"""Prompt embeddings of folders saved without a text encoder (``prompt_embeds.safetensors``): the
negative branch of classifier-free guidance needs the negative (or empty) prompt's embeddings;
zeros are not the empty prompt's embeddings, so a file without them is refused when guidance runs."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")
from test_gen_backends_tiny import build_wan_i2v  # noqa: E402

from bridge_server.backends.diffusers_i2v import I2VParams, load_pipeline, prompt_kwargs  # noqa: E402
from bridge_server.backends.weights import PROMPT_EMBEDS, RuntimeParams, WeightsError  # noqa: E402


@pytest.fixture(scope="module")
def folder(tmp_path_factory):
    return build_wan_i2v(tmp_path_factory.mktemp("w") / "wan")


def test_missing_negative_embeddings_are_refused_when_guidance_runs(folder):
    from safetensors.torch import load_file, save_file

    pipe = load_pipeline(folder, "cpu", RuntimeParams.model_construct(dtype="fp32"), lambda m: None)
    saved = load_file(str(folder / PROMPT_EMBEDS))
    kw = prompt_kwargs(pipe, folder, I2VParams.model_construct(guidance_scale=5.0), "cpu")
    assert torch.equal(kw["negative_prompt_embeds"], saved["negative_prompt_embeds"])

    save_file({"prompt_embeds": saved["prompt_embeds"]}, str(folder / PROMPT_EMBEDS))
    with pytest.raises(WeightsError, match=r"prompt_embeds.safetensors: no tensor 'negative_prompt_embeds'"):
        prompt_kwargs(pipe, folder, I2VParams.model_construct(guidance_scale=5.0), "cpu")
    kw = prompt_kwargs(pipe, folder, I2VParams.model_construct(guidance_scale=1.0), "cpu")  # no guidance
    assert set(kw) == {"prompt_embeds"} and torch.equal(kw["prompt_embeds"], saved["prompt_embeds"])


def test_wan_takes_exactly_512_text_tokens_short_ones_padded_right_with_zeros(tmp_path):
    """diffusers' Wan attention splits the context as ``len - 512`` image tokens then text, and both
    upstream pipelines (diffusers ``_get_t5_prompt_embeds``, Wan2.1 ``WanModel.forward``) pad the
    prompt's tokens to 512 with zeros on the right: shorter embeddings are padded the same way (not
    passed on, which would count text tokens as image context); longer ones are refused."""
    from safetensors.torch import load_file, save_file

    from bridge_server.backends.model_limits import model_limits

    folder = build_wan_i2v(tmp_path / "wan")
    pipe = load_pipeline(folder, "cpu", RuntimeParams.model_construct(dtype="fp32"), lambda m: None)
    limits = model_limits(folder)
    assert limits.prompt_tokens == 512 and limits.exact_prompt_tokens
    saved = load_file(str(folder / PROMPT_EMBEDS))
    width = saved["prompt_embeds"].shape[2]
    short = torch.randn(1, 300, width)
    save_file({"prompt_embeds": short, "negative_prompt_embeds": short[:, :7].clone()}, str(folder / PROMPT_EMBEDS))
    kw = prompt_kwargs(pipe, folder, I2VParams.model_construct(guidance_scale=5.0), "cpu", limits)
    assert kw["prompt_embeds"].shape == (1, 512, width)
    assert torch.equal(kw["prompt_embeds"], torch.cat([short, torch.zeros(1, 212, width)], dim=1))
    neg = kw["negative_prompt_embeds"]
    assert neg.shape == (1, 512, width) and torch.equal(neg[:, :7], short[:, :7]) and not neg[:, 7:].any()

    save_file({"prompt_embeds": torch.randn(1, 600, width)}, str(folder / PROMPT_EMBEDS))
    with pytest.raises(WeightsError, match=r"prompt_embeds has shape \(1, 600, .*at most 512 tokens"):
        prompt_kwargs(pipe, folder, I2VParams.model_construct(guidance_scale=1.0), "cpu", limits)


def test_wan_clip_sees_the_whole_start_image_squashed_not_centre_cropped(tmp_path):
    """Wan2.1's CLIP input is the start image interpolated to 224x224 (the whole frame); the published
    processor config would keep only the middle of a wide shot. Four colour stripes of a 2:1 image:
    all four reach CLIP, each a quarter of its width."""
    import numpy as np
    from PIL import Image
    from published_models import build_wan_i2v_480p  # the published CLIP processor config

    folder = build_wan_i2v_480p(tmp_path / "wan480p")
    logs: list[str] = []
    pipe = load_pipeline(folder, "cpu", RuntimeParams.model_construct(dtype="fp32"), logs.append)
    assert any("squashed to 224x224" in line for line in logs), logs
    colours = [(255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 255)]
    img = np.zeros((224, 448, 3), np.uint8)
    for i, c in enumerate(colours):
        img[:, 112 * i : 112 * (i + 1)] = c
    x = pipe.image_processor(images=Image.fromarray(img), return_tensors="pt").pixel_values[0]
    assert x.shape == (3, 224, 224)
    mean = torch.tensor(pipe.image_processor.image_mean)[:, None]
    std = torch.tensor(pipe.image_processor.image_std)[:, None]
    for i, c in enumerate(colours):
        centre = x[:, 112, 56 * i + 28] * std[:, 0] + mean[:, 0]
        assert torch.allclose(centre, torch.tensor(c, dtype=torch.float32) / 255, atol=0.02), (i, centre)
