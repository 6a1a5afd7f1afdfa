"""Analytic textured test scenes: exact depth and colour by ray–rectangle intersection (numpy).

Used by the closed-loop benchmark as ground truth. World axes are OpenCV-like (y down, the start
camera at the origin looking along +z). Every scene is defined at unit scale and multiplied by
``scale``; textures scale with it, so a scene looks identical at every scale and only its
depth (and thus the parallax a move produces) changes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parascale_blender.core.camera import Camera
from parascale_blender.core.depth import DepthSource, DepthView


@dataclass
class Rect:
    """A bounded rectangle ``origin + u·e1 + v·e2`` for u, v in [0, 1], with a texture seed."""

    origin: np.ndarray
    e1: np.ndarray
    e2: np.ndarray
    tone: tuple[float, float, float]
    texel: float  # texture feature size in world units


def _rect(origin, e1, e2, tone, texel) -> Rect:
    return Rect(np.asarray(origin, float), np.asarray(e1, float), np.asarray(e2, float), tone, texel)


def _texture(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Blocky value noise plus stripes: features at several scales, no repetition nearby."""
    out = np.zeros_like(u)
    amp = 0.5
    for octave in range(3):
        f = 2.0**octave
        iu, iv = np.floor(u * f).astype(np.int64), np.floor(v * f).astype(np.int64)
        h = (iu * 73856093) ^ (iv * 19349663) ^ (seed * 83492791 + octave * 2654435761)
        h = (h ^ (h >> 13)) * 1274126177
        out += amp * ((h & 0xFFFF) / 65535.0 - 0.5)
        amp *= 0.5
    return 0.55 + out + 0.08 * np.sin(u * 2.7) * np.cos(v * 3.1)


class RectScene(DepthSource):
    """A union of textured rectangles; empty rays are sky (depth NaN, sky colour)."""

    geometric = True
    kind = "geometry"

    def __init__(self, name: str, rects: list[Rect], scale: float, sky: bool):
        self.name = name
        self.rects = rects
        self.scale = float(scale)
        self.sky = sky
        self.description = f"{name} x{scale:g}"

    def trace(self, c2w: np.ndarray, camera: Camera) -> tuple[np.ndarray, np.ndarray]:
        """(rgb uint8 (H, W, 3), z-depth (H, W) with NaN for sky) seen from ``c2w``."""
        x, y = camera.pixel_rays()
        d = np.stack([x, y, np.ones_like(x)], -1) @ np.asarray(c2w)[:3, :3].T  # ray param = z-depth
        o = np.asarray(c2w)[:3, 3]
        best = np.full(x.shape, np.inf)
        shade = np.zeros(x.shape + (3,))
        for k, r in enumerate(self.rects):
            o_r, e1, e2 = r.origin * self.scale, r.e1 * self.scale, r.e2 * self.scale
            n = np.cross(e1, e2)
            denom = d @ n
            with np.errstate(divide="ignore", invalid="ignore"):
                t = ((o_r - o) @ n) / denom
                X = o + d * t[..., None]
                u = (X - o_r) @ e1 / (e1 @ e1)
                v = (X - o_r) @ e2 / (e2 @ e2)
            hit = (t > 0) & (u >= 0) & (u <= 1) & (v >= 0) & (v <= 1) & (t < best)
            if not hit.any():
                continue
            best[hit] = t[hit]
            su = u[hit] * np.linalg.norm(e1) / (r.texel * self.scale)
            sv = v[hit] * np.linalg.norm(e2) / (r.texel * self.scale)
            g = _texture(su, sv, k + 1)
            shade[hit] = np.clip(g[:, None] * np.asarray(r.tone)[None, :] * 1.6, 0, 1)
        sky = ~np.isfinite(best)
        if sky.any():  # clouds at infinity: textured by direction, so optical flow can track them
            dn = d[sky] / np.linalg.norm(d[sky], axis=-1, keepdims=True)
            az, el = np.arctan2(dn[:, 0], dn[:, 2]) * 40.0, np.arcsin(np.clip(dn[:, 1], -1, 1)) * 40.0
            g = _texture(az, el, 99)[:, None]
            shade[sky] = np.clip(np.array([0.45, 0.6, 0.9]) * (0.6 + 0.6 * g), 0, 1)
        depth = np.where(sky, np.nan, best)
        return (np.clip(shade, 0, 1) * 255 + 0.5).astype(np.uint8), depth

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        return DepthView(self.trace(c2w, camera)[1], camera, sky=True)


def wall(scale: float = 1.0) -> RectScene:
    """A flat textured wall one unit in front of the start camera (fills the view)."""
    return RectScene("wall", [_rect((-20, -20, 1), (40, 0, 0), (0, 40, 0), (0.8, 0.7, 0.6), 0.02)], scale, sky=False)


def room(scale: float = 1.0) -> RectScene:
    """A closed box room, 4 wide, 2.4 high, walls 1 to 4 units from the start camera."""
    R = [
        _rect((-2, -1.2, 4), (4, 0, 0), (0, 2.4, 0), (0.8, 0.75, 0.6), 0.05),  # far wall
        _rect((-2, -1.2, -1), (0, 0, 5), (0, 2.4, 0), (0.6, 0.7, 0.8), 0.05),  # left
        _rect((2, -1.2, -1), (0, 0, 5), (0, 2.4, 0), (0.7, 0.8, 0.6), 0.05),  # right
        _rect((-2, 1.2, -1), (4, 0, 0), (0, 0, 5), (0.5, 0.4, 0.3), 0.05),  # floor (y down)
        _rect((-2, -1.2, -1), (4, 0, 0), (0, 0, 5), (0.9, 0.9, 0.9), 0.05),  # ceiling
        _rect((-0.6, -0.3, 2.2), (1.2, 0, 0), (0, 1.5, 0), (0.7, 0.3, 0.3), 0.03),  # a cabinet in front
    ]
    return RectScene("room", R, scale, sky=False)


def street(scale: float = 1.0) -> RectScene:
    """Two facades 1.5 units to each side running 60 units ahead, a road below, sky above."""
    R = [
        _rect((-1.5, -4, -2), (0, 0, 62), (0, 5.5, 0), (0.7, 0.6, 0.5), 0.15),
        _rect((1.5, -4, -2), (0, 0, 62), (0, 5.5, 0), (0.6, 0.6, 0.7), 0.15),
        _rect((-1.5, 1.5, -2), (3, 0, 0), (0, 0, 62), (0.4, 0.4, 0.42), 0.1),
        _rect((-1.5, -4, 60), (3, 0, 0), (0, 5.5, 0), (0.8, 0.7, 0.7), 0.2),
    ]
    return RectScene("street", R, scale, sky=True)


def landscape(scale: float = 1.0) -> RectScene:
    """Ground one unit below the camera out to 400 units, ridges 60–300 units away, open sky."""
    R = [
        _rect((-300, 1, -5), (600, 0, 0), (0, 0, 405), (0.45, 0.55, 0.3), 0.5),
        _rect((-150, -25, 60), (120, 0, 0), (0, 26, 0), (0.5, 0.45, 0.4), 2.0),
        _rect((20, -40, 140), (160, 0, 0), (0, 41, 0), (0.55, 0.5, 0.45), 3.0),
        _rect((-300, -70, 300), (600, 0, 0), (0, 71, 0), (0.6, 0.6, 0.65), 6.0),
    ]
    return RectScene("landscape", R, scale, sky=True)


SCENES = {"wall": wall, "room": room, "street": street, "landscape": landscape}
