"""Plücker ray maps ("raxels", CameraCtrl / Wan-Fun Control-Camera camera conditioning).

For frame ``f`` with pose ``c2w_f`` made relative to frame 0 (``c2w_0^-1 c2w_f``), every pixel centre
``(u + 0.5, v + 0.5)`` has the world ray direction ``d = normalize(R K^-1 [u + 0.5, v + 0.5, 1])``
and origin ``o`` = the camera centre; its embedding is ``(o x d, d)``: channels 0-2 are the moment
``o x d``, channels 3-5 the direction. Maps are ``(6, F, H, W)`` float32; generators take
``[B, 6, F, H, W]``. Intrinsics are scaled from the trajectory's size to the map's size.

Gauge: the moment ``o x d`` grows with the translation's units. Camera-conditioned models learnt
the translations of their training set (Wan-Fun Control-Camera: RealEstate10K's SLAM units), so
translations are multiplied by :func:`conditioning_scale` (Π kept, see
:func:`parascale_blender.core.parallax.gauge_scale`) before the maps are built.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from parascale_blender.core.camera import Trajectory, relative_to_first
from parascale_blender.core.parallax import gauge_scale


def plucker_from_poses(c2w: np.ndarray, intrinsics: np.ndarray, width: int, height: int) -> np.ndarray:
    """(6, F, H, W) embedding of poses ``c2w`` (F, 4, 4) with intrinsics (F, 4) given for ``width`` x ``height``.

    Poses are used as given (make them relative first if needed).
    """
    c2w = np.asarray(c2w, dtype=np.float64)
    K = np.asarray(intrinsics, dtype=np.float64)
    fx, fy, cx, cy = (K[:, i, None, None] for i in range(4))
    u, v = np.meshgrid(np.arange(width) + 0.5, np.arange(height) + 0.5)
    cam = np.stack(np.broadcast_arrays((u - cx) / fx, (v - cy) / fy, np.ones_like(u - cx)), axis=-1)  # F,H,W,3
    d = np.einsum("fij,fhwj->fhwi", c2w[:, :3, :3], cam)
    d /= np.linalg.norm(d, axis=-1, keepdims=True)
    o = np.broadcast_to(c2w[:, None, None, :3, 3], d.shape)
    emb = np.concatenate([np.cross(o, d), d], axis=-1)  # F,H,W,6
    return np.ascontiguousarray(emb.transpose(3, 0, 1, 2), dtype=np.float32)


def conditioning_scale(depth: np.ndarray | None, model_depth: float | None) -> float:
    """Translation factor into a model's gauge (``model_depth``: its typical scene depth in its own
    units): ``gauge_scale`` of the conditioning depth; 1 when ``model_depth`` is None (metres as
    given) or the depth has no valid pixel."""
    if model_depth is None or depth is None:
        return 1.0
    s = gauge_scale(depth, model_depth)
    return s if np.isfinite(s) else 1.0


def plucker_maps(
    traj: Trajectory, width: int | None = None, height: int | None = None, translation_scale: float = 1.0
) -> np.ndarray:
    """(6, F, H, W) Plücker maps of ``traj`` relative to its frame 0, at ``width`` x ``height``
    (default: the trajectory's size; intrinsics are scaled, field of view kept), translations
    multiplied by ``translation_scale``."""
    W = int(width or traj.width)
    H = int(height or traj.height)
    if W < 1 or H < 1:
        raise ValueError(f"plucker_maps: size must be positive, got {W}x{H}")
    rel = relative_to_first(traj.c2w)
    rel[:, :3, 3] *= translation_scale
    K = np.asarray(traj.intrinsics, dtype=np.float64) * np.array(
        [W / traj.width, H / traj.height, W / traj.width, H / traj.height]
    )
    return plucker_from_poses(rel, K, W, H)


def export_plucker(traj: Trajectory, path: str | Path, width: int | None = None, height: int | None = None) -> Path:
    """Write :func:`plucker_maps` as a float32 ``.npy`` of shape (6, F, H, W) (for ComfyUI and the like)."""
    path = Path(path)
    if path.suffix.lower() != ".npy":
        raise ValueError(f"{path}: Plücker maps are written as .npy")
    np.save(path, plucker_maps(traj, width, height), allow_pickle=False)
    return path
