"""The depth benchmark's scene helpers, and its rows' shape (the full run is marked slow)."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_tools.bench.depth_bench import depth_rows
from parascale_tools.synthetic import camera_path, icosphere, room_cloud


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
def test_icosphere_is_a_closed_geodesic_sphere(sub):
    v, t = icosphere(sub, 2.0)
    # closed forms: 20*4^k faces, 10*4^k+2 vertices, Euler characteristic 2, every vertex on the sphere
    assert len(t) == 20 * 4**sub and len(v) == 10 * 4**sub + 2
    edges = np.unique(np.sort(np.concatenate([t[:, [0, 1]], t[:, [1, 2]], t[:, [2, 0]]]), axis=1), axis=0)
    assert len(v) - len(edges) + len(t) == 2
    np.testing.assert_allclose(np.linalg.norm(v, axis=1), 2.0)
    # outward winding: the signed volume is positive and approaches the ball's
    vol = np.einsum("ij,ij->i", v[t[:, 0]], np.cross(v[t[:, 1]], v[t[:, 2]])).sum() / 6
    assert 0 < vol < 4 / 3 * np.pi * 8


@pytest.mark.slow
def test_depth_rows_shape_and_lod_speedup():
    rows = depth_rows(quick=True)
    assert all({"name", "value", "unit"} <= set(r) for r in rows)
    big = next(r for r in rows if r["name"].startswith("DepthView, 1,000,000 points, 160x90") and "baseline" in r)
    assert big["ratio"] > 3  # the level of detail beats brute force by ~12x here
