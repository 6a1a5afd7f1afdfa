"""``diffusers-i2v``: a diffusers image-to-video pipeline from a local folder, steered along the
trajectory by scene-constrained noise shaping (see ``noise_shaping``).

The warp preview (``bridge_server.render``) is rendered along the trajectory at the generation
size, VAE-encoded, and pasted (noised) into the latents inside the eroded visibility mask for the
high-noise steps; latent frame 0 is the encoding of the real conditioning image. The pipeline
generates the fewest frames its VAE decodes causally that cover the trajectory (Wan: ``4k + 1``,
CogVideoX: ``8k + 1``, for a temporal stride of 4); extra frames are dropped and the video is
resized to the trajectory's size. Supported pipelines (:data:`FAMILIES`): Wan 2.x I2V
(``WanImageToVideoPipeline``; a ``2 z``-channel transformer, i.e. Wan-Fun Control-Camera, runs as
:class:`~.wan_fun.WanFunControlPipeline`) and CogVideoX / CogVideoX 1.5 I2V
(``CogVideoXImageToVideoPipeline``). Size, frame count and prompt length follow each model's limits
(``model_limits``), capped or refused with a message naming the config field. A pipeline saved
without a text encoder uses ``prompt_embeds.safetensors`` from its folder instead of the prompt.
"""

from __future__ import annotations

import inspect
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch
from pydantic import Field, field_validator

from parascale_blender.client import wire

from ..config import float64_device
from ..render import fill_holes, splat, to_uint8, unproject_image
from .base import Backend, CancelledFn, GenerationJob, JobCancelled, JobFailed, ProgressFn
from .model_limits import ModelLimits, capped_size, model_limits
from .noise_shaping import NoiseShaper, ShapingEvent, latent_mask
from .wan_fun import control_pipeline_class
from .weights import (
    PROMPT_EMBEDS,
    ModelCache,
    RuntimeParams,
    WeightsError,
    availability,
    check_diffusers_folder,
    component_dtypes,
    folder_stamp,
    memory_guard,
    model_folder,
)


@dataclass(frozen=True)
class WanFamily:
    """Wan 2.x image-to-video: latents (B, C, F', H/8, W/8), normalised by the VAE's mean/std."""

    layout: str = "BCFHW"

    def num_frames(self, pipe, n: int) -> int:
        """Frames to generate for an ``n``-frame trajectory: ``t k + 1`` (t: the VAE's temporal stride)."""
        t = pipe.vae_scale_factor_temporal
        return t * (-(-(n - 1) // t)) + 1

    def lead_frames(self, pipe, latent_frames: int) -> int:
        """Latent frames the pipeline adds in front of the video's (and drops before decoding)."""
        return 0

    def size_multiple(self, pipe) -> int:
        return pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]

    def latent_shape(self, pipe, frames: int, height: int, width: int) -> tuple[int, ...]:
        s, t = pipe.vae_scale_factor_spatial, pipe.vae_scale_factor_temporal
        return (1, pipe.vae.config.z_dim, (frames - 1) // t + 1, height // s, width // s)

    def encode(self, pipe, video: np.ndarray) -> torch.Tensor:
        """(F, H, W, 3) uint8 → normalised latents (1, C, F', h, w) in float32."""
        vae = pipe.vae
        dev = pipe._execution_device  # where the VAE runs (its offload hook moves it there)
        x = torch.as_tensor(video, device=dev).permute(3, 0, 1, 2)[None].to(vae.dtype) / 127.5 - 1.0
        z = vae.encode(x).latent_dist.mode().float()
        c = vae.config
        mean = torch.tensor(c.latents_mean, device=dev).view(1, -1, 1, 1, 1)
        std = torch.tensor(c.latents_std, device=dev).view(1, -1, 1, 1, 1)
        return (z - mean) / std

    def frame_axis(self) -> int:
        return 2

    def latents_dtype(self, pipe) -> torch.dtype:
        return torch.float32  # the pipeline denoises in float32 whatever the weights' dtype


@dataclass(frozen=True)
class CogVideoXFamily:
    """CogVideoX (1.0 and 1.5) image-to-video: latents (B, F', C, H/8, W/8), scaled by the VAE's
    ``scaling_factor`` (the pipeline decodes ``latents / scaling_factor``).

    The VAE decodes latent frames in pairs after a leading odd group, so only an odd latent count
    F' decodes causally to ``t (F' - 1) + 1`` frames (an even one gives ``t F'``, frame 0 not
    special): the clip has ``2 t k + 1`` frames. CogVideoX 1.5 (``patch_size_t`` set) needs F'
    divisible by ``patch_size_t``; its pipeline then prepends padding latent frames (conditioned on
    the image latent, dropped before decoding), which the latents we pass include and shaping
    leaves alone. ``invert_scale_latents`` (1.5) only changes the pipeline's conditioning-image
    channels, not the denoised latents shaped here.
    """

    layout: str = "BFCHW"

    def num_frames(self, pipe, n: int) -> int:
        t = pipe.vae_scale_factor_temporal
        return 2 * t * (-(-(n - 1) // (2 * t))) + 1

    def lead_frames(self, pipe, latent_frames: int) -> int:
        p = pipe.transformer.config.patch_size_t
        return -latent_frames % p if p else 0  # the pipeline's ``additional_frames``

    def size_multiple(self, pipe) -> int:
        return math.lcm(8, pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size)  # the pipeline: /8

    def latent_shape(self, pipe, frames: int, height: int, width: int) -> tuple[int, ...]:
        s, t = pipe.vae_scale_factor_spatial, pipe.vae_scale_factor_temporal
        f = (frames - 1) // t + 1
        return (1, self.lead_frames(pipe, f) + f, pipe.transformer.config.in_channels // 2, height // s, width // s)

    def encode(self, pipe, video: np.ndarray) -> torch.Tensor:
        """(F, H, W, 3) uint8 → scaled latents (1, F', C, h, w) in float32."""
        vae = pipe.vae
        dev = pipe._execution_device  # where the VAE runs (its offload hook moves it there)
        x = torch.as_tensor(video, device=dev).permute(3, 0, 1, 2)[None].to(vae.dtype) / 127.5 - 1.0
        z = vae.encode(x).latent_dist.mode().float()
        return (vae.config.scaling_factor * z).permute(0, 2, 1, 3, 4)

    def frame_axis(self) -> int:
        return 1

    def latents_dtype(self, pipe) -> torch.dtype:
        return pipe.transformer.dtype  # the pipeline uses given latents as they are


FAMILIES: dict[str, WanFamily | CogVideoXFamily] = {
    "WanImageToVideoPipeline": WanFamily(),
    "WanFunControlPipeline": WanFamily(),
    "CogVideoXImageToVideoPipeline": CogVideoXFamily(),
}
FP32_COMPONENTS = {"WanImageToVideoPipeline": ("vae", "image_encoder")}  # dtype auto: upstream runs these in fp32


# Wan2.1 ``wan/configs/shared_config.py`` ``sample_neg_prompt`` (VideoX-Fun's Wan-Fun examples use it too).
WAN_NEGATIVE_PROMPT = (
    "色调艳丽，过曝，静态，细节模糊不清，字幕，风格，作品，画作，画面，静止，整体发灰，最差质量，低质量，JPEG压缩残留，"
    "丑陋的，残缺的，多余的手指，画得不好的手部，画得不好的脸部，畸形的，毁容的，形态畸形的肢体，手指融合，"
    "静止不动的画面，杂乱的背景，三条腿，背景人很多，倒着走"
)


@dataclass(frozen=True)
class SamplingDefaults:
    """What a released model's own inference code samples with, unless the job says otherwise."""

    steps: int
    guidance_scale: float
    negative_prompt: str
    source: str


class I2VParams(RuntimeParams):
    """Parameters of ``diffusers-i2v``. ``steps``, ``guidance_scale`` and ``negative_prompt`` left
    unset take the model family's upstream values (:attr:`SAMPLING`)."""

    backend_folder: ClassVar[str] = wire.DIFFUSERS_I2V
    # Wan2.1 generate.py: sample_steps 40 for i2v, sample_guide_scale 5.0; CogVideoX: its diffusers pipeline's
    # (and cli_demo's) 50 steps, guidance 6, no negative prompt.
    SAMPLING: ClassVar[dict[str, SamplingDefaults]] = {
        "wan": SamplingDefaults(40, 5.0, WAN_NEGATIVE_PROMPT, "Wan2.1 generate.py / shared_config.py"),
        "cogvideox": SamplingDefaults(50, 6.0, "", "CogVideoX pipeline defaults"),
    }

    prompt: str = Field("", max_length=4000, description="text prompt (ignored when the folder has no text encoder)")
    negative_prompt: str | None = Field(
        None, max_length=4000, description="default: the model's released one (Wan: Wan2.1's; CogVideoX: none)"
    )
    steps: int | None = Field(
        None,
        ge=1,
        le=500,
        description="denoising steps (default: upstream's: Wan 2.1 I2V 40, CogVideoX 50, Wan-Fun 50)",
    )
    guidance_scale: float | None = Field(
        None, ge=0.0, le=50.0, allow_inf_nan=False, description="default: upstream's (Wan 5, CogVideoX 6, Wan-Fun 6)"
    )
    seed: int = Field(0, ge=0, le=2**63 - 1)
    width: int | None = Field(
        None, ge=16, le=4096, description="generation width (default: the trajectory's, capped to max_pixels)"
    )
    height: int | None = Field(
        None, ge=16, le=4096, description="generation height (default: the trajectory's, capped to max_pixels)"
    )
    max_pixels: int | None = Field(
        None, ge=256, le=4096 * 4096, description="cap on width x height (default: the model's native size)"
    )
    max_frames: int | None = Field(
        None, ge=1, le=100000, description="refuse longer trajectories (default: the model's trained length)"
    )
    noise_shaping: bool = Field(True, description="paste the noised warp preview into the high-noise latents")
    shaping_threshold: float = Field(
        0.9,
        ge=0.0,
        le=1.0,
        allow_inf_nan=False,
        description="shape while the latents' noise level sigma >= this (flow sigma; DDPM schedulers: the flow "
        "sigma of the same signal-to-noise ratio), the same strength for every family",
    )
    erode_px: int = Field(8, ge=0, le=256, description="erode the preview's visibility mask by this many pixels")
    sky: bool = Field(True, description="preview: pixels without depth are infinitely far")
    crf: int = Field(18, ge=0, le=51, description="H.264 constant rate factor")

    @classmethod
    def check_folder(cls, folder: Path) -> None:
        check_diffusers_folder(folder, tuple(FAMILIES))

    @field_validator("model")
    @classmethod
    def _weights_present(cls, model: str) -> str:
        cls.check_folder(model_folder(cls.backend_folder, model))
        return model


_CACHE = ModelCache()


def with_sampling_defaults(p: I2VParams, limits: ModelLimits | None, log: Callable[[str], None] = print) -> I2VParams:
    """``p`` with unset ``steps``/``guidance_scale``/``negative_prompt`` taken from the family's upstream values."""
    d = p.SAMPLING.get(limits.family if limits is not None else "", SamplingDefaults(30, 5.0, "", "generic"))
    fill = {k: getattr(d, k) for k in ("steps", "guidance_scale", "negative_prompt") if getattr(p, k) is None}
    if fill:
        shown = ", ".join(
            f"{k} {'(released negative prompt)' if k == 'negative_prompt' and v else v}" for k, v in fill.items()
        )
        log(f"sampling defaults from {d.source}: {shown}")
    return p.model_copy(update=fill)


def pipeline_class(folder: Path, index: dict):
    """The class to load ``folder`` with: its ``_class_name``, except a Wan I2V folder whose transformer
    takes ``2 z`` channels (no mask channels: Wan-Fun Control-Camera) loads as :class:`WanFunControlPipeline`."""
    import diffusers

    cls = index["_class_name"]
    if cls == "WanImageToVideoPipeline":
        tcfg = json.loads((folder / "transformer" / "config.json").read_text(encoding="utf-8"))
        vcfg = json.loads((folder / "vae" / "config.json").read_text(encoding="utf-8"))
        if tcfg.get("in_channels") == 2 * vcfg.get("z_dim", 16):
            return control_pipeline_class()
    return getattr(diffusers, cls)


def squash_clip_input(pipe, log: Callable[[str], None] = print) -> None:
    """Wan I2V's CLIP sees the whole start image squashed to its input size, as Wan2.1 does
    (``wan/modules/clip.py``: ``F.interpolate(..., size=(224, 224), mode="bicubic")``), not the
    shortest-edge resize and centre crop the published ``image_processor`` config asks for (which
    drops the sides of every wide shot)."""
    proc = getattr(pipe, "image_processor", None)
    if type(pipe).__name__ not in ("WanImageToVideoPipeline", "WanFunControlPipeline") or proc is None:
        return
    if getattr(proc, "do_center_crop", False):
        crop = getattr(proc, "crop_size", None) or {"height": 224, "width": 224}
        proc.size, proc.do_center_crop = {"height": crop["height"], "width": crop["width"]}, False
        log(f"CLIP input: the start image squashed to {crop['width']}x{crop['height']} (Wan2.1's), not centre-cropped")


def load_pipeline(folder: Path, device: str, p: RuntimeParams, log: Callable[[str], None]):
    """The pipeline in ``folder`` on ``device`` with ``p``'s dtype and memory options (cached)."""
    index = check_diffusers_folder(folder, tuple(FAMILIES))
    dtypes = component_dtypes(p.dtype, device, FP32_COMPONENTS.get(index["_class_name"], ()))
    key = (str(folder), folder_stamp(folder), device, p.dtype, p.cpu_offload, p.vae_tiling, p.attention_slicing)

    def load():
        cls = pipeline_class(folder, index)
        absent = {k: None for k, v in index.items() if not k.startswith("_") and isinstance(v, list) and not v[1]}
        with memory_guard(device, f"loading {folder}"):
            pipe = cls.from_pretrained(folder, dtype=dtypes, local_files_only=True, **absent)
            if p.cpu_offload and device.startswith("cuda"):
                pipe.enable_model_cpu_offload(device=device)
            else:
                if p.cpu_offload:
                    log(f"cpu_offload ignored on {device}")
                pipe.to(device)
        if p.attention_slicing:
            try:
                pipe.enable_attention_slicing()
            except Exception as e:  # pipelines on the attention dispatcher do not slice
                log(f"attention_slicing not supported by {type(pipe).__name__}: {e}")
        if p.vae_tiling and hasattr(pipe.vae, "enable_tiling"):
            pipe.vae.enable_tiling()
        squash_clip_input(pipe, log)
        pipe.set_progress_bar_config(disable=True)
        dts = {n: str(m.dtype).removeprefix("torch.") for n, m in pipe.components.items() if hasattr(m, "dtype")}
        names = ", ".join(f"{n} {d}" for n, d in dts.items())
        log(f"loaded {type(pipe).__name__} from {folder} on {device} (dtype {p.dtype}: {names})")
        return pipe

    return _CACHE.get(key, load, slot=device)


def prompt_kwargs(pipe, folder: Path, p: I2VParams, device: str, limits: ModelLimits | None = None) -> dict:
    """``prompt`` for pipelines with a text encoder, else embeddings from ``prompt_embeds.safetensors``
    (token count checked against ``limits``: CogVideoX needs exactly ``max_text_seq_length``)."""
    if getattr(pipe, "text_encoder", None) is not None:
        kw = {"prompt": p.prompt, "negative_prompt": p.negative_prompt}
        return kw | ({"max_sequence_length": limits.prompt_tokens} if limits and limits.prompt_tokens else {})
    from safetensors.torch import load_file

    path = folder / PROMPT_EMBEDS
    if not path.is_file():
        raise WeightsError(f"weights folder {folder}: missing {PROMPT_EMBEDS} (the pipeline has no text encoder)")
    tensors = load_file(str(path), device=device)
    if "prompt_embeds" not in tensors:
        raise WeightsError(f"{path}: no tensor 'prompt_embeds' (has {', '.join(sorted(tensors)) or 'none'})")
    dtype = pipe.transformer.dtype  # CogVideoX computes in the embeddings' dtype
    pe = tensors["prompt_embeds"].to(dtype)
    embeds = {"prompt_embeds": pe}
    if p.guidance_scale > 1.0:  # classifier-free guidance runs the negative branch
        if "negative_prompt_embeds" not in tensors:
            raise WeightsError(
                f"{path}: no tensor 'negative_prompt_embeds' (the negative or empty prompt's embeddings, needed for "
                f"guidance_scale {p.guidance_scale} > 1; zeros are not the empty prompt's embeddings)"
            )
        embeds["negative_prompt_embeds"] = tensors["negative_prompt_embeds"].to(dtype)
    if limits is not None and limits.prompt_tokens:
        for name, t in list(embeds.items()):
            n = t.shape[1] if t.ndim == 3 else -1
            if n < limits.prompt_tokens and n >= 1 and limits.pad_prompt_tokens:
                # Wan: the text context is exactly 512 tokens (zeros after the prompt's, as upstream pads)
                embeds[name] = torch.nn.functional.pad(t, (0, 0, 0, limits.prompt_tokens - n))
                continue
            if (limits.exact_prompt_tokens and n != limits.prompt_tokens) or n > limits.prompt_tokens or n < 1:
                need = "exactly" if limits.exact_prompt_tokens and not limits.pad_prompt_tokens else "at most"
                raise WeightsError(
                    f"{path}: {name} has shape {tuple(t.shape)}; the model takes (1, tokens, width) with {need} "
                    f"{limits.prompt_tokens} tokens ({limits.source})"
                )
    return embeds


def generation_size(
    pipe, traj_w: int, traj_h: int, p: I2VParams, limits: ModelLimits | None = None, log: Callable[[str], None] = print
) -> tuple[int, int]:
    """(width, height) on the latent patch grid: the model's fixed size where it has one, else the
    requested (or trajectory's) size capped to ``max_pixels`` (default: the model's native token
    count) keeping the aspect. Every change is logged with the config field it comes from."""
    m = FAMILIES[type(pipe).__name__].size_multiple(pipe)
    want_w, want_h = p.width or traj_w, p.height or traj_h
    if limits is not None and limits.exact_size:
        w, h = limits.native_width, limits.native_height
        if (want_w, want_h) != (w, h):
            log(f"generation size {want_w}x{want_h} -> {w}x{h}: the model runs at this size only ({limits.source})")
        return w, h
    cap = p.max_pixels or (limits.native_pixels if limits is not None else None)
    w, h = capped_size(want_w, want_h, cap, m) if cap else (want_w // m * m, want_h // m * m)
    if w < m or h < m:
        raise ValueError(f"generation size {want_w}x{want_h} is below one latent patch ({m} px)")
    if cap and want_w * want_h > cap:
        native = f"{limits.native_width}x{limits.native_height}" if limits is not None else ""
        why = "max_pixels" if p.max_pixels else f"the model's native {native}, {limits.source}"
        log(f"generation size {want_w}x{want_h} capped to {w}x{h} ({cap} pixels: {why}; set max_pixels to change)")
    return w, h


def check_frames(n: int, p: I2VParams, limits: ModelLimits | None) -> None:
    """:class:`JobFailed` when an ``n``-frame trajectory is longer than the model (or ``max_frames``) allows."""
    cap = p.max_frames or (limits.max_frames if limits is not None else None)
    if cap and n > cap:
        src = "max_frames" if p.max_frames else limits.source
        raise JobFailed(
            f"the trajectory has {n} frames; this model generates at most {cap} ({src}): split the shot into "
            f"pieces of at most {cap} frames" + ("" if p.max_frames else " or raise max_frames")
        )


def generation_frames(family, pipe, n: int, p: I2VParams, limits: ModelLimits | None) -> int:
    """Frames to generate for an ``n``-frame trajectory (the model's fixed count where it has one)."""
    check_frames(n, p, limits)
    if limits is not None and limits.exact_frames:
        return limits.max_frames
    return family.num_frames(pipe, n)


def content_box(width: int, height: int, W: int, H: int, step: int = 8) -> tuple[int, int, int, int] | None:
    """(x0, y0, w, h): where a ``width`` x ``height`` shot sits, aspect kept, centred, on a model's fixed
    ``W`` x ``H`` canvas (edges on the VAE's ``step`` grid so latent cells do not straddle a bar);
    None when the shot already has the canvas's aspect (within one ``step``)."""
    s = min(W / width, H / height)
    w = min(W, max(step, round(width * s / step) * step))
    h = min(H, max(step, round(height * s / step) * step))
    if (w, h) == (W, H):
        return None
    return (W - w) // 2 // step * step, (H - h) // 2 // step * step, w, h


def to_canvas(frames: np.ndarray, box: tuple[int, int, int, int], W: int, H: int, fill=0) -> np.ndarray:
    """(F, h, w, ...) → (F, H, W, ...) with ``frames`` at ``box`` and ``fill`` around (the bars)."""
    x0, y0, w, h = box
    out = np.full((frames.shape[0], H, W, *frames.shape[3:]), fill, dtype=frames.dtype)
    out[:, y0 : y0 + h, x0 : x0 + w] = frames
    return out


def render_preview(job: GenerationJob, c2w: np.ndarray, width: int, height: int, sky: bool, cancelled: CancelledFn):
    """Warp preview frames (F, H, W, 3) uint8 and visibility (F, H, W) bool at ``width`` x ``height``."""
    traj = job.trajectory
    h, w = job.depth.shape
    frames, visible = [], []
    with torch.inference_mode():
        cam0 = traj.camera(0).scaled_to(w, h)
        cloud = unproject_image(job.image, job.depth, traj.c2w[0], cam0, sky=sky, device=float64_device(job.device))
        for i, pose in enumerate(c2w):
            if cancelled():
                raise JobCancelled(f"cancelled while rendering the preview (frame {i + 1} of {len(c2w)})")
            cam = traj.camera(min(i, len(traj) - 1)).scaled_to(width, height)
            rgb, zbuf = splat(cloud, pose, cam)
            visible.append(torch.isfinite(zbuf).cpu().numpy())
            frames.append(to_uint8(fill_holes(rgb, zbuf)))
    return np.stack(frames), np.stack(visible)


def write_video(job: GenerationJob, frames: np.ndarray, crf: int) -> None:
    """(F, h, w, 3) float [0, 1] → the trajectory's size (even) as H.264."""
    import cv2

    from ..video import Mp4Writer

    traj = job.trajectory
    W, H = traj.width - traj.width % 2, traj.height - traj.height % 2
    with Mp4Writer(job.output, W, H, traj.fps, crf=crf) as mp4:
        for f in frames[: len(traj)]:
            img = (np.clip(f, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
            if img.shape[:2] != (traj.height, traj.width):
                img = cv2.resize(img, (traj.width, traj.height), interpolation=cv2.INTER_AREA)
            mp4.write(img[:H, :W])


def run_pipeline(
    job: GenerationJob,
    progress: ProgressFn,
    cancelled: CancelledFn,
    pipe,
    folder: Path,
    p: I2VParams,
    shaping_hook: Callable[[ShapingEvent], None] | None = None,
    size: tuple[int, int] | None = None,
) -> np.ndarray:
    """Generate the clip; returns frames (F_gen, H, W, 3) float in [0, 1]. ``size``: the (width,
    height) the caller already chose with :func:`generation_size` (default: chosen here)."""
    import cv2
    from PIL import Image

    family = FAMILIES[type(pipe).__name__]
    traj = job.trajectory
    limits = model_limits(folder)
    p = with_sampling_defaults(p, limits, job.log)
    W, H = size or generation_size(pipe, traj.width, traj.height, p, limits, job.log)
    # A fixed-size model (CogVideoX-5b) gets the shot with its aspect kept, black bars around,
    # instead of stretched to its size; the bars are cut off the result (then resized to the shot's size).
    box = content_box(traj.width, traj.height, W, H) if limits is not None and limits.exact_size else None
    cw, ch = (box[2], box[3]) if box else (W, H)
    if box:
        job.log(f"aspect kept: the {traj.width}x{traj.height} shot fills {cw}x{ch} of {W}x{H} (black bars, cut after)")
    image = cv2.resize(job.image, (cw, ch), interpolation=cv2.INTER_AREA)
    image = to_canvas(image[None], box, W, H)[0] if box else image
    t_stride = pipe.vae_scale_factor_temporal
    n = len(traj)
    n_gen = generation_frames(family, pipe, n, p, limits)
    lead = family.lead_frames(pipe, (n_gen - 1) // t_stride + 1)
    job.log(f"{type(pipe).__name__}: {n_gen} frames at {W}x{H} for a {n}-frame trajectory, {p.steps} steps")
    if lead:
        job.log(f"the pipeline adds {lead} padding latent frame(s) in front (patch_size_t); not shaped")
    dev = job.device if not p.cpu_offload else "cpu"
    gen = torch.Generator(device="cpu").manual_seed(p.seed)
    shape = family.latent_shape(pipe, n_gen, H, W)
    noise = torch.randn(shape, generator=gen, dtype=torch.float32).to(dev)
    shaper = None
    if p.noise_shaping:
        c2w = np.concatenate([traj.c2w, np.repeat(traj.c2w[-1:], n_gen - n, axis=0)])
        video, visible = render_preview(job, c2w, cw, ch, p.sky, cancelled)
        if box:  # the bars are known exactly: pasted too, so they stay black
            video, visible = to_canvas(video, box, W, H), to_canvas(visible, box, W, H, fill=True)
        progress(0.05, "preview rendered")
        with torch.inference_mode(), memory_guard(job.device, "encoding the preview"):
            preview = family.encode(pipe, video).to(dev)
            first = family.encode(pipe, image[None])
            preview.narrow(family.frame_axis(), 0, 1).copy_(first.to(dev))  # latent 0: the real image
            if lead:
                pad = torch.zeros_like(preview.narrow(family.frame_axis(), 0, 1))
                preview = torch.cat([pad] * lead + [preview], dim=family.frame_axis())
        m = latent_mask(visible, p.erode_px, pipe.vae_scale_factor_spatial, t_stride)
        job.log(f"noise shaping: visible latent cells {100 * m[1:].mean() if len(m) > 1 else 100:.0f}%")
        m = np.concatenate([np.zeros((lead, *m.shape[1:]), m.dtype), m])  # padding latents: left alone
        mask = torch.as_tensor(m, device=dev)[None, None]  # (1, 1, F', h, w)
        if family.layout == "BFCHW":
            mask = mask.transpose(1, 2)

        def hook(ev: ShapingEvent) -> None:
            job.log(f"noise shaping: step {ev.step} t={ev.t:.3f} {'applied' if ev.applied else 'skipped'}")
            if shaping_hook is not None:
                shaping_hook(ev)

        shaper = NoiseShaper(pipe.scheduler, preview, mask, noise, p.shaping_threshold, hook)
    steps_done = [0]

    def on_step_end(pipe_, step: int, timestep, kwargs: dict) -> dict:
        if shaper is not None:
            kwargs = shaper.callback(pipe_, step, timestep, kwargs)
        steps_done[0] = step + 1
        progress(0.05 + 0.85 * (step + 1) / p.steps, f"step {step + 1}/{p.steps}")
        if cancelled() and step + 1 < p.steps:
            raise JobCancelled(f"cancelled after denoising step {step + 1} of {p.steps}")
        return kwargs

    latents = noise
    if shaper is not None:
        # The scheduler's schedule is only known after set_timesteps; the pipeline calls it again.
        pipe.scheduler.set_timesteps(p.steps, device=dev)
        # The pipeline multiplies the latents it is given by init_noise_sigma (1 for DDPM-family and
        # flow-matching schedulers): shape the initial latents at their real scale.
        sigma0 = float(getattr(pipe.scheduler, "init_noise_sigma", 1.0))
        latents = shaper.shape(noise * sigma0, -1) / sigma0
    kwargs = {
        "image": Image.fromarray(image),
        "height": H,
        "width": W,
        "num_frames": n_gen,
        "num_inference_steps": p.steps,
        "guidance_scale": p.guidance_scale,
        "generator": gen,
        "latents": latents.to(family.latents_dtype(pipe)),
        "output_type": "np",
        "callback_on_step_end": on_step_end,
        "callback_on_step_end_tensor_inputs": ["latents"],
        **prompt_kwargs(pipe, folder, p, dev, limits),
    }
    accepted = inspect.signature(pipe.__call__).parameters
    missing = [k for k in ("image", "num_frames", "latents", "callback_on_step_end") if k not in accepted]
    if missing:
        raise WeightsError(f"{type(pipe).__name__} is not an image-to-video pipeline (no {', '.join(missing)})")
    if cancelled():
        raise JobCancelled("cancelled before denoising")
    with memory_guard(job.device, f"{n_gen} frames at {W}x{H}"):
        out = pipe(**{k: v for k, v in kwargs.items() if k in accepted})
    if shaper is not None and not [s for s in shaper.applied_steps if shaper.level(s + 1) < 1.0]:
        job.log(
            f"noise shaping had no effect: no latent level below 1 reached t >= {p.shaping_threshold} "
            "(use more steps or a lower shaping_threshold)"
        )
    frames = np.asarray(out.frames)[0]
    if box:
        x0, y0, w, h = box
        frames = frames[:, y0 : y0 + h, x0 : x0 + w]
    if frames.shape[0] != n_gen:
        job.log(f"pipeline returned {frames.shape[0]} frames, expected {n_gen}")
    if frames.shape[0] < n:
        raise RuntimeError(f"the pipeline returned {frames.shape[0]} frames for a {n}-frame trajectory")
    return frames


class DiffusersI2VBackend(Backend):
    name = wire.DIFFUSERS_I2V
    description = (
        "A diffusers image-to-video pipeline (Wan 2.x I2V, CogVideoX I2V) from local weights, steered by noise shaping"
    )
    Params = I2VParams
    shaping_hook: Callable[[ShapingEvent], None] | None = None  # tests observe the shaping here

    def available(self) -> tuple[bool, str]:
        return availability(self.Params.backend_folder, self.Params.check_folder)

    def weights_present(self) -> bool:
        return self.available()[0]

    def parameters_schema(self) -> dict:
        """The params schema plus ``x-model-defaults``: the default model's limits (size, frames,
        prompt tokens and the config fields they come from), or null when it is absent."""
        schema = super().parameters_schema()
        try:
            folder = model_folder(self.Params.backend_folder, "default")
        except WeightsError:
            folder = None
        limits = model_limits(folder) if folder is not None and folder.is_dir() else None
        schema["x-model-defaults"] = limits.as_dict() if limits is not None else None
        return schema

    def check_job(self, params, shape: dict) -> None:
        """Frame cap from the model's configs (:func:`~.model_limits.model_limits`), before any weights load."""
        folder = model_folder(params.backend_folder, params.model)
        try:
            limits = model_limits(folder)
        except ValueError as e:
            raise JobFailed(str(e)) from None
        check_frames(int(shape.get("frames", 1)), params, limits)

    def generate(self, job: GenerationJob, progress: ProgressFn, cancelled: CancelledFn) -> None:
        p: I2VParams = job.params  # type: ignore[assignment]
        folder = model_folder(p.backend_folder, p.model)
        check_frames(len(job.trajectory), p, model_limits(folder))  # before any weights load
        pipe = load_pipeline(folder, job.device, p, job.log)
        frames = run_pipeline(job, progress, cancelled, pipe, folder, p, self.shaping_hook)
        write_video(job, frames, p.crf)
        progress(1.0, "done")
