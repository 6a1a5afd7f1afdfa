"""Tiny random-weight models built from the published configs in ``tests/fixtures/published`` (see
SOURCES.md there), saved in the layout each model is published in.

Only depth and width shrink (:data:`SHRINK`: layers, heads, head and hidden widths); channels,
patch sizes, sample sizes, token counts, the scheduler class and its config stay as published.
The text encoders (UMT5-XXL, T5-XXL) are left out (their tokenizers cannot be built offline):
the folders list them as absent and ship ``prompt_embeds.safetensors`` with the published token
count and width instead, which the backends accept in place of a text encoder.

The Wan-Fun Control-Camera folder is written in VideoX-Fun's original layout (``config.json``,
original Wan key names with ``control_adapter.*``, ``Wan2.1_VAE.pth``): the keys come from
diffusers' models through :func:`to_original_wan_keys` / :func:`to_original_wan_vae_keys`, the
inverses of diffusers' single-file converters; ``test_gen_backends_published`` checks at full size
that they reproduce the key-and-shape hash of the released checkpoints.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "published"
WAN_I2V = "wan2.1-i2v-14b-480p-diffusers"
COGVIDEOX = "cogvideox-5b-i2v"
WAN_FUN = "wan2.1-fun-v1.1-1.3b-control-camera"
DEPTH_ANYTHING = "depth-anything-v2-metric-indoor-small-hf"

SHRINK = {
    "wan_transformer": {"num_layers": 1, "num_attention_heads": 2, "attention_head_dim": 12, "ffn_dim": 32},
    "wan_vae": {"base_dim": 8},
    "clip_vision": {"num_hidden_layers": 1, "intermediate_size": 64},
    "cog_transformer": {"num_layers": 1, "num_attention_heads": 2, "attention_head_dim": 16, "time_embed_dim": 32},
    "cog_vae": {"block_out_channels": [4, 4, 4, 4], "layers_per_block": 1, "norm_num_groups": 2},
    # CogVideoX-5b's learned positional embedding fixes size and length: shrunk only for CPU rehearsals
    "cog_sample": {"sample_height": 16, "sample_width": 24, "sample_frames": 9},
    "fun_transformer": {"dim": 24, "num_heads": 2, "ffn_dim": 32, "num_layers": 1},
    # text encoders keep d_model (the transformers' text_dim); the vocabulary shrinks to the tokenizer's
    "t5": {"num_layers": 1, "num_heads": 2, "d_kv": 8, "d_ff": 32, "vocab_size": 64},
    "dinov2": {"hidden_size": 16, "num_hidden_layers": 4, "num_attention_heads": 2, "intermediate_size": 32}
    | {"out_indices": [1, 2, 3, 4], "out_features": ["stage1", "stage2", "stage3", "stage4"]},
    "depth_head": {"reassemble_hidden_size": 16, "neck_hidden_sizes": [8, 8, 16, 16], "fusion_hidden_size": 16},
}


def published(model: str, rel: str) -> dict:
    """A published config file as a dict."""
    return json.loads((FIXTURES / model / rel).read_text(encoding="utf-8"))


def _cfg(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def _prompt_embeds(folder: Path, tokens: int, width: int, used: int, seed: int) -> None:
    """Embeddings as the text encoders return them: ``used`` prompt tokens, zeros after (Wan) and
    a separate negative prompt's embeddings."""
    from safetensors.torch import save_file

    g = torch.Generator().manual_seed(seed)
    pe, ne = torch.zeros(1, tokens, width), torch.zeros(1, tokens, width)
    pe[:, :used] = torch.randn(1, used, width, generator=g)
    ne[:, :2] = torch.randn(1, 2, width, generator=g)
    save_file({"prompt_embeds": pe, "negative_prompt_embeds": ne}, str(folder / "prompt_embeds.safetensors"))


def wan_transformer_config() -> dict:
    cfg = _cfg(published(WAN_I2V, "transformer/config.json")) | SHRINK["wan_transformer"]
    s = SHRINK["wan_transformer"]
    return cfg | {"added_kv_proj_dim": s["num_attention_heads"] * s["attention_head_dim"]}


def wan_vae_config() -> dict:
    return _cfg(published(WAN_I2V, "vae/config.json")) | SHRINK["wan_vae"]


def build_clip(folder: Path, seed: int = 0) -> None:
    """``image_encoder/`` and ``image_processor/`` of the Wan I2V folder (CLIP ViT-H/14, shallow)."""
    from transformers import CLIPImageProcessor, CLIPVisionConfig, CLIPVisionModel

    torch.manual_seed(seed)
    cfg = {k: v for k, v in published(WAN_I2V, "image_encoder/config.json").items() if k != "architectures"}
    CLIPVisionModel(CLIPVisionConfig(**(cfg | SHRINK["clip_vision"]))).eval().save_pretrained(folder / "image_encoder")
    proc = published(WAN_I2V, "image_processor/preprocessor_config.json")
    CLIPImageProcessor(**{k: v for k, v in proc.items() if k != "image_processor_type"}).save_pretrained(
        folder / "image_processor"
    )


def build_wan_i2v_480p(folder: Path, seed: int = 0) -> Path:
    """Wan2.1-I2V-14B-480P-Diffusers: 36-channel transformer, Wan VAE, UniPC (flow_shift 3), CLIP."""
    from diffusers import AutoencoderKLWan, UniPCMultistepScheduler, WanTransformer3DModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    WanTransformer3DModel(**wan_transformer_config()).save_pretrained(folder / "transformer")
    AutoencoderKLWan(**wan_vae_config()).save_pretrained(folder / "vae")
    UniPCMultistepScheduler.from_config(published(WAN_I2V, "scheduler/scheduler_config.json")).save_pretrained(
        folder / "scheduler"
    )
    build_clip(folder, seed)
    index = published(WAN_I2V, "model_index.json") | {"text_encoder": [None, None], "tokenizer": [None, None]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    _prompt_embeds(folder, 512, wan_transformer_config()["text_dim"], 8, seed)
    return folder


def build_cogvideox_5b_i2v(folder: Path, seed: int = 0) -> Path:
    """CogVideoX-5b-I2V: learned positional embedding at 60x90 latents, 49 frames, 226 tokens; DDIM."""
    from diffusers import AutoencoderKLCogVideoX, CogVideoXDDIMScheduler, CogVideoXTransformer3DModel

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    tcfg = _cfg(published(COGVIDEOX, "transformer/config.json")) | SHRINK["cog_transformer"]
    CogVideoXTransformer3DModel(**tcfg).save_pretrained(folder / "transformer")
    vcfg = _cfg(published(COGVIDEOX, "vae/config.json")) | SHRINK["cog_vae"]
    AutoencoderKLCogVideoX(**vcfg).save_pretrained(folder / "vae")
    CogVideoXDDIMScheduler.from_config(published(COGVIDEOX, "scheduler/scheduler_config.json")).save_pretrained(
        folder / "scheduler"
    )
    index = published(COGVIDEOX, "model_index.json") | {"text_encoder": [None, None], "tokenizer": [None, None]}
    (folder / "model_index.json").write_text(json.dumps(index, indent=2))
    _prompt_embeds(folder, tcfg["max_text_seq_length"], tcfg["text_embed_dim"], 8, seed)
    return folder


# --- the original Wan layout (inverse of diffusers.loaders.single_file_utils' converters) ----------

_WAN_RENAMES = [  # diffusers' TRANSFORMER_KEYS_RENAME_DICT (convert_wan_transformer_to_diffusers), Wan 2.1 part
    ("time_embedding.0", "condition_embedder.time_embedder.linear_1"),
    ("time_embedding.2", "condition_embedder.time_embedder.linear_2"),
    ("text_embedding.0", "condition_embedder.text_embedder.linear_1"),
    ("text_embedding.2", "condition_embedder.text_embedder.linear_2"),
    ("time_projection.1", "condition_embedder.time_proj"),
    ("cross_attn", "attn2"),
    ("self_attn", "attn1"),
    (".o.", ".to_out.0."),
    (".q.", ".to_q."),
    (".k.", ".to_k."),
    (".v.", ".to_v."),
    (".k_img.", ".add_k_proj."),
    (".v_img.", ".add_v_proj."),
    (".norm_k_img.", ".norm_added_k."),
    ("modulation", "scale_shift_table"),
    ("ffn.0", "ffn.net.0.proj"),
    ("ffn.2", "ffn.net.2"),
    ("norm2", "norm__placeholder"),
    ("norm3", "norm2"),
    ("norm__placeholder", "norm3"),
    ("img_emb.proj.0", "condition_embedder.image_embedder.norm1"),
    ("img_emb.proj.1", "condition_embedder.image_embedder.ff.net.0.proj"),
    ("img_emb.proj.3", "condition_embedder.image_embedder.ff.net.2"),
    ("img_emb.proj.4", "condition_embedder.image_embedder.norm2"),
]


def to_original_wan_keys(sd: dict) -> dict:
    """A diffusers ``WanTransformer3DModel`` state dict under the original Wan key names."""
    out = {}
    for key, value in sd.items():
        if key == "scale_shift_table":
            out["head.modulation"] = value
            continue
        if key.startswith("proj_out."):
            out["head.head." + key[len("proj_out.") :]] = value
            continue
        new = key
        for original, renamed in reversed(_WAN_RENAMES):
            new = new.replace(renamed, original)
        out[new] = value
    return out


def to_original_wan_vae_keys(sd: dict) -> dict:
    """A diffusers ``AutoencoderKLWan`` (Wan 2.1: 2 residual blocks per level) state dict under the
    original ``Wan2.1_VAE.pth`` key names."""
    res = {"norm1.gamma": "residual.0.gamma", "conv1": "residual.2", "norm2.gamma": "residual.3.gamma"}
    res |= {"conv2": "residual.6", "conv_shortcut": "shortcut"}

    def resnet(rest: str) -> str:
        for a, b in res.items():
            if rest.startswith(a):
                return b + rest[len(a) :]
        return rest

    rules = [  # (diffusers key pattern, original key); first match wins
        (r"quant_conv\.(.*)", lambda m: f"conv1.{m[1]}"),
        (r"post_quant_conv\.(.*)", lambda m: f"conv2.{m[1]}"),
        (r"(encoder|decoder)\.conv_in\.(.*)", lambda m: f"{m[1]}.conv1.{m[2]}"),
        (r"(encoder|decoder)\.norm_out\.(.*)", lambda m: f"{m[1]}.head.0.{m[2]}"),
        (r"(encoder|decoder)\.conv_out\.(.*)", lambda m: f"{m[1]}.head.2.{m[2]}"),
        (
            r"(encoder|decoder)\.mid_block\.resnets\.(\d)\.(.*)",
            lambda m: f"{m[1]}.middle.{2 * int(m[2])}.{resnet(m[3])}",
        ),
        (r"(encoder|decoder)\.mid_block\.attentions\.0\.(.*)", lambda m: f"{m[1]}.middle.1.{m[2]}"),
        (r"encoder\.down_blocks\.(\d+)\.(.*)", lambda m: f"encoder.downsamples.{m[1]}.{resnet(m[2])}"),
        (
            r"decoder\.up_blocks\.(\d)\.resnets\.(\d)\.(.*)",
            lambda m: f"decoder.upsamples.{4 * int(m[1]) + int(m[2])}.{resnet(m[3])}",
        ),
        (r"decoder\.up_blocks\.(\d)\.upsamplers\.0\.(.*)", lambda m: f"decoder.upsamples.{4 * int(m[1]) + 3}.{m[2]}"),
    ]
    out = {}
    for key, value in sd.items():
        new = next((f(m) for pattern, f in rules if (m := re.fullmatch(pattern, key))), key)
        out[new] = value
    return out


def fun_config(shrink: bool = True) -> dict:
    """The Control-Camera ``config.json`` (VideoX-Fun keys), depth/width shrunk unless ``shrink`` is False."""
    cfg = published(WAN_FUN, "config.json")
    return cfg | SHRINK["fun_transformer"] if shrink else cfg


def fun_state_dicts(cfg: dict, device: str = "cpu", vae_base_dim: int | None = None) -> tuple[dict, dict]:
    """(transformer + control adapter, VAE) state dicts in the original layout for the Fun ``cfg``
    (random weights; ``device="meta"`` for shapes only). ``vae_base_dim``: the Wan VAE's width
    (default: shrunk, published 96 on the meta device)."""
    from diffusers import AutoencoderKLWan, WanTransformer3DModel

    from bridge_server.backends.wan_fun import transformer_config
    from bridge_server.backends.wan_fun_camera import CameraAdapter

    with torch.device(device):
        transformer = WanTransformer3DModel(**transformer_config(cfg))
        base_dim = vae_base_dim or (SHRINK["wan_vae"]["base_dim"] if device != "meta" else 96)
        vae = AutoencoderKLWan(**(_cfg(published(WAN_I2V, "vae/config.json")) | {"base_dim": base_dim}))
        adapter = CameraAdapter(cfg["in_dim_control_adapter"], cfg["dim"], tuple(cfg["patch_size"][1:]), 8, 1)
    sd = to_original_wan_keys(transformer.state_dict())
    sd |= {"control_adapter." + k: v for k, v in adapter.state_dict().items()}
    return sd, to_original_wan_vae_keys(vae.state_dict())


def build_wan_fun_videox(folder: Path, seed: int = 0) -> Path:
    """Wan2.1-Fun-V1.1-1.3B-Control-Camera as released (VideoX-Fun layout), shrunk; no T5/CLIP ``.pth``."""
    from safetensors.torch import save_file

    torch.manual_seed(seed)
    folder.mkdir(parents=True, exist_ok=True)
    cfg = fun_config()
    sd, vae = fun_state_dicts(cfg)
    (folder / "config.json").write_text(json.dumps(cfg, indent=2))
    save_file({k: v.contiguous() for k, v in sd.items()}, str(folder / "diffusion_pytorch_model.safetensors"))
    torch.save(vae, folder / "Wan2.1_VAE.pth")
    return folder


def key_hash(sd: dict) -> str:
    """DiffSynth-Studio's ``hash_state_dict_keys`` (keys with shapes, md5): how it recognises releases."""
    import hashlib

    keys = sorted([f"{k}:{'_'.join(map(str, v.shape))}" for k in sd for v in [sd[k]]] + list(sd))
    return hashlib.md5(",".join(keys).encode("utf-8")).hexdigest()


def shrunk_configs(dst: Path, src: Path = FIXTURES) -> Path:
    """A copy of the published configs folder ``src`` with :data:`SHRINK` applied (depth and width,
    and CogVideoX-5b's fixed sample size and length), for rehearsing ``scripts/gpu_check.py`` on a CPU."""
    import shutil

    shutil.rmtree(dst, ignore_errors=True)
    shutil.copytree(src, dst)

    def edit(rel: str, change: dict) -> None:
        path = dst / rel
        if path.is_file():
            cfg = json.loads(path.read_text(encoding="utf-8"))
            path.write_text(json.dumps(cfg | change, indent=2), encoding="utf-8")

    s = SHRINK["wan_transformer"]
    edit(
        f"{WAN_I2V}/transformer/config.json",
        s | {"added_kv_proj_dim": s["num_attention_heads"] * s["attention_head_dim"]},
    )
    edit(f"{WAN_I2V}/vae/config.json", SHRINK["wan_vae"])
    edit(f"{WAN_I2V}/image_encoder/config.json", SHRINK["clip_vision"])
    edit(f"{WAN_I2V}/text_encoder/config.json", SHRINK["t5"])
    edit(f"{COGVIDEOX}/transformer/config.json", SHRINK["cog_transformer"] | SHRINK["cog_sample"])
    edit(f"{COGVIDEOX}/vae/config.json", SHRINK["cog_vae"])
    edit(f"{COGVIDEOX}/text_encoder/config.json", SHRINK["t5"])
    edit(f"{WAN_FUN}/config.json", SHRINK["fun_transformer"])
    depth = dst / DEPTH_ANYTHING / "config.json"
    if depth.is_file():
        cfg = json.loads(depth.read_text(encoding="utf-8"))
        cfg["backbone_config"] |= SHRINK["dinov2"]
        depth.write_text(json.dumps(cfg | SHRINK["depth_head"], indent=2), encoding="utf-8")
    return dst
