"""Blender <-> core conversions: camera poses and intrinsics, animated cameras as Trajectories.

Poses: ``matrix_world`` with its scale removed is a Blender camera-to-world (camera looks down
-Z, +Y up); ``core.camera.opencv_from_blender`` turns it into the OpenCV c2w the engine uses.
Intrinsics follow ``core.camera.intrinsics_from_blender`` with the scene's full render size
(resolution percentage ignored: it changes pixels, not the field of view), unless the camera
data carries its own ``parascale_size`` (set on import) for the footage's image size.
"""

from __future__ import annotations

import numpy as np

from ..core.camera import Camera, Trajectory, blender_from_intrinsics, intrinsics_from_blender, opencv_from_blender
from . import compat

MAXFRAME = 1048574  # Blender's MAXFRAME


class ConversionError(ValueError):
    """The Blender data cannot be turned into what the engine needs (message says what to fix)."""


def unscaled(m: np.ndarray) -> np.ndarray:
    """(…,4,4) world matrices with the scale removed from the rotation columns."""
    m = np.array(m, dtype=np.float64)
    m[..., :3, :3] /= np.linalg.norm(m[..., :3, :3], axis=-2, keepdims=True)
    return m


def c2w_from_object(obj) -> np.ndarray:
    """OpenCV camera-to-world of ``obj`` at the current (evaluated) frame."""
    return opencv_from_blender(unscaled(np.array(obj.matrix_world)))


def image_size(cam_data, scene) -> tuple[int, int]:
    size = cam_data.get("parascale_size")
    if size is not None and len(size) == 2:
        return int(size[0]), int(size[1])
    return int(scene.render.resolution_x), int(scene.render.resolution_y)


def camera_intrinsics(obj, scene) -> Camera:
    """Pixel intrinsics of a perspective camera object (origin top-left)."""
    data = obj.data
    if obj.type != "CAMERA" or data.type != "PERSP":
        raise ConversionError(f"{obj.name}: needs a perspective camera (got {getattr(data, 'type', obj.type)})")
    w, h = image_size(data, scene)
    r = scene.render
    return intrinsics_from_blender(
        data.lens,
        data.sensor_width,
        data.sensor_height,
        data.sensor_fit,
        w,
        h,
        data.shift_x,
        data.shift_y,
        pixel_aspect=r.pixel_aspect_y / r.pixel_aspect_x,
    )


def set_camera_intrinsics(cam_data, cam: Camera, sensor_width: float = 36.0) -> float:
    """Set lens/sensor/shift from pixel intrinsics; returns the pixel aspect (fx/fy) to apply."""
    vals = blender_from_intrinsics(cam, sensor_width)
    cam_data.type = "PERSP"
    cam_data.sensor_fit = vals["sensor_fit"]
    cam_data.sensor_width = vals["sensor_width"]
    cam_data.lens = vals["lens"]
    cam_data.shift_x = vals["shift_x"]
    cam_data.shift_y = vals["shift_y"]
    cam_data["parascale_size"] = [int(cam.width), int(cam.height)]
    return float(vals["pixel_aspect"])


def keyed_frames(obj) -> np.ndarray:
    """Sorted unique integer frames of every key on the object's (and its camera data's) F-curves."""
    frames = []
    for idb in (obj, getattr(obj, "data", None)):
        fcs = compat.fcurves_of(idb) if idb is not None else None
        for fc in fcs or ():
            n = len(fc.keyframe_points)
            co = np.empty(2 * n)
            fc.keyframe_points.foreach_get("co", co)
            frames.append(co[0::2])
    if not frames:
        return np.zeros(0, dtype=np.int64)
    return np.unique(np.round(np.concatenate(frames)).astype(np.int64))


def trajectory_from_camera(obj, scene, frames=None, source: str | None = None) -> Trajectory:
    """Sample an animated camera at its keyed frames (or ``frames``) into an OpenCV Trajectory.

    Evaluates the scene per frame, so parents, constraints and drivers are honoured.
    The scene's current frame is restored afterwards.
    """
    name = source or f"camera {obj.name!r}"
    if obj is None or obj.type != "CAMERA":
        raise ConversionError(f"{name}: choose a camera object")
    if frames is None:
        frames = keyed_frames(obj)
        if len(frames) == 0:
            raise ConversionError(f"{name}: the camera has no animation; key its motion or import a track")
    frames = np.asarray(frames, dtype=np.int64)
    if len(frames) < 2:
        raise ConversionError(f"{name}: only one keyed frame ({int(frames[0])}); a camera move needs at least two")
    cur = scene.frame_current
    c2w = np.empty((len(frames), 4, 4))
    K = np.empty((len(frames), 4))
    try:
        for i, f in enumerate(frames):
            scene.frame_set(int(f))
            c2w[i] = c2w_from_object(obj)
            cam = camera_intrinsics(obj, scene)
            K[i] = (cam.fx, cam.fy, cam.cx, cam.cy)
    finally:
        scene.frame_set(cur)
    fps = obj.data.get("parascale_fps", scene.render.fps / scene.render.fps_base)
    return Trajectory(frames, c2w, K, cam.width, cam.height, fps=float(fps), metadata={"source": name})


TRANSFORM_PATHS = ("location", "rotation_euler", "rotation_quaternion", "rotation_axis_angle", "scale")


def unkeyed_edits(obj, frame: float) -> bool:
    """True when ``obj``'s location/rotation/scale differ from what its active action evaluates to at
    ``frame`` (the artist moved it without keying; a frame change would drop the edit)."""
    fcs = compat.fcurves_of(obj)
    for fc in fcs or ():
        if fc.data_path in TRANSFORM_PATHS and not fc.mute:
            cur = getattr(obj, fc.data_path)[fc.array_index]
            if abs(fc.evaluate(frame) - cur) > 1e-6 * (1.0 + abs(cur)):
                return True
    return False


def parent_part(obj, scene, frames) -> np.ndarray | None:
    """(N,4,4) what the parent chain puts before ``obj``'s basis at each frame (``matrix_world @
    matrix_basis⁻¹``, evaluated: an animated parent, bone or vertex parent included); None without a
    parent. Valid for an object without active constraints. The current frame is restored."""
    if obj.parent is None:
        return None
    cur = scene.frame_current
    out = np.empty((len(frames), 4, 4))
    try:
        for i, f in enumerate(frames):
            scene.frame_set(int(f))
            out[i] = np.array(obj.matrix_world) @ np.linalg.inv(np.array(obj.matrix_basis))
    finally:
        scene.frame_set(cur)
    return out


def active_constraints(obj) -> list[str]:
    """``"name (type)"`` of each constraint that acts on ``obj`` (not muted, influence above 0)."""
    return [
        f"{c.name!r} ({c.type.replace('_', ' ').title()})" for c in obj.constraints if not c.mute and c.influence > 0
    ]
