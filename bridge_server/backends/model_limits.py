"""Per-model generation limits read from a diffusers folder's configs (no weights loaded).

- Wan 2.x I2V / Wan-Fun: the native size follows the scheduler's shift, as diffusers' conversion
  sets it (``scripts/convert_wan_to_diffusers.py``: ``flow_shift`` 3.0 for the 480P checkpoints,
  5.0 for 720P): 832x480 or 1280x720. Larger sizes are capped to that token count keeping the
  aspect; at most 81 frames (the length Wan 2.1 is trained and published to generate); prompt
  embeddings of at most 512 tokens (the pipelines' ``max_sequence_length``). Wan-Fun as converted
  (VideoX-Fun's scheduler shift 5.0) gets the 1280x720 cap, inside its 512-1024 px training range.
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
        sched = _json(folder / "scheduler" / "scheduler_config.json")
        field = "flow_shift" if "flow_shift" in sched else "shift"
        shift = float(sched.get(field, 3.0) or 3.0)
        w, h = WAN_480P if shift <= 3.0 else WAN_720P
        src = f"scheduler/scheduler_config.json {field} {shift:g} ({h}P)"
        return ModelLimits("wan", w, h, False, WAN_MAX_FRAMES, False, WAN_PROMPT_TOKENS, False, src)
    if cls == "CogVideoXImageToVideoPipeline":
        tokens = int(tcfg.get("max_text_seq_length", 226))
        if tcfg.get("use_learned_positional_embeddings"):
            w, h = 8 * int(tcfg.get("sample_width", 90)), 8 * int(tcfg.get("sample_height", 60))
            frames = int(tcfg.get("sample_frames", 49))
            src = "transformer/config.json sample_width, sample_height, sample_frames, max_text_seq_length"
            return ModelLimits("cogvideox", w, h, True, frames, True, tokens, True, src)
        return ModelLimits("cogvideox", None, None, False, None, False, tokens, True, "transformer/config.json")
    return None


def capped_size(width: int, height: int, max_pixels: int, multiple: int) -> tuple[int, int]:
    """(width, height) scaled down to at most ``max_pixels`` keeping the aspect, on the ``multiple`` grid."""
    if width * height <= max_pixels:
        return width // multiple * multiple, height // multiple * multiple
    s = math.sqrt(max_pixels / (width * height))
    return max(multiple, int(width * s) // multiple * multiple), max(multiple, int(height * s) // multiple * multiple)
