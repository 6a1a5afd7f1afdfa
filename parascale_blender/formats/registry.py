"""Read and write camera tracks by format name or by file extension and content.

``FORMATS`` maps a format name to its :class:`FormatSpec`. ``read_trajectory`` and
``write_trajectory`` pick the format from ``fmt`` or :func:`detect_format`; options are passed
to the reader/writer and checked against its signature. All problems are :class:`FormatError`.
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..core.camera import Trajectory
from .colmap import read_colmap
from .colmap_model import find_model
from .errors import FormatError
from .motionctrl import read_motionctrl, write_motionctrl
from .nerf import read_nerf, write_nerf
from .nuke_chan import read_chan, write_chan
from .parascale_json import FORMAT_NAME, read_parascale_json, write_parascale_json
from .re10k import read_re10k, write_re10k, write_wanfun
from .textio import load_json, read_bytes


@dataclass(frozen=True)
class FormatSpec:
    name: str
    extensions: tuple[str, ...]
    reader: Callable[..., Trajectory] | None
    writer: Callable[..., None] | None
    description: str


def read_wanfun(path: str | os.PathLike, **options) -> Trajectory:
    """A RealEstate10K-layout file read with the Wan-Fun conventions (see :mod:`.re10k`)."""
    return read_re10k(path, **{"variant": "wanfun", **options})


read_wanfun.__signature__ = inspect.signature(read_re10k)  # type: ignore[attr-defined]

FORMATS: dict[str, FormatSpec] = {
    s.name: s
    for s in (
        FormatSpec("parascale", (".json",), read_parascale_json, write_parascale_json, "ParaScale trajectory JSON v1"),
        FormatSpec("re10k", (".txt",), read_re10k, write_re10k, "RealEstate10K / CameraCtrl / CamI2V pose txt"),
        FormatSpec("wanfun", (".txt",), read_wanfun, write_wanfun, "Wan-Fun (VideoX-Fun) pose txt"),
        FormatSpec("motionctrl", (".json",), read_motionctrl, write_motionctrl, "MotionCtrl RT list (N x 12 JSON)"),
        FormatSpec("colmap", ("", ".bin", ".txt"), read_colmap, None, "COLMAP sparse model folder (read only)"),
        FormatSpec("nerf", (".json",), read_nerf, write_nerf, "NeRF / instant-ngp transforms.json"),
        FormatSpec("chan", (".chan",), read_chan, write_chan, "Nuke .chan camera channels"),
    )
}
COLMAP_FILES = {
    f"{stem}.{ext}" for stem in ("cameras", "images", "points3D", "frames", "rigs") for ext in ("txt", "bin")
}


def _known() -> str:
    return ", ".join(f"{s.name} ({s.description})" for s in FORMATS.values())


def _spec(name: str, path) -> FormatSpec:
    if name not in FORMATS:
        raise FormatError(path, f"unknown format {name!r}; known formats: {_known()}")
    return FORMATS[name]


def _sniff_json(path) -> str:
    doc = load_json(path)
    if isinstance(doc, dict) and doc.get("format") == FORMAT_NAME:
        return "parascale"
    if isinstance(doc, dict) and isinstance(doc.get("frames"), list):
        if all(isinstance(f, dict) and "transform_matrix" in f for f in doc["frames"]):
            return "nerf"
        if any(isinstance(f, dict) and "c2w" in f for f in doc["frames"]):
            return "parascale"
    if isinstance(doc, list):
        return "motionctrl"
    raise FormatError(path, f"JSON content matches no known camera format; known formats: {_known()}")


def _sniff_text(path) -> str:
    head = read_bytes(path)[:4096].decode("utf-8", errors="replace").lstrip("\ufeff")
    if head.lstrip().startswith(("{", "[")):
        return _sniff_json(path)
    lines = [ln.split() for ln in head.splitlines()[:3]]
    counts = [len(t) for t in lines if t and not t[0].startswith("#")]
    if counts and counts[-1] in (18, 19):
        return "re10k"
    if counts and counts[0] in (7, 8):
        return "chan"
    raise FormatError(path, f"cannot tell the format from the name or content; known formats: {_known()}")


def detect_format(path: str | os.PathLike) -> str:
    """The format name of an existing file or folder, by name/extension, then by content."""
    p = Path(path)
    if p.is_dir():
        find_model(p)  # raises a FormatError if no COLMAP model is there
        return "colmap"
    if not p.exists():
        raise FormatError(p, "file not found")
    ext = p.suffix.lower()
    if p.name in COLMAP_FILES:
        return "colmap"
    if ext == ".chan":
        return "chan"
    if ext == ".json":
        return _sniff_json(p)
    if ext == ".txt":
        return "re10k"
    return _sniff_text(p)


def format_for_writing(path: str | os.PathLike) -> str:
    """The writable format implied by a file name (``transforms.json`` → nerf, other .json → parascale)."""
    p = Path(path)
    ext = p.suffix.lower()
    if p.name.lower() == "transforms.json":
        return "nerf"
    by_ext = {".json": "parascale", ".txt": "re10k", ".chan": "chan"}
    if ext not in by_ext:
        raise FormatError(p, f"cannot tell the format from the extension {ext!r}; pass fmt= (known: {_known()})")
    return by_ext[ext]


def _check_options(func: Callable, options: dict, path, what: str) -> None:
    params = inspect.signature(func).parameters
    allowed = [n for n, prm in params.items() if prm.kind == prm.KEYWORD_ONLY]
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise FormatError(path, f"{what} has no option {unknown[0]!r}; its options: {', '.join(allowed) or 'none'}")


def read_trajectory(path: str | os.PathLike, fmt: str | None = None, **options) -> Trajectory:
    """Read any supported camera track; readers validate (``repair_rotations=True`` repairs reflections)."""
    spec = _spec(fmt, path) if fmt is not None else FORMATS[detect_format(path)]
    _check_options(spec.reader, options, path, f"the {spec.name} reader")
    return spec.reader(path, **options)


def write_trajectory(traj: Trajectory, path: str | os.PathLike, fmt: str | None = None, **options) -> None:
    """Write ``traj`` in ``fmt`` (default: from the file name)."""
    spec = _spec(fmt if fmt is not None else format_for_writing(path), path)
    if spec.writer is None:
        raise FormatError(path, f"the {spec.name} format is read-only; writable: {', '.join(writable_formats())}")
    _check_options(spec.writer, options, path, f"the {spec.name} writer")
    spec.writer(traj, path, **options)


def writable_formats() -> list[str]:
    return [n for n, s in FORMATS.items() if s.writer is not None]
