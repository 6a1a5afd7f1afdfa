"""Per-model generation limits read from a diffusers folder's configs (no weights loaded).

- Wan 2.x I2V / Wan-Fun: the native size is the folder's explicit ``native_size`` in
  ``parascale_model.json`` (:data:`NATIVE_FILE`), else 832x480 (Wan 2.1 I2V 480P). Nothing in a
  diffusers Wan folder tells 480P from 720P: both transformers have the same config, and diffusers'
  converter (``scripts/convert_wan_to_diffusers.py``) writes ``flow_shift`` 3.0 for every Wan 2.1
  I2V checkpoint, so the scheduler's shift is not used. Larger sizes are capped to the native token
  count keeping the aspect; at most 81 frames (the length Wan 2.1 is trained and published to
  generate); prompt embeddings of exactly 512 tokens (``text_len`` of Wan2.1's ``WanModel``, which
  diffusers' attention hard-codes as ``len - 512`` to split image from text context): shorter ones
  are padded right with zeros, as both upstream pipelines pad. ``parascale convert-wan-fun`` writes
  1280x720 for Wan-Fun (inside its 512-1024 px training range).
- CogVideoX-5b-I2V (``use_learned_positional_embeddings``): exactly ``sample_width`` x
  ``sample_height`` latents (x8: 720x480) and ``sample_frames`` frames (49), else its learned
  positional embedding is replaced by a sinusoidal one or the pipeline raises; prompt embeddings
  of exactly ``max_text_seq_length`` tokens (226).
- CogVideoX 1.5: sizes free, ``max_text_seq_length`` tokens.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

WAN_MAX_FRAMES = 81
WAN_PROMPT_TOKENS = 512
WAN_480P, WAN_720P = (832, 480), (1280, 720)
NATIVE_FILE = "parascale_model.json"  # {"native_size": [width, height]}: a model's trained size, stated


@dataclass(frozen=True)
class ModelLimits:
    """What a model folder accepts; ``source`` names the config field each limit comes from."""

    family: str
    native_width: int | None
    native_height: int | None
    exact_size: bool
    max_frames: int | None
    exact_frames: bool
    prompt_tokens: int | None
    exact_prompt_tokens: bool
    source: str
    pad_prompt_tokens: bool = False  # shorter prompt embeddings are padded right with zeros (Wan)

    @property
    def native_pixels(self) -> int | None:
        return self.native_width * self.native_height if self.native_width and self.native_height else None

    def as_dict(self) -> dict:
        return {**asdict(self), "native_pixels": self.native_pixels}


def _json(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return {}
    return data if isinstance(data, dict) else {}


def model_limits(folder: Path) -> ModelLimits | None:
    """The limits of the diffusers pipeline in ``folder`` (None: unknown pipeline or unreadable)."""
    cls = _json(folder / "model_index.json").get("_class_name", "")
    tcfg = _json(folder / "transformer" / "config.json")
    if cls == "WanImageToVideoPipeline":
        size = native_size(folder)
        w, h = size or WAN_480P
        src = f"{NATIVE_FILE} native_size {w}x{h}" if size else f"Wan 2.1 I2V 480P (no native_size in {NATIVE_FILE})"
        return ModelLimits("wan", w, h, False, WAN_MAX_FRAMES, False, WAN_PROMPT_TOKENS, True, src, True)
    if cls == "CogVideoXImageToVideoPipeline":
        tokens = int(tcfg.get("max_text_seq_length", 226))
        if tcfg.get("use_learned_positional_embeddings"):
            w, h = 8 * int(tcfg.get("sample_width", 90)), 8 * int(tcfg.get("sample_height", 60))
            frames = int(tcfg.get("sample_frames", 49))
            src = "transformer/config.json sample_width, sample_height, sample_frames, max_text_seq_length"
            return ModelLimits("cogvideox", w, h, True, frames, True, tokens, True, src)
        return ModelLimits("cogvideox", None, None, False, None, False, tokens, True, "transformer/config.json")
    return None


def native_size(folder: Path) -> tuple[int, int] | None:
    """``native_size`` [width, height] from the folder's :data:`NATIVE_FILE` (None when absent;
    ValueError naming the file when malformed)."""
    path = folder / NATIVE_FILE
    if not path.is_file():
        return None
    value = _json(path).get("native_size")
    if not (isinstance(value, list) and len(value) == 2 and all(isinstance(v, int) and 16 <= v <= 8192 for v in value)):
        raise ValueError(f"{path}: native_size must be [width, height] in pixels (16-8192), got {value!r}")
    return value[0], value[1]


def write_native_size(folder: Path, width: int, height: int) -> None:
    """State a model's trained size in ``folder`` (:data:`NATIVE_FILE`)."""
    (folder / NATIVE_FILE).write_text(json.dumps({"native_size": [int(width), int(height)]}, indent=2) + "\n")


def capped_size(width: int, height: int, max_pixels: int, multiple: int) -> tuple[int, int]:
    """(width, height) scaled down to at most ``max_pixels`` keeping the aspect, on the ``multiple`` grid."""
    if width * height <= max_pixels:
        return width // multiple * multiple, height // multiple * multiple
    s = math.sqrt(max_pixels / (width * height))
    return max(multiple, int(width * s) // multiple * multiple), max(multiple, int(height * s) // multiple * multiple)
