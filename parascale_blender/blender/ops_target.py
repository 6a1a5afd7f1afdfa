"""Target operators: a coloured point cloud of the target scene's depth.

* From a plate image + depth map (EXR / 16-bit PNG / NPY / PFM through ``formats.depthmaps``),
  unprojected through the target camera's intrinsics (scaled to the map's size) at the start frame;
  without a depth path, the target step's plate and plate depth (e.g. from Estimate Plate Depth).
* From the scene's own geometry seen from the target camera (fast mesh depth), coloured by depth.
Depth is z-depth along the optical axis; pixel (i, j) centre is (j + 0.5, i + 0.5), origin top-left.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..core.depth import DepthError
from . import plate, points, polls, prefs, scene_depth
from .ops_rescale import target_start


def depth_colours(z: np.ndarray) -> np.ndarray:
    """A blue (near) to orange (far) ramp over inverse depth, (M,3) in 0..1."""
    w = 1.0 / z
    lo, hi = np.percentile(w, [2, 98]) if z.size else (0.0, 1.0)
    t = np.clip((w - lo) / max(hi - lo, 1e-12), 0, 1)[:, None]
    near, far = np.array([0.1, 0.35, 1.0], np.float32), np.array([1.0, 0.55, 0.1], np.float32)
    return (far + (near - far) * t).astype(np.float32)


class PARASCALE_OT_points_from_depth_map(bpy.types.Operator):
    """Unproject a depth map (with an optional plate for colours) through the target camera"""

    bl_idname = "parascale.points_from_depth_map"
    bl_label = "Target Points from Plate + Depth"
    bl_options = {"REGISTER", "UNDO"}

    filepath: bpy.props.StringProperty(subtype="FILE_PATH", options={"HIDDEN", "SKIP_SAVE"})
    filter_glob: bpy.props.StringProperty(default="*.npy;*.exr;*.pfm;*.png", options={"HIDDEN"})
    depth_path: bpy.props.StringProperty(name="Depth map", subtype="FILE_PATH")
    plate_path: bpy.props.StringProperty(name="Plate image", subtype="FILE_PATH")
    depth_unit: bpy.props.EnumProperty(name="Depth unit", items=plate.DEPTH_UNIT_ITEMS, default="AUTO")
    depth_scale: bpy.props.FloatProperty(
        name="Scale",
        default=0.0,
        min=0.0,
        precision=6,
        description="Scene units per stored value (a custom unit; > 0 overrides Depth unit)",
    )
    stride: bpy.props.IntProperty(name="Stride", default=1, min=1, max=64, description="Keep every n-th pixel")

    @classmethod
    def poll(cls, context):
        return polls.target_camera(cls, context)

    def invoke(self, context, event):
        """With no depth map here nor on the target step, the file browser picks one."""
        if self.depth_path or context.scene.parascale.target_plate_depth:
            return self.execute(context)
        context.window_manager.fileselect_add(self)
        return {"RUNNING_MODAL"}

    def execute(self, context):
        s = context.scene.parascale
        chosen = self.depth_path or self.filepath
        dpath = bpy.path.abspath(chosen) if chosen else ""
        ppath = bpy.path.abspath(self.plate_path) if self.plate_path else ""
        unit, scale = ("SCALE", self.depth_scale) if self.depth_scale > 0 else (self.depth_unit, 0.0)
        if not dpath:  # default: the target step's plate and its (estimated) depth, in its unit
            image, dpath = plate.plate_paths(context.scene)
            ppath = ppath or image
            unit, scale = s.target_plate_depth_unit, s.target_plate_depth_scale
        try:
            if ppath and not os.path.exists(ppath):
                raise DepthError(f"plate image not found: {ppath}")
            c2w, cam = target_start(context)
            depth = plate.read_plate_depth(dpath, unit, scale)
            h, w = depth.shape
            if abs(w / h - cam.width / cam.height) > 0.01 * cam.width / cam.height:
                raise DepthError(
                    f"{os.path.basename(dpath)}: depth map is {w}x{h} but the target camera renders "
                    f"{cam.width}x{cam.height}; the aspect ratios differ (wrong map or wrong render size)"
                )
            rgb = plate.read_plate_image(ppath) if ppath else None
            if rgb is not None and rgb.shape[:2] != (h, w):
                raise DepthError(
                    f"{os.path.basename(ppath)} is {rgb.shape[1]}x{rgb.shape[0]} but the depth map is {w}x{h}"
                )
        except (ValueError, OSError) as exc:  # DepthError, FormatError, ConversionError are ValueErrors
            self.report({"ERROR"}, f"Target points: {exc}")
            return {"CANCELLED"}
        plate_cam, k, plate_sky = cam.scaled_to(w, h), self.stride, ~np.isfinite(depth)
        cam = plate_cam.scaled_to(len(range(0, w, k)), len(range(0, h, k))) if k > 1 else plate_cam
        depth = depth[::k, ::k]
        xyz, idx = cam.unproject(depth, c2w)[:2]
        if xyz.size == 0:
            self.report({"ERROR"}, f"Target points: {os.path.basename(dpath)} has no valid (positive, finite) depth")
            return {"CANCELLED"}
        colours = rgb[::k, ::k].reshape(-1, 3)[idx] if rgb is not None else depth_colours(depth.reshape(-1)[idx])
        obj = _make(context, f"{os.path.splitext(os.path.basename(dpath))[0]} points", xyz, colours)
        obj["parascale_source"] = "plate"
        # its sky, where the plate looked, and the camera the points are the pixel samples of (their grid)
        points.store_frustum(obj, c2w, cam, plate_sky)
        self.report({"INFO"}, f"{len(xyz):,} target points in {obj.name!r}")
        return {"FINISHED"}


class PARASCALE_OT_points_from_scene(bpy.types.Operator):
    """Show the scene's geometry as seen from the target camera as a coloured point cloud"""

    bl_idname = "parascale.points_from_scene"
    bl_label = "Target Points from Scene"
    bl_options = {"REGISTER", "UNDO"}

    resolution: bpy.props.IntProperty(name="Resolution", default=320, min=16, max=4096, description="Longest side")

    @classmethod
    def poll(cls, context):
        return polls.target_camera(cls, context)

    def execute(self, context):
        s = context.scene.parascale
        try:
            c2w, cam = target_start(context)
            work = cam.working(self.resolution)
            depth = scene_depth.mesh_depth(context, s.target_collection, "target points").view(c2w, work).depth
        except ValueError as exc:  # DepthError, ConversionError
            self.report({"ERROR"}, f"Target points: {exc}")
            return {"CANCELLED"}
        xyz, idx = work.unproject(depth, c2w)[:2]
        if xyz.size == 0:
            self.report({"ERROR"}, "Target points: the target camera sees no geometry at the start frame")
            return {"CANCELLED"}
        # The cloud is for the eyes: the target depth stays the exact geometry it was made from.
        obj = _make(context, f"{s.target_camera.name} scene points", xyz, depth_colours(depth.reshape(-1)[idx]), False)
        obj["parascale_source"] = "scene"  # used as target depth, Rescale also measures its move on the geometry
        self.report({"INFO"}, f"{len(xyz):,} target points in {obj.name!r}")
        return {"FINISHED"}


def _make(context, name, xyz, rgb, use_as_depth: bool = True):
    """The point-cloud object; with ``use_as_depth`` it also becomes the target depth (a plate's depth
    has no other form in the scene); a cloud of the scene's geometry only shows it."""
    p = prefs.get(context)
    s = context.scene.parascale
    radius = p.point_radius if p and p.point_radius > 0 else 0.0
    if not radius > 0:
        cam = s.target_camera or context.scene.camera
        radius = points.default_radius(cam, context.scene, xyz, p.working_size if p else 160) if cam else 0.01
    old = s.target_points
    obj = points.create_points_object(name, xyz, rgb, radius=radius)
    s.target_points = obj
    if old is not None and old.get("parascale_points") and old.name != obj.name:  # a re-run replaces its cloud
        mesh = old.data
        bpy.data.objects.remove(old)
        if mesh is not None and mesh.users == 0:
            bpy.data.meshes.remove(mesh)
    if use_as_depth:
        s.target_depth = "POINTS"
    return obj


classes = (PARASCALE_OT_points_from_depth_map, PARASCALE_OT_points_from_scene)
