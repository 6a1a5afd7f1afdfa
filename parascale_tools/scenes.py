"""Built-in target scenes for the demo and the benchmarks (pure numpy meshes).

Scenes are in a **Z-up world** (Blender's), units stated per scene. Each comes with a suggested
start pose for the target camera, given as a Blender camera-to-world matrix (camera looks
down its -Z); convert with ``core.camera.opencv_from_blender`` before calling the core.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from parascale_blender.core.camera import FLIP_YZ, make_c2w
from parascale_blender.core.rotation import euler_to_matrix

from .synthetic import look_at

_BOX_FACES = np.array(
    [
        [0, 2, 1], [0, 3, 2], [4, 5, 6], [4, 6, 7], [0, 1, 5], [0, 5, 4],
        [1, 2, 6], [1, 6, 5], [2, 3, 7], [2, 7, 6], [3, 0, 4], [3, 4, 7],
    ]
)  # fmt: skip


@dataclass
class SceneMesh:
    """Triangles (F,3) over vertices (V,3), an RGB colour (0..1) per triangle, and a start pose."""

    name: str
    units: str
    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray
    start_c2w_blender: np.ndarray
    description: str


def box(center, size, color) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """An axis-aligned box: 8 vertices, 12 outward-facing triangles."""
    c, s = np.asarray(center, float), np.asarray(size, float) / 2
    corners = np.array(
        [[-1, -1, -1], [1, -1, -1], [1, 1, -1], [-1, 1, -1], [-1, -1, 1], [1, -1, 1], [1, 1, 1], [-1, 1, 1]]
    )
    return c + corners * s, _BOX_FACES.copy(), np.tile(np.asarray(color, float), (12, 1))


def grid(x0, x1, y0, y1, n, height_fn, color_fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A height-field surface z = height_fn(x, y) on an n x n grid."""
    xs, ys = np.meshgrid(np.linspace(x0, x1, n), np.linspace(y0, y1, n))
    V = np.stack([xs, ys, height_fn(xs, ys)], -1).reshape(-1, 3)
    i, j = np.meshgrid(np.arange(n - 1), np.arange(n - 1))
    a = (j * n + i).ravel()
    F = np.concatenate([np.stack([a, a + 1, a + n + 1], 1), np.stack([a, a + n + 1, a + n], 1)])
    centres = V[F].mean(axis=1)
    return V, F, color_fn(centres)


def merge(parts) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    verts, tris, cols, off = [], [], [], 0
    for V, F, C in parts:
        verts.append(V)
        tris.append(F + off)
        cols.append(C)
        off += len(V)
    return np.concatenate(verts), np.concatenate(tris), np.concatenate(cols)


def look_at_blender(eye, target, up=(0.0, 0.0, 1.0)) -> np.ndarray:
    """Blender camera c2w at ``eye`` looking at ``target`` (camera -Z towards target, +Y up)."""
    return look_at(eye, target, down=-np.asarray(up, float)) @ FLIP_YZ


def desk_scene() -> SceneMesh:
    """A desk top in metres: objects 3–15 cm tall, seen from ~35 cm (the 'nudge across a desk')."""
    parts = [
        box((0, 0, -0.015), (1.2, 0.7, 0.03), (0.45, 0.3, 0.18)),  # desk top
        box((0, 0.36, 0.25), (1.2, 0.02, 0.5), (0.8, 0.8, 0.75)),  # wall behind
        box((-0.12, 0.08, 0.05), (0.08, 0.08, 0.1), (0.9, 0.9, 0.92)),  # mug
        box((0.05, 0.12, 0.02), (0.2, 0.14, 0.04), (0.2, 0.3, 0.7)),  # books
        box((0.05, 0.12, 0.055), (0.18, 0.12, 0.03), (0.7, 0.2, 0.2)),
        box((0.18, -0.02, 0.075), (0.04, 0.04, 0.15), (0.2, 0.6, 0.3)),  # lamp post
        box((-0.25, 0.2, 0.06), (0.12, 0.03, 0.12), (0.1, 0.1, 0.1)),  # picture frame
        box((0.3, 0.15, 0.03), (0.06, 0.06, 0.06), (0.9, 0.7, 0.1)),  # cube toy
    ]
    V, F, C = merge(parts)
    start = look_at_blender((0.0, -0.35, 0.12), (0.0, 0.1, 0.05))
    return SceneMesh("desk", "m", V, F, C, start, "a desk top, objects 3–15 cm, camera 35 cm away")


def canyon_scene() -> SceneMesh:
    """A landscape in metres: ridges 0.2–1 km away and open sky above (the 'far' regime)."""

    def height(x, y):
        return 150 * np.sin(x / 400.0) * np.cos(y / 300.0) + 0.25 * np.maximum(y - 200, 0)

    def color(c):
        z = np.clip(c[:, 2] / 400 + 0.4, 0, 1)[:, None]
        return np.concatenate([0.55 + 0.3 * z, 0.4 + 0.2 * z, 0.25 + 0.1 * z], 1)

    V, F, C = grid(-2000, 2000, -500, 3000, 60, height, color)
    start = make_c2w(euler_to_matrix(np.array([np.radians(80), 0, 0])), (0.0, -400.0, 120.0))
    return SceneMesh("canyon", "m", V, F, C, start, "a canyon landscape, ridges 0.2–1 km away, sky above")


SCENES = {"desk": desk_scene, "canyon": canyon_scene}
