"""Bake/export: the target camera as :func:`bake.baked_trajectory` bakes it (what Generate sends),
written as a track file through formats.registry."""

from __future__ import annotations

import os
import re
import tempfile
from typing import Any

import bpy
from bpy_extras.io_utils import ExportHelper

from . import convert, polls, tracks
from .bake import baked_trajectory

_ITEMS: list = []
BLENDER_EXPORTERS = (".fbx", ".abc", ".usd", ".usda", ".usdc")  # Blender's own exporters, not formats.registry
USD = (".usd", ".usda", ".usdc")
DENSE = (".npy", ".safetensors")  # Plücker rays or pixel tracks (the operator's ``dense`` option)


def _format_items(self, context):
    _ITEMS.clear()
    _ITEMS.append(("AUTO", "From extension", "Choose the format from the file name"))
    _ITEMS.extend((n, n, desc) for n, desc in tracks.format_names(writable=True))
    return _ITEMS


class EXPORT_SCENE_OT_parascale_track(bpy.types.Operator, ExportHelper):
    """Export the target camera's (rescaled) animation as a camera-track file"""

    bl_idname = "export_scene.parascale_track"
    bl_label = "Export Camera Track (ParaScale)"
    bl_options = {"REGISTER"}

    filename_ext = ".json"
    check_extension = False
    filter_glob: bpy.props.StringProperty(
        default="*.json;*.txt;*.chan;*.fbx;*.abc;*.usd;*.usda;*.usdc;*.npy;*.safetensors", options={"HIDDEN"}
    )
    format: bpy.props.EnumProperty(name="Format", items=_format_items)
    camera: bpy.props.StringProperty(name="Camera", description="Object name; empty = the ParaScale target camera")
    dense: bpy.props.EnumProperty(
        name=".npy / .safetensors",
        items=(
            ("RAYS", "Plücker rays", "Per frame and pixel (o x d, d) relative to frame 0 (CameraCtrl)"),
            ("TRACKS", "Pixel tracks", "Where frame 0's pixels go in every frame over the target depth"),
        ),
    )
    ray_layout: bpy.props.EnumProperty(
        name="Ray layout",
        items=(
            ("fchw", "Frames, 6, H, W", "CameraCtrl's layout"),
            ("cfhw", "6, Frames, H, W", "Wan-Fun Control-Camera adapter's layout"),
        ),
    )
    dense_width: bpy.props.IntProperty(name="Width", default=0, min=0, description="Ray map width; 0: render size")
    dense_height: bpy.props.IntProperty(name="Height", default=0, min=0, description="Ray map height; 0: render")
    track_step: bpy.props.IntProperty(name="Grid step", default=8, min=1, description="Pixels between tracks")
    track_count: bpy.props.IntProperty(name="Tracks", default=0, min=0, description="N random tracks; 0: the grid")
    up_axis: bpy.props.EnumProperty(name="World up", items=tracks.UP_AXIS_ITEMS, default="AUTO")

    @classmethod
    def poll(cls, context):
        return polls.any_camera(cls, context)

    def execute(self, context):
        from ..formats.registry import format_for_writing, write_trajectory

        obj = bpy.data.objects.get(self.camera) if self.camera else context.scene.parascale.target_camera
        if obj is None or obj.type != "CAMERA":
            self.report({"ERROR"}, "Export: choose the target camera (or give a camera name)")
            return {"CANCELLED"}
        path = bpy.path.abspath(self.filepath)
        folder = os.path.dirname(path) or "."
        if not os.path.isdir(folder):
            self.report({"ERROR"}, f"Export: folder {folder} does not exist")
            return {"CANCELLED"}
        if os.path.splitext(path)[1].lower() in BLENDER_EXPORTERS:
            return self._blender_export(context, obj, path)
        if os.path.splitext(path)[1].lower() in DENSE:
            return self._dense_export(context, obj, path)
        try:
            fmt = None if self.format == "AUTO" else self.format
            traj = tracks.from_blender_world(
                baked_trajectory(context, obj), self.up_axis, fmt or format_for_writing(path)
            )
            traj = tracks.to_metres(traj, context.scene)
            opts = {}
            if fmt == "wanfun":  # intrinsics normalised against the baked camera's own image size
                opts = {"original_width": traj.width, "original_height": traj.height}
            write_trajectory(traj, path, fmt=fmt, **opts)
        except (ValueError, OSError) as exc:  # ConversionError, FormatError: ValueErrors naming what to fix
            self.report({"ERROR"}, f"Export: {exc}")
            return {"CANCELLED"}
        unit = _unit_scale(tracks.scene_metres_per_unit(context.scene))
        self.report({"INFO"}, f"Exported {len(traj)} frames of {obj.name} to {path}, positions in metres{unit}")
        return {"FINISHED"}

    def _dense_export(self, context, obj, path: str):
        """Plücker ray maps (positions in metres) or pixel tracks over the target depth of the bake."""
        from ..core.depth import DepthError
        from ..core.pixel_tracks import grid_queries, pixel_tracks, tracks_metadata
        from ..core.plucker import plucker_maps, plucker_metadata
        from ..formats.arrays import write_array
        from .ops_rescale import target_depth_source

        try:
            traj = baked_trajectory(context, obj)
            if self.dense == "RAYS":
                traj = tracks.to_metres(traj, context.scene)
                w, h = self.dense_width or traj.width, self.dense_height or traj.height
                data = plucker_maps(traj, w, h, layout=self.ray_layout)
                write_array(path, data, "plucker", plucker_metadata(traj, self.ray_layout))
                what = f"Plücker rays {'x'.join(map(str, data.shape))} ({self.ray_layout}), positions in metres"
            else:
                n = self.track_count or None
                data = pixel_tracks(traj, target_depth_source(context), self.track_step, n)
                grid = None if n else grid_queries(traj.width, traj.height, self.track_step)[1]
                meta = tracks_metadata(traj, data.shape, grid, None if n else self.track_step)
                meta["metres_per_unit"] = tracks.scene_metres_per_unit(context.scene)
                write_array(path, data, "tracks", meta)
                what = f"{data.shape[1]} pixel tracks over the target depth ({data[..., 2].mean():.0%} visible)"
        except (ValueError, OSError, DepthError) as exc:
            self.report({"ERROR"}, f"Export: {exc}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Exported {what} of {obj.name} ({len(traj)} frames) to {path}")
        return {"FINISHED"}

    def _blender_export(self, context, obj, path: str):
        """The camera alone, through Blender's own FBX, Alembic or USD exporter (its keyed range, baked)."""
        usd = os.path.splitext(path)[1].lower() in USD
        if usd and path.lower().endswith(".usdc") and tracks.scene_metres_per_unit(context.scene) != 1.0:
            self.report(
                {"ERROR"},
                "Export: a .usdc cannot carry this scene's Unit Scale through Blender's USD exporter; "
                "name the file .usda or .usd (text USD)",
            )
            return {"CANCELLED"}
        frames = convert.keyed_frames(obj)
        first, last = (int(frames[0]), int(frames[-1])) if len(frames) else (context.scene.frame_current,) * 2
        selected = [o for o in context.view_layer.objects if o.select_get()]
        active = context.view_layer.objects.active
        scene = context.scene
        shot_range = (scene.frame_start, scene.frame_end)  # FBX bakes the scene range: the camera's, then back
        mpu = tracks.scene_metres_per_unit(scene)
        try:
            scene.frame_start, scene.frame_end = first, last
            for o in selected:
                o.select_set(False)
            obj.select_set(True)
            context.view_layer.objects.active = obj
            if path.lower().endswith(".fbx"):  # FBX has units: Blender's exporter applies the Unit Scale
                bpy.ops.export_scene.fbx(
                    filepath=path, use_selection=True, object_types={"CAMERA"}, bake_anim=True,
                    bake_anim_use_all_actions=False, bake_anim_use_nla_strips=False, bake_anim_simplify_factor=0.0,
                    apply_unit_scale=True,
                )  # fmt: skip
            elif usd:
                _usd_export(path, mpu)
            else:  # Alembic has none: written in metres
                bpy.ops.wm.alembic_export(filepath=path, selected=True, start=first, end=last, global_scale=mpu)
        except RuntimeError as exc:
            self.report({"ERROR"}, f"Export: Blender's exporter failed: {exc}")
            return {"CANCELLED"}
        finally:
            scene.frame_start, scene.frame_end = shot_range
            obj.select_set(False)
            for o in selected:
                o.select_set(True)
            context.view_layer.objects.active = active
        msg = f"Exported {obj.name} (frames {first}–{last}) to {path} with Blender's exporter"
        if usd:
            msg += f", time codes = frames, metersPerUnit {mpu:g} (the scene's Unit Scale)"
        elif path.lower().endswith(".fbx"):  # Blender's FBX importer shifts keys by its Animation Offset (default 1)
            msg += f", FBX units from the scene{_unit_scale(mpu)}; read back into Blender with Animation Offset 0"
            msg += f" to keep frames {first}–{last} (the importer's default 1 lands one frame late)"
        else:
            msg += f", in metres{_unit_scale(mpu)}"
        self.report({"INFO"}, msg)
        return {"FINISHED"}


def _usd_export(path: str, mpu: float) -> None:
    """The selected camera through ``wm.usd_export``, animated over the scene range, in Blender units.

    Blender writes transforms in Blender units and focal length / apertures in tenths of a Blender
    unit of ``scale_length`` metres (USD's camera convention), but always states ``metersPerUnit = 1``
    (its unit conversion instead scales the root as if a Blender unit were a metre). With a Unit
    Scale other than 1 the file is written as text and ``metersPerUnit`` set to the Unit Scale.
    """
    opts: dict[str, Any] = dict(
        selected_objects_only=True, export_animation=True, export_cameras=True, export_meshes=False,
        export_lights=False, export_materials=False, convert_world_material=False, convert_orientation=False,
        convert_scene_units="METERS",
    )  # fmt: skip
    known = bpy.ops.wm.usd_export.get_rna_type().properties.keys()  # pyright: ignore[reportCallIssue]  (4.2 lacks some)
    opts = {k: v for k, v in opts.items() if k in known}
    if mpu == 1.0:
        bpy.ops.wm.usd_export(filepath=path, **opts)
        return
    with tempfile.TemporaryDirectory(prefix="parascale-usd-") as tmp:
        text_path = os.path.join(tmp, "camera.usda")
        bpy.ops.wm.usd_export(filepath=text_path, **opts)
        with open(text_path, encoding="utf-8") as f:
            text = f.read()
    text, n = re.subn(r"^(\s*metersPerUnit = )\S+$", rf"\g<1>{mpu!r}", text, count=1, flags=re.MULTILINE)
    if n != 1:
        raise RuntimeError("no metersPerUnit in the stage metadata Blender wrote")
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)


def _unit_scale(mpu: float) -> str:
    return "" if mpu == 1.0 else f" (Blender units x Unit Scale {mpu:g})"


def _menu_export(self, context):
    self.layout.operator(EXPORT_SCENE_OT_parascale_track.bl_idname, text="ParaScale Camera Track")


classes = (EXPORT_SCENE_OT_parascale_track,)


def register() -> None:
    bpy.types.TOPBAR_MT_file_export.append(_menu_export)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_export.remove(_menu_export)
