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

LIM = Limits(max_frames=50, max_side=256)


def test_depth_formats_decode_to_the_same_metres():
    mm = np.random.default_rng(0).integers(500, 9000, (30, 40)).astype(np.uint16)
    mm[0, 0] = 0  # 0 = no depth in a 16-bit PNG
    metres = mm.astype(np.float64) / 1000
    from_png = decode_depth(cv2.imencode(".png", mm)[1].tobytes(), 0.001, LIM)
    ok, exr = cv2.imencode(".exr", metres.astype(np.float32))
    from_exr = decode_depth(exr.tobytes(), 1.0, LIM)
    from_npy = decode_depth(npy_bytes(metres), 1.0, LIM)
    for d in (from_png, from_exr, from_npy):
        assert np.isnan(d[0, 0])
        assert np.allclose(d[1:], metres[1:], rtol=1e-6) and np.allclose(d[0, 1:], metres[0, 1:], rtol=1e-6)


def test_npy_is_never_unpickled_and_its_header_is_checked_first():
    buf = io.BytesIO()
    np.save(buf, np.array([{"x": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(InputError, match="numeric"):
        decode_depth(buf.getvalue(), 1.0, LIM)
    huge = io.BytesIO()  # a header claiming 10^6 x 10^6 doubles, followed by 8 bytes
    np.lib.format.write_array_header_1_0(huge, {"descr": "<f8", "fortran_order": False, "shape": (10**6, 10**6)})
    with pytest.raises(InputError, match="outside 1..256"):
        decode_depth(huge.getvalue() + b"\0" * 8, 1.0, LIM)
    with pytest.raises(InputError, match="outside 1..256"):
        decode_depth(npy_bytes(np.zeros((300, 10))), 1.0, LIM)


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
