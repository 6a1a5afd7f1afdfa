"""The Rescale-speed case: a reference move rescaled onto a bumpy landscape mesh (~13k triangles) or a
point cloud sampled on it, at any length, and its oracle PCE.

The reference is a smooth, bounded move (truck, crane and dolly oscillating at different periods with
a slow pan) at a 2-unit subject distance; the target starts 12 units above the landscape looking down
45°. The oracle is the exact translational image motion (:func:`.closed_loop.oracle_parallax`) of the
output on the landscape's true triangles, rasterised exactly at ``ORACLE_SIZE`` px (not the engine's
working size), against the reference's on its subject plane.
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import Camera, Trajectory, make_c2w
from parascale_blender.core.depth import ConstantDepth
from parascale_blender.core.depth_sources import MeshDepth
from parascale_blender.core.metrics import pce
from parascale_blender.core.rotation import euler_to_matrix

CAM = Camera(576.0, 576.0, 320.0, 180.0, 640, 360)
REF_DISTANCE = 2.0
ORACLE_SIZE = 256
N_SIDE = 82  # 2 * 81² = 13,122 triangles


def terrain(n_side: int = N_SIDE) -> tuple[np.ndarray, np.ndarray]:
    """A bumpy 100 x 100-unit grid (vertices (n², 3), triangles (2·(n-1)², 3)), z up (Blender world)."""
    xs = np.linspace(-50, 50, n_side)
    X, Y = np.meshgrid(xs, xs)
    Z = 2.0 * np.sin(X / 3.0) * np.cos(Y / 4.0) + 0.5 * np.sin(X * 1.7 + Y * 0.9)
    verts = np.column_stack([X.ravel(), Y.ravel(), Z.ravel()])
    i = np.arange(n_side - 1)
    I, J = np.meshgrid(i, i)
    a = (J * n_side + I).ravel()
    first, second = np.column_stack([a, a + 1, a + n_side + 1]), np.column_stack([a, a + n_side + 1, a + n_side])
    tris = np.concatenate([first, second])
    return verts, tris


def quads(n_side: int = N_SIDE) -> np.ndarray:
    """The grid's quads (loop vertex order) for a Blender mesh of :func:`terrain`'s vertices."""
    i = np.arange(n_side - 1)
    I, J = np.meshgrid(i, i)
    a = (J * n_side + I).ravel()
    return np.column_stack([a, a + 1, a + n_side + 1, a + n_side])


def reference_c2w(n: int) -> np.ndarray:
    """(n, 4, 4) OpenCV c2w of the reference move, starting at identity (the same first frames at any n)."""
    t = np.arange(n, dtype=float)
    w = 2 * np.pi * t
    pos = np.stack([0.8 * np.sin(w / 400), 0.25 * np.sin(w / 270), 0.5 * (1 - np.cos(w / 330))], 1)
    yaw = np.radians(6.0) * np.sin(w / 500)
    R = euler_to_matrix(np.stack([np.zeros(n), yaw, np.zeros(n)], 1), "XYZ")
    return make_c2w(R, pos)


def reference(n: int) -> Trajectory:
    return Trajectory(np.arange(n), reference_c2w(n), [CAM.fx, CAM.fy, CAM.cx, CAM.cy], CAM.width, CAM.height, fps=24)


def target_start() -> np.ndarray:
    """OpenCV c2w of the target camera at the start: 12 units up, looking down 45° along +y."""
    R_bl = euler_to_matrix(np.array([np.radians(45), 0.0, 0.0]), "XYZ")
    return make_c2w(R_bl, np.array([-5.0, -25.0, 12.0])) @ np.diag([1.0, -1, -1, 1])


def oracle_pce(c2w: np.ndarray, ref: Trajectory, verts: np.ndarray, tris: np.ndarray, size: int = ORACLE_SIZE):
    """Oracle PCE of an output move ``c2w`` on the true landscape against the reference's exact motion."""
    from .closed_loop import _track, oracle_parallax

    small = CAM.working(size)
    mesh = MeshDepth(verts, tris)
    depths = np.stack([mesh.view(c, small).depth for c in c2w[:-1]] + [np.full((small.height, small.width), np.nan)])
    pi_out = oracle_parallax(None, _track(c2w, small), depths)
    flat = np.full((len(ref), small.height, small.width), REF_DISTANCE)
    pi_ref = oracle_parallax(None, _track(ref.c2w, small), flat)
    return pce(pi_out, pi_ref, strict=False)


def reference_depth() -> ConstantDepth:
    return ConstantDepth(REF_DISTANCE)
