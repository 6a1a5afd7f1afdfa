"""Reference operators: import a track (File > Import, drag-and-drop), use an animated camera."""

from __future__ import annotations

import os

import bpy
from bpy_extras.io_utils import ImportHelper

from ..core.solve_gaps import fill_gaps
from . import convert, polls, solve_qa, tracks

_FORMAT_ITEMS: list = []  # enum callback results must stay referenced


def _format_items(self, context):
    _FORMAT_ITEMS.clear()
    _FORMAT_ITEMS.append(("AUTO", "Auto", "Guess the format from the file name and contents"))
    _FORMAT_ITEMS.extend((n, n, desc) for n, desc in tracks.format_names())
    return _FORMAT_ITEMS


def _set_report(context, text: str) -> None:
    context.scene.parascale.last_report = text[:200]


class IMPORT_SCENE_OT_parascale_track(bpy.types.Operator, ImportHelper):
    """Import a camera track as the ParaScale reference camera (keys at the footage's frame numbers)"""

    bl_idname = "import_scene.parascale_track"
    bl_label = "Import Camera Track (ParaScale)"
    bl_options = {"REGISTER", "UNDO", "PRESET"}

    filter_glob: bpy.props.StringProperty(default="*.json;*.txt;*.chan;*.log", options={"HIDDEN"})
    directory: bpy.props.StringProperty(subtype="DIR_PATH", options={"HIDDEN", "SKIP_SAVE"})
    files: bpy.props.CollectionProperty(type=bpy.types.OperatorFileListElement, options={"HIDDEN", "SKIP_SAVE"})
    format: bpy.props.EnumProperty(name="Format", items=_format_items)
    frame_offset: bpy.props.IntProperty(name="Frame offset", default=0, description="Added to the file's frames")
    up_axis: bpy.props.EnumProperty(name="World up", items=tracks.UP_AXIS_ITEMS, default="AUTO")
    repair_rotations: bpy.props.BoolProperty(
        name="Repair rotations", description="Project non-rotation matrices (e.g. det -1) onto SO(3) by SVD"
    )
    set_scene: bpy.props.BoolProperty(
        name="Set scene size and range",
        default=True,
        description="Set the scene's resolution, pixel aspect and frame range from the track (off by default when "
        "the scene already has a shot)",
    )
    timing: bpy.props.EnumProperty(name="Timing", items=tracks.TIMING_ITEMS, default="SCENE_FPS")
    image_size: bpy.props.IntVectorProperty(
        name="Image size", size=2, default=(0, 0), min=0, description="For formats without it (RE10K txt); 0 = default"
    )

    def execute(self, context):
        path = self.filepath
        if self.files and self.directory and self.files[0].name:
            path = os.path.join(self.directory, self.files[0].name)
        fmt = None if self.format == "AUTO" else self.format
        try:
            size = tuple(self.image_size) if min(self.image_size) > 0 else None
            traj = tracks.read_track(path, fmt, self.repair_rotations, size)
            traj, units = tracks.from_file_units(traj, context.scene)
            is_set = self.properties.is_property_set
            start = int(traj.frames[0]) + self.frame_offset if is_set("frame_offset") else None
            set_scene = self.set_scene if is_set("set_scene") else None
            fit = tracks.fit_to_shot(traj, context.scene, os.path.basename(path), self.timing, set_scene, start)
            traj = tracks.to_blender_world(fit.trajectory, self.up_axis)
        except ValueError as exc:  # TrackError, FormatError and a bad frame rate
            self.report({"ERROR"}, f"Import failed: {exc}")
            return {"CANCELLED"}
        name = os.path.splitext(os.path.basename(path))[0] or "reference"
        cam, pts = tracks.create_reference(context, traj, name, fit.offset, fit.set_scene)
        tracks.use_as_reference(context.scene, cam, pts, f"{os.path.basename(path)} ({len(traj)} frames)")
        msg = f"Imported {len(traj)} frames from {os.path.basename(path)} as {cam.name!r}{fit.note}{units}"
        _set_report(context, msg)
        self.report({"INFO"}, msg)
        return {"FINISHED"}


class PARASCALE_FH_track(bpy.types.FileHandler):
    bl_idname = "PARASCALE_FH_track"
    bl_label = "ParaScale camera track"
    bl_import_operator = "import_scene.parascale_track"
    bl_file_extensions = ".json;.txt;.chan"

    @classmethod
    def poll_drop(cls, context):
        return context.area is not None and context.area.type == "VIEW_3D"


class PARASCALE_OT_reference_from_camera(bpy.types.Operator):
    """Use an animated camera already in the scene (the active object, or the chosen one) as reference"""

    bl_idname = "parascale.reference_from_camera"
    bl_label = "Reference from Camera"
    bl_options = {"REGISTER", "UNDO"}

    camera: bpy.props.StringProperty(name="Camera", description="Object name; empty = active object")

    @classmethod
    def poll(cls, context):
        return polls.any_camera(cls, context)

    def execute(self, context):
        obj = bpy.data.objects.get(self.camera) if self.camera else context.active_object
        if obj is None or obj.type != "CAMERA":
            self.report({"ERROR"}, "Reference: select an animated camera object (or give its name)")
            return {"CANCELLED"}
        try:
            traj = convert.trajectory_from_camera(obj, context.scene)
            tracks.check_track(traj, f"camera {obj.name!r}")
        except (convert.ConversionError, tracks.TrackError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        s = context.scene.parascale
        s.reference_camera = obj
        s.reference_source = f"camera {obj.name} ({len(traj)} keyed frames)"
        s.reference_points = None
        if s.reference_depth == "POINTS":
            s.reference_depth = "DISTANCE"
        _set_report(context, f"Reference: {s.reference_source}")
        return {"FINISHED"}


class PARASCALE_OT_reference_from_clip(bpy.types.Operator):
    """Use a Movie Clip's camera solve (cameras, bundles, marker visibility) as the reference"""

    bl_idname = "parascale.reference_from_clip"
    bl_label = "Reference from Movie Clip Solve"
    bl_options = {"REGISTER", "UNDO"}

    clip: bpy.props.StringProperty(name="Clip", description="Movie clip name; empty = the scene's active clip")
    orient: bpy.props.EnumProperty(name="Orientation", items=solve_qa.ORIENT_ITEMS, default="AUTO")

    @classmethod
    def poll(cls, context):
        if not len(bpy.data.movieclips):
            return polls.fail(cls, "Reference: no movie clip; load and solve one in the Movie Clip Editor")
        return True

    def execute(self, context):
        from . import clip as clip_mod

        mc = bpy.data.movieclips.get(self.clip) if self.clip else context.scene.active_clip
        if mc is None:
            self.report({"ERROR"}, "Reference: no movie clip; load and solve a clip (or give its name)")
            return {"CANCELLED"}
        try:
            source, gaps = import_clip_solve(context, mc, orient=self.orient)
        except (clip_mod.ClipError, tracks.TrackError) as exc:
            self.report({"ERROR"}, str(exc))
            return {"CANCELLED"}
        if gaps.dropped:
            self.report({"WARNING"}, f"Reference: {solve_qa.dropped_warning(gaps)}")
        self.report({"INFO"}, f"Reference: {source}")
        return {"FINISHED"}


def import_clip_solve(
    context, mc, set_scene: bool | None = False, orient: str = "AUTO", tried: int = 0, timing: str = "FRAMES"
):
    """Make the movie clip's solve the scene's reference (camera + bundles, the clip as its
    background, dropped frames filled/marked, the world levelled unless ``orient`` is ``NONE``);
    ``tried``: how many of the clip's frames the solve was given (0: all); keyed from the clip's
    ``frame_start`` by the import rules (:func:`tracks.fit_to_shot`: ``timing``, ``set_scene``).
    Returns (report, SolveGaps).

    Raises ClipError / TrackError before touching the scene when the solve cannot be used.
    """
    from . import clip as clip_mod

    traj = clip_mod.trajectory_from_clip(mc)
    traj = tracks.check_track(traj, f"clip {mc.name!r}")
    frames = clip_mod.tried_frames(mc, tried)
    gaps = fill_gaps(traj, frames)
    traj, oriented = solve_qa.orient_world(gaps.trajectory, orient)
    qa = solve_qa.summary(traj, gaps, len(frames))
    # the clip's frame_start places the solve: its own scene frames, retimed from the first
    fit = tracks.fit_to_shot(traj, context.scene, f"clip {mc.name!r}", timing, set_scene, int(traj.frames[0]))
    cam, pts = tracks.create_reference(
        context, fit.trajectory, f"{mc.name} solve", fit.offset, fit.set_scene, extras=solve_qa.EXTRAS
    )
    solve_qa.mark(context.scene, cam, gaps, qa, fit.scene_frames)
    solve_qa.set_background(cam, mc)
    source = f"clip {mc.name} solve ({qa}; {oriented}{fit.note}{fit.footage_note})"
    tracks.use_as_reference(context.scene, cam, pts, source)
    _set_report(context, f"Reference: {source}")
    return source, gaps


def _menu_import(self, context):
    op = "import_scene.parascale_track"
    self.layout.operator(op, text="ParaScale Camera Track (auto)")
    for name, desc in tracks.format_names():
        self.layout.operator(op, text=f"ParaScale: {desc}").format = name


classes = (
    IMPORT_SCENE_OT_parascale_track,
    PARASCALE_FH_track,
    PARASCALE_OT_reference_from_camera,
    PARASCALE_OT_reference_from_clip,
)


def register() -> None:
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
