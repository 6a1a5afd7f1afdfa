"""Plücker conditioning for the server's camera backends.

The maps themselves are :mod:`parascale_blender.core.plucker` (one implementation, the one
``parascale export-rays`` and Bake write); the server uses its ``(6, F, H, W)`` layout
(``layout="cfhw"``), which the Control-Camera adapter takes as ``[B, 6, F, H, W]``.

Gauge: the moment ``o x d`` grows with the translation's units. Camera-conditioned models learnt
the translations of their training set (Wan-Fun Control-Camera: RealEstate10K's SLAM units), so
translations are multiplied by :func:`conditioning_scale` (Π kept, see
:func:`parascale_blender.core.parallax.gauge_scale`) before the maps are built.
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core import plucker as _core
from parascale_blender.core.camera import Trajectory
from parascale_blender.core.parallax import gauge_scale

LAYOUT = "cfhw"  # the Control-Camera adapter's axis order (values as CameraCtrl's)


def plucker_from_poses(c2w: np.ndarray, intrinsics: np.ndarray, width: int, height: int) -> np.ndarray:
    """(6, F, H, W) maps of poses used as given (:func:`parascale_blender.core.plucker.plucker_from_poses`)."""
    return _core.plucker_from_poses(c2w, intrinsics, width, height, LAYOUT)


def plucker_maps(
    traj: Trajectory, width: int | None = None, height: int | None = None, translation_scale: float = 1.0
) -> np.ndarray:
    """(6, F, H, W) maps of ``traj`` relative to its frame 0 (:func:`parascale_blender.core.plucker.plucker_maps`)."""
    return _core.plucker_maps(traj, width, height, translation_scale, LAYOUT)


def conditioning_scale(depth: np.ndarray | None, model_depth: float | None) -> float:
    """Translation factor into a model's gauge (``model_depth``: its typical scene depth in its own
    units): ``gauge_scale`` of the conditioning depth; 1 when ``model_depth`` is None (metres as
    given) or the depth has no valid pixel."""
    if model_depth is None or depth is None:
        return 1.0
    s = gauge_scale(depth, model_depth)
    return s if np.isfinite(s) else 1.0
