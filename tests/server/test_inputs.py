"""Upload decoding without the server: depth formats agree, nothing is unpickled, limits hold."""

from __future__ import annotations

import io
import json

import cv2
import numpy as np
import pytest
from server_helpers import npy_bytes, plane_scene, png_bytes

from bridge_server.config import Limits
from bridge_server.inputs import InputError, decode_depth, decode_image, match_sizes, parse_trajectory
from parascale_blender.formats.depthmaps import DEFAULT_PNG_SCALE, read_depth_map, write_depth_map

LIM = Limits(max_frames=50, max_side=256)


def test_depth_formats_decode_to_the_same_metres():
    mm = np.random.default_rng(0).integers(500, 9000, (30, 40)).astype(np.uint16)
    mm[0, 0] = 0  # 0 = no depth in a 16-bit PNG
    metres = mm.astype(np.float64) / 1000
    png = cv2.imencode(".png", mm)[1].tobytes()
    from_png = decode_depth(png, None, LIM)  # the format's default: millimetre counts
    assert np.array_equal(decode_depth(png, 0.001, LIM), from_png, equal_nan=True)
    ok, exr = cv2.imencode(".exr", metres.astype(np.float32))
    from_exr = decode_depth(exr.tobytes(), None, LIM)
    from_npy = decode_depth(npy_bytes(metres), None, LIM)
    for d in (from_png, from_exr, from_npy):
        assert np.isnan(d[0, 0])
        assert np.allclose(d[1:], metres[1:], rtol=1e-6) and np.allclose(d[0, 1:], metres[0, 1:], rtol=1e-6)


def test_png_depth_has_the_same_default_units_in_the_add_on_and_the_server(tmp_path):
    """One decoder: a 16-bit PNG read by the add-on (path) and uploaded to the server (bytes) gives
    the same depth with no scale given, and that is OpenCV's counts × DEFAULT_PNG_SCALE."""
    mm = np.random.default_rng(1).integers(1, 65535, (24, 32)).astype(np.uint16)
    mm[3, 4] = 0
    cv2.imwrite(str(tmp_path / "d.png"), mm)
    counts = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    truth = np.where(counts > 0, counts * DEFAULT_PNG_SCALE, np.nan)
    server = decode_depth((tmp_path / "d.png").read_bytes(), None, LIM)
    np.testing.assert_array_equal(read_depth_map(tmp_path / "d.png"), truth)
    np.testing.assert_array_equal(server, truth)
    np.testing.assert_array_equal(
        decode_depth((tmp_path / "d.png").read_bytes(), 1 / 5000, LIM),
        read_depth_map(tmp_path / "d.png", scale=1 / 5000),
    )


def test_z_channel_exr_written_by_the_add_on_is_read_by_the_server(tmp_path):
    """OpenCV read a Z-channel EXR as empty; the shared decoder returns what was written."""
    depth = np.random.default_rng(2).uniform(0.5, 30, (20, 36))
    depth[5, 6] = np.nan
    write_depth_map(tmp_path / "d.exr", depth)
    got = decode_depth((tmp_path / "d.exr").read_bytes(), None, LIM)
    np.testing.assert_array_equal(got, depth.astype(np.float32).astype(np.float64))
    with pytest.raises(InputError, match="depth: .*outside 1..10 px a side"):
        decode_depth((tmp_path / "d.exr").read_bytes(), None, Limits(max_side=10))
    with pytest.raises(InputError, match="negative values"):
        write_depth_map(tmp_path / "neg.exr", -depth)
        decode_depth((tmp_path / "neg.exr").read_bytes(), None, LIM)
    with pytest.raises(InputError, match="not a .npy, 16-bit PNG or OpenEXR"):
        write_depth_map(tmp_path / "d.pfm", depth)
        decode_depth((tmp_path / "d.pfm").read_bytes(), None, LIM)


def test_npy_is_never_unpickled_and_its_header_is_checked_first():
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="numeric"):
        decode_depth(buf.getvalue(), None, LIM)
    huge = io.BytesIO()  # a header claiming 10^6 x 10^6 doubles, followed by 8 bytes
    np.lib.format.write_array_header_1_0(huge, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    with pytest.raises(InputError, match="outside 1..256"):
        decode_depth(huge.getvalue() + b"\0" * 8, None, LIM)
    with pytest.raises(InputError, match="outside 1..256"):
        decode_depth(npy_bytes(np.zeros((300, 10))), None, LIM)


def test_image_limits_and_rgb_order():
    img = np.zeros((20, 30, 3), np.uint8)
    img[..., 0] = 255  # red in RGB
    assert (decode_image(png_bytes(img), LIM)[..., 0] == 255).all()
    with pytest.raises(InputError, match="larger than"):
        decode_image(png_bytes(np.zeros((10, 300, 3), np.uint8)), LIM)


def test_trajectory_errors_name_the_frame_and_field():
    scene = plane_scene(64, 40, 3)
    scene.doc["frames"][2]["c2w"][0][0] = float("inf")
    with pytest.raises(InputError, match="frame 3"):
        parse_trajectory(json.dumps(scene.doc).encode(), LIM)
    traj = parse_trajectory(json.dumps(plane_scene(64, 40, 3).doc).encode(), LIM)
    assert len(traj) == 3 and traj.width == 64
    with pytest.raises(InputError, match="aspect ratios differ"):
        match_sizes(traj, np.zeros((40, 64, 3), np.uint8), np.ones((40, 40)))
    assert match_sizes(traj, np.zeros((80, 128, 3), np.uint8), np.ones((40, 64))).shape == (80, 128)
