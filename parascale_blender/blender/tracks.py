"""Reading tracks through ``formats.registry`` and turning Trajectories into scene objects.

Everything here validates first and touches the scene last, so a bad file leaves it unchanged.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import bpy
import numpy as np

from ..core.camera import METRES_PER_UNIT, SparsePoints, Trajectory
from . import convert, helpers, keys, points

# World up-axis conversions applied to imported poses and points (matrix W: p_blender = W p_file).
UP_AXIS_ITEMS = [
    ("AUTO", "From the format", "The format's own convention (Nuke .chan: Y up); as is for the others"),
    ("KEEP", "As is", "Use the file's world axes unchanged"),
    ("Y_DOWN", "Y down (OpenCV/COLMAP)", "The file's world has -Y up (COLMAP, OpenCV SfM); rotate to Z up"),
    ("Y_UP", "Y up (OpenGL/NeRF)", "The file's world has +Y up (OpenGL, NeRF, USD); rotate to Z up"),
]
_FORMAT_UP = {"+Y": "Y_UP", "Y": "Y_UP", "-Y": "Y_DOWN"}  # a reader's metadata['world_up'] -> the conversion
_EXPORT_UP = {"chan": "Y_UP"}  # formats whose files have a fixed world convention
_W = {
    "KEEP": np.eye(4),
    "Y_UP": np.array([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]]),
    "Y_DOWN": np.array([[1.0, 0, 0, 0], [0, 0, 1, 0], [0, -1, 0, 0], [0, 0, 0, 1]]),
}


class TrackError(ValueError):
    """A track cannot be used; the message names the file/frame/field and what to change."""


def format_names(writable: bool = False) -> list[tuple[str, str]]:
    """(name, description) of the registry's formats (only those with a writer if ``writable``)."""
    from ..formats.registry import FORMATS

    return [(n, s.description) for n, s in FORMATS.items() if s.reader is not None and (not writable or s.writer)]


def read_track(
    path: str, fmt: str | None = None, repair_rotations: bool = False, size: tuple[int, int] | None = None
) -> Trajectory:
    """Read + validate a track file; every failure is a :class:`TrackError` with a clear message.

    ``size`` (width, height) is passed to formats that do not store the image size (RE10K txt...).
    """
    import inspect

    from ..formats.registry import FORMATS, detect_format, read_trajectory

    if not path or not os.path.exists(path):
        raise TrackError(f"{path or '(no file)'}: file not found")
    try:
        opts: dict = {"repair_rotations": repair_rotations}
        if size:
            params = inspect.signature(FORMATS[fmt or detect_format(path)].reader).parameters  # pyright: ignore[reportArgumentType]
            if "width" in params:
                opts.update(width=int(size[0]), height=int(size[1]))
        traj = read_trajectory(path, fmt=fmt or None, **opts)
    except (ValueError, OSError) as exc:  # FormatError is a ValueError
        raise TrackError(str(exc)) from None
    return check_track(traj, os.path.basename(path), repair_rotations)


def check_track(traj: Trajectory, source: str, repair_rotations: bool = False, frame_offset: int = 0) -> Trajectory:
    """Validate a track for use as a reference: >= 2 frames, finite, proper rotations, frame range."""
    try:
        traj = traj.validate(source, repair_rotations=repair_rotations)
    except ValueError as exc:
        raise TrackError(str(exc)) from None
    if len(traj) < 2:
        raise TrackError(f"{source}: only one frame ({int(traj.frames[0])}); a camera move needs at least two")
    lo, hi = int(traj.frames[0]) + frame_offset, int(traj.frames[-1]) + frame_offset
    if lo < -convert.MAXFRAME or hi > convert.MAXFRAME:
        raise TrackError(
            f"{source}: frames {lo}..{hi} (after offset {frame_offset}) exceed Blender's limit ±{convert.MAXFRAME}; "
            "use the frame offset option"
        )
    return traj


def to_blender_world(traj: Trajectory, up_axis: str) -> Trajectory:
    """The track with its world re-expressed in Blender's Z-up axes (poses and points); ``AUTO``
    follows the file's recorded world (``metadata['world_up']``)."""
    if up_axis == "AUTO":
        up_axis = _FORMAT_UP.get(str(traj.metadata.get("world_up", "")), "KEEP")
    return transform_world(traj, _W[up_axis])


def transform_world(traj: Trajectory, W: np.ndarray) -> Trajectory:
    """The track in another world: ``c2w' = W @ c2w``, points ``W p`` (W rigid 4x4)."""
    pts = traj.points
    if pts is not None:
        pts = SparsePoints(pts.xyz @ W[:3, :3].T + W[:3, 3], pts.rgb, pts.visibility)
    return traj.replace(c2w=W @ traj.c2w, points=pts)


def scene_metres_per_unit(scene) -> float:
    """Metres per Blender unit: the scene's Unit Scale (``unit_settings.scale_length``)."""
    return float(scene.unit_settings.scale_length)


def scaled_world(traj: Trajectory, factor: float) -> Trajectory:
    """The track with every position (camera centres, points) times ``factor`` (a change of unit)."""
    c2w = traj.c2w.copy()
    c2w[:, :3, 3] *= factor
    pts = traj.points
    if pts is not None:
        pts = SparsePoints(pts.xyz * factor, pts.rgb, pts.visibility)
    return traj.replace(c2w=c2w, points=pts)


def to_metres(traj: Trajectory, scene) -> Trajectory:
    """Export: positions in metres (Blender units times the scene's Unit Scale), said in the metadata."""
    out = scaled_world(traj, scene_metres_per_unit(scene))
    return out.replace(metadata={**out.metadata, METRES_PER_UNIT: 1.0})


def from_file_units(traj: Trajectory, scene) -> tuple[Trajectory, str]:
    """Import: a file that states its unit (``metadata['metres_per_unit']``) in the scene's units; a
    note for the report. Files without one are taken as they are (scene units)."""
    mpu = traj.metadata.get(METRES_PER_UNIT)
    if mpu is None:
        return traj, ""
    if not (isinstance(mpu, (int, float)) and np.isfinite(mpu) and mpu > 0):
        raise TrackError(f"metadata.{METRES_PER_UNIT}: expected a positive number, got {mpu!r}")
    factor = float(mpu) / scene_metres_per_unit(scene)
    if abs(factor - 1.0) <= 1e-12:
        return traj, ""
    note = f", positions from {mpu:g} m per file unit to the scene's Unit Scale {scene_metres_per_unit(scene):g} m"
    return scaled_world(traj, factor), note


TIMING_ITEMS = [
    ("SCENE_FPS", "Retime to scene fps", "Play the move in its own time at the scene's frame rate (SE(3) resampling)"),
    ("FRAMES", "Frame for frame", "One key per source frame, whatever the frame rates"),
]
NEW_SCENE_FRAMES = (1, 250)  # a new Blender scene's frame range


def scene_fps(scene) -> float:
    return scene.render.fps / scene.render.fps_base


def scene_has_shot(scene) -> bool:
    """The artist's shot is set up: a frame range that is not a new scene's, or an animated camera.
    Imports then leave the shot settings alone unless asked."""
    if (scene.frame_start, scene.frame_end) != NEW_SCENE_FRAMES:
        return True
    return any(o.type == "CAMERA" and o.animation_data and o.animation_data.action for o in scene.objects)


def timed_for_scene(traj: Trajectory, scene, timing: str) -> tuple[Trajectory, str]:
    """The track retimed to the scene's fps (``SCENE_FPS``, when the rates differ) or as is; and a
    note for the report."""
    fps = scene_fps(scene)
    if timing != "SCENE_FPS" or abs(traj.fps - fps) <= 1e-6 * fps:
        note = "" if abs(traj.fps - fps) <= 1e-6 * fps else f", frame for frame ({traj.fps:g} fps keys at {fps:g} fps)"
        return traj, note
    out = traj.retimed(fps)
    seconds = (len(out) - 1) / fps
    return out, f", retimed {traj.fps:g} -> {fps:g} fps ({len(traj)} -> {len(out)} frames, {seconds:.2f} s)"


@dataclass
class ShotFit:
    """A track fitted to the scene's shot by :func:`fit_to_shot`: keyed at ``trajectory.frames + offset``."""

    trajectory: Trajectory
    offset: int
    set_scene: bool
    note: str  # for the report: the retiming, or why the keys are frame for frame
    source_fps: float
    first: int  # the track's first frame before retiming

    @property
    def footage_note(self) -> str:
        """Said when the keys are retimed: a Movie Clip (the footage behind the camera) plays one
        clip frame per scene frame, Blender has no speed for it."""
        if abs(self.trajectory.fps - self.source_fps) <= 1e-6 * self.source_fps:
            return ""
        return "; the footage behind the camera plays frame for frame, not retimed"

    def scene_frames(self, frames) -> np.ndarray:
        """Scene frames of the source track's ``frames`` (before retiming): markers, footage."""
        f = np.asarray(frames, dtype=np.float64)
        rate = self.trajectory.fps / self.source_fps  # 1 when keyed frame for frame
        return np.round(self.first + (f - self.first) * rate + self.offset).astype(np.int64)


def import_start(scene, start: int | None = None) -> int | None:
    """The scene frame an import starts on: ``start`` when the artist gave one, else the shot's first
    frame when the scene has a shot, else None (the file's own frame numbers)."""
    if start is not None:
        return int(start)
    return int(scene.frame_start) if scene_has_shot(scene) else None


def fit_to_shot(
    traj: Trajectory,
    scene,
    source: str,
    timing: str = "SCENE_FPS",
    set_scene: bool | None = None,
    start: int | None = None,
) -> ShotFit:
    """The import rules every reference import follows (a track file, a tracked video on either tracker):

    * timing: retimed to the scene's fps by the track's own rate (``SCENE_FPS``), or frame for frame;
    * start: the move starts on ``start``, else on the shot's first frame when the scene has a shot
      (:func:`scene_has_shot`), else on the file's own frame numbers;
    * the shot's size, range and rate are the artist's: ``set_scene`` (None: only in a scene without
      a shot) sets resolution and range from the track; the fps is never changed.

    Validates (TrackError) before anything is touched."""
    first = int(traj.frames[0])
    source_fps = float(traj.fps)
    traj, note = timed_for_scene(traj, scene, timing)
    begin = import_start(scene, start)
    offset = 0 if begin is None else begin - int(traj.frames[0])
    traj = check_track(traj, source, frame_offset=offset)
    set_scene = not scene_has_shot(scene) if set_scene is None else bool(set_scene)
    first_key, last_key = int(traj.frames[0]) + offset, int(traj.frames[-1]) + offset
    if not set_scene and (short := shorter_than_shot(scene, first_key, last_key)):
        note += f"; {short}"
    return ShotFit(traj, offset, set_scene, note, source_fps, first)


def shorter_than_shot(scene, first: int, last: int) -> str:
    """A note when a move on frames ``first``..``last`` is shorter than the scene's frame range (a move
    that runs outside the range is Rescale's warning)."""
    lo, hi = scene.frame_start, scene.frame_end
    missing = (hi - lo) - (last - first)
    if missing <= 0:
        return ""
    return f"shorter than the shot: frames {first}–{last} for the shot's {lo}–{hi} ({missing} frames without the move)"


def from_blender_world(traj: Trajectory, up_axis: str, fmt: str | None) -> Trajectory:
    """The track (Blender world, Z up) re-expressed in a file's world: ``AUTO`` is the format's own
    convention (Nuke .chan: Y up), else as :data:`UP_AXIS_ITEMS` name it."""
    if up_axis == "AUTO":
        up_axis = _EXPORT_UP.get(fmt or "", "KEEP")
    return transform_world(traj, _W[up_axis].T)  # the import's change of world, undone (W rotation-only)


def create_reference(
    context,
    traj: Trajectory,
    name: str,
    frame_offset: int = 0,
    set_scene: bool = True,
    radius: float = 0.01,
    extras: tuple[str, ...] = (),
):
    """Camera object keyed at the track's frames (+offset), intrinsics as lens/sensor/shift, points object.

    With ``set_scene`` the scene's size and range follow the track, and Rescale's target start frame
    the range's first frame (a fresh scene's defaults then agree: no "outside the range" warning).
    Returns (camera_object, points_object_or_None), both ParaScale helpers (:mod:`.helpers`).
    ``traj`` must already be validated; ``extras`` (names in ``traj.extras``) become animated custom
    properties of the camera.
    """
    scene = context.scene
    data = bpy.data.cameras.new(name)
    aspect = convert.set_camera_intrinsics(data, traj.camera(0))
    data["parascale_fps"] = float(traj.fps)
    obj = bpy.data.objects.new(name, data)
    helpers.adopt(obj, scene)
    obj.rotation_mode = "QUATERNION"
    keys.write_action(obj, traj, frame_offset, f"{name} track", extras)
    K = traj.intrinsics
    if np.ptp(K, axis=0).max() > 1e-6 * max(traj.width, traj.height):  # zooms: key lens and shift per frame
        vals = [convert.blender_from_intrinsics(traj.camera(i)) for i in range(len(traj))]
        props = {prop: np.array([v[prop] for v in vals]) for prop in ("lens", "shift_x", "shift_y")}
        keys.write_lens_action(data, traj.frames + frame_offset, props, f"{name} lens")
    pts_obj = None
    if traj.points is not None and len(traj.points.xyz):
        pts_obj = points.create_points_object(f"{name} points", traj.points.xyz, traj.points.rgb, radius)
        if traj.points.visibility is not None:
            points.store_visibility(pts_obj, traj.points.visibility)
        pts_obj["parascale_frames"] = traj.frames.tolist()
    if set_scene:
        r = scene.render
        r.resolution_x, r.resolution_y, r.resolution_percentage = traj.width, traj.height, 100
        if abs(aspect - 1.0) > 1e-6:
            r.pixel_aspect_x, r.pixel_aspect_y = 1.0, aspect
        keys.set_frame_range(scene, traj.frames[0] + frame_offset, traj.frames[-1] + frame_offset)
        scene.parascale.target_start_frame = scene.frame_start  # the shot this import set up starts there
    return obj, pts_obj


def use_as_reference(scene, cam, pts, source: str) -> None:
    """Make ``cam`` the scene's reference (its points, when any, the reference depth)."""
    s = scene.parascale
    s.reference_camera, s.reference_source = cam, source
    if pts is not None:
        s.reference_points, s.reference_depth = pts, "POINTS"


def reference_trajectory(context) -> Trajectory:
    """The scene's reference as a Trajectory (frames as keyed in Blender), points attached if known."""
    s = context.scene.parascale
    if s.reference_camera is None:
        raise TrackError("Reference: no reference camera; import a track or pick an animated camera")
    traj = convert.trajectory_from_camera(s.reference_camera, context.scene)
    traj = check_track(traj, f"camera {s.reference_camera.name!r}")
    if s.reference_points is not None:
        xyz, rgb = points.points_of(s.reference_points)
        vis = points.load_visibility(s.reference_points)
        pf = s.reference_points.get("parascale_frames")
        if vis is not None and pf is not None:  # visibility is stored per frame of the original file
            offset = int(traj.frames[0]) - int(pf[0])
            by_frame = {int(f) + offset: v for f, v in zip(pf, vis)}
            vis = [by_frame.get(int(f), np.zeros(0, dtype=np.int64)) for f in traj.frames]
        traj = traj.replace(points=SparsePoints(xyz, None if rgb is None else rgb * 255.0, vis))
    return traj
