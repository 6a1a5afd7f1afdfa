"""Local model weights: where they live, whether a folder is complete, and runtime options.

Weights are never downloaded. The folder named by the environment variable ``PARASCALE_WEIGHTS``
holds one sub-folder per backend and one model per sub-folder::

    $PARASCALE_WEIGHTS/diffusers-i2v/<model>/model_index.json, vae/, transformer/, ...
    $PARASCALE_WEIGHTS/wan-fun-camera/<model>/  (a diffusers Wan folder + camera_adapter.safetensors)
    $PARASCALE_WEIGHTS/depth-anything/<model>/config.json, model.safetensors

A job picks ``<model>`` with its ``model`` parameter (default ``default``): a plain relative name,
never a path outside the folder. Every check raises :class:`WeightsError` naming the missing file.
"""

from __future__ import annotations

import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

ENV = "PARASCALE_WEIGHTS"
MODEL_NAME = re.compile(r"^[A-Za-z0-9_.-]+(/[A-Za-z0-9_.-]+)*$")
WEIGHT_FILES = ("diffusion_pytorch_model.safetensors", "model.safetensors", "diffusion_pytorch_model.bin")
WEIGHT_FILES += ("pytorch_model.bin", "diffusion_pytorch_model.safetensors.index.json", "model.safetensors.index.json")
CONFIG_FILES = ("config.json", "scheduler_config.json", "preprocessor_config.json", "tokenizer_config.json")
PROMPT_EMBEDS = "prompt_embeds.safetensors"


class WeightsError(ValueError):
    """A weights folder is missing, incomplete or of an unsupported kind (a user error: 4xx)."""


class NotEnoughMemory(RuntimeError):
    """The device ran out of memory; the message says what to try."""


def weights_root() -> Path | None:
    """``$PARASCALE_WEIGHTS`` as a path, or None when unset/empty (read at call time)."""
    value = os.environ.get(ENV, "").strip()
    return Path(value).expanduser() if value else None


def model_folder(backend: str, model: str) -> Path:
    """``$PARASCALE_WEIGHTS/<backend>/<model>``; ``model`` must be a plain relative name."""
    if not MODEL_NAME.match(model) or ".." in model.split("/"):
        raise WeightsError(f"model {model!r}: use a folder name such as 'default' (letters, digits, '._-', '/')")
    root = weights_root()
    if root is None:
        raise WeightsError(f"{ENV} is not set: point it at the folder holding {backend}/{model}/")
    return root / backend / model


def _require_any(folder: Path, names: tuple[str, ...], what: str) -> None:
    if not any((folder / n).is_file() for n in names):
        raise WeightsError(f"weights folder {folder}: missing {what} ({' or '.join(names)})")


def check_transformers_folder(folder: Path) -> None:
    """A ``save_pretrained`` model folder: ``config.json`` and a weights file."""
    if not folder.is_dir():
        raise WeightsError(f"weights folder {folder}: no such folder (expected config.json and the weights there)")
    if not (folder / "config.json").is_file():
        raise WeightsError(f"weights folder {folder}: missing config.json")
    _require_any(folder, WEIGHT_FILES, "the weights")


def check_diffusers_folder(folder: Path, supported: tuple[str, ...] = ()) -> dict:
    """A diffusers pipeline folder: ``model_index.json`` and every component it lists. Returns the index.

    ``supported``: pipeline class names accepted (empty = any). A pipeline saved without a text
    encoder must ship ``prompt_embeds.safetensors`` (tensor ``prompt_embeds``, optionally
    ``negative_prompt_embeds``).
    """
    if not folder.is_dir():
        raise WeightsError(f"weights folder {folder}: no such folder (expected a diffusers model_index.json there)")
    index_path = folder / "model_index.json"
    if not index_path.is_file():
        raise WeightsError(f"weights folder {folder}: missing model_index.json (not a diffusers pipeline folder)")
    try:
        index = json.loads(index_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise WeightsError(f"{index_path}: unreadable JSON ({e})") from None
    cls = index.get("_class_name", "") if isinstance(index, dict) else ""
    if not cls:
        raise WeightsError(f"{index_path}: field '_class_name' missing")
    if supported and cls not in supported:
        raise WeightsError(f"{index_path}: pipeline {cls} is not supported here (supported: {', '.join(supported)})")
    for name, spec in index.items():
        if name.startswith("_") or not (isinstance(spec, list) and len(spec) == 2 and spec[1]):
            continue
        sub = folder / name
        if not sub.is_dir():
            raise WeightsError(f"weights folder {folder}: missing {name}/ (listed in model_index.json)")
        if name in ("scheduler", "tokenizer", "image_processor", "feature_extractor"):
            if not any(sub.iterdir()):
                raise WeightsError(f"weights folder {sub}: empty")
            continue
        _require_any(sub, CONFIG_FILES, "a config")
        _require_any(sub, WEIGHT_FILES, "the weights")
    has_text_encoder = isinstance(index.get("text_encoder"), list) and bool(index["text_encoder"][1])
    if "text_encoder" in index and not has_text_encoder and not (folder / PROMPT_EMBEDS).is_file():
        raise WeightsError(f"weights folder {folder}: missing {PROMPT_EMBEDS} (the pipeline has no text encoder)")
    return index


def availability(backend: str, check: Callable[[Path], object], model: str = "default") -> tuple[bool, str]:
    """(ok, reason) for the backend's ``model`` folder; the reason names the missing file."""
    try:
        check(model_folder(backend, model))
    except WeightsError as e:
        return False, str(e)
    return True, ""


class WeightsParams(BaseModel):
    """Options every weights-backed backend shares: the model folder and the precision."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str = Field("default", max_length=200, description=f"model folder under ${ENV}/<backend>/")
    dtype: Literal["auto", "fp32", "fp16", "bf16"] = Field(
        "auto",
        description="precision; auto: bf16 on CUDA (Wan: VAE and image encoder fp32), fp32 elsewhere",
    )


class RuntimeParams(WeightsParams):
    """Weights options plus memory options of diffusion pipelines."""

    cpu_offload: bool = Field(False, description="keep idle sub-models in CPU memory (CUDA only)")
    vae_tiling: bool = Field(True, description="encode/decode in tiles where the VAE supports it (less memory)")
    attention_slicing: bool = Field(
        False, description="attention in slices; Wan and CogVideoX pipelines ignore it (use cpu_offload or vae_tiling)"
    )


def torch_dtype(name: str, device: str):
    """torch dtype for ``fp32``/``fp16``/``bf16`` (``auto``: bf16 on CUDA, fp32 elsewhere); fp16 needs
    CUDA (CPU kernels are missing or slow)."""
    import torch

    dtypes = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}
    if name == "auto":
        name = "bf16" if device.startswith("cuda") else "fp32"
    if name not in dtypes:
        raise ValueError(f"dtype {name!r}: use one of auto, {', '.join(dtypes)}")
    if name == "fp16" and not device.startswith("cuda"):
        raise ValueError(f"dtype fp16 needs a CUDA device (this job runs on {device}); use fp32 or bf16")
    return dtypes[name]


def component_dtypes(name: str, device: str, fp32_components: tuple[str, ...] = ()) -> dict:
    """``from_pretrained(dtype=...)`` mapping: ``name``'s dtype for every sub-model, except that
    ``auto`` keeps ``fp32_components`` (e.g. Wan's VAE and image encoder, as upstream runs them) in fp32."""
    import torch

    default = torch_dtype(name, device)
    keep = fp32_components if name == "auto" else ()
    return {"default": default, **{c: torch.float32 for c in keep}}


@contextmanager
def memory_guard(device: str, what: str) -> Iterator[None]:
    """Turn allocator failures into :class:`NotEnoughMemory` with advice."""
    import torch

    try:
        yield
    except (torch.OutOfMemoryError, MemoryError, RuntimeError) as e:
        text = str(e)
        if (
            not isinstance(e, torch.OutOfMemoryError | MemoryError)
            and "out of memory" not in text.lower()
            and ("not enough memory" not in text.lower())
        ):
            raise
        if device.startswith("cuda"):
            torch.cuda.empty_cache()
        raise NotEnoughMemory(
            f"not enough memory on {device} for {what}: try cpu_offload, vae_tiling, dtype bf16, "
            f"fewer frames or a smaller width/height ({text.splitlines()[0][:200] if text else type(e).__name__})"
        ) from None


class ModelCache:
    """The most recently loaded model of each device (loading real weights takes long; workers on
    different GPUs keep theirs); thread-safe. ``slot``: the device a model lives on."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._slots: dict[str, tuple[threading.Lock, list]] = {}  # slot -> (its lock, [key, value])

    def get(self, key: tuple, load: Callable[[], object], slot: str = ""):
        with self._lock:
            lock, entry = self._slots.setdefault(slot, (threading.Lock(), [None, None]))
        with lock:
            if entry[0] != key:
                entry[0], entry[1] = None, None  # free this device's old model before loading the new one
                entry[1] = load()
                entry[0] = key
            return entry[1]

    def clear(self) -> None:
        with self._lock:
            slots = list(self._slots.values())
        for lock, entry in slots:
            with lock:
                entry[0], entry[1] = None, None


def folder_stamp(folder: Path) -> float:
    """Latest modification time of the folder's top-level entries (reload when weights change)."""
    return max((p.stat().st_mtime for p in folder.iterdir()), default=0.0)
