"""Levelling a solve (core.orient) against the rendered room's known up (world -y, floor at y = 1.5),
seen through an arbitrary solve gauge (a random rotation and offset, as a tracker returns)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.spatial.transform import Rotation

from parascale_blender.core.camera import Camera
from parascale_blender.core.orient import level
from parascale_tools.synthetic import look_at
from parascale_tools.tracking.synthetic import orbit_path, render_clip

CAM = Camera(60.0, 60.0, 40.0, 30.0, 80, 60)
UP = np.array([0.0, -1.0, 0.0])  # the room's up (OpenCV world, y down)


def _gauge(seed: int) -> np.ndarray:
    G = np.eye(4)
    G[:3, :3] = Rotation.random(random_state=seed).as_matrix()
    G[:3, 3] = np.random.default_rng(seed).normal(0, 3, 3)
    return G


def _up_error_deg(o, G) -> float:
    """Angle between the true up, carried through the gauge and the levelling, and world +Z."""
    up = o.W[:3, :3] @ G[:3, :3] @ UP
    return float(np.degrees(np.arccos(np.clip(up[2], -1, 1))))


@pytest.fixture(scope="module")
def orbit():
    """The orbit path (tilted ~6° down) and the points of the room it sees (exact depth)."""
    poses = orbit_path(12)
    _, depths = render_clip(poses[::4], CAM, supersample=1)
    return poses, np.concatenate([CAM.unproject(d, T).xyz for d, T in zip(depths, poses[::4])])


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_floor_levels_a_tilted_camera_path(orbit, seed):
    poses, xyz = orbit
    xyz = xyz[np.random.default_rng(0).choice(len(xyz), 400, replace=False)]  # 400 sparse points
    G = _gauge(seed)
    o = level(G @ poses, xyz @ G[:3, :3].T + G[:3, 3])
    assert o.source == "floor" and o.floor_points >= 40
    assert _up_error_deg(o, G) < 0.5
    # The floor is z = 0: the first camera stands at its true height (1.5 - y) above it, at x = y = 0.
    placed = o.W @ G @ poses[0]
    np.testing.assert_allclose(placed[:3, 3], [0, 0, 1.5 - poses[0][1, 3]], atol=0.01)
    # Cameras only: most of the path's ~6° downward tilt is undone by the pan's horizontal right axes.
    assert _up_error_deg(level(G @ poses, method="CAMERAS"), G) < 2.5


def test_cameras_level_a_level_pan_with_roll_noise():
    """Level footage (heading swept 60°, 1° random roll) and no usable points."""
    a = np.radians(np.linspace(-30, 30, 15))
    roll = np.radians(np.random.default_rng(0).normal(0.0, 1.0, 15))
    poses = []
    for ai, ri in zip(a, roll):
        T = look_at([0.2 * ai, 0.0, 0.0], [np.sin(ai), 0.0, np.cos(ai)])
        T[:3, :3] = T[:3, :3] @ Rotation.from_euler("z", ri).as_matrix()
        poses.append(T)
    poses = np.array(poses)
    G = _gauge(7)
    o = level(G @ poses, method="AUTO")
    assert o.source == "cameras" and _up_error_deg(o, G) < 2.0
    first = o.W @ G @ poses[0]
    np.testing.assert_allclose(first[:3, 3], 0, atol=1e-9)  # the first camera at the origin ...
    assert abs(np.degrees(np.arctan2(first[0, 2], first[1, 2]))) < 1e-6  # ... heading along +Y (Blender's front)
    with pytest.raises(ValueError, match="no floor"):
        level(G @ poses, method="FLOOR")


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_sparse_floor_is_not_mistaken_for_a_slant_through_box_tops(orbit, seed):
    """With 10 floor points among 300 of walls and boxes, the largest 'horizontal' plane is a slant
    through the floor and the tops of boxes (14-23° off); a floor has nothing under it, so the
    levelling falls back to the cameras instead."""
    poses, xyz = orbit
    on_floor = np.abs(xyz[:, 1] - 1.5) < 1e-6
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.choice(np.flatnonzero(on_floor), 10), rng.choice(np.flatnonzero(~on_floor), 300)])
    G = _gauge(seed)
    assert _up_error_deg(level(G @ poses, xyz[pick] @ G[:3, :3].T + G[:3, 3]), G) < 2.5
