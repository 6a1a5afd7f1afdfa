"""The edit in and out of Blender as OpenTimelineIO (File > Export / Import).

Export (``export_scene.parascale_edit``): the sequencer's movie strips that Generate made (those
with a ``parascale_backend`` property; all movie strips with "All movie strips") as ``.otio``, one
OTIO track per channel (channel 1 at the bottom), the timeline starting at the scene's first frame
(or an earlier strip's); each clip's source range is the strip's media frames, its
``metadata["parascale"]`` holds camera, mode, backend, seed, the realized PCE (``parascale_pce``)
with its label and reliability, and the scene's metres per unit.

Import (``import_scene.parascale_cut``): an editorial cut's shots become **timeline markers**: one
marker per clip of the cut's first video track, named as the clip, at its first frame (the first
shot lands on ``Start frame``, as an EDL's timeline starts at its first event); a shot runs to the
frame before the next marker, the last one to the cut's end, which becomes the scene's end frame
when "Set frame range" is on. A gap after a shot gets a marker ``GAP`` (earlier ``GAP`` markers
are removed). Markers of a shot's name are moved (updated), others left alone. ``.edl``
needs ``opentimelineio`` and ``otio-cmx3600-adapter`` importable in Blender; else convert it
outside first (``otioconvert -i cut.edl -o cut.otio``).
"""

from __future__ import annotations

import math
import os

import bpy
from bpy_extras.io_utils import ExportHelper, ImportHelper

from ..formats.errors import FormatError
from ..formats.otio_edit import EditClip, Shot, read_otio_shots, write_otio
from . import compat, tracks

FACTS = ("camera", "mode", "backend", "seed", "pce", "pce_label", "pce_reliability")
GAP = "GAP"


def strip_clip(scene, strip, origin: int) -> EditClip:
    """The strip as an :class:`EditClip` (record frames from frame ``origin``)."""
    meta = {}
    for key in FACTS:
        value = strip.get(f"parascale_{key}")
        if value is None or (isinstance(value, float) and not math.isfinite(value)):
            continue
        meta[key] = value if isinstance(value, str | int | float | bool) else str(value)
    meta["metres_per_unit"] = tracks.scene_metres_per_unit(scene)
    return EditClip(
        name=strip.name,
        record_start=int(strip.frame_final_start) - origin,
        duration=int(strip.frame_final_duration),
        source_start=int(strip.frame_offset_start),
        media=bpy.path.abspath(strip.filepath),
        media_duration=int(strip.frame_duration),
        metadata={"parascale": meta},
    )


def edit_tracks(scene, every_movie: bool = False) -> tuple[list[list[EditClip]], int]:
    """Per used channel (ascending) the clips of its ParaScale movie strips, and the timeline's first
    frame (the scene's first frame, or an earlier strip's)."""
    strips = [s for s in compat.strips(scene) or () if s.type == "MOVIE" and (every_movie or "parascale_backend" in s)]
    origin = min([int(scene.frame_start)] + [int(s.frame_final_start) for s in strips])
    by_channel: dict[int, list] = {}
    for s in strips:
        by_channel.setdefault(int(s.channel), []).append(strip_clip(scene, s, origin))
    return [by_channel[c] for c in sorted(by_channel)], origin


class EXPORT_SCENE_OT_parascale_edit(bpy.types.Operator, ExportHelper):
    """Export the generated clips of the sequencer as an OpenTimelineIO edit (.otio)"""

    bl_idname = "export_scene.parascale_edit"
    bl_label = "Export Edit (ParaScale OTIO)"
    bl_options = {"REGISTER"}

    filename_ext = ".otio"
    filter_glob: bpy.props.StringProperty(default="*.otio", options={"HIDDEN"})
    every_movie: bpy.props.BoolProperty(name="All movie strips", default=False)

    def execute(self, context):
        scene = context.scene
        path = bpy.path.abspath(self.filepath)
        if not path.lower().endswith(".otio"):
            self.report({"ERROR"}, f"Export edit: {path}: name the file .otio")
            return {"CANCELLED"}
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            self.report({"ERROR"}, f"Export edit: folder {folder} does not exist")
            return {"CANCELLED"}
        trks, origin = edit_tracks(scene, self.every_movie)
        if not trks:
            self.report({"ERROR"}, "Export edit: no generated clip in the sequencer (or choose All movie strips)")
            return {"CANCELLED"}
        try:
            write_otio(path, trks, tracks.scene_fps(scene), scene.name, origin)
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, f"Export edit: {exc}")
            return {"CANCELLED"}
        n = sum(len(t) for t in trks)
        self.report({"INFO"}, f"Exported {n} clips on {len(trks)} tracks to {path}")
        return {"FINISHED"}


def read_cut(path: str, fps: float) -> tuple[list[Shot], float]:
    """Shots and rate of an ``.otio`` (own reader) or ``.edl`` (through ``opentimelineio``; an EDL
    has no rate of its own: its timecodes are read at ``fps``)."""
    if not path.lower().endswith(".edl"):
        return read_otio_shots(path)
    try:
        import opentimelineio as otio
    except ImportError:
        raise FormatError(
            path, "EDL needs opentimelineio in Blender; convert it first: otioconvert -i cut.edl -o cut.otio"
        ) from None
    try:
        tl = otio.adapters.read_from_file(path, rate=fps)
    except Exception as exc:  # the adapter raises its own error types for malformed EDLs
        raise FormatError(path, f"not a readable EDL ({exc})") from None
    video = tl.video_tracks()
    if not video:
        raise FormatError(path, "no video events")
    shots, rate = [], None
    for item in video[0]:
        r = item.range_in_parent()
        rate = rate or r.duration.rate
        if isinstance(item, otio.schema.Clip):
            shots.append(Shot(item.name, round(r.start_time.value), round(r.duration.value)))
    if rate is None:
        raise FormatError(path, "no video events")
    return shots, float(rate)


def place_shots(scene, shots: list[Shot], start: int) -> list[str]:
    """Markers for ``shots`` from frame ``start`` (moved when one of the name exists); names placed."""
    for m in [m for m in scene.timeline_markers if m.name == GAP]:
        scene.timeline_markers.remove(m)
    placed, end = [], None
    for shot in shots:
        if end is not None and start + shot.start > end:
            _marker(scene, GAP, end)
        _marker(scene, shot.name, start + shot.start)
        placed.append(shot.name)
        end = start + shot.start + shot.duration
    return placed


def _marker(scene, name: str, frame: int):
    m = scene.timeline_markers.get(name) if name != GAP else None
    if m is None or name == GAP:
        m = scene.timeline_markers.new(name, frame=frame)
    m.frame = frame
    return m


class IMPORT_SCENE_OT_parascale_cut(bpy.types.Operator, ImportHelper):
    """Import an editorial cut (.otio, .edl): its shots become named timeline markers"""

    bl_idname = "import_scene.parascale_cut"
    bl_label = "Import Cut (ParaScale OTIO/EDL)"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: bpy.props.StringProperty(default="*.otio;*.edl", options={"HIDDEN"})
    start: bpy.props.IntProperty(name="Start frame", default=-1, description="The cut's first frame; -1: scene start")
    set_range: bpy.props.BoolProperty(name="Set frame range", default=True, description="Scene range = the cut")

    def execute(self, context):
        scene = context.scene
        path = bpy.path.abspath(self.filepath)
        try:
            shots, rate = read_cut(path, tracks.scene_fps(scene))
        except (ValueError, OSError) as exc:
            self.report({"ERROR"}, f"Import cut: {exc}")
            return {"CANCELLED"}
        if not shots:
            self.report({"ERROR"}, f"Import cut: {path}: no clips in the first video track")
            return {"CANCELLED"}
        fps = tracks.scene_fps(scene)
        if abs(rate - fps) > 1e-6 * fps:
            self.report({"ERROR"}, f"Import cut: {path} runs at {rate:g} fps, the scene at {fps:g} fps")
            return {"CANCELLED"}
        start = int(scene.frame_start) if self.start < 0 else int(self.start)
        first = min(s.start for s in shots)  # an EDL's timeline starts at its first event
        shots = [Shot(s.name, s.start - first, s.duration) for s in shots]
        placed = place_shots(scene, shots, start)
        end = start + max(s.start + s.duration for s in shots) - 1
        if self.set_range:
            scene.frame_start, scene.frame_end = start, end
        self.report({"INFO"}, f"Imported {len(placed)} shots from {path} as markers, frames {start}–{end}")
        return {"FINISHED"}


def _menu_export(self, context):
    self.layout.operator(EXPORT_SCENE_OT_parascale_edit.bl_idname, text="ParaScale Edit (.otio)")


def _menu_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_parascale_cut.bl_idname, text="ParaScale Cut (.otio/.edl)")


classes = (EXPORT_SCENE_OT_parascale_edit, IMPORT_SCENE_OT_parascale_cut)


def register() -> None:
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
