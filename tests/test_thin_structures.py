"""Thin structures as point clouds against the same scene as a mesh (rasterised exactly by MeshDepth).

A pole thinner than a working pixel covers, in a mesh rasteriser, the fraction of pixel centres its
width spans. Point splats used to cover at least one pixel per point and LOD nodes their voxel (or
their points' box snapped to every near voxel face), which made thin poles and branches 1.5-2.5x
wider than the mesh and moved E[1/Z], and with it Π, towards them. The oracle: the move rescaled on
the cloud, re-measured on the mesh (``step_parallax``), against the reference Π.
"""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import Camera, Trajectory
from parascale_blender.core.depth import ConstantDepth
from parascale_blender.core.depth_sources import MeshDepth, PointCloudDepth
from parascale_blender.core.metrics import pce
from parascale_blender.core.rescale import RescaleOptions, rescale, step_parallax
from parascale_tools.bench.engine_bench import sample_surface
from parascale_tools.synthetic import camera_move

FULL = Camera(500.0, 500.0, 320.0, 180.0, 640, 360)
CAM = FULL.working(160)  # 160 x 90, fx = 125


def cylinder(p0, p1, radius: float, sides: int = 12) -> tuple[np.ndarray, np.ndarray]:
    """An open prism (the side surface) from ``p0`` to ``p1``."""
    p0, p1 = np.asarray(p0, float), np.asarray(p1, float)
    a = (p1 - p0) / np.linalg.norm(p1 - p0)
    t = np.cross(a, [1.0, 0, 0] if abs(a[0]) < 0.9 else [0, 1.0, 0])
    t /= np.linalg.norm(t)
    ang = 2 * np.pi * np.arange(sides) / sides
    ring = radius * (np.cos(ang)[:, None] * t + np.sin(ang)[:, None] * np.cross(a, t))
    i = np.arange(sides)
    j = (i + 1) % sides
    tri = np.concatenate([np.stack([i, j, sides + i], 1), np.stack([j, sides + j, sides + i], 1)])
    return np.vstack([p0 + ring, p1 + ring]), tri


def quad(o, e1, e2) -> tuple[np.ndarray, np.ndarray]:
    o, e1, e2 = (np.asarray(x, float) for x in (o, e1, e2))
    return np.array([o, o + e1, o + e1 + e2, o + e2]), np.array([[0, 1, 2], [0, 2, 3]])


def merge(parts):
    offsets = np.cumsum([0] + [len(v) for v, _ in parts])[:-1]
    return np.vstack([v for v, _ in parts]), np.vstack([t + o for (_, t), o in zip(parts, offsets)])


def poles_scene():
    """40 vertical poles 2-5 cm across, 2-6 units away (0.4-3 px wide), on a ground before a wall."""
    rng = np.random.default_rng(0)
    parts = [cylinder([x, 1.5, z], [x, -2.0, z], r) for x, z, r in
             zip(rng.uniform(-3, 3, 40), rng.uniform(2, 6, 40), rng.uniform(0.01, 0.025, 40))]  # fmt: skip
    parts.append(quad([-10, 1.5, 0.5], [20, 0, 0], [0, 0, 12]))  # ground (y down)
    parts.append(quad([-10, -6, 12.5], [20, 0, 0], [0, 7.5, 0]))  # wall
    return merge(parts)


def thicket_scene():
    """600 branches 0.8-2.4 cm across in every direction, 3-5 units away, before a wall."""
    rng = np.random.default_rng(1)
    parts = []
    for _ in range(600):
        c = rng.uniform([-1.5, -1.2, 3], [1.5, 1.2, 5])
        d = rng.normal(size=3)
        d /= np.linalg.norm(d)
        half = rng.uniform(0.1, 0.4) * d
        parts.append(cylinder(c - half, c + half, rng.uniform(0.004, 0.012), sides=8))
    parts.append(quad([-10, -6, 9], [20, 0, 0], [0, 12, 0]))
    return merge(parts)


def cloud_pce_on_mesh(scene, n: int) -> float:
    """PCE of a truck rescaled on an area-uniform n-point cloud of ``scene``, re-measured on the mesh."""
    mesh = MeshDepth(*scene)
    cloud = PointCloudDepth(sample_surface(*scene, n))
    c2w = camera_move("truck", 12, step=0.02)
    ref = Trajectory(np.arange(1, 13), c2w, [FULL.fx, FULL.fy, FULL.cx, FULL.cy], FULL.width, FULL.height, fps=24)
    opts = RescaleOptions(mode="exact", allow_sky=False)
    on_mesh = rescale(ref, ConstantDepth(2.5), mesh, np.eye(4), options=opts)
    assert pce(step_parallax(on_mesh.trajectory.c2w, mesh, FULL, opts), on_mesh.pi_ref, strict=False) < 1e-3
    res = rescale(ref, ConstantDepth(2.5), cloud, np.eye(4), options=opts)
    return pce(step_parallax(res.trajectory.c2w, mesh, FULL, opts), res.pi_ref, strict=False)


def test_thin_poles_cover_about_their_width_not_a_pixel_per_row():
    """20 poles densely sampled before a sparse wall: the cloud's pole pixels 1.14x the mesh's (main:
    2.18x, one pixel per point and nodes 1.5x their voxel), E[1/Z] over the pixels both cover +3.4%
    (main: +18%)."""
    rng = np.random.default_rng(0)
    poles = merge([cylinder([x, 1.5, z], [x, -2.0, z], r) for x, z, r in
                   zip(rng.uniform(-2.5, 2.5, 20), rng.uniform(2, 5, 20), rng.uniform(0.01, 0.025, 20))])  # fmt: skip
    wall = quad([-8, -5, 10], [16, 0, 0], [0, 7, 0])
    mesh = MeshDepth(*merge([poles, wall])).view(np.eye(4), CAM).depth
    pts = np.vstack([sample_surface(*poles, 300_000), sample_surface(*wall, 30_000)])
    cloud = PointCloudDepth(pts).view(np.eye(4), CAM).depth
    pole_mesh, pole_cloud = np.sum(mesh < 6), np.sum(cloud < 6)
    assert pole_mesh > 1000
    assert 0.9 * pole_mesh < pole_cloud < 1.25 * pole_mesh, (pole_cloud, pole_mesh)
    both = np.isfinite(mesh) & np.isfinite(cloud)
    assert np.mean(1 / cloud[both]) / np.mean(1 / mesh[both]) == pytest.approx(1, abs=0.05)


def test_pole_cloud_gives_the_meshs_parallax():
    """40 poles on a ground before a wall as 1M area-uniform points (4% of them on the poles, spaced
    about a pole's width): PCE 0.015 on the mesh (main: 0.226; the goal: 0.05)."""
    assert cloud_pce_on_mesh(poles_scene(), 1_000_000) < 0.05


def test_thicket_cloud_parallax_improved():
    """600 thin branches in every direction before a wall as 1M points: PCE 0.078 on the mesh (main:
    0.357). The goal of 0.05 is not reached: branch pieces whose points do not look like a line (ends,
    crossings, 1-3 points under a non-tube parent) are still drawn as their boxes."""
    assert cloud_pce_on_mesh(thicket_scene(), 1_000_000) < 0.1
