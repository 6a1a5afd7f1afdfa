"""The depth benchmark's scene helpers, and its rows' shape (the full run is marked slow)."""

from __future__ import annotations

import numpy as np
import pytest
from depth_scenes import icosphere

from parascale_tools.bench.depth_bench import camera_path, depth_rows, icosphere_mesh, room_cloud


def test_room_cloud_lies_on_the_room_and_spheres():
    pts = room_cloud(20_000)
    assert pts.shape == (20_000, 3)
    on_wall = np.isclose(np.abs(pts), [4.0, 1.5, 6.0]).any(axis=1)
    assert 0.8 < on_wall.mean() < 1.0
    assert (np.abs(pts) <= np.array([4.0, 1.5, 6.0]) + 1e-12).all()


def test_camera_path_stays_inside_the_room():
    poses = camera_path(10)
    assert len(poses) == 10
    for c2w in poses:
        np.testing.assert_allclose(c2w[:3, :3] @ c2w[:3, :3].T, np.eye(3), atol=1e-12)
        assert (np.abs(c2w[:3, 3]) < [4.0, 1.5, 6.0]).all()


@pytest.mark.parametrize("sub", [0, 1, 3])
def test_vectorised_icosphere_matches_the_reference_construction(sub):
    v, t = icosphere_mesh(sub, 2.0)
    rv, rt = icosphere(sub, 2.0)
    assert len(t) == len(rt) == 20 * 4**sub and len(v) == len(rv)
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 2.0)

    def area(v, t):
        return 0.5 * np.linalg.norm(np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]]), axis=1).sum()

    assert area(v, t) == pytest.approx(area(rv, rt), rel=1e-12)


@pytest.mark.slow
def test_depth_rows_shape_and_lod_speedup():
    rows = depth_rows(quick=True)
    assert all({"name", "value", "unit"} <= set(r) for r in rows)
    big = next(r for r in rows if r["name"].startswith("DepthView, 1,000,000 points, 160x90") and "baseline" in r)
    assert big["ratio"] > 3  # the level of detail beats brute force by ~12x here
