"""Synthetic clips with exact ground truth: textured boxes rendered by ray casting.

A scene is a set of textured rectangles (walls, floor, boxes). :func:`render` casts one ray per
(supersampled) pixel from an OpenCV camera (c2w, x right, y down, z forward), keeps the nearest
hit, looks up the rectangle's texture bilinearly and returns the colour image (uint8 RGB) and
the exact z-depth. Used by the tracking tests and benchmark as independent truth.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from parascale_blender.core.camera import Camera

from ..synthetic import look_at

TEXELS_PER_UNIT = 110.0


@dataclass
class Rect:
    """A textured rectangle ``origin + s*u + r*v`` for s in [0, su], r in [0, sv]."""

    origin: np.ndarray
    u: np.ndarray
    v: np.ndarray
    su: float
    sv: float
    texture: np.ndarray

    @property
    def normal(self) -> np.ndarray:
        return np.cross(self.u, self.v)


def make_texture(width: int, height: int, rng: np.random.Generator) -> np.ndarray:
    """Multi-scale coloured noise plus random discs and bars: rich in SIFT blobs at many scales."""
    tex = np.zeros((height, width, 3), np.float32)
    for sigma, weight in ((1.2, 0.25), (3.0, 0.5), (8.0, 0.6), (20.0, 0.5)):
        noise = rng.standard_normal((height, width, 3)).astype(np.float32)
        noise = cv2.GaussianBlur(noise, (0, 0), sigma)
        tex += weight * noise / (noise.std() + 1e-9)
    tex = 128 + 40 * tex
    for _ in range(int(width * height / 1500)):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
        if rng.random() < 0.6:
            cv2.circle(tex, centre, int(rng.integers(2, 14)), colour, -1, cv2.LINE_AA)
        else:
            half = rng.integers(2, 16, 2)
            cv2.rectangle(tex, centre, (centre[0] + int(half[0]), centre[1] + int(half[1])), colour, -1)
    return np.clip(tex, 0, 255).astype(np.float32)


def _rect(origin, u, v, su, sv, rng) -> Rect:
    tex = make_texture(max(8, int(su * TEXELS_PER_UNIT)), max(8, int(sv * TEXELS_PER_UNIT)), rng)
    return Rect(np.asarray(origin, float), np.asarray(u, float), np.asarray(v, float), su, sv, tex)


def box(corner, size, rng) -> list[Rect]:
    """The five visible faces (no bottom) of an axis-aligned box; y points down (floor at +y)."""
    x0, y0, z0 = corner
    sx, sy, sz = size
    ex, ey, ez = np.eye(3)
    return [
        _rect((x0, y0, z0), ex, ey, sx, sy, rng),  # front (z = z0)
        _rect((x0, y0, z0 + sz), ex, ey, sx, sy, rng),  # back
        _rect((x0, y0, z0), ez, ey, sz, sy, rng),  # left (x = x0)
        _rect((x0 + sx, y0, z0), ez, ey, sz, sy, rng),  # right
        _rect((x0, y0, z0), ex, ez, sx, sz, rng),  # top (y = y0, smaller y is up)
    ]


def room_scene(seed: int = 0) -> list[Rect]:
    """A 6 x 3 x 8 room (floor at y=1.5, camera near the origin looking +z) with three boxes."""
    rng = np.random.default_rng(seed)
    ex, ey, ez = np.eye(3)
    rects = [
        _rect((-3, -1.5, 7), ex, ey, 6, 3, rng),  # back wall
        _rect((-3, 1.5, -1), ex, ez, 6, 8, rng),  # floor
        _rect((-3, -1.5, -1), ex, ez, 6, 8, rng),  # ceiling
        _rect((-3, -1.5, -1), ez, ey, 8, 3, rng),  # left wall
        _rect((3, -1.5, -1), ez, ey, 8, 3, rng),  # right wall
    ]
    rects += box((-1.6, 0.5, 3.0), (0.9, 1.0, 0.9), rng)
    rects += box((0.7, 0.2, 4.2), (1.0, 1.3, 0.8), rng)
    rects += box((-0.3, 0.9, 2.2), (0.5, 0.6, 0.5), rng)
    return rects


def _lookup(texture: np.ndarray, mx: np.ndarray, my: np.ndarray) -> np.ndarray:
    """Bilinear texture samples at texel coordinates (mx, my), any number of them."""
    cols = 4096
    rows = -(-len(mx) // cols)
    pad = rows * cols - len(mx)
    maps = [np.pad(m.astype(np.float32), (0, pad)).reshape(rows, cols) for m in (mx, my)]
    out = cv2.remap(texture, maps[0], maps[1], cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
    return out.reshape(-1, 3)[: len(mx)]


def render(scene: list[Rect], c2w: np.ndarray, camera: Camera, supersample: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """(rgb uint8 (H,W,3), z-depth float (H,W), NaN where nothing is hit) seen from ``c2w``."""
    hi = camera.scaled_to(camera.width * supersample, camera.height * supersample)
    x, y = hi.pixel_rays()
    d_cam = np.stack([x, y, np.ones_like(x)], -1)
    d = d_cam @ c2w[:3, :3].T
    C = c2w[:3, 3]
    best = np.full(x.shape, np.inf)
    colour = np.zeros(x.shape + (3,), np.float32)
    for rect in scene:
        n = rect.normal
        denom = d @ n
        with np.errstate(divide="ignore", invalid="ignore"):
            t = ((rect.origin - C) @ n) / denom
        p_rel = C - rect.origin
        s = p_rel @ rect.u + t * (d @ rect.u)
        r = p_rel @ rect.v + t * (d @ rect.v)
        hit = (t > 1e-6) & (t < best) & (s >= 0) & (s <= rect.su) & (r >= 0) & (r <= rect.sv)
        if not hit.any():
            continue
        best[hit] = t[hit]
        th, tw = rect.texture.shape[:2]
        colour[hit] = _lookup(rect.texture, s[hit] / rect.su * tw - 0.5, r[hit] / rect.sv * th - 0.5)
    depth = np.where(np.isfinite(best), best, np.nan)  # ray z-component is 1, so t is z-depth
    size = (camera.width, camera.height)
    rgb = cv2.resize(colour, size, interpolation=cv2.INTER_AREA)
    # Depth: take the nearest of each block so edges do not blend foreground and background.
    depth = depth.reshape(camera.height, supersample, camera.width, supersample)
    depth = np.nanmin(np.where(np.isfinite(depth), depth, np.inf), axis=(1, 3))
    depth[np.isinf(depth)] = np.nan
    return np.clip(rgb, 0, 255).astype(np.uint8), depth


def orbit_path(n: int, travel: float = 1.2) -> np.ndarray:
    """(n,4,4) c2w: a sideways dolly with a little push-in, panning to keep the boxes framed."""
    u = np.linspace(0.0, 1.0, n)
    centres = np.stack([travel * (u - 0.5), -0.1 + 0.15 * u, -0.2 + 0.6 * u], axis=1)
    targets = np.stack([0.6 * (0.5 - u), 0.4 + 0 * u, 4.0 + 0 * u], axis=1)
    return np.stack([look_at(c, t) for c, t in zip(centres, targets)])


def render_clip(c2w: np.ndarray, camera: Camera, seed: int = 0, supersample: int = 2):
    """Render every pose of ``c2w``: (frames list of uint8 RGB, depths (N,H,W))."""
    scene = room_scene(seed)
    out = [render(scene, T, camera, supersample) for T in c2w]
    return [rgb for rgb, _ in out], np.stack([dep for _, dep in out])
