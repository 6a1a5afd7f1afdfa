"""Target operators: a coloured point cloud of the target scene's depth.

* From a plate image + depth map (EXR / 16-bit PNG / NPY / PFM through ``formats.depthmaps``),
  unprojected through the target camera's intrinsics (scaled to the map's size) at the start frame;
  without a depth path, the Generate plate and its depth (e.g. from Estimate Plate Depth) are used.
* From the scene's own geometry seen from the target camera (fast mesh depth), coloured by depth.
Depth is z-depth along the optical axis; pixel (i, j) centre is (j + 0.5, i + 0.5), origin top-left.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..core.depth import DepthError
from . import convert, points, prefs, scene_depth
from .ops_rescale import target_start


def depth_colours(z: np.ndarray) -> np.ndarray:
    """A blue (near) to orange (far) ramp over inverse depth, (M,3) in 0..1."""
    w = 1.0 / z
    lo, hi = np.percentile(w, [2, 98]) if z.size else (0.0, 1.0)
    t = np.clip((w - lo) / max(hi - lo, 1e-12), 0, 1)[:, None]
    near, far = np.array([0.1, 0.35, 1.0], np.float32), np.array([1.0, 0.55, 0.1], np.float32)
    return (far + (near - far) * t).astype(np.float32)


def read_plate(path: str) -> np.ndarray:
    """(H, W, 3) float32 colours of an image file, top row first (Blender loads bottom-up)."""
    img = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = img.size
        if w == 0 or h == 0:
            raise DepthError(f"{path}: could not read the plate image")
        px = np.empty(w * h * img.channels, dtype=np.float32)
        img.pixels.foreach_get(px)  # pyright: ignore[reportAttributeAccessIssue]
        px = (
            px.reshape(h, w, img.channels)[::-1, :, :3]
            if img.channels >= 3
            else np.repeat(px.reshape(h, w, img.channels)[::-1, :, :1], 3, axis=2)
        )
    finally:
        bpy.data.images.remove(img)
    return px


def read_depth(path: str, scale: float | None = None) -> np.ndarray:
    """(H, W) float32 z-depth, NaN = none (``scale``: units per stored value, None = format default)."""
    from ..formats.depthmaps import read_depth_map

    d = np.asarray(read_depth_map(path, scale=scale), dtype=np.float32)
    if d.ndim != 2:
        raise DepthError(f"{path}: a depth map must be one channel (H, W), got shape {d.shape}")
    return d


class PARASCALE_OT_points_from_depth_map(bpy.types.Operator):
    """Unproject a depth map (with an optional plate for colours) through the target camera"""

    bl_idname = "parascale.points_from_depth_map"
    bl_label = "Target Points from Plate + Depth"
    bl_options = {"REGISTER", "UNDO"}

    depth_path: bpy.props.StringProperty(name="Depth map", subtype="FILE_PATH")
    plate_path: bpy.props.StringProperty(name="Plate image", subtype="FILE_PATH")
    depth_scale: bpy.props.FloatProperty(
        name="Depth scale",
        default=0.0,
        min=0.0,
        precision=6,
        description="World units per stored value; 0 = the format's default (PNG: millimetres, others: 1)",
    )
    stride: bpy.props.IntProperty(name="Stride", default=1, min=1, max=64, description="Keep every n-th pixel")

    def execute(self, context):
        from ..formats.errors import FormatError

        depth_path, plate_path, scale = self.depth_path, self.plate_path, self.depth_scale or None
        if not depth_path:  # default: the Generate plate and its (estimated) depth, with its scale
            g = context.scene.parascale_generate
            depth_path, plate_path, scale = g.plate_depth, plate_path or g.plate_image, scale or g.depth_scale
        dpath = bpy.path.abspath(depth_path)
        ppath = bpy.path.abspath(plate_path) if plate_path else ""
        try:
            if not dpath or not os.path.exists(dpath):
                raise DepthError(f"depth map not found: {dpath or '(empty path)'}")
            if ppath and not os.path.exists(ppath):
                raise DepthError(f"plate image not found: {ppath}")
            c2w, cam = target_start(context)
            depth = read_depth(dpath, scale)
            h, w = depth.shape
            if abs(w / h - cam.width / cam.height) > 0.01 * cam.width / cam.height:
                raise DepthError(
                    f"{os.path.basename(dpath)}: depth map is {w}x{h} but the target camera renders "
                    f"{cam.width}x{cam.height}; the aspect ratios differ (wrong map or wrong render size)"
                )
            rgb = read_plate(ppath) if ppath else None
            if rgb is not None and rgb.shape[:2] != (h, w):
                raise DepthError(
                    f"{os.path.basename(ppath)} is {rgb.shape[1]}x{rgb.shape[0]} but the depth map is {w}x{h}"
                )
        except (DepthError, FormatError, convert.ConversionError, ValueError, OSError) as exc:
            self.report({"ERROR"}, f"Target points: {exc}")
            return {"CANCELLED"}
        except ImportError as exc:
            self.report({"ERROR"}, f"Target points: depth-map reading is not available in this build ({exc})")
            return {"CANCELLED"}
        k = self.stride
        cam = cam.scaled_to(w, h).scaled_to(len(range(0, w, k)), len(range(0, h, k))) if k > 1 else cam.scaled_to(w, h)
        depth = depth[::k, ::k]
        xyz, idx = cam.unproject(depth, c2w)[:2]
        if xyz.size == 0:
            self.report({"ERROR"}, f"Target points: {os.path.basename(dpath)} has no valid (positive, finite) depth")
            return {"CANCELLED"}
        colours = rgb[::k, ::k].reshape(-1, 3)[idx] if rgb is not None else depth_colours(depth.reshape(-1)[idx])
        obj = _make(context, f"{os.path.splitext(os.path.basename(dpath))[0]} points", xyz, colours)
        self.report({"INFO"}, f"{len(xyz):,} target points in {obj.name!r}")
        return {"FINISHED"}


class PARASCALE_OT_points_from_scene(bpy.types.Operator):
    """Show the scene's geometry as seen from the target camera as a coloured point cloud"""

    bl_idname = "parascale.points_from_scene"
    bl_label = "Target Points from Scene"
    bl_options = {"REGISTER", "UNDO"}

    resolution: bpy.props.IntProperty(name="Resolution", default=320, min=16, max=4096, description="Longest side")

    def execute(self, context):
        s = context.scene.parascale
        try:
            c2w, cam = target_start(context)
            work = cam.working(self.resolution)
            depth = scene_depth.mesh_depth(context, s.target_collection, "target points").view(c2w, work).depth
        except (DepthError, convert.ConversionError, ValueError) as exc:
            self.report({"ERROR"}, f"Target points: {exc}")
            return {"CANCELLED"}
        except ImportError as exc:
            self.report({"ERROR"}, f"Target points: mesh depth is not available in this build ({exc})")
            return {"CANCELLED"}
        xyz, idx = work.unproject(depth, c2w)[:2]
        if xyz.size == 0:
            self.report({"ERROR"}, "Target points: the target camera sees no geometry at the start frame")
            return {"CANCELLED"}
        obj = _make(context, f"{s.target_camera.name} scene points", xyz, depth_colours(depth.reshape(-1)[idx]))
        self.report({"INFO"}, f"{len(xyz):,} target points in {obj.name!r}")
        return {"FINISHED"}


def _make(context, name, xyz, rgb):
    p = prefs.get(context)
    obj = points.create_points_object(name, xyz, rgb, radius=p.point_radius if p else 0.01)
    s = context.scene.parascale
    s.target_points = obj
    s.target_depth = "POINTS"
    return obj


classes = (PARASCALE_OT_points_from_depth_map, PARASCALE_OT_points_from_scene)
