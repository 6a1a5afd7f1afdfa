"""Minimal OpenEXR codec for depth: single-part scanline files, numpy + zlib only.

Reads NONE, ZIPS and ZIP compression with HALF, FLOAT or UINT channels and returns one channel
(by name, or the first of Z, depth, D, Y, R, or the only one). Tiled, multi-part, deep and other
compressions (RLE, PIZ, PXR24, B44, DWA…) are refused with a :class:`FormatError` that suggests
re-saving with ZIP or no compression. Writes one FLOAT or HALF channel with NONE or ZIP.
"""

from __future__ import annotations

import os
import struct
import zlib

import numpy as np

from .errors import FormatError
from .image_size import MAX_SIDE, check_image_size
from .magic import EXR_MAGIC
from .textio import read_bytes

MAGIC = 20000630
COMPRESSIONS = dict(enumerate(["NONE", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A", "DWAA", "DWAB"]))
LINES_PER_CHUNK = {0: 1, 2: 1, 3: 16}
PIXEL_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
DEPTH_CHANNELS = ("Z", "depth", "Depth", "D", "distance", "Y", "R")


def _attributes(data: bytes, path) -> tuple[dict, int]:
    """Header attributes {name: (type, bytes)} and the offset just after the header."""
    attrs, pos = {}, 8
    while True:
        end = data.find(b"\x00", pos)
        if end < 0 or end - pos > 255:
            raise FormatError(path, "truncated or corrupt header", field="header")
        name = data[pos:end].decode("latin-1")
        if not name:
            return attrs, end + 1
        tend = data.find(b"\x00", end + 1)
        if tend < 0 or tend + 5 > len(data):
            raise FormatError(path, f"truncated header attribute {name!r}", field=name)
        kind = data[end + 1 : tend].decode("latin-1")
        (size,) = struct.unpack("<i", data[tend + 1 : tend + 5])
        body = data[tend + 5 : tend + 5 + size]
        if size < 0 or len(body) != size:
            raise FormatError(path, f"header attribute {name!r} is truncated", field=name)
        attrs[name] = (kind, body)
        pos = tend + 5 + size


def _channels(body: bytes, path) -> list[tuple[str, int]]:
    out, pos = [], 0
    while pos < len(body) and body[pos] != 0:
        end = body.find(b"\x00", pos)
        if end < 0 or end + 17 > len(body):
            raise FormatError(path, "corrupt channel list", field="channels")
        name = body[pos:end].decode("latin-1")
        ptype, _linear, xs, ys = struct.unpack("<iB3xii", body[end + 1 : end + 17])
        if ptype not in PIXEL_DTYPES:
            raise FormatError(path, f"channel {name!r} has unknown pixel type {ptype}", field="channels")
        if (xs, ys) != (1, 1):
            raise FormatError(path, f"channel {name!r} is subsampled ({xs}x{ys}); not supported", field="channels")
        out.append((name, ptype))
        pos = end + 17
    if not out:
        raise FormatError(path, "the file has no channels", field="channels")
    return out


def _pick_channel(names: list[str], channel: str | None, path) -> str:
    if channel is not None:
        if channel not in names:
            raise FormatError(path, f"no channel {channel!r}; the file has {names}", field="channels")
        return channel
    if len(names) == 1:
        return names[0]
    for want in DEPTH_CHANNELS:
        hits = [n for n in names if n == want or n.endswith("." + want)]
        if hits:
            return hits[0]
    raise FormatError(path, f"cannot tell which channel is depth among {names}; pass channel=", field="channels")


def _unzip(block: bytes, size: int, path, y: int) -> bytes:
    try:
        t = np.frombuffer(zlib.decompressobj().decompress(block, size + 1), dtype=np.uint8).astype(np.int64)
    except zlib.error as e:
        raise FormatError(path, f"scanline block at y={y}: corrupt ZIP data ({e})", field="chunk") from None
    if len(t) != size:
        raise FormatError(path, f"scanline block at y={y}: {len(t)} bytes, expected {size}", field="chunk")
    t = (np.cumsum(np.r_[t[0], t[1:] - 128]) & 255).astype(np.uint8)  # undo the delta predictor
    out = np.empty(size, dtype=np.uint8)
    half = (size + 1) // 2
    out[0::2], out[1::2] = t[:half], t[half:]  # undo the two-halves byte split
    return out.tobytes()


def read_exr(path: str | os.PathLike, channel: str | None = None) -> np.ndarray:
    """One channel of a scanline OpenEXR file as (H, W) float64 (UINT channels converted)."""
    return decode_exr(read_bytes(path), path, channel)


def decode_exr(
    data: bytes, source: str | os.PathLike, channel: str | None = None, max_side: int | None = MAX_SIDE
) -> np.ndarray:
    """One channel of scanline OpenEXR bytes as (H, W) float64; ``source`` names them in errors.

    The size is checked from the header, before any pixel is decompressed
    (:func:`.image_size.check_image_size`: ``max_side`` px a side, None = no limit).
    """
    try:
        return _decode_exr(data, source, channel, max_side)
    except FormatError:
        raise
    except (struct.error, ValueError, IndexError) as e:  # a field shorter than its type
        raise FormatError(source, f"corrupt EXR header or data ({e})") from None


def _decode_exr(data: bytes, path, channel: str | None, max_side: int | None) -> np.ndarray:
    if len(data) < 8 or data[:4] != EXR_MAGIC:
        raise FormatError(path, "not an OpenEXR file (bad magic number)", field="magic")
    flags = struct.unpack("<I", data[4:8])[0]
    if flags & 0x200:
        msg = "tiled EXR is not supported; re-save as scanline (ZIP or no compression)"
        raise FormatError(path, msg, field="flags")
    if flags & 0x1800:
        raise FormatError(path, "multi-part or deep EXR is not supported; save a single-part image", field="flags")
    attrs, pos = _attributes(data, path)
    for need in ("channels", "compression", "dataWindow"):
        if need not in attrs:
            raise FormatError(path, f"header lacks the required attribute {need!r}", field=need)
    chans = _channels(attrs["channels"][1], path)
    comp = attrs["compression"][1][0] if attrs["compression"][1] else -1
    if comp not in LINES_PER_CHUNK:
        name = COMPRESSIONS.get(comp, f"type {comp}")
        raise FormatError(
            path, f"{name} compression is not supported; re-save with ZIP, ZIPS or no compression", field="compression"
        )
    if len(attrs["dataWindow"][1]) != 16:
        raise FormatError(path, "dataWindow must be a box2i (16 bytes)", field="dataWindow")
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"][1])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    if width <= 0 or height <= 0 or width * height > 1 << 28:
        raise FormatError(path, f"unsupported data window {width}x{height}", field="dataWindow")
    check_image_size(width, height, path, max_side, field="dataWindow")
    want = _pick_channel([c[0] for c in chans], channel, path)
    lines = LINES_PER_CHUNK[comp]
    nchunks = -(-height // lines)
    table = np.frombuffer(data, dtype="<u8", count=nchunks, offset=pos) if pos + 8 * nchunks <= len(data) else None
    if table is None:
        raise FormatError(path, "truncated scanline offset table", field="offsets")
    row_bytes = [width * PIXEL_DTYPES[t].itemsize for _, t in chans]
    out = np.empty((height, width), dtype=np.float64)
    for off in table:
        off = int(off)
        if off + 8 > len(data):
            raise FormatError(path, f"scanline offset {off} points past the end of the file", field="offsets")
        y, size = struct.unpack("<ii", data[off : off + 8])
        row0 = y - y0
        if not 0 <= row0 < height or size < 0 or off + 8 + size > len(data):
            raise FormatError(path, f"bad scanline block header at byte {off} (y={y}, size={size})", field="chunk")
        n = min(lines, height - row0)
        expect = n * sum(row_bytes)
        block = data[off + 8 : off + 8 + size]
        if comp != 0 and size < expect:
            block = _unzip(block, expect, path, y)
        if len(block) != expect:
            raise FormatError(path, f"scanline block at y={y}: {len(block)} bytes, expected {expect}", field="chunk")
        pos_in = 0
        for r in range(n):
            for (name, ptype), nb in zip(chans, row_bytes):
                if name == want:
                    out[row0 + r] = np.frombuffer(block, dtype=PIXEL_DTYPES[ptype], count=width, offset=pos_in)
                pos_in += nb
    return out


def write_exr(
    path: str | os.PathLike, image: np.ndarray, channel: str = "Z", compression: str = "ZIP", half: bool = False
) -> None:
    """Write (H, W) values as a single-channel scanline EXR (FLOAT or HALF; NONE or ZIP)."""
    a = np.asarray(image, dtype=np.float64)
    if a.ndim != 2 or a.size == 0:
        raise ValueError(f"expected a non-empty (H, W) array, got shape {a.shape}")
    comp = {"NONE": 0, "ZIP": 3}.get(compression.upper())
    if comp is None:
        raise ValueError(f"compression must be NONE or ZIP, got {compression!r}")
    h, w = a.shape
    ptype = 1 if half else 2
    pix = a.astype(PIXEL_DTYPES[ptype])

    def attr(name: str, kind: str, body: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(body)) + body

    header = struct.pack("<iI", MAGIC, 2)
    header += attr("channels", "chlist", channel.encode() + b"\0" + struct.pack("<iB3xii", ptype, 0, 1, 1) + b"\0")
    header += attr("compression", "compression", bytes([comp]))
    header += attr("dataWindow", "box2i", struct.pack("<iiii", 0, 0, w - 1, h - 1))
    header += attr("displayWindow", "box2i", struct.pack("<iiii", 0, 0, w - 1, h - 1))
    header += attr("lineOrder", "lineOrder", b"\0")
    header += attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
    header += attr("screenWindowCenter", "v2f", struct.pack("<ff", 0.0, 0.0))
    header += attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0"
    lines = LINES_PER_CHUNK[comp]
    blocks = []
    for y in range(0, h, lines):
        raw = pix[y : y + lines].tobytes()
        if comp == 3:
            b = np.frombuffer(raw, dtype=np.uint8)
            t = np.concatenate([b[0::2], b[1::2]]).astype(np.int64)
            d = np.r_[t[0], (t[1:] - t[:-1] + 128) & 255].astype(np.uint8)
            packed = zlib.compress(d.tobytes(), 6)
            raw = packed if len(packed) < len(raw) else raw
        blocks.append(struct.pack("<ii", y, len(raw)) + raw)
    offsets, pos = [], len(header) + 8 * len(blocks)
    for b in blocks:
        offsets.append(pos)
        pos += len(b)
    with open(path, "wb") as fh:
        fh.write(header + struct.pack(f"<{len(offsets)}Q", *offsets) + b"".join(blocks))
