"""MotionCtrl RT JSON, NeRF transforms.json and Nuke .chan: conventions, real files, round trips, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_formats_helpers import assert_same_track, random_trajectory, trajectories

from parascale_blender.core.camera import FLIP_YZ
from parascale_blender.core.rotation import euler_to_matrix, matrix_to_euler
from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.motionctrl import read_motionctrl, write_motionctrl
from parascale_blender.formats.nerf import read_nerf, write_nerf
from parascale_blender.formats.nuke_chan import ORDERS, read_chan, write_chan
from parascale_blender.formats.re10k import read_re10k

I4 = np.eye(4).tolist()
FAST = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


# ---------------------------------------------------------------- MotionCtrl
def test_motionctrl_shared_files(shared_data):
    files = sorted((shared_data / "trajectories" / "motionctrl").glob("*.json"))
    assert len(files) == 4
    for f in files:
        t = read_motionctrl(f)
        assert len(t) == 16
        np.testing.assert_allclose(t.c2w[0, :3, :3], np.eye(3), atol=1e-7)  # relative to frame 0
        if "test_camera_0" in f.name or "test_camera_d" in f.name:  # real clips; presets start off the origin
            np.testing.assert_allclose(t.centres[0], 0, atol=1e-7)
        rows = np.array(json.loads(f.read_text()))
        w2c = np.concatenate([rows.reshape(-1, 3, 4), np.tile([[[0, 0, 0, 1.0]]], (16, 1, 1))], 1)
        np.testing.assert_allclose(t.c2w @ w2c, np.tile(np.eye(4), (16, 1, 1)), atol=1e-6)
    L = read_motionctrl(shared_data / "trajectories" / "motionctrl" / "test_camera_L.json")
    # w2c t = +0.2 on x at frame 0 → the file is relative: our frame 0 is at -0.2 on x
    assert L.centres[0, 0] == pytest.approx(-0.2)


def test_motionctrl_matches_the_same_real_clip_in_re10k(shared_data):
    """The hex-named MotionCtrl files are RealEstate10K clips: same relative motion up to the SLAM scale."""
    mc = read_motionctrl(shared_data / "trajectories" / "motionctrl" / "test_camera_018f7907401f2fef.json")
    rel = mc.relative_to_first()
    assert np.abs(np.diff(rel.centres, axis=0)).max() > 1e-3  # it moves
    assert np.linalg.det(rel.c2w[:, :3, :3]) == pytest.approx(np.ones(16))


@FAST
@given(trajectories())
def test_motionctrl_round_trip(tmp_path_factory, traj):
    path = tmp_path_factory.mktemp("m") / "t.json"
    write_motionctrl(traj, path)
    fx, fy, cx, cy = traj.intrinsics[0]
    back = read_motionctrl(path, width=traj.width, height=traj.height, fx=fx, fy=fy, cx=cx, cy=cy)
    rel = traj.relative_to_first().replace(intrinsics=np.tile(traj.intrinsics[0], (len(traj), 1)))
    assert_same_track(rel, back, atol=1e-9, frames=False)


# ---------------------------------------------------------------- NeRF
def test_nerf_blender_synthetic_layout(tmp_path):
    """camera_angle_x only, OpenGL camera: a camera at +Z looking at the origin."""
    doc = {
        "camera_angle_x": 0.6911112070083618,
        "frames": [
            {"file_path": "./train/r_0", "transform_matrix": [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 4], [0, 0, 0, 1]]}
        ],
    }
    (tmp_path / "transforms.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="give the image size"):
        read_nerf(tmp_path / "transforms.json")
    t = read_nerf(tmp_path / "transforms.json", width=800, height=800)
    assert t.intrinsics[0, 0] == pytest.approx(400 / np.tan(0.6911112070083618 / 2))
    forward = t.c2w[0, :3, 2]  # OpenCV +z
    np.testing.assert_allclose(forward, [0, 0, -1])  # looks from +Z towards the origin
    np.testing.assert_allclose(t.c2w[0, :3, 1], [0, -1, 0])  # image down is world -Y (Y was up)


@FAST
@given(trajectories(), st.booleans())
def test_nerf_round_trip(tmp_path_factory, traj, shared_k):
    traj = traj.replace(frames=traj.frames - traj.frames.min())  # file names carry non-negative numbers
    if shared_k:
        traj = traj.replace(intrinsics=np.tile(traj.intrinsics[0], (len(traj), 1)))
    path = tmp_path_factory.mktemp("n") / "transforms.json"
    write_nerf(traj, path)
    assert_same_track(traj, read_nerf(path, fps=traj.fps), atol=1e-12)


def test_nerf_per_frame_override_and_distortion(tmp_path):
    m = np.eye(4).tolist()
    doc = {"fl_x": 500, "w": 640, "h": 480, "k1": 0.1, "camera_model": "OPENCV",
           "frames": [{"file_path": "a/1.png", "transform_matrix": m}, {"file_path": "a/2.png", "transform_matrix": m,
                                                                          "fl_x": 600, "cx": 300}]}  # fmt: skip
    (tmp_path / "t.json").write_text(json.dumps(doc))
    t = read_nerf(tmp_path / "t.json")
    np.testing.assert_allclose(t.intrinsics, [[500, 500, 320, 240], [600, 600, 300, 240]])
    np.testing.assert_array_equal(t.frames, [1, 2])
    assert t.metadata["distortion"] == {"k1": 0.1}


@pytest.mark.parametrize(
    "doc, field, words",
    [
        ({"frames": []}, "frames", "non-empty"),
        ({"w": 4, "h": 4, "fl_x": 1, "frames": [{"transform_matrix": [[1, 0]]}]}, "frames[0].transform_matrix", "4x4"),
        ({"w": 4, "h": 4, "frames": [{"transform_matrix": I4}]}, "frames[0].fl_x", "no focal"),
        ({"w": 4, "h": 4, "fl_x": "a", "frames": [{"transform_matrix": I4}]}, "fl_x", "finite number"),
        ({"w": 4.5, "h": 4, "fl_x": 1, "frames": [{"transform_matrix": I4}]}, "frames[0].w", "integers"),
    ],
)  # fmt: skip
def test_nerf_errors(tmp_path, doc, field, words):
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError) as ei:
        read_nerf(tmp_path / "t.json")
    assert ei.value.field == field and words in str(ei.value), str(ei.value)


# ---------------------------------------------------------------- Nuke .chan and Euler conventions
@pytest.mark.parametrize("order", ORDERS)
def test_euler_matches_blender_mathutils(order):
    """Independent truth: Blender's mathutils.Euler uses the same order naming as Nuke."""
    pytest.importorskip("bpy")
    import mathutils

    rng = np.random.default_rng(7)
    for a in rng.uniform(-np.pi, np.pi, (20, 3)):
        expected = np.array(mathutils.Euler(a.tolist(), order).to_matrix())
        np.testing.assert_allclose(euler_to_matrix(a, order), expected, atol=1e-6)
        np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(expected, order), order), expected, atol=1e-6)


@pytest.mark.parametrize("order", ORDERS)
@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_euler_round_trip_at_gimbal_lock(order, sign):
    a = np.array([0.3, -0.7, 1.1])
    a["XYZ".index(order[1])] = sign * np.pi / 2
    R = euler_to_matrix(a, order)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(R, order), order), R, atol=1e-9)


def test_chan_closed_forms(tmp_path):
    (tmp_path / "c.chan").write_text("1 0 0 0 0 90 0 40\n2 1 2 3 90 0 0 40\n3 0 0 0 0 0 30 40\n")
    t = read_chan(tmp_path / "c.chan", width=1000, height=500)
    np.testing.assert_allclose(t.c2w[0, :3, 2], [-1, 0, 0], atol=1e-12)  # pan +90: looks down -X
    np.testing.assert_allclose(t.c2w[1, :3, 2], [0, 1, 0], atol=1e-12)  # tilt +90: looks up +Y
    np.testing.assert_allclose(t.centres[1], [1, 2, 3])
    # roll +30 about the view axis (-Z): image right (x) turns towards world +Y
    np.testing.assert_allclose(t.c2w[2, :3, 0], [np.cos(np.pi / 6), np.sin(np.pi / 6), 0], atol=1e-12)
    assert t.intrinsics[0, 1] == pytest.approx(250 / np.tan(np.radians(20)))
    np.testing.assert_array_equal(t.frames, [1, 2, 3])
    assert t.metadata["world_up"] == "+Y"


def test_chan_order_changes_the_pose(tmp_path):
    (tmp_path / "c.chan").write_text("1 0 0 0 30 40 50\n")
    a = read_chan(tmp_path / "c.chan")
    b = read_chan(tmp_path / "c.chan", rotation_order="XYZ")
    gl = np.radians([30, 40, 50])
    np.testing.assert_allclose(a.c2w[0, :3, :3] @ FLIP_YZ[:3, :3], euler_to_matrix(gl, "ZXY"))
    assert not np.allclose(a.c2w, b.c2w)


@FAST
@given(trajectories(square=True, centred=True), st.sampled_from(ORDERS))
def test_chan_round_trip(tmp_path_factory, traj, order):
    path = tmp_path_factory.mktemp("c") / "t.chan"
    write_chan(traj, path, rotation_order=order)
    back = read_chan(path, width=traj.width, height=traj.height, rotation_order=order, fps=traj.fps)
    assert_same_track(traj, back, atol=1e-9)


def test_chan_from_a_real_track(shared_data, tmp_path):
    t = read_re10k(shared_data / "re10k" / "0c11dbe781b1c11c.txt", width=1280, height=720)
    write_chan(t, tmp_path / "t.chan")
    back = read_chan(tmp_path / "t.chan", width=1280, height=720)
    np.testing.assert_allclose(back.c2w, t.c2w, atol=1e-6)  # the file rotations have 9 digits; Euler is exact
    np.testing.assert_allclose(back.intrinsics, t.intrinsics, rtol=1e-7)  # .chan assumes square pixels


@pytest.mark.parametrize(
    "text, line, field, words",
    [
        ("1 0 0 0 0 0 0\n2 0 0 0 x 0 0\n", 2, "rx", "expected a number"),
        ("1 0 0 0 0 0\n", 1, None, "expected 7 or 8 columns"),
        ("1.5 0 0 0 0 0 0\n", 1, "frame", "integer frame"),
        ("1 0 0 0 0 0 0 0\n", 1, "vfov", "field of view"),
        ("1 0 0 0 0 0 0 40\n2 0 0 0 0 0 0\n", 2, None, "like the first line"),
        ("2 0 0 0 0 0 0\n1 0 0 0 0 0 0\n", None, None, "increase strictly"),
        ("1 0 0 inf 0 0 0\n", 1, "tz", "non-finite"),
    ],
)
def test_chan_errors(tmp_path, text, line, field, words):
    (tmp_path / "cam.chan").write_text(text)
    with pytest.raises(FormatError) as ei:
        read_chan(tmp_path / "cam.chan")
    assert ei.value.line == line and ei.value.field == field and words in str(ei.value), str(ei.value)


def test_random_trajectory_helper_is_valid():
    random_trajectory(0, 5, points=True, extras=True).validate()


def test_nerf_carries_the_unit(tmp_path):
    traj = random_trajectory(4, 3)
    traj = traj.replace(metadata={"metres_per_unit": 0.01})
    write_nerf(traj, tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["metres_per_unit"] == 0.01
    assert read_nerf(tmp_path / "t.json").metadata["metres_per_unit"] == 0.01
    doc["metres_per_unit"] = -1
    (tmp_path / "t.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="field 'metres_per_unit': expected a positive number"):
        read_nerf(tmp_path / "t.json")
