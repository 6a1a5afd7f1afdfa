"""EXR depth maps of every classic codec, half and float, scanline and tiled, single- and multi-part,
written by the OpenEXR library from known arrays and read back by the one depth reader; the choice
of the depth part and channel; the refusal of a header that claims too many bytes to decompress."""

from __future__ import annotations

import itertools
import struct
import time
import tracemalloc

import numpy as np
import pytest

from parascale_blender.formats import image_size
from parascale_blender.formats.depthmaps import decode_depth_map, read_depth_map
from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.image_backends import EXR_BACKENDS, available, decode_exr

OpenEXR = pytest.importorskip("OpenEXR")

CODECS = ["NONE", "RLE", "ZIPS", "ZIP", "PIZ", "PXR24", "B44", "B44A", "DWAA", "DWAB"]
BUILTIN_CODECS = {"NONE", "ZIPS", "ZIP"}  # what the fallback decoder reads (scanline only)
H, W = 37, 45  # not a multiple of any chunk or tile size: partial blocks everywhere
_y, _x = np.mgrid[0:H, 0:W]
DEPTH = (2.0 + 0.5 * _y + 0.05 * _x).astype(np.float32)  # a receding ground plane, metres
DEPTH[10:22, 20:34] = 3.25  # a box in front of it


def write(path, channels: dict, codec="ZIP", tiled=False, header=None) -> None:
    """One part written by the OpenEXR library (the truth's writer, not ours)."""
    hdr = {"compression": getattr(OpenEXR, ("NO" if codec == "NONE" else codec) + "_COMPRESSION")}
    hdr["type"] = OpenEXR.tiledimage if tiled else OpenEXR.scanlineimage
    if tiled:
        t = OpenEXR.TileDescription()
        t.xSize, t.ySize, t.mode = 16, 8, OpenEXR.ONE_LEVEL
        hdr["tiles"] = t
    with OpenEXR.File({**hdr, **(header or {})}, channels) as f:
        f.write(str(path))


def library_read(path, channel: str, part: int = 0) -> np.ndarray:
    with OpenEXR.File(str(path), separate_channels=True) as f:
        return np.array(f.parts[part].channels[channel].pixels, dtype=np.float64)


VARIANTS = list(itertools.product(CODECS, ["half", "float"], ["scanline", "tiled"]))


@pytest.mark.parametrize("codec,sample,layout", VARIANTS)
def test_every_codec_half_and_float_scanline_and_tiled(tmp_path, codec, sample, layout):
    """40 variants written by OpenEXR are read back by ``read_depth_map`` to the written values:
    exactly for lossless codecs, to 15 mantissa bits for PXR24's 24-bit floats, within B44's
    4x4-block error for half (and then exactly as the OpenEXR library itself decodes them)."""
    a = DEPTH.astype(np.float16 if sample == "half" else np.float32)
    path = tmp_path / f"{codec}_{sample}_{layout}.exr"
    write(path, {"Z": a}, codec, tiled=layout == "tiled")
    got = read_depth_map(path)
    written = a.astype(np.float64)
    if codec == "PXR24" and sample == "float":
        np.testing.assert_allclose(got, written, rtol=2.0**-15)
    elif codec in ("B44", "B44A") and sample == "half":
        np.testing.assert_allclose(got, written, rtol=0.05)  # B44 is lossy for half samples
        np.testing.assert_array_equal(got, library_read(path, "Z"))
    else:
        np.testing.assert_array_equal(got, written)
    for backend in EXR_BACKENDS:  # every decoder that is importable here, the fallback included
        if not available(backend):
            continue
        if backend == "builtin" and (codec not in BUILTIN_CODECS or layout == "tiled"):
            with pytest.raises(FormatError, match=f"{path.name}: .*not read by the built-in decoder; install"):
                decode_exr(path.read_bytes(), path, backend=backend)
        else:
            np.testing.assert_array_equal(decode_exr(path.read_bytes(), path, path=path, backend=backend), got)


def test_sky_values_are_empty(tmp_path):
    """inf, NaN, zero, negative and Blender's 1e10 background read as NaN (no depth); the rest stays."""
    a = DEPTH.copy()
    sky = [(0, 0, np.inf), (0, 1, np.nan), (0, 2, 0.0), (0, 3, -1.0), (0, 4, 1e10)]
    for r, c, v in sky:
        a[r, c] = v
    write(tmp_path / "sky.exr", {"Z": a}, "PIZ")
    got = read_depth_map(tmp_path / "sky.exr")
    assert np.isnan(got[0, :5]).all()
    np.testing.assert_array_equal(got[1:], DEPTH[1:].astype(np.float64))


def _multipart(path, parts: list[tuple[str, dict]], codec="ZIP") -> None:
    comp = getattr(OpenEXR, codec + "_COMPRESSION")
    ps = [OpenEXR.Part({"compression": comp, "type": OpenEXR.scanlineimage}, ch, name) for name, ch in parts]
    with OpenEXR.File(ps) as f:
        f.write(str(path))


@pytest.mark.parametrize("codec", ["ZIP", "PIZ", "DWAA"])
def test_multipart_render_gives_its_depth_part(tmp_path, codec):
    """A multi-part file laid out as Blender 5.0 saves a render (Combined RGBA, then
    ``ViewLayer.Depth.Z``, then a Vector pass whose ``.Z`` is not depth): the Depth part is read."""

    def rgba():
        return "ViewLayer.Combined", {f"ViewLayer.Combined.{c}": np.full((H, W), 0.5, np.float16) for c in "RGBA"}

    def vector():
        return "ViewLayer.Vector", {f"ViewLayer.Vector.{c}": np.full((H, W), 7.0, np.float32) for c in "XYZW"}

    _multipart(tmp_path / "render.exr", [rgba(), ("ViewLayer.Depth", {"ViewLayer.Depth.Z": DEPTH}), vector()], codec)
    np.testing.assert_array_equal(read_depth_map(tmp_path / "render.exr"), DEPTH.astype(np.float64))
    for backend in [b for b in EXR_BACKENDS if available(b) and (b != "builtin" or codec == "ZIP")]:
        got = decode_exr((tmp_path / "render.exr").read_bytes(), "render.exr", backend=backend)
        np.testing.assert_array_equal(got, DEPTH.astype(np.float64))
    _multipart(tmp_path / "nodepth.exr", [rgba(), vector()], codec)  # no Depth pass: not colour or vectors
    with pytest.raises(FormatError, match=r"nodepth\.exr: field 'channels': no depth channel .*enable the Depth pass"):
        read_depth_map(tmp_path / "nodepth.exr")
    got = read_depth_map(tmp_path / "nodepth.exr", channel="ViewLayer.Vector.Z")  # named: read
    np.testing.assert_array_equal(got, np.full((H, W), 7.0))


@pytest.mark.parametrize(
    "names,want",
    [
        (["B", "G", "R", "Z"], "Z"),
        (["A", "B", "G", "R", "depth.Z"], "depth.Z"),  # Nuke's depth layer
        (["RenderLayer.Combined.R", "RenderLayer.Depth.Z", "RenderLayer.Normal.Z"], "RenderLayer.Depth.Z"),
        (["B", "G", "R", "distance"], "distance"),
        (["Y", "depth"], "depth"),
        (["V"], "V"),  # the only channel
        (["B", "G", "R"], "R"),  # an RGB save of a depth image
    ],
)
def test_depth_channel_choice_in_a_single_part_file(tmp_path, names, want):
    """Single-part layered files (Blender 4.2's multilayer, Nuke's): the depth channel by name."""
    chans = {n: np.full((4, 5), float(i + 1), np.float32) for i, n in enumerate(names)}
    write(tmp_path / "c.exr", dict(chans))  # (the library turns the dict's values into Channels)
    np.testing.assert_array_equal(read_depth_map(tmp_path / "c.exr"), chans[want])
    if available("builtin"):
        got = decode_exr((tmp_path / "c.exr").read_bytes(), "c.exr", backend="builtin")
        np.testing.assert_array_equal(got, chans[want])


def _bomb(n_channels: int, width: int = 16384, height: int = 16) -> bytes:
    """A header (no pixels) claiming ``n_channels`` HALF channels of width x height, ZIP."""

    def attr(name: str, kind: str, body: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(body)) + body

    names = ["Z"] + [f"c{i:05d}" for i in range(1, n_channels)]  # a depth channel and ballast
    chlist = b"".join(n.encode() + b"\0" + struct.pack("<iB3xii", 1, 0, 1, 1) for n in names)
    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    header = struct.pack("<iI", 20000630, 2) + attr("channels", "chlist", chlist + b"\0")
    header += attr("compression", "compression", b"\3") + attr("dataWindow", "box2i", box)
    header += attr("displayWindow", "box2i", box) + attr("lineOrder", "lineOrder", b"\0")
    header += attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
    header += attr("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0))
    header += attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0"
    return header + bytes(8)  # a stub offset table: nothing would decode anyway


@pytest.mark.parametrize("backend", [b for b in EXR_BACKENDS if available(b)])
def test_channel_bomb_is_refused_from_its_header(backend):
    """A 120 KB header claiming 5,000 channels of 16384x16 (2.6 GB to inflate) is refused, naming
    the file and the byte count, before any decoder runs: in milliseconds and a few MB."""
    data = _bomb(5000)
    assert len(data) < 130_000
    claimed = 5000 * 16384 * 16 * 2
    tracemalloc.start()
    t0 = time.perf_counter()
    match = rf"bomb\.exr: field 'channels': decoding it means decompressing {claimed} bytes"
    with pytest.raises(FormatError, match=match):
        decode_exr(data, "bomb.exr", backend=backend)
    elapsed = time.perf_counter() - t0
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert elapsed < 1.0 and peak < 20e6, (elapsed, peak)
    assert claimed > image_size.MAX_DECODED_BYTES
    with pytest.raises(FormatError, match="decompressing"):  # the same through the one reader
        decode_depth_map(data, "bomb.exr")
