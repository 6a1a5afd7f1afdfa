"""Bulk keyframing: a Trajectory (OpenCV c2w) -> a new action on a camera object.

Keys go in through ``keyframe_points.add`` + ``foreach_set`` (one call per F-curve, not one
per key). Rotation is written in the object's own rotation mode (quaternions kept sign-continuous,
Euler angles made compatible frame to frame) so switching back to another action stays valid.
Per-frame extras (``pi_ref``, ``pi_target``, ``alpha``…) become animated custom properties;
NaN entries (e.g. index 0, "no step") are simply not keyed.
"""

from __future__ import annotations

import mathutils
import numpy as np

from ..core.camera import blender_from_opencv
from . import compat


def _key(fcurves, data_path: str, index: int, frames: np.ndarray, values: np.ndarray, group: str) -> None:
    ok = np.isfinite(values)
    frames, values = frames[ok], values[ok]
    fc = fcurves.find(data_path, index=index) or compat.new_fcurve(fcurves, data_path, index, group)
    kp = fc.keyframe_points
    if len(kp):
        kp.clear()
    kp.add(len(frames))
    co = np.empty(2 * len(frames), dtype=np.float32)
    co[0::2] = frames
    co[1::2] = values
    kp.foreach_set("co", co)
    fc.update()


def basis_from_world(obj, world: np.ndarray, parent: np.ndarray | None = None) -> np.ndarray:
    """Local (basis) matrices (N,4,4) giving ``world`` under ``parent`` (N,4,4: what the parent chain
    puts before the basis at each frame, :func:`convert.parent_part`), else ``obj``'s current parent."""
    if parent is not None:
        return np.linalg.inv(parent) @ world
    if obj.parent is None:
        return world
    pm = np.array(obj.parent.matrix_world) @ np.array(obj.matrix_parent_inverse)
    return np.linalg.inv(pm) @ world


def rotation_values(obj, R: np.ndarray) -> tuple[str, np.ndarray]:
    """(data_path, values (N,k)) of rotations ``R`` (N,3,3) in ``obj``'s rotation mode."""
    mode = obj.rotation_mode
    if mode in ("QUATERNION", "AXIS_ANGLE"):
        q = np.array([mathutils.Matrix(r.tolist()).to_quaternion() for r in R])
        flip = np.cumprod(np.where(np.einsum("ij,ij->i", q[1:], q[:-1]) < 0, -1.0, 1.0))
        q[1:] *= flip[:, None]
        if mode == "QUATERNION":
            return "rotation_quaternion", q
        # (angle, x, y, z) from the sign-continuous quaternions: the angle runs 0..2π without jumps
        angle = 2.0 * np.arctan2(np.linalg.norm(q[:, 1:], axis=1), q[:, 0])
        axis = q[:, 1:] / np.maximum(np.linalg.norm(q[:, 1:], axis=1, keepdims=True), 1e-300)
        axis[np.linalg.norm(q[:, 1:], axis=1) < 1e-12] = (0.0, 1.0, 0.0)  # no rotation: Blender's default axis
        return "rotation_axis_angle", np.column_stack([angle, axis])
    out, prev = [], None
    for r in R:
        e = (
            mathutils.Matrix(r.tolist()).to_euler(mode, prev)
            if prev is not None
            else mathutils.Matrix(r.tolist()).to_euler(mode)
        )
        out.append(tuple(e))  # pyright: ignore[reportArgumentType]
        prev = e
    return "rotation_euler", np.array(out)


def write_action(
    obj, traj, frame_offset: int, name: str, extras: tuple[str, ...] = (), parent: np.ndarray | None = None
):
    """Key ``traj`` on ``obj`` at ``traj.frames + frame_offset`` in a NEW action; return it.

    Location and rotation come from the OpenCV c2w (converted to Blender axes, parent removed: per
    frame with ``parent``, see :func:`basis_from_world`); the object's scale is left alone. Each name
    in ``extras`` present in ``traj.extras`` becomes an animated custom property of the object.
    """
    frames = traj.frames.astype(np.float64) + frame_offset
    world = blender_from_opencv(traj.c2w)
    basis = basis_from_world(obj, world, parent)
    R = basis[:, :3, :3] / np.linalg.norm(basis[:, :3, :3], axis=-2, keepdims=True)
    path, rot = rotation_values(obj, R)
    action = compat.new_action(obj, name)
    fcurves = compat.fcurves_of(obj, ensure=True)
    for i in range(3):
        _key(fcurves, "location", i, frames, basis[:, i, 3], "Object Transforms")
    for i in range(rot.shape[1]):
        _key(fcurves, path, i, frames, rot[:, i], "Object Transforms")
    for key in extras:
        if key in traj.extras:
            vals = np.asarray(traj.extras[key], dtype=np.float64)
            finite = vals[np.isfinite(vals)]
            obj[key] = float(finite[0]) if finite.size else 0.0
            _key(fcurves, f'["{key}"]', 0, frames, vals, "ParaScale")
    return action


def write_lens_action(cam_data, frames: np.ndarray, values: dict[str, np.ndarray], name: str):
    """Key camera-data properties (``{"lens": (N,), ...}``) at ``frames`` in a NEW action on ``cam_data``."""
    action = compat.new_action(cam_data, name)
    fcs = compat.fcurves_of(cam_data, ensure=True)
    for prop, vals in values.items():
        _key(fcs, prop, 0, np.asarray(frames, dtype=np.float64), np.asarray(vals, dtype=np.float64), "Lens")
    return action


def fcurve_values(obj, data_path: str, index: int = 0) -> tuple[np.ndarray, np.ndarray] | None:
    """(frames, values) of one F-curve's keys on ``obj``'s active action, or None."""
    fcs = compat.fcurves_of(obj)
    fc = fcs.find(data_path, index=index) if fcs is not None else None
    if fc is None:
        return None
    n = len(fc.keyframe_points)
    co = np.empty(2 * n)
    fc.keyframe_points.foreach_get("co", co)
    return co[0::2], co[1::2]


def set_frame_range(scene, first: int, last: int) -> None:
    scene.frame_start = max(0, int(first))
    scene.frame_end = max(scene.frame_start, int(last))


__all__ = [
    "write_action",
    "write_lens_action",
    "fcurve_values",
    "basis_from_world",
    "rotation_values",
    "set_frame_range",
]
