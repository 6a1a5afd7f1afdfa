"""Key precision: float32 error is told apart from a pose that something else moved."""

from __future__ import annotations

import numpy as np

from parascale_blender.core.precision import float32_bound, key_precision_warning, off_move
from parascale_tools.synthetic import camera_move


def _as_float32(c2w):
    return np.asarray(c2w, dtype=np.float32).astype(np.float64)


def test_float32_rounding_far_away_is_precision_not_another_cause():
    c2w = camera_move("truck", 10, step=2e-4)
    c2w[:, :3, 3] += [100.0, 0.0, 0.0]
    evaluated = _as_float32(c2w)
    assert off_move(c2w, evaluated)[0] == -1
    # Π of a constant-depth truck is its step length over the depth
    pi = np.concatenate([[np.nan], np.linalg.norm(np.diff(c2w[:, :3, 3], axis=0), axis=1)])
    pi_eval = np.concatenate([[np.nan], np.linalg.norm(np.diff(evaluated[:, :3, 3], axis=0), axis=1)])
    key_pce, warning = key_precision_warning(c2w, evaluated, pi, pi_eval)
    assert key_pce > 1e-3 and warning is not None and "float32 positions are" in warning


def test_a_pose_moved_by_something_else_is_said_as_such():
    c2w = camera_move("truck", 10, step=0.05)
    evaluated = c2w.copy()
    evaluated[6, :3, 3] += [0.0, 1e-3, 0.0]  # 1 mm near the origin: thousands of float32 spacings
    worst, pos, ang = off_move(c2w, evaluated)
    assert worst == 6 and abs(pos - 1e-3) < 1e-12
    assert pos > 100 * float32_bound(1.0)
    _, warning = key_precision_warning(c2w, evaluated, np.ones(10), np.ones(10), frames=np.arange(101, 111))
    assert warning is not None and "at frame 107, more than float32 precision explains" in warning
    assert "Move the shot" not in warning
    turned = c2w.copy()
    a = np.radians(2.5)
    turned[3, :3, :3] = turned[3, :3, :3] @ np.array([[np.cos(a), -np.sin(a), 0], [np.sin(a), np.cos(a), 0], [0, 0, 1]])
    worst, _, ang = off_move(c2w, turned)
    assert worst == 3 and abs(np.degrees(ang) - 2.5) < 1e-9
