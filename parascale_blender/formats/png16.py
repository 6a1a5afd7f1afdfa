"""PNG header and the built-in PNG codec for depth counts (8 or 16 bit), numpy + zlib only.

:func:`png_header` reads the IHDR (size, bit depth, channels) without touching a pixel. Depth is
the first channel: grey, grey+alpha, RGB and RGBA images give their grey or red channel (a depth
image saved as RGB repeats it in R, G and B, as Blender's default RGB 16-bit PNG does). Palette
images (colour indices) and bit depths under 8 are refused.

The built-in decoder (:func:`decode_png`) is the fallback when neither OpenImageIO nor OpenCV is
importable (:mod:`.image_backends` chooses): non-interlaced images, all five row filters (Average
and Paeth unfiltered with a vectorised wavefront). :func:`write_png16` writes 16-bit grey with
the Up filter.
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import FormatError
from .image_size import MAX_SIDE, check_image_size
from .magic import PNG_MAGIC
from .textio import read_bytes

COLOUR_NAMES = {0: "greyscale", 2: "RGB", 3: "palette", 4: "greyscale+alpha", 6: "RGBA"}
CHANNELS = {0: 1, 2: 3, 4: 2, 6: 4}  # colour type -> samples per pixel


@dataclass(frozen=True)
class PngInfo:
    width: int
    height: int
    bit_depth: int
    colour: int
    interlaced: bool

    @property
    def channels(self) -> int:
        return CHANNELS[self.colour]

    @property
    def decoded_bytes(self) -> int:
        return self.width * self.height * self.channels * self.bit_depth // 8


def png_header(data: bytes, source: str | os.PathLike) -> PngInfo:
    """The IHDR of PNG bytes (nothing else is read); refuses palette and sub-8-bit images."""
    if not bytes(data[:8]).startswith(PNG_MAGIC):
        raise FormatError(source, "not a PNG file (bad signature)", field="signature")
    if len(data) < 33 or data[12:16] != b"IHDR" or struct.unpack(">I", data[8:12])[0] != 13:
        raise FormatError(source, "the first chunk must be a 13-byte IHDR", field="IHDR")
    width, height, depth, colour, comp, filt, interlace = struct.unpack(">IIBBBBB", data[16:29])
    if zlib.crc32(data[12:29]) != struct.unpack(">I", data[29:33])[0]:
        raise FormatError(source, "chunk b'IHDR' at byte 8 fails its CRC check", field="crc")
    if width == 0 or height == 0 or width > 1 << 16 or height > 1 << 16:
        raise FormatError(source, f"unsupported image size {width}x{height}", field="IHDR")
    if colour not in CHANNELS:
        name = COLOUR_NAMES.get(colour, f"type {colour}")
        msg = f"{name} PNG; a depth map must be greyscale or RGB(A) (depth in the first channel)"
        raise FormatError(source, msg, field="colour_type")
    if depth not in (8, 16):
        raise FormatError(source, f"{depth}-bit PNG; depth maps must be 8 or 16 bit", field="bit_depth")
    if comp != 0 or filt != 0 or interlace > 1:
        raise FormatError(source, "unknown compression, filter or interlace method", field="IHDR")
    return PngInfo(width, height, depth, colour, interlace == 1)


def png_chunks(data: bytes, path) -> list[tuple[bytes, bytes]]:
    """The (type, body) chunks up to IEND, each length and CRC checked (a corrupt length made OpenCV
    spin for seconds on a 300-byte file)."""
    if not bytes(data[:8]).startswith(PNG_MAGIC):
        raise FormatError(path, "not a PNG file (bad signature)", field="signature")
    out, pos = [], 8
    while pos < len(data):
        if pos + 8 > len(data):
            raise FormatError(path, f"truncated chunk header at byte {pos}", field="chunk")
        n, kind = struct.unpack(">I4s", data[pos : pos + 8])
        body = data[pos + 8 : pos + 8 + n]
        crc = data[pos + 8 + n : pos + 12 + n]
        if len(body) != n or len(crc) != 4:
            raise FormatError(path, f"chunk {kind!r} at byte {pos} is truncated", field="chunk")
        if zlib.crc32(kind + body) != struct.unpack(">I", crc)[0]:
            raise FormatError(path, f"chunk {kind!r} at byte {pos} fails its CRC check", field="crc")
        out.append((kind, body))
        pos += 12 + n
        if kind == b"IEND":
            break
    return out


def _unfilter(raw: np.ndarray, height: int, row_bytes: int, bpp: int, path) -> np.ndarray:
    """Undo the per-row PNG filters; returns (height, row_bytes) uint8."""
    rows = raw.reshape(height, row_bytes + 1)
    types = rows[:, 0].astype(np.int64)
    if types.max(initial=0) > 4:
        r = int(np.argmax(types > 4))
        raise FormatError(path, f"row {r} has unknown filter type {types[r]}", field="filter")
    filt = rows[:, 1:].astype(np.int64)
    if np.all(types <= 2):  # no Average/Paeth: row by row, vectorised along the row
        out = np.zeros((height + 1, row_bytes), dtype=np.int64)
        for r in range(height):
            t, f = types[r], filt[r]
            if t == 0:
                out[r + 1] = f
            elif t == 1:
                out[r + 1] = np.cumsum(f.reshape(-1, bpp), axis=0).reshape(-1) & 255
            else:
                out[r + 1] = (f + out[r]) & 255
        return out[1:].astype(np.uint8)
    # Wavefront over pixel anti-diagonals k = r + p: byte (r, p) needs (r, p-1), (r-1, p), (r-1, p-1).
    # Skewed storage S[r + 1, k + 2] = pixel (r, p) turns each diagonal into a column slice.
    wp = row_bytes // bpp
    K = height + wp - 1
    S = np.zeros((height + 1, K + 2, bpp), dtype=np.int32)
    F = np.zeros((height, K, bpp), dtype=np.int32)
    rr, pp = np.meshgrid(np.arange(height), np.arange(wp), indexing="ij")
    F[rr, rr + pp] = filt.reshape(height, wp, bpp)
    m = [(types == i).astype(np.int32)[:, None] for i in range(1, 5)]
    for k in range(K):
        n = min(height, k + 1)  # rows with p = k - r >= 0 (cells past the row end only feed each other)
        a, b, c = S[1 : n + 1, k + 1], S[:n, k + 1], S[:n, k]
        pa, pb, pc = np.abs(b - c), np.abs(a - c), np.abs(a + b - 2 * c)
        paeth = np.where((pa <= pb) & (pa <= pc), a, np.where(pb <= pc, b, c))
        pred = m[0][:n] * a + m[1][:n] * b + m[2][:n] * ((a + b) >> 1) + m[3][:n] * paeth
        S[1 : n + 1, k + 2] = (F[:n, k] + pred) & 255
    return S[rr + 1, rr + pp + 2].reshape(height, row_bytes).astype(np.uint8)


def read_png(path: str | os.PathLike) -> np.ndarray:
    """PNG file → (H, W) uint8 or uint16 raw counts of its first channel (built-in decoder)."""
    return decode_png(read_bytes(path), path)


def decode_png(data: bytes, source: str | os.PathLike, max_side: int | None = MAX_SIDE) -> np.ndarray:
    """PNG bytes → (H, W) uint8 or uint16 raw counts of the first channel; ``source`` names them in errors.

    The size is checked from the header, before any pixel is decompressed
    (:func:`.image_size.check_image_size`: ``max_side`` px a side, None = no limit).
    """
    try:
        return _decode_png(data, source, max_side)
    except FormatError:
        raise
    except (struct.error, ValueError, IndexError) as e:
        raise FormatError(source, f"corrupt PNG ({e})") from None


def _decode_png(data: bytes, path, max_side: int | None) -> np.ndarray:
    info = png_header(data, path)
    width, height, depth = info.width, info.height, info.bit_depth
    check_image_size(width, height, path, max_side, field="IHDR")
    if info.interlaced:
        msg = "Adam7-interlaced PNG is not read by the built-in decoder; re-save it non-interlaced"
        raise FormatError(path, msg, field="interlace")
    chunks = png_chunks(data, path)
    idat = b"".join(body for kind, body in chunks if kind == b"IDAT")
    if not idat:
        raise FormatError(path, "no IDAT chunk (no image data)", field="IDAT")
    bpp = depth // 8 * info.channels
    row_bytes = width * bpp
    try:
        raw = zlib.decompressobj().decompress(idat, height * (row_bytes + 1) + 1)  # never past the expected size
    except zlib.error as e:
        raise FormatError(path, f"corrupt compressed image data ({e})", field="IDAT") from None
    if len(raw) != height * (row_bytes + 1):
        raise FormatError(path, f"image data holds {len(raw)} bytes, expected {height * (row_bytes + 1)}", field="IDAT")
    pix = _unfilter(np.frombuffer(raw, dtype=np.uint8), height, row_bytes, bpp, path)
    first = pix.reshape(height, width, info.channels, depth // 8)[:, :, 0]
    if depth == 8:
        return np.ascontiguousarray(first[:, :, 0])
    return (first[:, :, 0].astype(np.uint16) << 8) | first[:, :, 1]


def write_png16(path: str | os.PathLike, counts: np.ndarray) -> None:
    """Write (H, W) integer counts 0..65535 as a 16-bit greyscale PNG (Up filter, zlib level 6)."""
    a = np.asarray(counts)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a non-empty (H, W) array, got shape {a.shape}")
    if a.min() < 0 or a.max() > 65535:
        raise ValueError("PNG16 counts must lie in 0..65535")
    h, w = a.shape
    rows = a.astype(">u2").view(np.uint8).reshape(h, 2 * w).astype(np.int64)
    up = (rows - np.vstack([np.zeros((1, 2 * w), np.int64), rows[:-1]])) & 255
    raw = np.hstack([np.full((h, 1), 2, np.int64), up]).astype(np.uint8).tobytes()

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    ihdr = struct.pack(">IIBBBBB", w, h, 16, 0, 0, 0, 0)
    with open(path, "wb") as fh:
        fh.write(PNG_MAGIC + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(raw, 6)) + chunk(b"IEND", b""))
