"""Dropped solve frames (core.solve_gaps): filled inside the solved range by SE(3) interpolation,
reported outside it; checked against a constant-velocity screw motion, which SE(3) interpolation
reproduces exactly (linear centres, rotation about one axis at a constant rate)."""

from __future__ import annotations

import numpy as np
from scipy.spatial.transform import Rotation

from parascale_blender.core.camera import SparsePoints, Trajectory, make_c2w
from parascale_blender.core.solve_gaps import fill_gaps, frame_ranges


def screw(frames) -> np.ndarray:
    f = np.asarray(frames, dtype=float)
    R = Rotation.from_rotvec(np.outer(f, [0.01, 0.03, 0.0])).as_matrix()
    return make_c2w(R, np.outer(f, [0.2, 0.0, 0.05]) + [1.0, 2.0, 3.0])


def test_interior_gaps_filled_exactly_and_flagged_ends_reported():
    solved = np.array([2, 3, 5, 6, 9])
    vis = [np.array([i]) for i in range(len(solved))]
    err = np.array([0.1, 0.2, 0.3, 0.4, 0.5])
    pts = SparsePoints(np.zeros((5, 3)), None, vis)
    traj = Trajectory(solved, screw(solved), [300, 300, 160, 120], 320, 240, points=pts, extras={"solve_error_px": err})
    gaps = fill_gaps(traj, np.arange(0, 12))
    assert gaps.filled == [4, 7, 8] and gaps.uncovered == [0, 1, 10, 11]
    assert gaps.dropped == [0, 1, 4, 7, 8, 10, 11]
    out = gaps.trajectory
    np.testing.assert_array_equal(out.frames, np.arange(2, 10))
    np.testing.assert_allclose(out.c2w, screw(np.arange(2, 10)), atol=1e-12)
    np.testing.assert_array_equal(out.c2w[np.isin(out.frames, solved)], traj.c2w)  # solved poses untouched
    np.testing.assert_array_equal(out.extras["solve_filled"], np.isin(np.arange(2, 10), [4, 7, 8]).astype(float))
    np.testing.assert_array_equal(np.isnan(out.extras["solve_error_px"]), np.isin(np.arange(2, 10), [4, 7, 8]))
    # A filled frame sees what its nearest solved frame saw (frame 4: frame 3 or 5, the earlier on a tie).
    assert [int(v[0]) for v in out.points.visibility] == [0, 1, 1, 2, 3, 3, 4, 4]
    assert frame_ranges(gaps.dropped) == "0-1, 4, 7-8, 10-11"


def test_nothing_dropped_is_a_no_op():
    traj = Trajectory(np.arange(1, 6), screw(np.arange(1, 6)), [300, 300, 160, 120], 320, 240)
    gaps = fill_gaps(traj, np.arange(1, 6))
    assert gaps.dropped == [] and np.array_equal(gaps.trajectory.c2w, traj.c2w)
    assert not gaps.trajectory.extras["solve_filled"].any()
