"""Bake/export: the target camera's current animation as a track file through formats.registry."""

from __future__ import annotations

import os

import bpy
import numpy as np
from bpy_extras.io_utils import ExportHelper

from . import convert, keys, tracks
from .ops_rescale import EXTRAS

_ITEMS: list = []


def _format_items(self, context):
    _ITEMS.clear()
    _ITEMS.append(("AUTO", "From extension", "Choose the format from the file name"))
    try:
        names = tracks.format_names(writable=True)
    except ImportError:
        names = []
    _ITEMS.extend((n, n, desc) for n, desc in names)
    return _ITEMS


def baked_trajectory(context, obj):
    """The camera's animation sampled at its keyed frames, with Π/α curves and result metadata."""
    traj = convert.trajectory_from_camera(obj, context.scene)
    extras = {}
    for name in EXTRAS:
        fv = keys.fcurve_values(obj, f'["{name}"]')
        if fv is not None:
            vals = np.full(len(traj), np.nan)
            pos = {int(round(f)): v for f, v in zip(*fv)}
            vals[:] = [pos.get(int(f), np.nan) for f in traj.frames]
            extras[name] = vals
    s = context.scene.parascale
    meta: dict = {"source": f"Blender camera {obj.name}", "blender": bpy.app.version_string}
    ad = obj.animation_data
    if ad is not None and ad.action is not None and ad.action is s.result_action:
        meta.update(mode=ad.action.get("parascale_mode", s.mode), pce=float(s.pce))
    return traj.replace(extras=extras, metadata=meta)


class EXPORT_SCENE_OT_parascale_track(bpy.types.Operator, ExportHelper):
    """Export the target camera's (rescaled) animation as a camera-track file"""

    bl_idname = "export_scene.parascale_track"
    bl_label = "Export Camera Track (ParaScale)"
    bl_options = {"REGISTER"}

    filename_ext = ".json"
    check_extension = False
    filter_glob: bpy.props.StringProperty(default="*.json;*.txt;*.chan", options={"HIDDEN"})
    format: bpy.props.EnumProperty(name="Format", items=_format_items)
    camera: bpy.props.StringProperty(name="Camera", description="Object name; empty = the ParaScale target camera")

    def execute(self, context):
        from ..formats.errors import FormatError
        from ..formats.registry import write_trajectory

        obj = bpy.data.objects.get(self.camera) if self.camera else context.scene.parascale.target_camera
        if obj is None or obj.type != "CAMERA":
            self.report({"ERROR"}, "Export: choose the target camera (or give a camera name)")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            self.report({"ERROR"}, f"Export: folder {folder} does not exist")
            return {"CANCELLED"}
        try:
            traj = baked_trajectory(context, obj)
            fmt = None if self.format == "AUTO" else self.format
            opts = {}
            if fmt == "wanfun":  # intrinsics normalised against the baked camera's own image size
                opts = {"original_width": traj.width, "original_height": traj.height}
            write_trajectory(traj, path, fmt=fmt, **opts)
        except (convert.ConversionError, FormatError, ValueError, OSError) as exc:
            self.report({"ERROR"}, f"Export: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {len(traj)} frames of {obj.name} to {path}")
        return {"FINISHED"}


def _menu_export(self, context):
    self.layout.operator(EXPORT_SCENE_OT_parascale_track.bl_idname, text="ParaScale Camera Track")


classes = (EXPORT_SCENE_OT_parascale_track,)


def register() -> None:
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
