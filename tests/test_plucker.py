"""Plücker ray maps against projection: every ray re-projects onto its own pixel centre, the moment
is the same for any point of the line, poses are relative to frame 0, and the export round-trips."""

from __future__ import annotations

import numpy as np
import pytest

from bridge_server.plucker import export_plucker, plucker_maps
from parascale_blender.core.camera import Trajectory, make_c2w
from parascale_blender.core.rotation import matrix_from_quat


def _random_rotations(rng, n):
    q = rng.normal(size=(n, 4))
    return matrix_from_quat(q / np.linalg.norm(q, axis=1, keepdims=True))


def _trajectory(seed=0, n=5, width=40, height=24):
    rng = np.random.default_rng(seed)
    c2w = make_c2w(_random_rotations(rng, n), rng.normal(scale=3.0, size=(n, 3)))
    K = np.column_stack([rng.uniform(20, 60, n), rng.uniform(20, 60, n), rng.uniform(15, 25, n), rng.uniform(8, 16, n)])
    return Trajectory(np.arange(1, n + 1), c2w, K, width, height)


def _project(X, c2w, K):
    Xc = (X - c2w[:3, 3]) @ c2w[:3, :3]
    return np.array([K[0] * Xc[0] / Xc[2] + K[2], K[1] * Xc[1] / Xc[2] + K[3]]), Xc[2]


@pytest.mark.parametrize("size", [None, (20, 12), (80, 48)])
def test_rays_reproject_onto_their_pixel_centres(size):
    traj = _trajectory()
    W, H = size or (traj.width, traj.height)
    maps = plucker_maps(traj, *(size or ()))
    assert maps.shape == (6, len(traj), H, W) and maps.dtype == np.float32
    rel = np.linalg.inv(traj.c2w[0]) @ traj.c2w  # independent inverse (general, not rigid)
    scale = np.array([W / traj.width, H / traj.height] * 2)
    rng = np.random.default_rng(1)
    for f in range(len(traj)):
        K = traj.intrinsics[f] * scale
        for u, v in zip(rng.integers(0, W, 6), rng.integers(0, H, 6)):
            m, d = maps[:3, f, v, u].astype(float), maps[3:, f, v, u].astype(float)
            assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-6)
            o = rel[f, :3, 3]
            for s in (0.5, 7.0):
                P = o + s * d
                uv, z = _project(P, rel[f], K)
                assert z > 0
                assert uv == pytest.approx([u + 0.5, v + 0.5], abs=1e-4)
                # The moment is a property of the line: any point on it gives the same P x d.
                assert m == pytest.approx(np.cross(P, d), abs=1e-4 * max(1.0, np.abs(P).max()))


def test_frame_zero_is_the_identity_camera_and_world_placement_does_not_matter():
    traj = _trajectory(seed=3)
    maps = plucker_maps(traj)
    assert np.abs(maps[:3, 0]).max() < 1e-6, "frame 0 sits at the origin: zero moments"
    K = traj.intrinsics[0]
    u, v = 7, 5
    d = np.array([(u + 0.5 - K[2]) / K[0], (v + 0.5 - K[3]) / K[1], 1.0])
    assert maps[3:, 0, v, u] == pytest.approx(d / np.linalg.norm(d), abs=1e-6)
    rng = np.random.default_rng(9)
    moved = traj.placed_at(make_c2w(_random_rotations(rng, 1)[0], [100.0, -40.0, 3.0]))
    assert np.allclose(plucker_maps(moved), maps, atol=1e-4)


def test_pure_translation_moment_matches_closed_form():
    # Camera moved by t with identity rotation: the moment is t x d for every pixel.
    c2w = np.tile(np.eye(4), (2, 1, 1))
    c2w[1, :3, 3] = [0.3, -0.2, 1.5]
    traj = Trajectory([1, 2], c2w, [30.0, 30.0, 16.0, 8.0], 32, 16)
    maps = plucker_maps(traj)
    d = maps[3:, 1].reshape(3, -1).T
    expected = np.cross(c2w[1, :3, 3], d)
    assert np.allclose(maps[:3, 1].reshape(3, -1).T, expected, atol=1e-6)
    assert np.allclose(maps[3:, 0], maps[3:, 1])


def test_export_round_trips_and_rejects_other_suffixes(tmp_path):
    traj = _trajectory(seed=5, n=3)
    path = export_plucker(traj, tmp_path / "cam.npy", 16, 8)
    assert np.array_equal(np.load(path), plucker_maps(traj, 16, 8))
    with pytest.raises(ValueError, match="npy"):
        export_plucker(traj, tmp_path / "cam.txt")
