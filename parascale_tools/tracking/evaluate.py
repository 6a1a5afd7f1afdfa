"""Accuracy of a track against ground truth: pose errors and per-step parallax Π.

Π convention (``core.parallax``): index t is the step t-1 → t, expressed in camera t-1's axes,
with the depth seen from pose t-1; index 0 is NaN. The track's own depth is its sparse points
visible in frame t-1 (``core.depth_sources.SparsePointsDepth``: one pixel each, z-buffered) at
the working resolution (160 px longest side).
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import Camera, Trajectory
from parascale_blender.core.depth import DepthView
from parascale_blender.core.depth_sources import SparsePointsDepth
from parascale_blender.core.parallax import ParallaxProbe
from parascale_blender.core.rotation import rotation_angle


def sparse_views(track: Trajectory, max_side: int = 160) -> list[DepthView]:
    """Per frame: the z-buffered depth of the points that frame sees (NaN elsewhere)."""
    if track.points is None or track.points.visibility is None:
        raise ValueError("the track has no sparse points with visibility")
    source = SparsePointsDepth(track.points)
    return [source.view(track.c2w[i], track.camera(i).working(max_side), i) for i in range(len(track))]


def parallax_series(c2w: np.ndarray, views: list[DepthView]) -> np.ndarray:
    """Harmonic Π per step (length N, NaN at index 0) for poses ``c2w`` and per-frame views."""
    c2w = np.asarray(c2w, float)
    steps = np.einsum("nji,nj->ni", c2w[:-1, :3, :3], np.diff(c2w[:, :3, 3], axis=0))
    out = np.full(len(c2w), np.nan)
    for t in range(1, len(c2w)):
        out[t] = ParallaxProbe.from_view(views[t - 1]).parallax(steps[t - 1])
    return out


def track_parallax(track: Trajectory, max_side: int = 160) -> np.ndarray:
    """Π per step measured from the track's own poses and sparse points."""
    return parallax_series(track.c2w, sparse_views(track, max_side))


def dense_views(depths: np.ndarray, camera: Camera) -> list[DepthView]:
    """Ground-truth depth maps (N,H,W) at ``camera``'s size as dense views."""
    return [DepthView(np.asarray(d, float), camera, sky=True) for d in depths]


def pose_errors(est: np.ndarray, gt: np.ndarray, min_travel: float = 0.05) -> tuple[np.ndarray, np.ndarray]:
    """Per frame (degrees): rotation error and translation-direction error, both relative to frame 0.

    The direction error is the angle between the frame-0-relative camera centres (scale-free);
    frames closer to frame 0 than ``min_travel`` of the largest travel get NaN (direction undefined).
    """
    P = np.linalg.inv(est[0]) @ est
    Q = np.linalg.inv(gt[0]) @ gt
    rot = np.degrees(rotation_angle(np.swapaxes(P[:, :3, :3], 1, 2) @ Q[:, :3, :3]))
    a, b = P[:, :3, 3], Q[:, :3, 3]
    na, nb = np.linalg.norm(a, axis=1), np.linalg.norm(b, axis=1)
    cos = np.einsum("ij,ij->i", a, b) / np.maximum(na * nb, 1e-300)
    direction = np.degrees(np.arccos(np.clip(cos, -1.0, 1.0)))
    direction[nb < min_travel * nb.max()] = np.nan
    return rot, direction
