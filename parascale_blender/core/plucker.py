"""Plücker ray maps ("raxels"): the camera conditioning of CameraCtrl and Wan-Fun Control-Camera.

Convention (CameraCtrl's ``get_relative_pose`` + ``ray_condition``): poses are made relative to
frame 0 (``c2w_0^-1 c2w_f``, frame 0 = identity, OpenCV axes: x right, y down, z forward); every
pixel centre ``(u + 0.5, v + 0.5)`` has the unit direction ``d = R normalize(K^-1 [u+0.5, v+0.5, 1])``
and the origin ``o`` = the camera centre; its six channels are the moment ``o x d`` (0-2) then
``d`` (3-5). Maps are float32, ``(F, 6, H, W)`` (``layout="fchw"``, CameraCtrl's
``plucker_embedding`` per batch) or ``(6, F, H, W)`` (``layout="cfhw"``, what the Control-Camera
adapter of Wan-Fun takes before packing: VideoX-Fun's ``process_pose_file`` runs the same
``ray_condition`` and permutes its ``(F, H, W, 6)`` to ``(6, F, H, W)``; same values). Intrinsics ``[fx, fy, cx, cy]``
are in pixels of the trajectory's size and are scaled to the map's size (field of view kept).
"""

from __future__ import annotations

import numpy as np

from .camera import METRES_PER_UNIT, Trajectory, relative_to_first

LAYOUTS = ("fchw", "cfhw")


def plucker_from_poses(c2w: np.ndarray, intrinsics: np.ndarray, width: int, height: int, layout: str = "fchw"):
    """Plücker maps of poses ``c2w`` (F, 4, 4) used as given, intrinsics (F, 4) or (4,) in pixels of
    ``width`` x ``height``; float32 in ``layout`` (see the module docstring)."""
    if layout not in LAYOUTS:
        raise ValueError(f"Plücker layout must be one of {', '.join(LAYOUTS)}, got {layout!r}")
    if int(width) < 1 or int(height) < 1:
        raise ValueError(f"Plücker maps: size must be positive, got {width}x{height}")
    c2w = np.asarray(c2w, dtype=np.float64).reshape(-1, 4, 4)
    K = np.broadcast_to(np.asarray(intrinsics, dtype=np.float64), (len(c2w), 4))
    fx, fy, cx, cy = (K[:, i, None, None] for i in range(4))
    u, v = np.meshgrid(np.arange(int(width)) + 0.5, np.arange(int(height)) + 0.5)
    cam = np.stack(np.broadcast_arrays((u - cx) / fx, (v - cy) / fy, np.ones_like(u - cx)), axis=-1)  # F,H,W,3
    cam /= np.linalg.norm(cam, axis=-1, keepdims=True)
    d = np.einsum("fij,fhwj->fhwi", c2w[:, :3, :3], cam)
    o = np.broadcast_to(c2w[:, None, None, :3, 3], d.shape)
    emb = np.concatenate([np.cross(o, d), d], axis=-1)  # F,H,W,6
    axes = (0, 3, 1, 2) if layout == "fchw" else (3, 0, 1, 2)
    return np.ascontiguousarray(emb.transpose(axes), dtype=np.float32)


def plucker_maps(
    traj: Trajectory,
    width: int | None = None,
    height: int | None = None,
    translation_scale: float = 1.0,
    layout: str = "fchw",
) -> np.ndarray:
    """Plücker maps of ``traj`` relative to its frame 0 at ``width`` x ``height`` (default: the
    trajectory's size), translations multiplied by ``translation_scale`` (a model's gauge)."""
    W = int(width or traj.width)
    H = int(height or traj.height)
    if W < 1 or H < 1:
        raise ValueError(f"Plücker maps: size must be positive, got {W}x{H}")
    rel = relative_to_first(traj.c2w)
    rel[:, :3, 3] *= translation_scale
    K = np.asarray(traj.intrinsics, dtype=np.float64) * np.array(
        [W / traj.width, H / traj.height, W / traj.width, H / traj.height]
    )
    return plucker_from_poses(rel, K, W, H, layout)


def plucker_metadata(traj: Trajectory, layout: str = "fchw") -> dict:
    """What a ray-map file states about itself (safetensors ``__metadata__``)."""
    meta = {
        "convention": "CameraCtrl ray_condition: poses relative to frame 0, OpenCV axes, channels (o x d, d), "
        "pixel centres +0.5",
        "layout": {"fchw": "frames,6,height,width", "cfhw": "6,frames,height,width"}[layout],
        "frames": [int(f) for f in traj.frames],
    }
    if METRES_PER_UNIT in traj.metadata:
        meta[METRES_PER_UNIT] = float(traj.metadata[METRES_PER_UNIT])
    return meta
