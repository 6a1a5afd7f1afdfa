"""Depth benchmark rows: DepthView frames/s for point clouds (level of detail vs brute force),
growth with working resolution, hierarchy build time, LOD accuracy, and mesh rasterisation.

Scene: a furnished room (surfaces of an 8 x 3 x 12 box plus 20 spheres, area-uniform random
samples), seen by a camera dollying and panning through it. Every rate is frames per second of
``source.view`` in CPU time of this process (one core: the engine is single-threaded numpy), so
other load on a shared machine does not distort it; baselines are measured in the same run.
"""

from __future__ import annotations

import time

import numpy as np

from parascale_blender.core.camera import Camera, make_c2w
from parascale_blender.core.depth_sources import MeshDepth, PointCloudDepth

FULL_HD = Camera(1500.0, 1500.0, 960.0, 540.0, 1920, 1080)


def room_cloud(n: int, seed: int = 0) -> np.ndarray:
    """``n`` points on the surfaces of an 8 x 3 x 12 box and 20 spheres inside it (OpenCV world, y down)."""
    rng = np.random.default_rng(seed)
    dims = np.array([8.0, 3.0, 12.0])
    centres = rng.uniform([-3, -1, -5], [3, 1, 5], (20, 3))
    radii = rng.uniform(0.1, 0.6, 20)
    face_area = np.array([dims[1] * dims[2], dims[0] * dims[2], dims[0] * dims[1]])
    sph_area = 4 * np.pi * radii**2
    nb = int(n * 2 * face_area.sum() / (2 * face_area.sum() + sph_area.sum()))
    axis = rng.choice(3, nb, p=face_area / face_area.sum())
    p = rng.uniform(-dims / 2, dims / 2, (nb, 3))
    p[np.arange(nb), axis] = np.where(rng.integers(0, 2, nb) == 1, 1, -1) * dims[axis] / 2
    k = rng.choice(20, n - nb, p=sph_area / sph_area.sum())
    d = rng.normal(size=(n - nb, 3))
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    return np.concatenate([p, centres[k] + radii[k, None] * d])


def camera_path(frames: int) -> list[np.ndarray]:
    """A dolly down the room with a slow pan (OpenCV c2w)."""
    out = []
    for t in np.linspace(0.0, 1.0, frames):
        yaw = np.deg2rad(-30 + 60 * t)
        R = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        out.append(make_c2w(R, np.array([0.5, 0.3, -4.5 + 7.0 * t])))
    return out


def icosphere_mesh(subdivisions: int, radius: float) -> tuple[np.ndarray, np.ndarray]:
    """Geodesic sphere by 4-way subdivision of an icosahedron (vectorised edge midpoints)."""
    g = (1 + 5**0.5) / 2
    v = np.array([[-1, g, 0], [1, g, 0], [-1, -g, 0], [1, -g, 0], [0, -1, g], [0, 1, g], [0, -1, -g], [0, 1, -g],
                  [g, 0, -1], [g, 0, 1], [-g, 0, -1], [-g, 0, 1]], dtype=float)  # fmt: skip
    v /= np.linalg.norm(v, axis=1, keepdims=True)
    f = np.array([[0, 11, 5], [0, 5, 1], [0, 1, 7], [0, 7, 10], [0, 10, 11], [1, 5, 9], [5, 11, 4], [11, 10, 2],
                  [10, 7, 6], [7, 1, 8], [3, 9, 4], [3, 4, 2], [3, 2, 6], [3, 6, 8], [3, 8, 9], [4, 9, 5],
                  [2, 4, 11], [6, 2, 10], [8, 6, 7], [9, 8, 1]])  # fmt: skip
    for _ in range(subdivisions):
        edges = np.sort(np.concatenate([f[:, [0, 1]], f[:, [1, 2]], f[:, [2, 0]]]), axis=1)
        uniq, inv = np.unique(edges, axis=0, return_inverse=True)
        mids = len(v) + inv.reshape(3, -1).T  # (F, 3): midpoints of edges ab, bc, ca
        m = v[uniq[:, 0]] + v[uniq[:, 1]]
        v = np.vstack([v, m / np.linalg.norm(m, axis=1, keepdims=True)])
        a, b, c = f.T
        ab, bc, ca = mids.T
        f = np.concatenate([np.stack(x, 1) for x in ((a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca))])
    return radius * v, f


def _fps(source, poses: list[np.ndarray], camera: Camera, repeat: int) -> float:
    """Frames per CPU-second of ``source.view`` over ``poses`` (median of ``repeat`` runs, one warm-up)."""
    source.view(poses[0], camera)
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        for c2w in poses:
            source.view(c2w, camera)
        times.append(time.process_time() - t0)
    return len(poses) / max(float(np.median(times)), 1e-9)


def depth_rows(quick: bool = True) -> list[dict]:
    frames, repeat = (8, 3) if quick else (24, 5)
    poses = camera_path(frames)
    cam = FULL_HD.working(160)
    out: list[dict] = []
    clouds = {}
    for n in (10_000, 100_000, 1_000_000):
        pts = room_cloud(n)
        t0 = time.perf_counter()
        lod = PointCloudDepth(pts)
        build = time.perf_counter() - t0
        clouds[n] = lod
        brute = PointCloudDepth(pts, lod_pixels=0)
        brute.hierarchy = lod.hierarchy  # same points and radii: only the drawing differs
        f_lod = _fps(lod, poses, cam, repeat)
        f_brute = _fps(brute, poses, cam, 1 if n >= 1_000_000 else repeat)
        err = max(
            abs(np.nanmean(1 / lod.view(c, cam).depth) / np.nanmean(1 / brute.view(c, cam).depth) - 1) for c in poses
        )
        name = f"DepthView, {n:,} points, {cam.width}x{cam.height}"
        note = f"LOD vs brute force; max |E[1/Z] LOD / brute - 1| = {err:.2%}; aim >= 100 frames/s at 1M"
        row = {"name": name, "value": f_lod, "unit": "frames/s", "baseline": f_brute, "ratio": f_lod / f_brute}
        out.append({**row, "note": note})
        out.append({"name": f"hierarchy build, {n:,} points", "value": build, "unit": "s", "note": "once per cloud"})
    base = None
    for side in (80, 160, 320):
        c = FULL_HD.working(side)
        f = _fps(clouds[1_000_000], poses, c, repeat)
        base = base or f
        out.append(
            {
                "name": f"DepthView, 1,000,000 points, {c.width}x{c.height}",
                "value": f,
                "unit": "frames/s",
                "baseline": base,
                "ratio": f / base,
                "note": "growth with working resolution (baseline: 80x45)",
            }
        )
    for sub in (4, 6) if quick else (4, 6, 7):
        v, t = icosphere_mesh(sub, 5.0)
        mesh = MeshDepth(v, t)
        f = _fps(mesh, poses[: max(2, frames // 4)], cam, repeat)
        out.append(
            {
                "name": f"DepthView, mesh of {len(t):,} triangles (camera inside), {cam.width}x{cam.height}",
                "value": f,
                "unit": "frames/s",
                "note": "exact triangle rasterisation",
            }
        )
    return out
