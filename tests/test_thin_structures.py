"""Thin structures as point clouds against the same scene as a mesh (rasterised exactly by MeshDepth).

A pole thinner than a working pixel covers, in a mesh rasteriser, the fraction of pixel centres its
width spans. Point splats used to cover at least one pixel per point (and LOD nodes 1.5x their voxel),
which made thin poles 2x wider than the mesh and moved E[1/Z] towards them.
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import Camera
from parascale_blender.core.depth_sources import MeshDepth, PointCloudDepth
from parascale_tools.bench.engine_bench import sample_surface

CAM = Camera(500.0, 500.0, 320.0, 180.0, 640, 360).working(160)  # 160 x 90, fx = 125


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


def merge(parts):
    offsets = np.cumsum([0] + [len(v) for v, _ in parts])[:-1]
    return np.vstack([v for v, _ in parts]), np.vstack([t + o for (_, t), o in zip(parts, offsets)])


def test_thin_poles_cover_about_their_width_not_a_pixel_per_row():
    """20 poles 2-5 cm across (0.5-3 px at 2-5 units) in front of a wall 10 units away, sampled
    area-uniformly: the cloud's pole pixels within 1.75x the mesh's (they were 2.2x; the rest is the
    splat radius, 0.75 of the sample spacing, around each pole's silhouette), and E[1/Z] over the
    pixels both cover within 12% of the mesh's (+10% now: the wider poles; the goal is a few %)."""
    rng = np.random.default_rng(0)
    poles = merge([cylinder([x, 1.5, z], [x, -2.0, z], r) for x, z, r in
                   zip(rng.uniform(-2.5, 2.5, 20), rng.uniform(2, 5, 20), rng.uniform(0.01, 0.025, 20))])  # fmt: skip
    wall = (np.array([[-8, -5, 10], [8, -5, 10], [8, 2, 10], [-8, 2, 10.0]]), np.array([[0, 1, 2], [0, 2, 3]]))
    mesh = MeshDepth(*merge([poles, wall])).view(np.eye(4), CAM).depth
    pts = np.vstack([sample_surface(*poles, 300_000), sample_surface(*wall, 30_000)])
    cloud = PointCloudDepth(pts).view(np.eye(4), CAM).depth
    pole_mesh, pole_cloud = np.sum(mesh < 6), np.sum(cloud < 6)
    assert pole_mesh > 1000
    assert pole_cloud < 1.75 * pole_mesh, (pole_cloud, pole_mesh)
    assert pole_cloud > 0.9 * pole_mesh, (pole_cloud, pole_mesh)
    both = np.isfinite(mesh) & np.isfinite(cloud)
    assert np.mean(1 / cloud[both]) / np.mean(1 / mesh[both]) - 1 < 0.12
