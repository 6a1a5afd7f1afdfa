"""Depth-map files: .npy, 16-bit PNG (+ scale), .exr, .pfm — read and write.

One decoder for the add-on, the CLI and the server: :func:`decode_depth_map` takes the file's bytes
and recognises the format by its first bytes (never by a name); :func:`read_depth_map` reads a file
and calls it. Units are explicit: depth = stored value × ``scale``, ``scale`` in world units per
stored value; ``scale=None`` means the format's default — :data:`DEFAULT_PNG_SCALE` for 16-bit PNG
counts (millimetres → metres), 1 for the float formats (.npy, .exr, .pfm).

EXR and PNG pixels are decoded by OpenImageIO, OpenEXR / OpenCV or the built-in codecs, chosen in
:mod:`.image_backends`: EXR of every classic codec (NONE, RLE, ZIPS, ZIP, PIZ, PXR24, B44, B44A,
DWAA, DWAB), half, float or uint, scanline or tiled, single- or multi-part (Blender's multilayer
render: the ``<layer>.Depth.Z`` channel, see :func:`.exr.pick_depth_channel`); PNG of 8 or 16 bits,
grey or RGB(A), depth in the first channel (grey or red).

Every decoder returns (H, W) float64 z-depth in world units with NaN for "no depth" (sky). What
marks it, per format: PNG — a zero count; EXR, PFM, .npy — NaN, ±inf, zero or a negative value,
and Blender's background value 1e10 (any value >= ``FAR_SENTINEL``: Blender's Z pass writes 1e10
where a ray hits nothing); EXR half channels — also 65504, the largest half, to which a 16-bit
save clamps Blender's 1e10 (:func:`.exr.half_background_to_inf`).

Nothing is unpickled; ``max_side`` (default :data:`.image_size.MAX_SIDE`,
with :data:`.image_size.MAX_PIXELS` and :data:`.image_size.MAX_DECODED_BYTES`) bounds the size and
the bytes to decompress from the header, before pixels are decoded.
"""

from __future__ import annotations

import io
import os
import re
from pathlib import Path

import numpy as np

from ..core.depth import FAR_SENTINEL, clean_depth  # noqa: F401 (re-exported: the NaN-empty convention)
from .errors import FormatError
from .exr import write_exr
from .image_backends import decode_exr, decode_png
from .image_size import MAX_SIDE, check_image_size
from .magic import EXR_MAGIC, NPY_MAGIC, PFM_MAGICS, PNG_MAGIC
from .png16 import write_png16
from .textio import read_bytes

EXTENSIONS = (".npy", ".png", ".exr", ".pfm")
DEFAULT_PNG_SCALE = 0.001  # world units per 16-bit PNG count: millimetres → metres, the usual convention


def decode_npy(data: bytes, source: str | os.PathLike, max_side: int | None = None) -> np.ndarray:
    """A numeric (H, W) or (H, W, 1) .npy array from bytes; the header (and ``max_side``, None here:
    an N x 3 point cloud is read too) is checked before the data is read, and nothing is unpickled."""
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _, dtype = read_header[version](f)
    except Exception as e:  # numpy raises ValueError/OSError/SyntaxError on malformed headers
        raise FormatError(source, f"not a readable .npy array (malformed header: {e})", field="header") from None
    if dtype.kind not in "fiu" or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 1) or 0 in shape:
        msg = f"expected a numeric (H, W) depth array, got {dtype} {shape}"
        raise FormatError(source, msg, field="shape")
    check_image_size(shape[1], shape[0], source, max_side, field="shape")
    declared, available = int(np.prod(shape, dtype=object)) * dtype.itemsize, len(data) - f.tell()
    if declared != available:  # checked before anything is allocated: a short header may ask for GiBs
        msg = f"not a readable .npy array: its header declares {declared} bytes of {dtype} {shape}"
        msg += f", the file holds {available}"
        raise FormatError(source, msg, field="shape")
    f.seek(0)
    try:
        a = np.load(f, allow_pickle=False)
    except (ValueError, OSError, EOFError) as e:
        raise FormatError(source, f"not a readable .npy array ({e})") from None
    return a.reshape(shape[:2])


def read_npy(path: str | os.PathLike) -> np.ndarray:
    """A (H, W) or (H, W, 1) numeric .npy file as (H, W) (no pickles)."""
    return decode_npy(read_bytes(path), path)


def decode_pfm(data: bytes, source: str | os.PathLike, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """Single-channel ``Pf`` portable float map bytes (rows stored bottom-up) → (H, W) float array."""
    path = source
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
    check_image_size(w, h, source, max_side, field="header")
    need = w * h * 4
    body = data[m.end() :]
    if len(body) < need:
        raise FormatError(path, f"pixel data holds {len(body)} bytes, expected {need}", field="pixels")
    a = np.frombuffer(body, dtype="<f4" if scale < 0 else ">f4", count=w * h).reshape(h, w)
    with np.errstate(invalid="ignore"):
        return a[::-1].astype(np.float64)


def read_pfm(path: str | os.PathLike) -> np.ndarray:
    """Single-channel ``Pf`` portable float map file → (H, W) float array."""
    return decode_pfm(read_bytes(path), path)


def depth_format(data: bytes) -> str | None:
    """The depth-map format of ``data`` by its first bytes: ``.npy``, ``.png``, ``.exr``, ``.pfm`` or None."""
    head = bytes(data[:16])  # bytes or a memory map
    for magic, ext in ((NPY_MAGIC, ".npy"), (PNG_MAGIC, ".png"), (EXR_MAGIC, ".exr"), (PFM_MAGICS, ".pfm")):
        if head.startswith(magic):
            return ext
    return None


def decode_depth_values(
    data: bytes,
    source: str | os.PathLike,
    scale: float | None = None,
    channel: str | None = None,
    max_side: int | None = MAX_SIDE,
    path: str | os.PathLike | None = None,
) -> np.ndarray:
    """Stored values × scale as (H, W) float64, not yet cleaned (zero PNG counts are NaN; negative
    or huge values are kept, for callers that refuse them). ``path``: the file the bytes came from,
    when there is one (a backend may read it directly). See :func:`decode_depth_map`."""
    kind = depth_format(data)
    if kind == ".npy":
        raw = decode_npy(data, source, max_side).astype(np.float64)
    elif kind == ".png":
        raw = decode_png(data, source, max_side, path).astype(np.float64)
        raw[raw == 0] = np.nan
        scale = DEFAULT_PNG_SCALE if scale is None else scale
    elif kind == ".exr":
        raw = decode_exr(data, source, channel, max_side, path)
    elif kind == ".pfm":
        raw = decode_pfm(data, source, max_side)
    else:
        msg = "not a depth map: expected .npy, 16-bit PNG, OpenEXR or PFM data (checked by its first bytes)"
        raise FormatError(source, msg, field="magic")
    if scale is not None and not (np.isfinite(scale) and scale > 0):
        raise ValueError(f"depth scale must be a positive number, got {scale!r}")
    return raw * (1.0 if scale is None else scale)


def decode_depth_map(
    data: bytes,
    source: str | os.PathLike,
    scale: float | None = None,
    channel: str | None = None,
    max_side: int | None = MAX_SIDE,
    path: str | os.PathLike | None = None,
) -> np.ndarray:
    """Depth-map bytes → (H, W) float64 z-depth in world units, NaN where empty; format by magic bytes.

    ``scale``: world units per stored value (None: :data:`DEFAULT_PNG_SCALE` for PNG, else 1);
    ``channel`` names an EXR channel in full (default: :func:`.exr.pick_depth_channel`); ``source``
    names the data in :class:`FormatError` messages; ``max_side`` bounds width and height (pixels)
    and, unless None, the pixel count by :data:`.image_size.MAX_PIXELS` and the bytes to decompress
    by :data:`.image_size.MAX_DECODED_BYTES`, from the header before decoding; ``path`` as for
    :func:`decode_depth_values`.
    """
    return clean_depth(decode_depth_values(data, source, scale, channel, max_side, path))


def read_depth_map(
    path: str | os.PathLike, scale: float | None = None, channel: str | None = None, max_side: int | None = MAX_SIDE
) -> np.ndarray:
    """:func:`decode_depth_map` of the file at ``path`` (one of :data:`EXTENSIONS`), its size
    checked from the header first."""
    p = Path(path)
    if p.suffix.lower() not in EXTENSIONS:
        raise FormatError(
            p, f"unknown depth-map extension {p.suffix.lower()!r}; expected one of {', '.join(EXTENSIONS)}"
        )
    return decode_depth_map(read_bytes(p), p, scale, channel, max_side, p)


def _natural_key(p: Path) -> list:
    return [int(t) if t.isdecimal() else t for t in re.split(r"(\d+)", p.name)]


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
