"""Point and mesh scenes with known geometry for the depth-source tests (seeded, deterministic)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parascale_blender.core.camera import make_c2w
from parascale_tools.bench.depth_bench import room_cloud

ICL = Path("depth") / "icl_synthetic_open3d"


def look_at(eye, target, up=(0.0, -1.0, 0.0)) -> np.ndarray:
    """OpenCV camera-to-world looking from ``eye`` at ``target`` (world y down, so up = -y)."""
    eye, target = np.asarray(eye, float), np.asarray(target, float)
    z = target - eye
    z /= np.linalg.norm(z)
    x = np.cross(z, up)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_c2w(np.stack([x, y, z], 1), eye)


def plane_grid(z: float, half: float, spacing: float) -> np.ndarray:
    """Regular grid of points on the plane Z = z, |X|, |Y| <= half."""
    g = np.arange(-half, half + spacing / 2, spacing)
    X, Y = np.meshgrid(g, g)
    return np.stack([X.ravel(), Y.ravel(), np.full(X.size, z)], 1)


def sphere_points(n: int, radius: float, centre=(0.0, 0.0, 0.0), seed: int = 0) -> np.ndarray:
    """``n`` points on a sphere, evenly spread (Fibonacci lattice)."""
    i = np.arange(n) + 0.5
    phi = np.arccos(1 - 2 * i / n)
    theta = np.pi * (1 + 5**0.5) * i + seed
    d = np.stack([np.cos(theta) * np.sin(phi), np.sin(theta) * np.sin(phi), np.cos(phi)], 1)
    return np.asarray(centre, float) + radius * d


def room_points(n: int, seed: int = 0) -> np.ndarray:
    """A furnished room: the surfaces of an 8 x 3 x 12 box plus 20 spheres, uniformly sampled by area."""
    return room_cloud(n, seed)


def room_views(count: int, seed: int = 1) -> list[np.ndarray]:
    """Random camera poses inside :func:`room_points`' box, looking at random points in it."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array([-3, -1, -5.0]), np.array([3, 1, 5.0])
    return [look_at(rng.uniform(lo, hi), rng.uniform(lo, hi)) for _ in range(count)]


def icl_frames(shared_data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The five ICL-NUIM depth maps (metres, NaN invalid, read by OpenCV) and their c2w poses."""
    import cv2

    root = shared_data / ICL
    lines = (root / "trajectory.log").read_text().split("\n")
    poses = [np.array([[float(v) for v in lines[5 * i + 1 + j].split()] for j in range(4)]) for i in range(5)]
    maps = []
    for i in range(5):
        d = cv2.imread(str(root / "depth" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0
        maps.append(np.where(d > 0, d, np.nan))
    return maps, poses


def box_mesh(lo, hi) -> tuple[np.ndarray, np.ndarray]:
    """The 8 corners and 12 triangles of an axis-aligned box."""
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    v = np.array([[(hi if (i >> k) & 1 else lo)[k] for k in range(3)] for i in range(8)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]
    t = [(a, b, c) for a, b, c, d in quads] + [(a, c, d) for a, b, c, d in quads]
    return v, np.array(t)


def box_surface_points(lo, hi, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniformly (by area) on the surface of an axis-aligned box."""
    rng = np.random.default_rng(seed)
    lo, hi = np.asarray(lo, float), np.asarray(hi, float)
    dims = hi - lo
    face_area = np.array([dims[1] * dims[2], dims[0] * dims[2], dims[0] * dims[1]])
    axis = rng.choice(3, n, p=face_area / face_area.sum())
    p = rng.uniform(lo, hi, (n, 3))
    side = rng.integers(0, 2, n) == 1
    p[np.arange(n), axis] = np.where(side, hi[axis], lo[axis])
    return p


def icosphere(subdivisions: int, radius: float = 1.0, centre=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
    """A geodesic sphere mesh (vertices on the sphere) by repeated 4-way triangle subdivision."""
    g = (1 + 5**0.5) / 2
    v = [(-1, g, 0), (1, g, 0), (-1, -g, 0), (1, -g, 0), (0, -1, g), (0, 1, g), (0, -1, -g), (0, 1, -g),
         (g, 0, -1), (g, 0, 1), (-g, 0, -1), (-g, 0, 1)]  # fmt: skip
    f = [(0, 11, 5), (0, 5, 1), (0, 1, 7), (0, 7, 10), (0, 10, 11), (1, 5, 9), (5, 11, 4), (11, 10, 2),
         (10, 7, 6), (7, 1, 8), (3, 9, 4), (3, 4, 2), (3, 2, 6), (3, 6, 8), (3, 8, 9), (4, 9, 5), (2, 4, 11),
         (6, 2, 10), (8, 6, 7), (9, 8, 1)]  # fmt: skip
    verts = [np.array(p, float) / np.linalg.norm(p) for p in v]
    faces = f

    def mid(a, b, cache):
        key = (min(a, b), max(a, b))
        if key not in cache:
            m = verts[a] + verts[b]
            verts.append(m / np.linalg.norm(m))
            cache[key] = len(verts) - 1
        return cache[key]

    for _ in range(subdivisions):
        cache: dict = {}
        new = []
        for a, b, c in faces:
            ab, bc, ca = mid(a, b, cache), mid(b, c, cache), mid(c, a, cache)
            new += [(a, ab, ca), (b, bc, ab), (c, ca, bc), (ab, bc, ca)]
        faces = new
    return np.asarray(centre, float) + radius * np.array(verts), np.array(faces)
