"""Rescale operator: Π rescaling of the reference move onto the target camera, as a NEW action.

The original action is kept (fake user) and can be switched back with ``parascale.switch_action``.
Everything is computed and validated before the scene is touched. After keying, the move Blender
evaluates (float32 ``matrix_world`` per frame) is re-measured against the target depth: the PCE the
keys alone cost is reported, with a warning when far from the world origin it exceeds 1e-3
(:mod:`..core.precision`).
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..core.depth import ConstantDepth, DepthError
from ..core.precision import key_precision_warning
from ..core.rescale import RescaleOptions, is_tripod, rescale, step_parallax
from . import convert, keys, points, prefs, scene_depth, tracks

EXTRAS = ("pi_ref", "pi_target", "alpha")


def reference_depth_source(context, traj):
    s = context.scene.parascale
    if s.reference_depth == "DISTANCE":
        return ConstantDepth(s.reference_distance)
    if s.reference_depth == "SCENE":
        return scene_depth.mesh_depth(context, s.reference_collection, "reference depth")
    from ..formats.depth_spec import parse_depth_spec

    if s.reference_depth == "POINTS":
        if traj.points is None or traj.points.visibility is None:
            raise DepthError("reference depth: the reference has no points with visibility; pick another depth")
        return parse_depth_spec("track", traj)
    path = bpy.path.abspath(s.reference_depth_path)
    if not path or not os.path.exists(path):
        raise DepthError(f"reference depth: depth maps not found at {path or '(empty path)'}")
    return parse_depth_spec(path, traj)


def target_depth_source(context):
    s = context.scene.parascale
    if s.target_depth == "DISTANCE":
        return ConstantDepth(s.target_distance)
    if s.target_depth == "SCENE":
        return scene_depth.mesh_depth(context, s.target_collection, "target depth")
    if s.target_points is None or s.target_points.type != "MESH" or not len(s.target_points.data.vertices):
        raise DepthError("target depth: choose a target point-cloud object (Target > Points from …)")
    from ..core.depth_sources import PointCloudDepth

    xyz, _ = points.points_of(s.target_points)
    return PointCloudDepth(xyz)


def target_start(context):
    """(c2w OpenCV at the start frame, pixel Camera) of the target camera."""
    s = context.scene.parascale
    cam = s.target_camera
    if cam is None:
        raise convert.ConversionError("Target: choose a target camera")
    if cam is s.reference_camera:
        raise convert.ConversionError("Target: the target camera must differ from the reference camera")
    scene = context.scene
    cur = scene.frame_current
    try:
        scene.frame_set(s.target_start_frame)
        c2w = convert.c2w_from_object(cam)
    finally:
        scene.frame_set(cur)
    if not np.isfinite(c2w).all():
        raise convert.ConversionError(f"Target: camera {cam.name!r} has a non-finite transform")
    return c2w, convert.camera_intrinsics(cam, scene)


def compute(context):
    """Run the core rescale for the scene's settings; returns (reference, RescaleResult, remeasure), where
    ``remeasure(c2w)`` is Π per step of other poses in the same target depth and measure."""
    s = context.scene.parascale
    p = prefs.get(context)
    ref = tracks.reference_trajectory(context)
    start_c2w, tcam = target_start(context)
    if is_tripod(ref):  # no depth is read: Π is zero at any scale
        rdepth = tdepth = None
    else:
        rdepth = reference_depth_source(context, ref)
        tdepth = target_depth_source(context)
    mode = (p.default_mode if p else "exact") if s.mode == "DEFAULT" else s.mode
    opts = RescaleOptions(mode=mode, working_size=p.working_size if p else 160, allow_sky=s.allow_sky)
    result = rescale(ref, rdepth, tdepth, start_c2w, tcam, opts)
    # re-measures a keyed move as the rescale measured it (None for a tripod: no depth, no Π)
    remeasure = None if tdepth is None else (lambda c2w: step_parallax(c2w, tdepth, tcam, opts))
    return ref, result, remeasure


def apply_result(context, ref, result):
    """Write the result as a new action on the target camera; keep the original action."""
    s = context.scene.parascale
    cam = s.target_camera
    ad = cam.animation_data
    original = ad.action if ad is not None else None
    if original is not None and original is not s.result_action:
        original.use_fake_user = True
        s.original_action = original
    elif original is not None:  # a re-run replaces the previous result: let Blender drop it when unused
        original.use_fake_user = False
    elif original is None and s.result_action is None:
        cam["parascale_static_basis"] = [v for row in cam.matrix_basis for v in row]
    offset = s.target_start_frame - int(ref.frames[0])
    action = keys.write_action(cam, result.trajectory, offset, f"{cam.name} ParaScale {result.mode}", EXTRAS)
    action.use_fake_user = True
    action["parascale_mode"] = result.mode
    action["parascale_allow_sky"] = bool(result.trajectory.metadata.get("allow_sky", s.allow_sky))
    s.result_action = action
    s.pce = result.pce
    s.scale_min, s.scale_max = result.scale_range
    return action


def key_precision(context, result, remeasure) -> tuple[float, str | None]:
    """(PCE the float32 keys cost, a warning or None): the keyed camera's evaluated ``matrix_world``
    read back per frame and its Π re-measured against the Π of the computed move."""
    s = context.scene.parascale
    frames = result.trajectory.frames - result.trajectory.frames[0] + s.target_start_frame
    evaluated = convert.trajectory_from_camera(s.target_camera, context.scene, frames).c2w
    return key_precision_warning(result.trajectory.c2w, evaluated, result.pi_realized, remeasure(evaluated))


def shot_range_warnings(context, frames: int) -> list[str]:
    """Say when the rescaled move runs outside the scene's frame range (it still lands where asked)."""
    scene, s = context.scene, context.scene.parascale
    first, last = s.target_start_frame, s.target_start_frame + frames - 1
    if first < scene.frame_start or last > scene.frame_end:
        return [
            f"the move lands on frames {first}–{last}, outside the scene's range {scene.frame_start}–"
            f"{scene.frame_end}: set the start frame or the scene's range"
        ]
    return []


def report_notes(context, ref) -> list[str]:
    """What the report says besides PCE and α: a reference depth that is only assumed, a move
    shorter than the shot."""
    scene, s = context.scene, context.scene.parascale
    notes = []
    if s.reference_depth == "DISTANCE" and not is_tripod(ref):
        notes.append(
            f"reference depth: assumed subject distance {s.reference_distance:g} (a guess unless known; "
            "the move's scale follows it)"
        )
    if short := tracks.shorter_than_shot(scene, s.target_start_frame, s.target_start_frame + len(ref) - 1):
        notes.append(short)
    return notes


class PARASCALE_OT_rescale(bpy.types.Operator):
    """Transfer the reference move to the target camera, preserving parallax per frame (new action)"""

    bl_idname = "parascale.rescale"
    bl_label = "Rescale"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        try:
            ref, result, remeasure = compute(context)
        except ValueError as exc:  # TrackError, ConversionError, DepthError, RescaleError: all ValueErrors
            self.report({"ERROR"}, f"Rescale: {exc}")
            return {"CANCELLED"}
        action = apply_result(context, ref, result)
        # a tripod result does not move: nothing for key precision to cost (and no depth was read)
        key_pce, key_warning = (0.0, None) if remeasure is None else key_precision(context, result, remeasure)
        warnings = result.warnings + shot_range_warnings(context, len(ref)) + ([key_warning] if key_warning else [])
        for w in warnings:
            self.report({"WARNING"}, w)
        lo, hi = result.scale_range
        against = result.trajectory.metadata.get("target_depth", "the target depth")
        msg = (
            f"Rescaled {len(ref)} frames into {action.name!r}: PCE {result.pce:.4g} ({result.mode} Π, target "
            f"measured on {against}), α {lo:.4g}–{hi:.4g}; as keyed (float32) PCE {key_pce:.2g}"
        )
        if result.info:  # a tripod reference: no Π to match, said instead of PCE/α
            msg = f"Rescaled {len(ref)} frames into {action.name!r}: " + "; ".join(result.info)
        msg = "; ".join([msg, *report_notes(context, ref)])
        context.scene.parascale.last_report = "; ".join([msg, *warnings])[:1000]
        self.report({"INFO"}, msg)
        return {"FINISHED"}


class PARASCALE_OT_switch_action(bpy.types.Operator):
    """Switch the target camera between its original action and the rescaled one"""

    bl_idname = "parascale.switch_action"
    bl_label = "Switch Original / Rescaled"
    bl_options = {"REGISTER", "UNDO"}

    def execute(self, context):
        from . import compat

        s = context.scene.parascale
        cam = s.target_camera
        if cam is None or s.result_action is None:
            self.report({"ERROR"}, "Switch: rescale the target camera first")
            return {"CANCELLED"}
        current = cam.animation_data.action if cam.animation_data else None
        if current is s.result_action:
            if s.original_action is not None:
                compat.assign_action(cam, s.original_action)
            else:
                cam.animation_data.action = None
                basis = cam.get("parascale_static_basis")
                if basis is not None:
                    from mathutils import Matrix

                    cam.matrix_basis = Matrix(np.asarray(basis, dtype=np.float64).reshape(4, 4).tolist())
            which = "original"
        else:
            compat.assign_action(cam, s.result_action)
            which = "rescaled"
        self.report({"INFO"}, f"{cam.name}: {which} action")
        return {"FINISHED"}


classes = (PARASCALE_OT_rescale, PARASCALE_OT_switch_action)
