"""Analytic test scenes with exact depth: unions of planes, ray-traced in closed form.

Independent of the engine's z-buffer: depth per pixel is the nearest ray-plane intersection.
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import Camera, make_c2w
from parascale_blender.core.depth import DepthSource, DepthView
from parascale_blender.core.rotation import euler_to_matrix


class PlanesDepth(DepthSource):
    """Planes ``n·X = c`` in world space (OpenCV world), optionally bounded to |X - centre| < extent."""

    dense = True

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
        return DepthView(z, camera, dense=True)


def room(scale: float = 1.0) -> PlanesDepth:
    """A box room 8 x 3 x 10 (x, y, z) around the origin; OpenCV world (y down)."""
    return PlanesDepth(
        [((0, 0, 1), 6.0), ((0, 0, 1), -4.0), ((1, 0, 0), 4.0), ((1, 0, 0), -4.0), ((0, 1, 0), 1.5), ((0, 1, 0), -1.5)],
        scale,
    )


def wall(distance: float) -> PlanesDepth:
    return PlanesDepth([((0, 0, 1), distance)])


def moving_track(n: int = 12, kind: str = "truck", step: float = 0.05, turn_deg: float = 0.0, seed: int = 0):
    """A camera track (c2w, OpenCV) of ``kind`` truck/dolly/crane/orbit/handheld starting at the origin."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    if kind == "truck":
        pos = np.stack([t * step, 0 * t, 0 * t], 1)
    elif kind == "dolly":
        pos = np.stack([0 * t, 0 * t, t * step], 1)
    elif kind == "crane":
        pos = np.stack([0 * t, -t * step, t * step * 0.3], 1)
    elif kind == "orbit":
        ang = t * step
        pos = np.stack([np.sin(ang), 0 * t, 1 - np.cos(ang)], 1)
    else:
        pos = np.cumsum(rng.normal(0, step, (n, 3)), axis=0)
        pos -= pos[0]
    yaw = np.deg2rad(turn_deg) * t / max(n - 1, 1)
    angles = np.stack([rng.normal(0, 0.002, n) * (kind == "handheld"), yaw, 0 * t], 1)
    R = euler_to_matrix(angles, "XYZ")
    return make_c2w(R, pos)
