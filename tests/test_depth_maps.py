"""Depth-map readers and writers against OpenCV (independent truth) and the real TUM / ICL files."""

from __future__ import annotations

import os

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # must precede the cv2 import

import struct  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from parascale_blender.formats.depthmaps import (  # noqa: E402
    DEFAULT_PNG_SCALE,
    decode_depth_map,
    list_depth_maps,
    read_depth_map,
    read_npy,
    read_pfm,
    write_depth_map,
)
from parascale_blender.formats.errors import FormatError  # noqa: E402
from parascale_blender.formats.exr import write_exr  # noqa: E402
from parascale_blender.formats.image_backends import available, decode_exr, decode_png  # noqa: E402
from parascale_blender.formats.png16 import read_png, write_png16  # noqa: E402

RNG = np.random.default_rng(0)
IMG16 = (RNG.random((37, 53)) * 65535).astype(np.uint16)
IMG16[5:20, 5:30] = 1234  # flat patch: encoders pick different row filters for it
FLOAT = (RNG.random((29, 41)) * 10).astype(np.float32)


def cv_read(path) -> np.ndarray:
    return cv2.imread(str(path), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)


def read_exr(path, channel=None, backend="builtin") -> np.ndarray:
    """The depth channel of an EXR file by one backend (the built-in codec unless named)."""
    return decode_exr(path.read_bytes(), path, channel, path=path, backend=backend)


EXR_BACKENDS = [b for b in ("builtin", "openexr", "oiio") if available(b)]
PNG_BACKENDS = [b for b in ("builtin", "cv2", "oiio") if available(b)]


# ------------------------------------------------------------------ PNG


def test_real_tum_png_matches_opencv(shared_data):
    path = shared_data / "depth" / "tum_open3d" / "TUM_depth.png"
    counts = cv_read(path)
    np.testing.assert_array_equal(read_png(path), counts)
    depth = read_depth_map(path, scale=1 / 5000)
    np.testing.assert_array_equal(np.isnan(depth), counts == 0)
    np.testing.assert_allclose(depth[counts > 0], counts[counts > 0] / 5000.0)
    assert 0.3 < np.nanmedian(depth) < 5  # a Kinect indoor scene in metres


@pytest.mark.parametrize("i", range(5))
def test_real_icl_png_millimetres_match_opencv(shared_data, i):
    path = shared_data / "depth" / "icl_synthetic_open3d" / "depth" / f"{i:05d}.png"
    counts = cv_read(path)
    depth = read_depth_map(path)  # default scale: millimetres
    np.testing.assert_array_equal(np.isnan(depth), counts == 0)
    np.testing.assert_allclose(depth[counts > 0], counts[counts > 0] / 1000.0)


@pytest.mark.parametrize("strategy", range(5))
def test_png_written_by_opencv_with_every_filter_strategy(tmp_path, strategy):
    path = tmp_path / "d.png"
    cv2.imwrite(str(path), IMG16, [cv2.IMWRITE_PNG_STRATEGY, strategy, cv2.IMWRITE_PNG_COMPRESSION, 9])
    np.testing.assert_array_equal(read_png(path), IMG16)
    cv2.imwrite(str(path), (IMG16 >> 8).astype(np.uint8), [cv2.IMWRITE_PNG_STRATEGY, strategy])
    np.testing.assert_array_equal(read_png(path), IMG16 >> 8)


def test_png16_writer_is_read_by_opencv(tmp_path):
    write_png16(tmp_path / "w.png", IMG16)
    np.testing.assert_array_equal(cv_read(tmp_path / "w.png"), IMG16)


def test_depth_png_round_trip_with_scale_and_invalid(tmp_path):
    depth = FLOAT.astype(np.float64)
    depth[0, :5] = np.nan
    write_depth_map(tmp_path / "d.png", depth, scale=1 / 5000)
    back = read_depth_map(tmp_path / "d.png", scale=1 / 5000)
    np.testing.assert_array_equal(np.isnan(back), np.isnan(depth))
    np.testing.assert_allclose(back, depth, atol=0.5 / 5000)
    with pytest.raises(ValueError, match="65535"):
        write_depth_map(tmp_path / "e.png", depth * 1e4, scale=0.001)


@pytest.mark.parametrize("backend", PNG_BACKENDS)
@pytest.mark.parametrize("layout", ["grey", "grey+alpha", "rgb", "rgba"])
def test_16_bit_png_of_every_layout_gives_its_first_channel(tmp_path, backend, layout):
    """Grey, grey+alpha (Pillow), RGB and RGBA 16-bit PNGs (OpenCV) read back exactly: depth is the
    grey or red channel (a translucent alpha must not premultiply it)."""
    from PIL import Image

    path = tmp_path / "d.png"
    other = IMG16[::-1].copy()
    if layout == "grey":
        assert cv2.imwrite(str(path), IMG16)
    elif layout == "grey+alpha":  # OpenCV cannot write it; Pillow writes LA as 8 bit only
        Image.fromarray((IMG16 >> 8).astype(np.uint8)).convert("LA").save(path)
    else:
        bgr = [other, other // 2, IMG16] + ([np.full_like(IMG16, 1000)] if layout == "rgba" else [])
        assert cv2.imwrite(str(path), np.dstack(bgr))  # OpenCV writes B, G, R(, A): red = IMG16
    expect = (IMG16 >> 8).astype(np.uint8) if layout == "grey+alpha" else IMG16
    np.testing.assert_array_equal(decode_png(path.read_bytes(), path, path=path, backend=backend), expect)
    if backend == PNG_BACKENDS[-1]:  # the default backend, through the one reader
        np.testing.assert_array_equal(read_depth_map(path, scale=1.0)[expect > 0], expect[expect > 0])


def test_palette_png_is_refused_clearly(tmp_path):
    from PIL import Image

    path = tmp_path / "pal.png"
    Image.fromarray(np.zeros((4, 4), np.uint8)).convert("P").save(path)
    with pytest.raises(FormatError, match="palette PNG; a depth map must be greyscale or RGB") as e:
        read_depth_map(path)
    assert e.value.field == "colour_type" and str(path) in str(e.value)


def test_png_with_bad_crc_or_truncation(tmp_path):
    good = tmp_path / "g.png"
    write_png16(good, IMG16)
    data = bytearray(good.read_bytes())
    data[40] ^= 0xFF
    (tmp_path / "crc.png").write_bytes(bytes(data))
    with pytest.raises(FormatError, match="CRC"):
        read_png(tmp_path / "crc.png")
    (tmp_path / "cut.png").write_bytes(good.read_bytes()[:60])
    with pytest.raises(FormatError, match="truncated"):
        read_png(tmp_path / "cut.png")
    with pytest.raises(FormatError, match="not a PNG"):
        (tmp_path / "txt.png").write_text("hello")
        read_png(tmp_path / "txt.png")


# ------------------------------------------------------------------ EXR


@pytest.mark.parametrize("backend", EXR_BACKENDS)
@pytest.mark.parametrize("compression", [0, 2, 3])  # NONE, ZIPS, ZIP
@pytest.mark.parametrize("exr_type", [1, 2])  # HALF, FLOAT
def test_exr_written_by_opencv(tmp_path, compression, exr_type, backend):
    path = tmp_path / "d.exr"
    assert cv2.imwrite(str(path), FLOAT, [cv2.IMWRITE_EXR_COMPRESSION, compression, cv2.IMWRITE_EXR_TYPE, exr_type])
    expect = FLOAT.astype(np.float16) if exr_type == 1 else FLOAT
    np.testing.assert_array_equal(read_exr(path, backend=backend), expect.astype(np.float64))
    np.testing.assert_array_equal(read_depth_map(path), expect.astype(np.float64))


@pytest.mark.parametrize("compression,name", [(1, "RLE"), (4, "PIZ"), (5, "PXR24"), (6, "B44")])
def test_builtin_exr_decoder_refusals_say_what_to_do(tmp_path, compression, name):
    """The built-in fallback names the codec and the fix; the default backend reads the file."""
    path = tmp_path / "d.exr"
    assert cv2.imwrite(str(path), FLOAT, [cv2.IMWRITE_EXR_COMPRESSION, compression])
    with pytest.raises(FormatError, match=f"{name} compression is not read by the built-in decoder; install") as e:
        read_exr(path)
    assert e.value.field == "compression" and str(path) in str(e.value)
    if EXR_BACKENDS[-1] != "builtin":
        np.testing.assert_allclose(read_depth_map(path), FLOAT, rtol=2e-5)  # PXR24 keeps 15 mantissa bits


@pytest.mark.parametrize("backend", EXR_BACKENDS)
def test_exr_channel_choice(tmp_path, backend):
    path = tmp_path / "bgr.exr"
    cv2.imwrite(str(path), np.dstack([FLOAT, FLOAT * 2, FLOAT * 3]))  # channels B, G, R
    np.testing.assert_array_equal(read_exr(path, backend=backend), FLOAT * 3.0)  # R when there is no Z / Y
    np.testing.assert_array_equal(read_exr(path, channel="G", backend=backend), FLOAT * 2.0)
    with pytest.raises(FormatError, match="no channel 'Z'"):
        read_exr(path, channel="Z", backend=backend)


@pytest.mark.parametrize("compression", ["NONE", "ZIP"])
@pytest.mark.parametrize("half", [False, True])
def test_exr_writer_is_read_by_opencv(tmp_path, compression, half):
    path = tmp_path / "w.exr"
    write_exr(path, FLOAT, channel="Y", compression=compression, half=half)
    expect = FLOAT.astype(np.float16).astype(np.float32) if half else FLOAT
    np.testing.assert_array_equal(cv_read(path), expect)
    write_exr(path, FLOAT, compression=compression, half=half)  # channel Z: our reader picks it
    np.testing.assert_array_equal(read_exr(path), expect.astype(np.float64))


def test_exr_tiled_and_garbage_are_refused(tmp_path):
    path = tmp_path / "w.exr"
    write_exr(path, FLOAT)
    data = bytearray(path.read_bytes())
    data[4:8] = struct.pack("<I", 2 | 0x200)
    (tmp_path / "tiled.exr").write_bytes(bytes(data))  # the tiled flag on a scanline file
    with pytest.raises(FormatError, match="tiledimage EXR parts are not read by the built-in decoder"):
        read_exr(tmp_path / "tiled.exr")
    with pytest.raises(FormatError, match="tiled.exr"):  # no tile description: no library reads it either
        read_depth_map(tmp_path / "tiled.exr")
    (tmp_path / "junk.exr").write_bytes(b"\x00" * 64)
    with pytest.raises(FormatError, match="not an OpenEXR"):
        read_exr(tmp_path / "junk.exr")


def test_blender_background_sentinel_is_empty(tmp_path):
    d = FLOAT.astype(np.float64)
    d[2, 3] = 1e10  # Blender's Z pass for pixels that hit nothing
    write_exr(tmp_path / "z.exr", d)
    back = read_depth_map(tmp_path / "z.exr")
    assert np.isnan(back[2, 3]) and np.isfinite(back).sum() == d.size - 1


# ------------------------------------------------------------------ PFM, NPY, folders


def test_pfm_against_opencv_both_ways(tmp_path):
    assert cv2.imwrite(str(tmp_path / "cv.pfm"), FLOAT)
    np.testing.assert_array_equal(read_pfm(tmp_path / "cv.pfm"), FLOAT.astype(np.float64))
    write_depth_map(tmp_path / "ours.pfm", FLOAT)
    np.testing.assert_array_equal(cv_read(tmp_path / "ours.pfm"), FLOAT)
    big_endian = b"Pf\n2 1\n1.0\n" + np.array([1.5, 2.5], ">f4").tobytes()
    (tmp_path / "be.pfm").write_bytes(big_endian)
    np.testing.assert_array_equal(read_pfm(tmp_path / "be.pfm"), [[1.5, 2.5]])


def test_pfm_colour_and_truncated(tmp_path):
    (tmp_path / "c.pfm").write_bytes(b"PF\n2 2\n-1.0\n" + bytes(48))
    with pytest.raises(FormatError, match="three-channel"):
        read_pfm(tmp_path / "c.pfm")
    (tmp_path / "t.pfm").write_bytes(b"Pf\n20 20\n-1.0\n" + bytes(10))
    with pytest.raises(FormatError, match="expected 1600"):
        read_pfm(tmp_path / "t.pfm")


def test_npy_round_trip_and_shape_errors(tmp_path):
    d = FLOAT.astype(np.float64)
    d[1, 1] = -3  # non-positive: invalid
    write_depth_map(tmp_path / "d.npy", d)
    back = read_depth_map(tmp_path / "d.npy")
    assert np.isnan(back[1, 1])
    np.testing.assert_allclose(np.delete(back.ravel(), 42), np.delete(FLOAT.ravel(), 42), rtol=1e-7)
    np.save(tmp_path / "bad.npy", np.zeros((2, 3, 4)))
    with pytest.raises(FormatError, match=r"expected a numeric \(H, W\) depth array"):
        read_npy(tmp_path / "bad.npy")
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}]), allow_pickle=True)
    with pytest.raises(FormatError, match="numeric"):  # refused from the header: never unpickled
        read_npy(tmp_path / "obj.npy")
    (tmp_path / "cut.npy").write_bytes((tmp_path / "d.npy").read_bytes()[:-10])
    with pytest.raises(FormatError, match="not a readable"):
        read_npy(tmp_path / "cut.npy")
    with pytest.raises(FormatError, match="file not found"):
        read_depth_map(tmp_path / "missing.npy")
    with pytest.raises(FormatError, match="unknown depth-map extension"):
        read_depth_map(tmp_path / "d.tiff")


def test_folder_listing_is_natural_and_single_kind(tmp_path):
    for i in (10, 2, 1):
        write_depth_map(tmp_path / f"frame{i}.npy", FLOAT)
    assert [p.name for p in list_depth_maps(tmp_path)] == ["frame1.npy", "frame2.npy", "frame10.npy"]
    write_depth_map(tmp_path / "x.pfm", FLOAT)
    with pytest.raises(FormatError, match="mixes depth-map types"):
        list_depth_maps(tmp_path)
    (tmp_path / "empty").mkdir()
    with pytest.raises(FormatError, match="holds no depth maps"):
        list_depth_maps(tmp_path / "empty")


# ------------------------------------------------------------------ bytes: one decoder, format by magic


def test_bytes_decoder_picks_the_format_by_its_first_bytes(tmp_path):
    """Files written by OpenCV (PNG counts, EXR, PFM) and numpy decode from bytes alone, whatever
    they are called; PNG counts default to DEFAULT_PNG_SCALE world units, float formats to 1."""
    counts = IMG16.copy()
    counts[0, 0] = 0
    assert cv2.imwrite(str(tmp_path / "d.png"), counts)
    assert cv2.imwrite(str(tmp_path / "d.exr"), FLOAT, [cv2.IMWRITE_EXR_COMPRESSION, 3])
    assert cv2.imwrite(str(tmp_path / "d.pfm"), FLOAT)
    np.save(tmp_path / "d.npy", FLOAT)
    png = decode_depth_map((tmp_path / "d.png").read_bytes(), "upload")
    assert np.isnan(png[0, 0]) and DEFAULT_PNG_SCALE == 0.001
    np.testing.assert_allclose(png.ravel()[1:], counts.ravel()[1:] * 0.001)
    np.testing.assert_allclose(
        decode_depth_map((tmp_path / "d.png").read_bytes(), "x", scale=0.5).ravel()[1:], counts.ravel()[1:] * 0.5
    )
    for ext in (".exr", ".pfm", ".npy"):
        np.testing.assert_array_equal(decode_depth_map((tmp_path / f"d{ext}").read_bytes(), "x"), FLOAT)
        np.testing.assert_array_equal(read_depth_map(tmp_path / f"d{ext}"), FLOAT)
    with pytest.raises(FormatError, match="upload: .*checked by its first bytes"):
        decode_depth_map(b"GIF89a" + bytes(20), "upload")
    for ext in (".png", ".exr", ".pfm", ".npy"):
        with pytest.raises(FormatError, match=r"outside 1\.\.20 px a side"):
            decode_depth_map((tmp_path / f"d{ext}").read_bytes(), "x", max_side=20)


def test_depth_maps_are_capped_by_default_from_their_header(tmp_path, monkeypatch):
    """Without ``max_side`` a map is held to MAX_SIDE px a side and MAX_PIXELS; None lifts both."""
    from parascale_blender.formats import image_size

    wide = RNG.uniform(1, 5, (1, image_size.MAX_SIDE + 1)).astype(np.float32)
    assert cv2.imwrite(str(tmp_path / "wide.pfm"), wide)
    with pytest.raises(FormatError, match=rf"wide\.pfm: .*{image_size.MAX_SIDE + 1}x1 \(from its header\)"):
        read_depth_map(tmp_path / "wide.pfm")
    np.testing.assert_array_equal(read_depth_map(tmp_path / "wide.pfm", max_side=None), wide)
    assert cv2.imwrite(str(tmp_path / "d.exr"), FLOAT, [cv2.IMWRITE_EXR_COMPRESSION, 3])
    monkeypatch.setattr(image_size, "MAX_PIXELS", FLOAT.size - 1)
    with pytest.raises(FormatError, match=rf"d\.exr: field 'dataWindow': .* more than the limit of {FLOAT.size - 1} "):
        read_depth_map(tmp_path / "d.exr")
    np.testing.assert_array_equal(read_depth_map(tmp_path / "d.exr", max_side=None), FLOAT)


# ------------------------------------------------------------------ fuzz


def _valid_files(tmp) -> dict[str, bytes]:
    write_png16(tmp / "f.png", IMG16[:8, :9])
    cv2.imwrite(str(tmp / "p.png"), IMG16[:8, :9], [cv2.IMWRITE_PNG_STRATEGY, 0])
    write_exr(tmp / "f.exr", FLOAT[:6, :7])
    write_exr(tmp / "n.exr", FLOAT[:6, :7], compression="NONE", half=True)
    write_depth_map(tmp / "f.pfm", FLOAT[:5, :4])
    return {p: (tmp / p).read_bytes() for p in ("f.png", "p.png", "f.exr", "n.exr", "f.pfm")}


@pytest.fixture(scope="module")
def valid_files(tmp_path_factory):
    return _valid_files(tmp_path_factory.mktemp("fuzz"))


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_depth_files_never_crash(valid_files, tmp_path, data):
    name = data.draw(st.sampled_from(sorted(valid_files)))
    blob = bytearray(valid_files[name])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        if op == "flip" and blob:
            blob[i] = data.draw(st.integers(0, 255))
        elif op == "cut":
            del blob[i : i + data.draw(st.integers(1, 64))]
        else:
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=16))
    path = tmp_path / name
    path.write_bytes(bytes(blob))
    try:
        d = read_depth_map(path)
    except FormatError:
        return
    assert d.ndim == 2 and d.dtype == np.float64
