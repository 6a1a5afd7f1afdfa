"""OpenEXR layout and the built-in codec: headers of every EXR (single- and multi-part, scanline
and tiled), the choice of the depth part and channel, and a numpy + zlib pixel decoder.

:func:`exr_layout` reads the headers only (no pixel is touched): each part's name, type,
compression, data window and channel list. :func:`pick_depth_channel` names the depth channel:
``Z``, then ``Depth.Z`` / ``<layer>.Depth.Z`` (Blender's Depth pass, Nuke's ``depth.Z``), then a
channel or layer called ``depth`` or ``distance``, then ``D``, then the only channel of the file,
then ``Y`` or ``R`` (a grey or RGB save of a depth image); the first match in file order wins (a
second view layer's depth is not read unless named). ``Combined.R``, ``Vector.Z``, ``Normal.Y`` and
other layered colour/vector channels are never taken for depth.

The built-in decoder (:func:`decode_part_channel`) is the fallback when neither OpenImageIO nor the
OpenEXR package is importable (:mod:`.image_backends` chooses): scanline parts, single- or
multi-part, NONE, ZIPS or ZIP compression, HALF, FLOAT or UINT samples. Anything else is refused
with a :class:`FormatError` saying what would read it. :func:`write_exr` writes one FLOAT or HALF
channel with NONE or ZIP.

Background in a HALF channel: Blender writes 1e10 where its Depth pass hits nothing, and a 16-bit
(half) save clamps that to :data:`HALF_MAX`; :func:`half_background_to_inf` turns it back into
+inf (no depth), as no real half depth is that large (its step there is 32 units).
"""

from __future__ import annotations

import os
import struct
import zlib
from dataclasses import dataclass

import numpy as np

from .errors import FormatError
from .magic import EXR_MAGIC

MAGIC = 20000630
COMPRESSIONS = dict(enumerate(["NONE", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A", "DWAA", "DWAB"]))
LINES_PER_CHUNK = {0: 1, 2: 1, 3: 16}  # the compressions the built-in decoder reads
# scanlines per chunk of every codec (OpenEXR's ImfCompression.cpp); an unknown one counts as the most
CODEC_LINES = {0: 1, 1: 1, 2: 1, 3: 16, 4: 32, 5: 16, 6: 32, 7: 32, 8: 32, 9: 256, 10: 1, 11: 32, 12: 256}
PIXEL_DTYPES = {0: np.dtype("<u4"), 1: np.dtype("<f2"), 2: np.dtype("<f4")}
TILED, LONG_NAMES, DEEP, MULTIPART = 0x200, 0x400, 0x800, 0x1000  # version-field flags
HALF_MAX = 65504.0  # the largest finite half: Blender's 1e10 background saturates to it in a half channel
_LIST_NAMES = 12  # channel names quoted in an error message


@dataclass(frozen=True)
class ExrPart:
    """One part's header: ``kind`` is scanlineimage, tiledimage, deepscanline or deeptile."""

    index: int
    name: str | None
    kind: str
    compression: int
    x0: int
    y0: int
    width: int
    height: int
    channels: tuple[tuple[str, int], ...]  # (name, pixel type) in file order
    chunk_count: int | None  # the header's chunkCount (multi-part files), else None
    tile: tuple[int, int] | None = None  # the header's tile size (tiled parts), else None

    @property
    def decoded_bytes(self) -> int:
        """Bytes of this part's pixels once decompressed (every channel, at its stored size)."""
        return self.width * self.height * sum(PIXEL_DTYPES[t].itemsize for _, t in self.channels)

    @property
    def block_bytes(self) -> int:
        """Bytes of this part's largest block once decompressed, every channel: a scanline chunk, or
        a row of tiles (what a scanline reader of a tiled part buffers). A decoder holds that much at
        once however little of the part it wants."""
        lines = min(self.tile[1] if self.tile else CODEC_LINES.get(self.compression, 256), self.height)
        return self.width * lines * sum(PIXEL_DTYPES[t].itemsize for _, t in self.channels)

    @property
    def compression_name(self) -> str:
        return COMPRESSIONS.get(self.compression, f"type {self.compression}")


def _attributes(data: bytes, pos: int, path, long_names: bool) -> tuple[dict, int]:
    """One header's attributes {name: (type, bytes)} from ``pos``, and the offset after its null byte."""
    attrs, most = {}, 255 if long_names else 31
    while True:
        end = data.find(b"\x00", pos, pos + most + 1)
        if end < 0:
            raise FormatError(path, "truncated or corrupt header", field="header")
        name = data[pos:end].decode("latin-1")
        if not name:
            return attrs, end + 1
        tend = data.find(b"\x00", end + 1, end + most + 2)
        if tend < 0 or tend + 5 > len(data):
            raise FormatError(path, f"truncated header attribute {name!r}", field=name)
        kind = data[end + 1 : tend].decode("latin-1")
        (size,) = struct.unpack("<i", data[tend + 1 : tend + 5])
        body = data[tend + 5 : tend + 5 + size]
        if size < 0 or len(body) != size:
            raise FormatError(path, f"header attribute {name!r} is truncated", field=name)
        attrs[name] = (kind, body)
        pos = tend + 5 + size


def _channels(body: bytes, path) -> tuple[tuple[str, int], ...]:
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
    return tuple(out)


def _part(index: int, attrs: dict, flags: int, path) -> ExrPart:
    for need in ("channels", "compression", "dataWindow"):
        if need not in attrs:
            raise FormatError(path, f"header lacks the required attribute {need!r}", field=need)
    if len(attrs["dataWindow"][1]) != 16:
        raise FormatError(path, "dataWindow must be a box2i (16 bytes)", field="dataWindow")
    x0, y0, x1, y1 = struct.unpack("<iiii", attrs["dataWindow"][1])
    width, height = x1 - x0 + 1, y1 - y0 + 1
    if width <= 0 or height <= 0:
        raise FormatError(path, f"data window {width}x{height} has no pixels", field="dataWindow")
    if "type" in attrs:
        kind = attrs["type"][1].decode("latin-1")
    else:
        kind = ("deeptile" if flags & TILED else "deepscanline") if flags & DEEP else "scanlineimage"
        kind = "tiledimage" if flags & TILED and not flags & DEEP else kind
    count = None
    if "chunkCount" in attrs and len(attrs["chunkCount"][1]) == 4:
        count = struct.unpack("<i", attrs["chunkCount"][1])[0]
    name = attrs["name"][1].decode("latin-1") if "name" in attrs else None
    comp = attrs["compression"][1][0] if attrs["compression"][1] else -1
    tile = None
    if "tiled" in kind and "tiles" in attrs and len(attrs["tiles"][1]) >= 8:
        tile = struct.unpack("<II", attrs["tiles"][1][:8])
        if min(tile) < 1:
            raise FormatError(path, f"tile size {tile[0]}x{tile[1]} has no pixels", field="tiles")
    channels = _channels(attrs["channels"][1], path)
    return ExrPart(index, name, kind, comp, x0, y0, width, height, channels, count, tile)


@dataclass(frozen=True)
class ExrLayout:
    """A file's parts and where its chunk-offset tables start (one table per part, in part order)."""

    parts: list[ExrPart]
    table_pos: int
    multipart: bool

    @property
    def decoded_bytes(self) -> int:
        return sum(p.decoded_bytes for p in self.parts)


def exr_layout(data: bytes, source: str | os.PathLike) -> ExrLayout:
    """Every part's header (no pixel read) and the offset of the first chunk-offset table."""
    try:
        if len(data) < 8 or data[:4] != EXR_MAGIC:
            raise FormatError(source, "not an OpenEXR file (bad magic number)", field="magic")
        flags = struct.unpack("<I", data[4:8])[0]
        parts, pos = [], 8
        while True:
            attrs, pos = _attributes(data, pos, source, bool(flags & LONG_NAMES))
            if not attrs:  # the empty header that ends a multi-part list
                break
            parts.append(_part(len(parts), attrs, flags, source))
            if not flags & MULTIPART:
                break
        if not parts:
            raise FormatError(source, "the file has no parts", field="header")
        return ExrLayout(parts, pos, bool(flags & MULTIPART))
    except FormatError:
        raise
    except (struct.error, ValueError, IndexError) as e:  # a field shorter than its type
        raise FormatError(source, f"corrupt EXR header ({e})", field="header") from None


_DEPTH_RULES = (
    lambda n: n == "Z",
    lambda n: n.lower() == "depth.z" or n.lower().endswith(".depth.z"),
    lambda n: n.lower().rsplit(".", 1)[-1] in ("depth", "distance"),
    lambda n: n == "D",
)


def pick_depth_channel(parts: list[ExrPart], channel: str | None, source) -> tuple[ExrPart, str]:
    """The part and channel holding depth: ``channel`` by its full name, else the module's rules."""
    named = [(p, n) for p in parts for n, _ in p.channels]
    if channel is not None:
        hits = [(p, n) for p, n in named if n == channel]
        if not hits:
            raise FormatError(source, f"no channel {channel!r}; the file has {_names(named)}", field="channels")
        return hits[0]
    rules = [*_DEPTH_RULES, lambda n: len(named) == 1, lambda n: n in ("Y", "R")]
    for rule in rules:
        for p, n in named:
            if rule(n):
                return p, n
    msg = f"no depth channel (Z, <layer>.Depth.Z, depth, distance) among {_names(named)}"
    raise FormatError(source, msg + ": enable the Depth pass, or name the channel", field="channels")


def _names(named) -> str:
    names = [n for _, n in named]
    more = f" and {len(names) - _LIST_NAMES} more" if len(names) > _LIST_NAMES else ""
    return str(names[:_LIST_NAMES]) + more


def half_background_to_inf(values: np.ndarray, part: ExrPart, channel: str) -> np.ndarray:
    """``values`` of ``channel`` with +inf for :data:`HALF_MAX` and above when it is a HALF channel."""
    if dict(part.channels)[channel] == 1:
        values = np.where(values >= HALF_MAX, np.inf, values)
    return values


def _unzip(block: bytes, size: int, path, y: int) -> np.ndarray:
    """ZIP/ZIPS chunk → its raw bytes (uint8), in place in uint8: two bytes of memory per byte."""
    try:
        raw = zlib.decompressobj().decompress(block, size + 1)
    except zlib.error as e:
        raise FormatError(path, f"scanline block at y={y}: corrupt ZIP data ({e})", field="chunk") from None
    if len(raw) != size:
        raise FormatError(path, f"scanline block at y={y}: {len(raw)} bytes, expected {size}", field="chunk")
    d = np.frombuffer(raw, dtype=np.uint8) - np.uint8(128)  # undo the delta predictor:
    del raw  # out[i] = out[i-1] + t[i] - 128 (mod 256), out[0] = t[0]
    d[0] = (int(d[0]) + 128) & 255
    np.cumsum(d, dtype=np.uint8, out=d)
    out = np.empty(size, dtype=np.uint8)
    half = (size + 1) // 2
    out[0::2], out[1::2] = d[:half], d[half:]  # undo the two-halves byte split
    return out


def decode_part_channel(data: bytes, source, layout: ExrLayout, part: ExrPart, channel: str) -> np.ndarray:
    """One channel of a scanline part (NONE, ZIPS or ZIP) as (H, W) float64: the built-in decoder."""
    try:
        return _decode_part_channel(data, source, layout, part, channel)
    except FormatError:
        raise
    except (struct.error, ValueError, IndexError) as e:  # a field shorter than its type
        raise FormatError(source, f"corrupt EXR data ({e})", field="chunk") from None


def _chunk_count(p: ExrPart) -> int:
    if p.chunk_count is not None:
        return p.chunk_count
    return -(-p.height // LINES_PER_CHUNK.get(p.compression, 1))


def _decode_part_channel(data, path, layout, part, channel):
    hint = "; install the OpenEXR package (pip install openexr) or re-save as scanline ZIP"
    if part.kind != "scanlineimage":
        raise FormatError(path, f"{part.kind} EXR parts are not read by the built-in decoder{hint}", field="type")
    if part.compression not in LINES_PER_CHUNK:
        msg = f"{part.compression_name} compression is not read by the built-in decoder{hint}"
        raise FormatError(path, msg, field="compression")
    multi = layout.multipart
    pos = layout.table_pos + 8 * sum(_chunk_count(p) for p in layout.parts[: part.index])
    nchunks, lines = _chunk_count(part), LINES_PER_CHUNK[part.compression]
    if nchunks != -(-part.height // lines) or pos + 8 * nchunks > len(data):
        raise FormatError(path, "truncated or inconsistent scanline offset table", field="offsets")
    table = np.frombuffer(data, dtype="<u8", count=nchunks, offset=pos)
    width, height = part.width, part.height
    row_bytes = [width * PIXEL_DTYPES[t].itemsize for _, t in part.channels]
    ptype = dict(part.channels)[channel]
    out = np.empty((height, width), dtype=np.float64)
    lead = 4 if multi else 0  # a multi-part chunk starts with its part number
    for off in table:
        off = int(off)
        if off + lead + 8 > len(data):
            raise FormatError(path, f"scanline offset {off} points past the end of the file", field="offsets")
        if multi and struct.unpack("<i", data[off : off + 4])[0] != part.index:
            raise FormatError(path, f"the chunk at byte {off} belongs to another part", field="chunk")
        y, size = struct.unpack("<ii", data[off + lead : off + lead + 8])
        row0, start = y - part.y0, off + lead + 8
        if not 0 <= row0 < height or size < 0 or start + size > len(data):
            raise FormatError(path, f"bad scanline block header at byte {off} (y={y}, size={size})", field="chunk")
        n = min(lines, height - row0)
        expect = n * sum(row_bytes)
        block = np.frombuffer(data, np.uint8, count=size, offset=start)
        if part.compression != 0 and size < expect:
            block = _unzip(data[start : start + size], expect, path, y)
        if len(block) != expect:
            raise FormatError(path, f"scanline block at y={y}: {len(block)} bytes, expected {expect}", field="chunk")
        pos_in = 0
        for r in range(n):
            for (name, _), nb in zip(part.channels, row_bytes):
                if name == channel:
                    out[row0 + r] = block[pos_in : pos_in + nb].view(PIXEL_DTYPES[ptype])
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
