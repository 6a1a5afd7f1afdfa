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
