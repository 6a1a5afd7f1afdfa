"""Camera model: conventions, rotation validation, interpolation."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parascale_blender.core.camera import (
    Camera,
    Trajectory,
    blender_from_intrinsics,
    intrinsics_from_blender,
    invert_rigid,
    make_c2w,
    opencv_from_blender,
)
from parascale_blender.core.rotation import (
    RotationError,
    euler_to_matrix,
    matrix_from_quat,
    matrix_to_euler,
    quat_from_matrix,
    rotation_angle,
    slerp,
)

angles = st.tuples(*[st.floats(-3.0, 3.0)] * 3)


def random_rotations(n, seed=0):
    q = np.random.default_rng(seed).normal(size=(n, 4))
    return matrix_from_quat(q)


def test_opencv_blender_flip_keeps_centre_and_flips_view_direction():
    c2w_bl = make_c2w(np.eye(3), [1.0, 2.0, 3.0])
    cv = opencv_from_blender(c2w_bl)
    np.testing.assert_array_equal(cv[:3, 3], [1, 2, 3])
    # Blender camera looks down its -Z; OpenCV's +Z column must be that direction.
    np.testing.assert_array_equal(cv[:3, 2], -c2w_bl[:3, 2])
    np.testing.assert_array_equal(opencv_from_blender(cv), c2w_bl)


def test_invert_rigid_matches_general_inverse():
    T = make_c2w(random_rotations(5), np.random.default_rng(1).normal(size=(5, 3)))
    np.testing.assert_allclose(invert_rigid(T), np.linalg.inv(T), atol=1e-12)


@settings(max_examples=200, deadline=None)
@given(q=st.tuples(*[st.floats(-1, 1)] * 4).filter(lambda q: np.linalg.norm(q) > 0.1))
def test_quaternion_round_trip(q):
    R = matrix_from_quat(np.array(q))
    np.testing.assert_allclose(matrix_from_quat(quat_from_matrix(R)), R, atol=1e-12)
    assert np.linalg.det(R) == pytest.approx(1.0)


@settings(max_examples=200, deadline=None)
@given(a=angles, order=st.sampled_from(["XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX"]))
def test_euler_round_trip(a, order):
    R = euler_to_matrix(np.array(a), order)
    np.testing.assert_allclose(euler_to_matrix(matrix_to_euler(R, order), order), R, atol=1e-9)


def test_euler_xyz_applies_x_first():
    R = euler_to_matrix(np.array([np.pi / 2, 0, np.pi / 2]), "XYZ")
    # X first takes +Y to +Z; then Z (about world Z) leaves +Z alone.
    np.testing.assert_allclose(R @ [0, 1, 0], [0, 0, 1], atol=1e-12)


def test_slerp_halfway_is_half_the_angle():
    R0, R1 = np.eye(3), euler_to_matrix(np.array([0, 0, 1.0]))
    q = slerp(quat_from_matrix(R0), quat_from_matrix(R1), np.array(0.5))
    assert rotation_angle(matrix_from_quat(q)) == pytest.approx(0.5)


def traj(c2w, frames=None):
    n = len(c2w)
    frames = np.arange(n) if frames is None else frames
    return Trajectory(frames, c2w, [500, 500, 320, 240], 640, 480)


def test_reflection_is_an_error_unless_repaired():
    c2w = make_c2w(random_rotations(4), np.zeros((4, 3)))
    c2w[2, :3, 0] *= -1  # a determinant -1 "rotation"
    with pytest.raises(RotationError, match="frame 2: rotation determinant -1.000"):
        traj(c2w).validate("presets.txt")
    fixed = traj(c2w).validate("presets.txt", repair_rotations=True)
    assert np.allclose(np.linalg.det(fixed.c2w[:, :3, :3]), 1.0)
    assert fixed.metadata["repaired_rotations"] == [2]


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda t: t.replace(frames=np.array([0, 2, 2, 3])), "frame numbers must increase"),
        (lambda t: t.replace(fps=0.0), "fps must be positive"),
        (lambda t: t.replace(intrinsics=np.array([[-1, 500, 320, 240]] * 4)), "focal lengths must be positive"),
    ],
)
def test_validation_messages(mutate, message):
    t = traj(make_c2w(random_rotations(4), np.zeros((4, 3))))
    with pytest.raises(ValueError, match=message):
        mutate(t).validate()


def test_relative_and_placed_at():
    t = traj(make_c2w(random_rotations(6, 3), np.random.default_rng(3).normal(size=(6, 3))))
    rel = t.relative_to_first()
    np.testing.assert_allclose(rel.c2w[0], np.eye(4), atol=1e-12)
    start = make_c2w(random_rotations(1, 9)[0], [5, 6, 7])
    placed = t.placed_at(start, scale=2.0)
    np.testing.assert_allclose(placed.c2w[0], start, atol=1e-12)
    # Steps in camera axes are scaled by 2, rotations relative to frame 0 unchanged.
    np.testing.assert_allclose(placed.steps_in_camera(), 2 * t.steps_in_camera(), atol=1e-12)


def test_resampled_passes_through_keys_and_interpolates_smoothly():
    R = euler_to_matrix(np.stack([np.zeros(4), np.linspace(0, 1, 4), np.zeros(4)], 1))
    pos = np.array([[0, 0, 0], [1, 0, 0], [2, 1, 0], [3, 1, 1]], dtype=float)
    t = traj(make_c2w(R, pos), frames=np.array([0, 10, 20, 30]))
    dense = t.resampled(np.arange(0, 31))
    np.testing.assert_allclose(dense.c2w[::10], t.c2w, atol=1e-12)
    yaw = matrix_to_euler(dense.c2w[:, :3, :3])[:, 1]
    np.testing.assert_allclose(yaw, np.arange(31) / 30, atol=1e-12)  # slerp about one axis is linear
    v = np.diff(dense.centres, axis=0)
    assert np.linalg.norm(np.diff(v, axis=0), axis=1).max() < 0.05  # no kinks at the keys


def test_blender_intrinsics_round_trip():
    cam = Camera(1400.0, 1400.0, 900.0, 560.0, 1920, 1080)
    b = blender_from_intrinsics(cam)
    back = intrinsics_from_blender(
        b["lens"], b["sensor_width"], 24.0, b["sensor_fit"], 1920, 1080, b["shift_x"], b["shift_y"]
    )
    np.testing.assert_allclose([back.fx, back.fy, back.cx, back.cy], [cam.fx, cam.fy, cam.cx, cam.cy])


def test_working_camera_keeps_field_of_view():
    cam = Camera(1400.0, 1400.0, 960.0, 540.0, 1920, 1080)
    w = cam.working(160)
    assert (w.width, w.height) == (160, 90)
    assert w.hfov == pytest.approx(cam.hfov)


@pytest.mark.parametrize("src", [6.0, 24.0, 25.0, 30000 / 1001, 30.0])
@pytest.mark.parametrize("dst", [24.0, 25.0])
def test_retimed_keeps_the_duration_and_the_motion(src, dst):
    """A constant-velocity move with a steady pan, 2.5 s long at ``src`` fps, played at ``dst``: the
    duration holds to within one new frame, and every new pose is the move at its own time."""
    from parascale_blender.core.camera import Trajectory, make_c2w
    from parascale_blender.core.rotation import euler_to_matrix

    n = int(round(2.5 * src)) + 1
    t = np.arange(n) / src  # seconds
    yaw = 0.2 * t
    c2w = make_c2w(euler_to_matrix(np.stack([0 * t, yaw, 0 * t], 1), "XYZ"), np.stack([0.4 * t, 0 * t, 0.1 * t], 1))
    traj = Trajectory(100 + np.arange(n), c2w, [500.0, 500.0, 320.0, 180.0], 640, 360, fps=src)
    out = traj.retimed(dst)
    assert out.fps == dst and out.frames[0] == 100 and (np.diff(out.frames) == 1).all()
    src_seconds, dst_seconds = (n - 1) / src, (len(out) - 1) / dst
    assert abs(dst_seconds - src_seconds) < 1.0 / dst
    tt = np.arange(len(out)) / dst
    np.testing.assert_allclose(out.centres, np.stack([0.4 * tt, 0 * tt, 0.1 * tt], 1), atol=1e-12)
    want = euler_to_matrix(np.stack([0 * tt, 0.2 * tt, 0 * tt], 1), "XYZ")
    np.testing.assert_allclose(out.c2w[:, :3, :3], want, atol=1e-9)
