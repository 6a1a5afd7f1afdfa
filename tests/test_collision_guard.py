"""The collision guard skips probes only where they could not cap: the same decisions and limits as
probing every step, and clearance bounds that never exceed the true distance to the geometry."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import make_c2w
from parascale_blender.core.collision import PathGuard, collision_alpha
from parascale_blender.core.depth_sources import MeshDepth, PointCloudDepth
from parascale_blender.core.rotation import euler_to_matrix
from parascale_tools.synthetic import icosphere


def _sphere_points(n: int, R: float, centre, seed: int = 0) -> np.ndarray:
    p = np.random.default_rng(seed).normal(size=(n, 3))
    return R * p / np.linalg.norm(p, axis=1, keepdims=True) + centre


def _sphere(kind: str, centre, points: int):
    """A sphere of radius 2 as a mesh (5,120 triangles) or a cloud of ``points`` surface samples."""
    if kind == "mesh":
        return MeshDepth(*icosphere(4, 2.0, centre))
    return PointCloudDepth(_sphere_points(points, 2.0, centre))


@pytest.mark.parametrize("kind", ["mesh", "cloud"])
def test_clearance_bound_is_below_the_distance_to_a_sphere(kind):
    """A sphere of radius 2: every bound is at most |c − centre| − 2 (the closed-form distance) and
    within a few of its sample spacings of it."""
    centre = np.array([0.5, -1.0, 3.0])
    src = _sphere(kind, centre, 50_000)
    rng = np.random.default_rng(1)
    for _ in range(50):
        c = centre + rng.normal(size=3) * rng.uniform(2.2, 30.0)
        truth = np.linalg.norm(c - centre) - 2.0
        if truth <= 0:
            continue
        b = src.clearance_bound(c)
        assert 0.0 <= b <= truth
        if truth > 5.0:
            assert b > 0.5 * truth


@pytest.mark.parametrize("kind", ["mesh", "cloud"])
def test_the_guard_caps_exactly_as_probing_every_step(kind):
    """Steps of random scale from poses near and far from a sphere: wherever probing every step caps
    α, the guard gives the same limit; elsewhere it lets α pass, as the probe does."""
    centre = np.array([0.0, 0.0, 6.0])
    src = _sphere(kind, centre, 80_000)
    rng = np.random.default_rng(2)
    guard = PathGuard(src)
    capped = passed = 0
    c = np.zeros(3)
    for _ in range(300):
        c = c + rng.normal(scale=0.3, size=3)
        if np.linalg.norm(c - centre) < 2.3:
            c = np.zeros(3)
        pose = make_c2w(euler_to_matrix(rng.uniform(-0.5, 0.5, 3)), c)
        towards = pose[:3, :3].T @ (centre - c)  # half the steps head for the sphere (camera axes)
        aim = towards / np.linalg.norm(towards) if rng.random() < 0.5 else rng.normal(size=3)
        step = (aim / np.linalg.norm(aim) + rng.normal(scale=0.05, size=3)) * 0.05
        alpha = float(rng.choice([1.0, 10.0, 60.0]))
        truth = collision_alpha(src, pose, step)
        got = guard.limit(pose, step, alpha)
        assert (alpha > got) == (alpha > truth)
        if alpha > truth:
            assert got == truth
            capped += 1
        else:
            passed += 1
    assert capped > 10 and passed > 10
    assert guard.probes < 300  # most steps were answered by the bound
