"""Synthetic scenes with known geometry, shared by the tests and the benchmarks (seeded, deterministic).

OpenCV world and camera axes (y down) unless a name says Blender; units are arbitrary world units.
Analytic depth (:class:`PlanesDepth`) is a closed-form ray-plane intersection, independent of the
engine's z-buffer and rasteriser: the truth the depth sources are checked against.
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import Camera, make_c2w
from parascale_blender.core.depth import DepthSource, DepthView
from parascale_blender.core.rotation import euler_to_matrix

MOVES = ("truck", "dolly", "orbit", "crane", "handheld", "pan_truck", "push_pan", "accelerate")


def look_at(eye, target, down=(0.0, 1.0, 0.0)) -> np.ndarray:
    """OpenCV c2w at ``eye`` looking at ``target``, image-down roughly along ``down`` (default world
    +y: an OpenCV world, y down). A Blender camera: ``look_at(eye, target, down=-up) @ FLIP_YZ``."""
    z = np.asarray(target, float) - np.asarray(eye, float)
    z /= np.linalg.norm(z)
    x = np.cross(np.asarray(down, float), z)
    x /= np.linalg.norm(x)
    y = np.cross(z, x)
    return make_c2w(np.stack([x, y, z], axis=1), np.asarray(eye, float))


def camera_move(kind: str, n: int, step: float = 0.035, seed: int = 0, turn_deg: float = 0.0) -> np.ndarray:
    """(n,4,4) c2w (OpenCV) of a ``kind`` move (see ``MOVES``) starting at identity, ``step`` units per
    frame; ``turn_deg`` adds a steady pan over the move."""
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=float)
    zero = np.zeros(n)
    yaw = pitch = roll = zero
    if kind == "truck":
        pos = np.stack([t * step, zero, zero], 1)
    elif kind == "dolly":
        pos = np.stack([zero, zero, t * step], 1)
    elif kind == "crane":
        pos = np.stack([zero, -t * step, t * step * 0.2], 1)
        pitch = -t * step * 0.25
    elif kind == "orbit":
        ang = t * step / 1.5
        pos = np.stack([1.5 * np.sin(ang), zero, 1.5 * (1 - np.cos(ang))], 1)
        yaw = -ang
    elif kind == "pan_truck":  # a truck while panning against it
        pos = np.stack([t * step, zero, zero], 1)
        yaw = -t * step * 0.4
    elif kind == "push_pan":  # a push-in while panning
        pos = np.stack([zero, zero, t * step], 1)
        yaw = t * step * 0.5
    elif kind == "accelerate":  # a dolly that accelerates, then stops
        u = t / max(n - 1, 1)
        pos = np.stack([zero, zero, step * (n - 1) * (3 * u**2 - 2 * u**3)], 1)
    elif kind == "handheld":
        v = np.cumsum(rng.normal(0, step * 0.35, (n, 3)), axis=0) + np.array([step * 0.7, 0, step * 0.3])
        pos = np.cumsum(v, axis=0) * 0.5
        pos -= pos[0]
        pitch, yaw, roll = (np.cumsum(rng.normal(0, 0.002, n)) for _ in range(3))
    else:
        raise ValueError(f"unknown synthetic move {kind!r}; expected one of {MOVES}")
    yaw = yaw + np.deg2rad(turn_deg) * t / max(n - 1, 1)
    R = euler_to_matrix(np.stack([pitch, yaw, roll], 1), "XYZ")
    return make_c2w(R, pos)


def room_views(count: int, seed: int = 1) -> list[np.ndarray]:
    """Random camera poses inside :func:`room_cloud`'s box, looking at random points in it."""
    rng = np.random.default_rng(seed)
    lo, hi = np.array([-3, -1, -5.0]), np.array([3, 1, 5.0])
    return [look_at(rng.uniform(lo, hi), rng.uniform(lo, hi)) for _ in range(count)]


def camera_path(frames: int) -> list[np.ndarray]:
    """A dolly down the room with a slow pan (OpenCV c2w)."""
    out = []
    for t in np.linspace(0.0, 1.0, frames):
        yaw = np.deg2rad(-30 + 60 * t)
        R = np.array([[np.cos(yaw), 0, np.sin(yaw)], [0, 1, 0], [-np.sin(yaw), 0, np.cos(yaw)]])
        out.append(make_c2w(R, np.array([0.5, 0.3, -4.5 + 7.0 * t])))
    return out


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


def icosphere(subdivisions: int, radius: float = 1.0, centre=(0.0, 0.0, 0.0)) -> tuple[np.ndarray, np.ndarray]:
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
    return np.asarray(centre, float) + radius * v, f


class PlanesDepth(DepthSource):
    """Planes ``n·X = c`` in world space (OpenCV world), optionally bounded to |X - centre| < extent."""

    geometric = True
    kind = "geometry"

    def __init__(self, planes: list[tuple[tuple[float, float, float], float]], scale: float = 1.0):
        self.normals = np.array([p[0] for p in planes], dtype=np.float64)
        self.offsets = np.array([p[1] for p in planes], dtype=np.float64) * scale
        self.description = f"{len(planes)} analytic planes x{scale:g}"

    def view(self, c2w, camera: Camera, index=None) -> DepthView:
        x, y = camera.pixel_rays()
        rays_cam = np.stack([x, y, np.ones_like(x)], -1)  # z-component 1: ray parameter = z-depth
        R, o = c2w[:3, :3], c2w[:3, 3]
        rays = rays_cam @ R.T
        denom = rays @ self.normals.T  # (H, W, P)
        with np.errstate(divide="ignore", invalid="ignore"):
            t = (self.offsets - self.normals @ o) / denom
        t = np.where((t > 0) & np.isfinite(t), t, np.inf)
        z = t.min(axis=-1)
        z[~np.isfinite(z)] = np.nan
        return DepthView(z, camera, sky=True)


def room(scale: float = 1.0) -> PlanesDepth:
    """A box room 8 x 3 x 10 (x, y, z) around the origin; OpenCV world (y down)."""
    return PlanesDepth(
        [((0, 0, 1), 6.0), ((0, 0, 1), -4.0), ((1, 0, 0), 4.0), ((1, 0, 0), -4.0), ((0, 1, 0), 1.5), ((0, 1, 0), -1.5)],
        scale,
    )


def wall(distance: float) -> PlanesDepth:
    return PlanesDepth([((0, 0, 1), distance)])
