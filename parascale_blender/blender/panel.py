"""The "ParaScale" tab of the 3D View sidebar: Reference / Target / Rescale / Bake / Generate.

Every server job's status (progress, Cancel, last error) is drawn by ``server_jobs.draw_job``.
"""

from __future__ import annotations

import math

import bpy

from ..client import wire
from . import closed_loop, points, server_jobs, server_status


def _fmt(x: float, spec: str = ".4g") -> str:
    return "—" if x is None or not math.isfinite(x) else format(x, spec)


class _Base:
    bl_space_type = "VIEW_3D"
    bl_region_type = "UI"
    bl_category = "ParaScale"


def draw_plate(layout, context) -> None:
    """The target step's plate inputs and the Estimate Plate Depth job (Target and Generate sections)."""
    s = context.scene.parascale
    layout.prop(s, "target_plate_image")
    layout.prop(s, "target_plate_depth")
    row = layout.row(align=True)
    row.prop(s, "target_plate_depth_unit", text="Unit")
    if s.target_plate_depth_unit == "SCALE":
        row.prop(s, "target_plate_depth_scale")
    if not server_jobs.draw_job(layout, context.scene, "depth"):
        layout.operator("parascale.estimate_plate_depth", icon="MOD_DISPLACE")  # its poll says what it needs


class PARASCALE_PT_main(_Base, bpy.types.Panel):
    bl_label = "ParaScale"

    def draw(self, context):
        s = context.scene.parascale
        if s.last_report:
            self.layout.label(text=s.last_report, icon="INFO")
        server_jobs.draw_carried(self.layout)


class PARASCALE_PT_reference(_Base, bpy.types.Panel):
    bl_label = "1 Reference"
    bl_parent_id = "PARASCALE_PT_main"

    def draw(self, context):
        s = context.scene.parascale
        col = self.layout.column()
        row = col.row(align=True)
        row.operator("import_scene.parascale_track", text="Import Track", icon="IMPORT")
        row.operator("parascale.reference_from_camera", text="From Camera", icon="CAMERA_DATA")
        col.operator("parascale.reference_from_clip", text="From Movie Clip Solve", icon="TRACKER")
        if not server_jobs.draw_job(col, context.scene, "track"):
            col.operator("import_scene.parascale_video", text="Import Reference Video", icon="FILE_MOVIE")
            if server_jobs.record(context.scene, "track").state == wire.FAILED:
                col.operator("parascale.track_video_in_blender", icon="TRACKER")
        col.prop(s, "reference_camera")
        if s.reference_camera is not None:
            col.label(text=s.reference_source or s.reference_camera.name, icon="CHECKMARK")
            qa = s.reference_camera.get("parascale_solve")  # a tracked reference: frames solved, error
            if qa:
                col.label(text=qa, icon="ERROR" if "filled" in qa or "without a pose" in qa else "TRACKER")
        else:
            col.label(text="No reference yet", icon="ERROR")
        col.prop(s, "reference_depth")
        if s.reference_depth == "DISTANCE":
            col.prop(s, "reference_distance")
        elif s.reference_depth == "POINTS":
            col.prop(s, "reference_points")
        elif s.reference_depth == "SCENE":
            col.prop(s, "reference_collection")
        else:
            col.prop(s, "reference_depth_path")


class PARASCALE_PT_target(_Base, bpy.types.Panel):
    bl_label = "2 Target"
    bl_parent_id = "PARASCALE_PT_main"

    def draw(self, context):
        s = context.scene.parascale
        col = self.layout.column()
        col.prop(s, "target_camera")
        col.prop(s, "target_start_frame")
        col.prop(s, "target_depth")
        if s.target_depth == "SCENE":
            col.prop(s, "target_collection")
        elif s.target_depth == "POINTS":
            col.prop(s, "target_points")
        else:
            col.prop(s, "target_distance")
        draw_plate(col, context)
        row = col.row(align=True)
        row.operator("parascale.points_from_scene", text="Points from Scene", icon="POINTCLOUD_DATA")
        row.operator("parascale.points_from_depth_map", text="Plate + Depth", icon="IMAGE_DATA")
        pts = s.target_points
        if pts is not None and pts.type == "MESH":
            col.label(text=f"{pts.name}: {len(pts.data.vertices):,} points")
            mod = pts.modifiers.get(points.MODIFIER)
            if mod is not None and mod.node_group is not None:
                col.prop(mod, f'["{points.radius_identifier(mod)}"]', text="Point radius")


class PARASCALE_PT_rescale(_Base, bpy.types.Panel):
    bl_label = "3 Rescale"
    bl_parent_id = "PARASCALE_PT_main"

    def draw(self, context):
        s = context.scene.parascale
        col = self.layout.column()
        col.prop(s, "mode")
        col.prop(s, "allow_sky")
        sub = col.row()
        sub.active = s.allow_sky and s.target_depth == "POINTS"  # only a point-cloud target has gaps to call sky
        sub.prop(s, "cloud_sky")
        row = col.row(align=True)
        row.label(text="Match Π in")
        row.prop(s, "fov_match", expand=True)
        col.prop(s, "transfer_zoom")
        col.operator("parascale.rescale", icon="CON_SIZELIKE")
        from . import live

        preview = live.session()
        if preview is None:
            col.operator("parascale.live_rescale", icon="PLAY")
        else:
            row = col.row(align=True)
            row.operator("parascale.live_accept", icon="CHECKMARK")
            row.operator("parascale.live_cancel", icon="CANCEL")
            if preview.error:
                col.label(text=preview.error[:80], icon="ERROR")
            elif preview.result is not None:
                which = "refined" if preview.refined else "coarse"
                lo, hi = preview.result.scale_range
                col.label(text=f"Live ({which}, {preview.seconds * 1e3:.0f} ms): α {_fmt(lo)} – {_fmt(hi)}")
        if s.result_action is not None:
            col.label(text=f"PCE {_fmt(s.pce)}   α {_fmt(s.scale_min)} – {_fmt(s.scale_max)}")
            if s.pce_measured_on:
                col.label(text=f"as played, measured on {s.pce_measured_on}")
            if s.check_summary:
                for line in s.check_summary.split("; "):
                    col.label(text=line)
            col.operator("parascale.switch_action", icon="ACTION")
        else:
            col.label(text="Not rescaled yet")


class PARASCALE_PT_bake(_Base, bpy.types.Panel):
    bl_label = "4 Bake"
    bl_parent_id = "PARASCALE_PT_main"

    def draw(self, context):
        s = context.scene.parascale
        col = self.layout.column()
        if s.target_camera is None:
            col.label(text="Choose a target camera (Target panel) to export its move", icon="INFO")
        row = col.row()
        row.enabled = s.target_camera is not None
        row.operator("export_scene.parascale_track", text="Export Track", icon="EXPORT")


class PARASCALE_PT_generate(_Base, bpy.types.Panel):
    bl_label = "5 Generate"
    bl_parent_id = "PARASCALE_PT_main"

    def draw(self, context):
        g = context.scene.parascale_generate
        col = self.layout.column()
        server_status.draw(col, context)
        server_status.draw_options(col, g)
        col.prop(g, "source")
        if g.source == "PLATE":
            draw_plate(col, context)
        col.prop(g, "output_dir")
        if not server_jobs.draw_job(col, context.scene, "generate"):
            col.operator("parascale.generate", icon="RENDER_ANIMATION")
        closed_loop.draw(col, context.scene, server_jobs.record(context.scene, "generate").result_name)


classes = (
    PARASCALE_PT_main,
    PARASCALE_PT_reference,
    PARASCALE_PT_target,
    PARASCALE_PT_rescale,
    PARASCALE_PT_bake,
    PARASCALE_PT_generate,
)
