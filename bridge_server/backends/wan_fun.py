"""Wan-Fun Control-Camera (VideoX-Fun): its pipeline input and the conversion of its published folder.

The transformer takes ``2 z`` input channels (32 for Wan 2.1: 16 noisy latents + 16 conditioning),
not Wan I2V's ``2 z + 4``: the conditioning holds the start image's latent in latent frame 0 and
zeros after it, with no mask channels (VideoX-Fun ``pipeline_wan_fun_control``:
``start_image_latentes_conv_in``). The camera enters through the adapter inside the transformer
(``control_adapter.*`` weights; see ``wan_fun_camera``).

The release (e.g. ``alibaba-pai/Wan2.1-Fun-V1.1-1.3B-Control-Camera``) is in the original Wan
layout, not diffusers': ``config.json`` (VideoX-Fun ``WanTransformer3DModel`` arguments: ``dim``,
``in_dim``, ``num_heads``, ...) and ``diffusion_pytorch_model*.safetensors`` with original Wan key
names, ``Wan2.1_VAE.pth``, plus the T5 and CLIP ``.pth`` files. :func:`convert_videox_fun` turns it
into a diffusers folder the backend loads: the transformer and VAE keys are renamed by diffusers'
own single-file converters, the adapter goes to ``camera_adapter.safetensors``, the scheduler is
VideoX-Fun's ``config/wan2.1/wan_civitai.yaml`` flow-matching one, and the text/image encoders
come from a diffusers Wan 2.1 I2V folder (the same UMT5-XXL and CLIP ViT-H/14 families; the
original ``.pth`` encoders are not converted).
"""

from __future__ import annotations

import functools
import json
import shutil
from pathlib import Path

import torch

from .model_limits import WAN_720P, write_native_size
from .weights import WeightsError, check_diffusers_folder

ADAPTER_FILE = "camera_adapter.safetensors"
ADAPTER_PREFIX = "control_adapter."
VAE_FILE = "Wan2.1_VAE.pth"
# VideoX-Fun config/wan2.1/wan_civitai.yaml ``scheduler_kwargs`` (its "Flow" sampler, the example's default).
SCHEDULER = {
    "_class_name": "FlowMatchEulerDiscreteScheduler",
    "num_train_timesteps": 1000,
    "shift": 5.0,
    "use_dynamic_shifting": False,
    "base_shift": 0.5,
    "max_shift": 1.15,
    "base_image_seq_len": 256,
    "max_image_seq_len": 4096,
}
# VideoX-Fun's CLIP squashes the start image to 224 x 224 (no crop) before the ViT-H/14.
CLIP_PROCESSOR = {"size": {"height": 224, "width": 224}, "do_center_crop": False}
ENCODERS = ("text_encoder", "tokenizer", "image_encoder", "image_processor")


@functools.cache
def control_pipeline_class():
    """``WanFunControlPipeline``: ``WanImageToVideoPipeline`` whose conditioning is VideoX-Fun's: the
    start image's latent in latent frame 0, zeros after, no mask channels (a ``2 z``-channel
    transformer input). Built on first use (diffusers is an optional dependency)."""
    from diffusers import WanImageToVideoPipeline
    from diffusers.utils.torch_utils import randn_tensor

    class WanFunControlPipeline(WanImageToVideoPipeline):
        def prepare_latents(self, image, batch_size, num_channels_latents=16, height=480, width=832, num_frames=81,
                            dtype=None, device=None, generator=None, latents=None, last_image=None):  # fmt: skip
            if last_image is not None:
                raise ValueError("Wan-Fun Control-Camera takes a start image only (no last image)")
            s, t = self.vae_scale_factor_spatial, self.vae_scale_factor_temporal
            shape = (batch_size, num_channels_latents, (num_frames - 1) // t + 1, height // s, width // s)
            if latents is None:
                latents = randn_tensor(shape, generator=generator, device=device, dtype=dtype)
            latents = latents.to(device=device, dtype=dtype)
            # The parent's 1-frame condition is [t mask channels, the image's normalised latent]: the image
            # alone is encoded, as VideoX-Fun does (the causal VAE's first latent frame sees frame 0 only).
            _, one = super().prepare_latents(image, batch_size, num_channels_latents, height, width, 1, dtype, device)
            condition = torch.zeros(shape, device=device, dtype=dtype)
            condition[:, :, :1] = one[:, t:].to(device, dtype)
            return latents, condition

    return WanFunControlPipeline


def transformer_config(cfg: dict) -> dict:
    """VideoX-Fun ``WanTransformer3DModel`` arguments → diffusers ``WanTransformer3DModel`` config."""
    try:
        dim, heads = int(cfg["dim"]), int(cfg["num_heads"])
        out = {
            "patch_size": list(cfg.get("patch_size", [1, 2, 2])),
            "num_attention_heads": heads,
            "attention_head_dim": dim // heads,
            "in_channels": int(cfg.get("in_dim", cfg.get("in_channels", 16))),
            "out_channels": int(cfg.get("out_dim", 16)),
            "text_dim": int(cfg.get("text_dim", 4096)),
            "freq_dim": int(cfg.get("freq_dim", 256)),
            "ffn_dim": int(cfg["ffn_dim"]),
            "num_layers": int(cfg["num_layers"]),
            "cross_attn_norm": True,
            "qk_norm": "rms_norm_across_heads",
            "eps": float(cfg.get("eps", 1e-6)),
        }
    except (KeyError, TypeError, ValueError) as e:
        raise WeightsError(f"config.json: field {e} missing or not a number (VideoX-Fun WanModel config)") from None
    if cfg.get("model_type", "i2v" if cfg.get("has_image_input") else "t2v") == "i2v":
        out.update(image_dim=1280, added_kv_proj_dim=dim)  # VideoX-Fun: img_emb = MLPProj(1280, dim)
    return out


def is_videox_fun_folder(folder: Path) -> bool:
    """The published VideoX-Fun layout: ``config.json`` + ``Wan2.1_VAE.pth`` at the top, no ``model_index.json``."""
    top = (folder / "config.json").is_file() and (folder / VAE_FILE).is_file()
    return top and not (folder / "model_index.json").exists()


def _load_safetensors(folder: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    files = sorted(folder.glob("diffusion_pytorch_model*.safetensors"))
    if not files:
        raise WeightsError(f"weights folder {folder}: missing diffusion_pytorch_model*.safetensors (the transformer)")
    sd: dict[str, torch.Tensor] = {}
    for f in files:
        try:
            sd.update(load_file(str(f)))
        except Exception as e:  # safetensors' own error type: a truncated or damaged file
            raise WeightsError(f"{f}: not a readable safetensors file ({e})") from None
    return sd


def convert_videox_fun(src: Path, dst: Path, encoders: Path | None, log=print) -> Path:
    """Write ``dst``: a diffusers Wan folder + ``camera_adapter.safetensors`` from the VideoX-Fun folder ``src``.

    ``encoders``: a diffusers Wan 2.1 I2V folder whose ``text_encoder``/``tokenizer``/``image_encoder``/
    ``image_processor`` (and ``prompt_embeds.safetensors`` where it has no text encoder) are copied.
    """
    from diffusers import AutoencoderKLWan, WanTransformer3DModel
    from diffusers.loaders.single_file_utils import convert_wan_transformer_to_diffusers, convert_wan_vae_to_diffusers
    from safetensors.torch import save_file

    src, dst = Path(src), Path(dst)
    if not is_videox_fun_folder(src):
        raise WeightsError(f"{src}: not a VideoX-Fun folder (expected config.json and {VAE_FILE}, no model_index.json)")
    if dst.exists():
        raise WeightsError(f"{dst}: already exists (choose a new folder)")
    try:
        cfg = json.loads((src / "config.json").read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{src / 'config.json'}: unreadable JSON ({e})") from None
    tcfg = transformer_config(cfg)
    index = None
    if encoders is not None:
        index = check_diffusers_folder(Path(encoders), ("WanImageToVideoPipeline",))
    elif tcfg.get("image_dim"):
        raise WeightsError(
            f"{src}: an image-conditioned Wan model needs the CLIP image encoder: pass a diffusers Wan 2.1 I2V folder "
            "(e.g. Wan2.1-I2V-14B-480P-Diffusers) for its text and image encoders"
        )

    sd = _load_safetensors(src)
    adapter = {k: v for k, v in sd.items() if k.startswith(ADAPTER_PREFIX)}
    if cfg.get("add_control_adapter") and not adapter:
        raise WeightsError(f"{src}: config.json sets add_control_adapter but no {ADAPTER_PREFIX}* tensors are stored")
    body = convert_wan_transformer_to_diffusers({k: v for k, v in sd.items() if not k.startswith(ADAPTER_PREFIX)})
    with torch.device("meta"):
        transformer = WanTransformer3DModel(**tcfg)
    try:
        missing, unexpected = transformer.load_state_dict(body, strict=False, assign=True)
    except RuntimeError as e:  # tensors of other shapes than config.json gives
        raise WeightsError(f"{src}: transformer weights do not match config.json ({str(e).splitlines()[-1]})") from None
    if missing or unexpected:
        raise WeightsError(
            f"{src}: transformer weights do not match config.json: missing {missing[:4]}, unexpected {unexpected[:4]}"
        )
    try:
        vae_sd = torch.load(src / VAE_FILE, map_location="cpu", weights_only=True)
    except Exception as e:  # pickle/zip errors of a damaged file
        raise WeightsError(f"{src / VAE_FILE}: not a readable torch checkpoint ({e})") from None
    vae_sd = vae_sd.get("state_dict", vae_sd)
    z_dim = vae_sd["conv1.weight"].shape[0] // 2 if "conv1.weight" in vae_sd else 16
    base_dim = vae_sd["encoder.conv1.weight"].shape[0] if "encoder.conv1.weight" in vae_sd else 96
    with torch.device("meta"):
        vae = AutoencoderKLWan(base_dim=base_dim, z_dim=z_dim)
    try:
        missing, unexpected = vae.load_state_dict(convert_wan_vae_to_diffusers(vae_sd), strict=False, assign=True)
    except (RuntimeError, KeyError) as e:
        raise WeightsError(f"{src / VAE_FILE}: not a Wan 2.1 VAE ({str(e).splitlines()[-1]})") from None
    if missing or unexpected:
        raise WeightsError(f"{src / VAE_FILE}: not a Wan 2.1 VAE: missing {missing[:4]}, unexpected {unexpected[:4]}")

    tmp = dst.with_name(dst.name + ".partial")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    transformer.save_pretrained(tmp / "transformer")
    vae.save_pretrained(tmp / "vae")
    (tmp / "scheduler").mkdir()
    (tmp / "scheduler" / "scheduler_config.json").write_text(json.dumps(SCHEDULER, indent=2))
    if adapter:
        save_file({k: v.contiguous() for k, v in adapter.items()}, str(tmp / ADAPTER_FILE))
    model_index = {
        "_class_name": "WanImageToVideoPipeline",
        "transformer": ["diffusers", "WanTransformer3DModel"],
        "vae": ["diffusers", "AutoencoderKLWan"],
        "scheduler": ["diffusers", "FlowMatchEulerDiscreteScheduler"],
        **{name: [None, None] for name in ENCODERS},
    }
    if index is not None:
        for name in ENCODERS:
            spec = index.get(name)
            if isinstance(spec, list) and len(spec) == 2 and spec[1]:
                shutil.copytree(Path(encoders) / name, tmp / name)
                model_index[name] = spec
        if (Path(encoders) / "prompt_embeds.safetensors").is_file():
            shutil.copy2(Path(encoders) / "prompt_embeds.safetensors", tmp / "prompt_embeds.safetensors")
        proc = tmp / "image_processor" / "preprocessor_config.json"
        if proc.is_file():
            pcfg = json.loads(proc.read_text(encoding="utf-8"))
            proc.write_text(json.dumps({**pcfg, **CLIP_PROCESSOR}, indent=2))
    (tmp / "model_index.json").write_text(json.dumps(model_index, indent=2))
    write_native_size(tmp, *WAN_720P)  # VideoX-Fun trains Wan-Fun at 512-1024 px: the 1280x720 token count
    tmp.rename(dst)
    log(f"converted {src} -> {dst} (transformer in_channels {tcfg['in_channels']}, adapter tensors {len(adapter)})")
    return dst
