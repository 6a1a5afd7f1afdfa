"""Depth-map files: .npy, 16-bit PNG (+ scale), .exr, .pfm — read and write, numpy + zlib only.

Every reader returns (H, W) float64 z-depth in world units with NaN for "no depth": zero PNG
counts, non-finite or non-positive values, and background sentinels (>= ``FAR_SENTINEL``, as
Blender writes 1e10 for empty Z-pass pixels). PNG depth is ``count * scale`` (``scale`` in world
units per count: 0.001 for millimetre PNGs such as ICL-NUIM, 1/5000 for TUM RGB-D).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from .errors import FormatError
from .exr import read_exr, write_exr
from .png16 import read_png, write_png16
from .textio import read_bytes

EXTENSIONS = (".npy", ".png", ".exr", ".pfm")
DEFAULT_PNG_SCALE = 0.001  # millimetres → metres, the usual 16-bit depth PNG convention
FAR_SENTINEL = 1e9


def clean_depth(depth: np.ndarray) -> np.ndarray:
    """float64 copy with NaN for non-finite, non-positive and background-sentinel values."""
    d = np.array(depth, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d[~(np.isfinite(d) & (d > 0) & (d < FAR_SENTINEL))] = np.nan
    return d


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """A (H, W) or (H, W, 1) numeric .npy array (no pickles)."""
    p = Path(path)
    read_bytes(p)  # FormatError for missing / unreadable files
    try:
        a = np.load(p, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise FormatError(p, f"not a readable .npy array ({e})") from None
    if a.ndim == 3 and a.shape[2] == 1:
        a = a[:, :, 0]
    if a.ndim != 2 or a.size == 0 or a.dtype.kind not in "fiu":
        raise FormatError(p, f"expected a numeric (H, W) depth array, got {a.dtype} {a.shape}", field="shape")
    return a


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Single-channel ``Pf`` portable float map (rows stored bottom-up) → (H, W) float array."""
    data = read_bytes(path)
    m = re.match(rb"(P[fF])\s+(\d+)\s+(\d+)\s+(\S+)\s", data[:256])
    if not m:
        raise FormatError(path, "not a PFM file (expected 'Pf', width, height, scale)", line=1, field="header")
    kind, w, h = m.group(1), int(m.group(2)), int(m.group(3))
    if kind == b"PF":
        raise FormatError(path, "three-channel PFM; a depth map must be single-channel 'Pf'", line=1, field="header")
    try:
        scale = float(m.group(4))
    except ValueError:
        raise FormatError(path, f"bad scale {m.group(4)[:20]!r}", line=3, field="scale") from None
    if w == 0 or h == 0 or scale == 0 or not np.isfinite(scale):
        raise FormatError(path, f"bad size {w}x{h} or scale {scale}", line=2, field="header")
    need = w * h * 4
    body = data[m.end() :]
    if len(body) < need:
        raise FormatError(path, f"pixel data holds {len(body)} bytes, expected {need}", field="pixels")
    a = np.frombuffer(body, dtype="<f4" if scale < 0 else ">f4", count=w * h).reshape(h, w)
    with np.errstate(invalid="ignore"):
        return a[::-1].astype(np.float64)


def read_depth_map(path: str | os.PathLike, scale: float | None = None, channel: str | None = None) -> np.ndarray:
    """Depth in world units (H, W) float64, NaN where invalid; format chosen by the extension.

    ``scale`` multiplies the stored values (PNG default ``DEFAULT_PNG_SCALE``, others 1);
    ``channel`` picks an EXR channel (default: Z, depth, D, Y, R or the only one).
    """
    p = Path(path)
    ext = p.suffix.lower()
    if ext == ".npy":
        raw = read_npy(p)
    elif ext == ".png":
        raw = read_png(p).astype(np.float64)
        raw[raw == 0] = np.nan
        scale = DEFAULT_PNG_SCALE if scale is None else scale
    elif ext == ".exr":
        raw = read_exr(p, channel)
    elif ext == ".pfm":
        raw = read_pfm(p)
    else:
        raise FormatError(p, f"unknown depth-map extension {ext!r}; expected one of {', '.join(EXTENSIONS)}")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"depth scale must be a positive number, got {scale!r}")
    return clean_depth(raw * (1.0 if scale is None else scale))


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdigit() else t for t in re.split(r"(\d+)", p.name)]


def list_depth_maps(folder: str | os.PathLike) -> list[Path]:
    """Depth-map files in ``folder`` in natural order (frame2 before frame10); one extension only."""
    root = Path(folder)
    if not root.is_dir():
        raise FormatError(root, "is not a folder")
    files = [f for f in root.iterdir() if f.is_file() and f.suffix.lower() in EXTENSIONS]
    if not files:
        raise FormatError(root, f"holds no depth maps ({', '.join(EXTENSIONS)})")
    exts = sorted({f.suffix.lower() for f in files})
    if len(exts) > 1:
        raise FormatError(root, f"mixes depth-map types {exts}; keep one kind per folder")
    return sorted(files, key=_natural_key)


def write_depth_map(path: str | os.PathLike, depth: np.ndarray, scale: float | None = None) -> None:
    """Write (H, W) depth (NaN = invalid) by extension: .npy, .png (counts = depth / scale, 0 = invalid),
    .pfm (NaN kept) or .exr (ZIP, FLOAT channel ``Z``)."""
    p = Path(path)
    d = np.asarray(depth, dtype=np.float64)
    if d.ndim != 2 or d.size == 0:
        raise ValueError(f"expected a non-empty (H, W) depth array, got shape {d.shape}")
    ext = p.suffix.lower()
    if ext == ".npy":
        np.save(p, d.astype(np.float32))
    elif ext == ".png":
        s = DEFAULT_PNG_SCALE if scale is None else scale
        counts = np.where(np.isfinite(d) & (d > 0), np.round(np.nan_to_num(d) / s), 0)
        if counts.max() > 65535:
            raise ValueError(f"depth {np.nanmax(d):g} exceeds 65535 counts at scale {s:g}; use a larger scale")
        write_png16(p, counts.astype(np.uint16))
    elif ext == ".pfm":
        h, w = d.shape
        with open(p, "wb") as fh:
            fh.write(f"Pf\n{w} {h}\n-1.0\n".encode() + d[::-1].astype("<f4").tobytes())
    elif ext == ".exr":
        write_exr(p, d)
    else:
        raise ValueError(f"unknown depth-map extension {ext!r}; expected one of {', '.join(EXTENSIONS)}")
