"""Rescale operator: Π rescaling of the reference move onto the target camera, as a NEW action.

The move starts from the pose the artist sees at the start frame (an un-keyed grab included when
the scene is at that frame), else from the pose keyed there. The keys are solved through the
target's parent as Blender evaluates it at each frame (an animated parent included); a target with
an acting constraint is refused by name (its output cannot be keyed through: the artist mutes or
applies it). With ``transfer_zoom`` (default) a zooming reference keys the target's lens by the
reference's relative focal change (a new action on the camera data). Π is matched in angle or as a
share of the frame (``fov_match``), and the report says which.

The artist's state before the Rescale (action, un-keyed pose, lens) is kept as the original and can
be switched back with ``parascale.switch_action``; a re-run keeps the latest original. Everything is
computed and validated before the scene is touched: :func:`gather` reads the scene, :func:`run` is
the core (no bpy), :func:`write` keys, :func:`measure` / :func:`report` re-measure and say. From the
UI the operator is modal (``rescale_job``: progress in the status bar, Esc cancels); ``execute()`` is
the same steps blocking. After keying, the move Blender evaluates (float32 ``matrix_world`` per
frame) is re-measured against the target depth: the PCE the keys alone cost is reported, with a
warning when far from the world origin it exceeds 1e-3, or when a pose is further off than float32
explains (then naming the frame, not precision: :mod:`..core.precision`).

A point-cloud target depth is sky where it has no points only with *Cloud gaps are sky*
(``cloud_sky``), and a plate's cloud only inside the plate's frustum (stored on the object, moving
with it: ``points.store_frustum``). When the cloud came from *Points from Scene* and its geometry is
still there, :func:`run` also measures the rescaled move on that geometry (the report's "PCE of the
move measured on …": what measuring on the cloud instead of the surface cost).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from dataclasses import dataclass, replace

import bpy
import numpy as np
from mathutils import Matrix

from ..core.camera import Camera, Trajectory
from ..core.depth import ConstantDepth, DepthError, DepthSource
from ..core.metrics import pce
from ..core.precision import key_precision_warning
from ..core.rescale import RescaleOptions, check_lines, is_tripod, rescale, step_parallax
from . import compat, convert, keys, points, polls, prefs, scene_depth, tracks

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
    plate = points.frustum_of(s.target_points)
    if plate is None:
        return PointCloudDepth(xyz, sky=s.cloud_sky)
    return PointCloudDepth(xyz, sky=s.cloud_sky, frustum=plate[:2], plate_sky=plate[2])


def cloud_geometry(context) -> tuple[str, DepthSource] | None:
    """(name, depth) of the geometry a *Points from Scene* target cloud was made from, while the target
    collection still has meshes: the rescaled move is measured on it too (the cloud's gaps and samples
    against the exact surface); None otherwise."""
    s = context.scene.parascale
    obj = s.target_points
    if s.target_depth != "POINTS" or obj is None or obj.get("parascale_source") != "scene":
        return None
    try:
        mesh = scene_depth.mesh_depth(context, s.target_collection, "target geometry")
    except DepthError:  # the geometry is gone: the cloud is all there is
        return None
    coll = s.target_collection
    return (f"{coll.name} meshes" if coll is not None else "the scene's meshes"), mesh


@contextmanager
def keeping_unkeyed_pose(obj, scene):
    """Keep ``obj``'s un-keyed edits at the current frame through the frame changes inside (which
    re-evaluate its action and would drop them)."""
    basis = np.array(obj.matrix_basis) if obj is not None and convert.unkeyed_edits(obj, scene.frame_current) else None
    try:
        yield
    finally:
        if basis is not None:
            obj.matrix_basis = Matrix(basis.tolist())


def target_start(context):
    """(c2w OpenCV at the start frame, pixel Camera) of the target camera: see :func:`target_start_lens`."""
    c2w, cam, _ = target_start_lens(context)
    return c2w, cam


def target_start_lens(context):
    """(c2w OpenCV at the start frame, pixel Camera, lens in mm) of the target camera: the pose the
    artist sees when the scene is at the start frame (un-keyed edits included), else as keyed there."""
    s = context.scene.parascale
    cam = s.target_camera
    if cam is None:
        raise convert.ConversionError("Target: choose a target camera")
    if cam is s.reference_camera:
        raise convert.ConversionError("Target: the target camera must differ from the reference camera")
    scene = context.scene
    cur = scene.frame_current
    try:
        if cur == s.target_start_frame and convert.unkeyed_edits(cam, cur):
            context.view_layer.update()  # the edit's matrix_world (evaluating at the same frame keeps it)
        else:
            scene.frame_set(s.target_start_frame)
        c2w = convert.c2w_from_object(cam)
        tcam, lens = convert.camera_intrinsics(cam, scene), float(cam.data.lens)
    finally:
        if scene.frame_current != cur:
            scene.frame_set(cur)
    if not np.isfinite(c2w).all():
        raise convert.ConversionError(f"Target: camera {cam.name!r} has a non-finite transform")
    return c2w, tcam, lens


def reference_zoom(ref) -> np.ndarray | None:
    """The reference's focal length per frame relative to its first (fx[t]/fx[0]); None when it does not zoom."""
    zoom = ref.intrinsics[:, 0] / ref.intrinsics[0, 0]
    return zoom if np.ptp(zoom) > 1e-6 else None


@dataclass
class Inputs:
    """Everything a rescale needs, read from the scene on the main thread (numpy and core objects
    only: :func:`run` may use them on another thread)."""

    ref: Trajectory
    rdepth: DepthSource | None  # None for a tripod reference (no depth is read)
    tdepth: DepthSource | None
    start_c2w: np.ndarray
    tcam: Camera
    lens: float
    options: RescaleOptions
    zoom: np.ndarray | None
    geometry: tuple[str, DepthSource] | None = None  # see cloud_geometry
    target: str = ""  # the target camera's name and the start frame, checked again before writing
    start_frame: int = 0


def rescale_options(context) -> RescaleOptions:
    """The Rescale's options from the scene's settings and the preferences."""
    s, p = context.scene.parascale, prefs.get(context)
    mode = (p.default_mode if p else "exact") if s.mode == "DEFAULT" else s.mode
    return RescaleOptions(
        mode=mode,
        working_size=p.working_size if p else 160,
        allow_sky=s.allow_sky,
        fov_match=s.fov_match.lower(),
        view_every=p.view_every if p else 1,
    )


def gather(context) -> Inputs:
    """Read the scene's settings into :class:`Inputs`; a ValueError names what to fix. The scene is left
    as it was (the target's un-keyed edits included)."""
    s = context.scene.parascale
    with keeping_unkeyed_pose(s.target_camera, context.scene):
        start_c2w, tcam, lens = target_start_lens(context)  # first: a frame change drops un-keyed edits
        ref = tracks.reference_trajectory(context)
    cam = s.target_camera
    acting = convert.active_constraints(cam)
    if acting:  # keys cannot be solved through a constraint's output: the artist decides what it should do
        raise convert.ConversionError(
            f"Target: camera {cam.name!r} has the constraint {', '.join(acting)}, which would override the keyed "
            "move; mute it (or apply it) and rescale again"
        )
    geometry = None
    if is_tripod(ref):  # no depth is read: Π is zero at any scale
        rdepth = tdepth = None
    else:
        rdepth = reference_depth_source(context, ref)
        tdepth = target_depth_source(context)
        geometry = cloud_geometry(context)
    opts = rescale_options(context)
    zoom = reference_zoom(ref) if s.transfer_zoom else None
    why = polls.linked_error(s.target_camera.data) if zoom is not None else None
    if why:  # the lens is keyed on the camera data: linked data would lose it on save
        raise convert.ConversionError(
            f"Target: the reference zooms and the lens is keyed on the camera data, but the {why.split(' (')[0]}; "
            "make the camera data local (Object > Relations > Make Local) or turn Transfer zoom off"
        )
    return Inputs(
        ref, rdepth, tdepth, start_c2w, tcam, lens, opts, zoom, geometry, s.target_camera.name, s.target_start_frame
    )


GEOMETRY_SHARE = 0.2  # of run()'s progress: measuring the move on the cloud's geometry (one pass, no solve)


def _part(progress, lo: float, hi: float):
    """``progress(done, total)`` mapped into the ``lo..hi`` part of ``progress``'s range (None stays None)."""
    if progress is None:
        return None
    return lambda done, total: progress(lo + (hi - lo) * done / total, 1.0)


def run(inputs: Inputs, progress=None):
    """The core rescale of ``inputs`` (no bpy: safe on a background thread); ``progress(done, total)``.
    With :attr:`Inputs.geometry` the rescaled move is also measured on that geometry against the
    reference's Π: ``result.checks["target_vs_geometry"]`` (see ``core.rescale.check_lines``)."""
    share = 1.0 - GEOMETRY_SHARE if inputs.geometry is not None else 1.0
    opts = replace(inputs.options, progress=_part(progress, 0.0, share), gradient=True)  # for measure()
    result = rescale(inputs.ref, inputs.rdepth, inputs.tdepth, inputs.start_c2w, inputs.tcam, opts, inputs.zoom)
    if inputs.geometry is not None and result.checks:  # a tripod result has no checks: nothing moved
        name, mesh = inputs.geometry
        opts = replace(inputs.options, progress=_part(progress, share, 1.0))
        pi = step_parallax(result.trajectory.c2w, mesh, inputs.tcam, opts, inputs.zoom)
        result.checks["target_vs_geometry"] = {"geometry": name, "pce": pce(pi, result.pi_ref, strict=False)}
    return result


def compute(context):
    """Run the core rescale for the scene's settings (blocking); returns (Inputs, RescaleResult)."""
    inputs = gather(context)
    return inputs, run(inputs)


def _capture_original(cam, scene, s) -> None:
    """Keep the artist's current state of ``cam`` (action, pose with un-keyed edits, lens) as the original
    Switch returns to, unless the camera shows the previous result (then the kept original stays)."""
    ad, data = cam.animation_data, cam.data
    current = ad.action if ad is not None else None
    if current is not None and current is s.result_action:
        return
    if current is not None:
        current.use_fake_user = True
    s.original_action = current
    if current is None or convert.unkeyed_edits(cam, scene.frame_current):
        cam["parascale_static_basis"] = [v for row in cam.matrix_basis for v in row]
    elif "parascale_static_basis" in cam:
        del cam["parascale_static_basis"]
    lens_action = data.animation_data.action if data.animation_data is not None else None
    if lens_action is not None and lens_action is s.result_lens_action:
        lens_action = None  # a lens result left on the data (its object action was switched by hand)
    if lens_action is not None:
        lens_action.use_fake_user = True
    s.original_lens_action = lens_action
    data["parascale_static_lens"] = float(data.lens)


def show_original_lens(cam, s) -> None:
    """Give ``cam``'s data its original lens (action, or the lens it had)."""
    data = cam.data
    if s.original_lens_action is not None:
        compat.assign_action(data, s.original_lens_action)
    else:
        if data.animation_data is not None:
            data.animation_data.action = None
        if "parascale_static_lens" in data:
            data.lens = float(data["parascale_static_lens"])


def apply_result(context, inputs: Inputs, result):
    """Write the result as a new action on the target camera (through its animated parent, frame by
    frame) and, with a zoom, a new lens action on its data; keep the original ones for Switch."""
    s = context.scene.parascale
    cam = s.target_camera
    ref = inputs.ref
    _capture_original(cam, context.scene, s)
    ad = cam.animation_data
    if ad is not None and ad.action is not None and ad.action is s.result_action:
        ad.action.use_fake_user = False  # a re-run replaces the previous result: Blender drops it when unused
    if s.result_lens_action is not None:
        s.result_lens_action.use_fake_user = False
        s.result_lens_action = None
    show_original_lens(cam, s)
    offset = s.target_start_frame - int(ref.frames[0])
    frames = result.trajectory.frames + offset
    parent = convert.parent_part(cam, context.scene, frames)
    name = f"{cam.name} ParaScale {result.mode}"
    action = keys.write_action(cam, result.trajectory, offset, name, EXTRAS, parent=parent)
    action.use_fake_user = True
    action["parascale_mode"] = result.mode
    action["parascale_allow_sky"] = bool(result.trajectory.metadata.get("allow_sky", s.allow_sky))
    action["parascale_fov_match"] = inputs.options.fov_match
    s.result_action = action
    if inputs.zoom is not None:
        lens = keys.write_lens_action(cam.data, frames, {"lens": inputs.lens * inputs.zoom}, f"{name} lens")
        lens.use_fake_user = True
        s.result_lens_action = lens
    s.solver_residual = result.solver_residual
    s.pce, s.pce_measured_on = float("nan"), ""  # measured on the keys by :func:`report`
    s.check_summary = "; ".join(check_lines(result.checks)[:2])
    s.scale_min, s.scale_max = result.scale_range
    return action, parent


@dataclass
class Written:
    """What :func:`write` put in the scene and read back: the new action, the parent chain per frame
    (or None), the frames keyed and Blender's evaluated poses there (None for a tripod result)."""

    action: bpy.types.Action
    parent: np.ndarray | None
    frames: np.ndarray
    evaluated: np.ndarray | None


def write(context, inputs: Inputs, result) -> Written:
    """Key ``result`` (main thread) and read back the poses Blender evaluates per keyed frame."""
    s = context.scene.parascale
    cam = s.target_camera
    if cam is None or cam.name != inputs.target or s.target_start_frame != inputs.start_frame:
        raise convert.ConversionError(
            f"Target: the target camera or start frame changed during the Rescale (was {inputs.target!r} at "
            f"frame {inputs.start_frame}); rescale again"
        )
    action, parent = apply_result(context, inputs, result)
    frames = result.trajectory.frames - result.trajectory.frames[0] + s.target_start_frame
    # a tripod result does not move: nothing for key precision to cost (and no depth was read)
    evaluated = (
        None if inputs.tdepth is None else convert.trajectory_from_camera(s.target_camera, context.scene, frames).c2w
    )
    return Written(action, parent, frames, evaluated)


def measure(inputs: Inputs, written: Written, progress=None, result=None) -> np.ndarray | None:
    """Π per step of the evaluated (keyed) move, measured as the rescale measured its move (no bpy:
    safe on a background thread); None for a tripod result. With the ``result`` that was keyed, steps
    that float32 keys moved by a rounding only are measured to first order from its views
    (``core.rescale.step_parallax``'s ``near``)."""
    if written.evaluated is None or inputs.tdepth is None:
        return None
    opts = replace(inputs.options, progress=progress)
    return step_parallax(written.evaluated, inputs.tdepth, inputs.tcam, opts, inputs.zoom, near=result)


MATCHED = {"angular": "Π matched in angle", "frame": "Π matched as a share of the frame"}


def report(context, inputs: Inputs, result, written: Written, remeasured: np.ndarray | None) -> tuple[str, list[str]]:
    """(the report line, warnings) of a written result, also stored as the panel's last report. With
    ``remeasured`` the PCE the float32 keys cost (a pose further off than float32 explains is said as
    such, not as precision); without it (a tripod, or the measure was cancelled) none."""
    ref = inputs.ref
    if remeasured is not None and written.evaluated is not None:
        magnitude = 0.0 if written.parent is None else float(np.abs(written.parent[:, :3, 3]).max())
        key_pce, key_warning = key_precision_warning(
            result.trajectory.c2w, written.evaluated, result.pi_realized, remeasured, magnitude, written.frames
        )
        keyed = f"as keyed (float32) PCE {key_pce:.2g}"
    else:
        key_pce, key_warning = 0.0, None
        keyed = "as keyed: not measured" if inputs.tdepth is not None else ""
    store_measured_pce(context.scene.parascale, result, remeasured)
    warnings = result.warnings + shot_range_warnings(context, len(ref)) + ([key_warning] if key_warning else [])
    lo, hi = result.scale_range
    against = result.trajectory.metadata.get("target_depth", "the target depth")
    name = written.action.name
    msg = (
        f"Rescaled {len(ref)} frames into {name!r}: solver residual {result.solver_residual:.2g} ({result.mode} Π, "
        f"{MATCHED[inputs.options.fov_match]}, target measured on {against}), α {lo:.4g}–{hi:.4g}; {keyed}; "
        + "; ".join(check_lines(result.checks))
    )
    if result.info:  # a tripod reference: no Π to match, said instead of PCE/α
        msg = f"Rescaled {len(ref)} frames into {name!r}: " + "; ".join(result.info)
    if inputs.zoom is not None:
        msg += f"; lens keyed: {inputs.lens:.3g} → {inputs.lens * inputs.zoom[-1]:.3g} mm"
    elif reference_zoom(ref) is not None:
        msg += "; the reference zooms but Transfer zoom is off: the target keeps its lens"
    msg = "; ".join([msg, *report_notes(context, ref)])
    context.scene.parascale.last_report = "; ".join([msg, *warnings])[:1000]
    return msg, warnings


def finish(context, inputs: Inputs, result) -> tuple[str, list[str]]:
    """Write ``result`` into the scene, measure the keys and report (blocking, main thread)."""
    written = write(context, inputs, result)
    return report(context, inputs, result, written, measure(inputs, written, result=result))


def store_measured_pce(s, result, remeasured: np.ndarray | None) -> None:
    """The panel's PCE: a measurement, never the solver's own residual. The move Blender plays
    (``remeasured``, its keys evaluated) against the reference's Π; on the meshes a Points-from-Scene
    cloud came from when the report measured those (``checks["target_vs_geometry"]``)."""
    geometry = (result.checks or {}).get("target_vs_geometry")
    if geometry is not None:
        s.pce, s.pce_measured_on = float(geometry["pce"]), str(geometry["geometry"])
    elif remeasured is not None:
        s.pce = pce(remeasured, result.pi_ref, strict=False)
        s.pce_measured_on = str(result.trajectory.metadata.get("target_depth", "the target depth"))


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

    @classmethod
    def poll(cls, context):
        return polls.reference_camera(cls, context) and polls.target_camera(cls, context, editable=True)

    def execute(self, context):
        try:
            inputs, result = compute(context)
        except ValueError as exc:  # TrackError, ConversionError, DepthError, RescaleError: all ValueErrors
            self.report({"ERROR"}, f"Rescale: {exc}")
            return {"CANCELLED"}
        msg, warnings = finish(context, inputs, result)
        self._report_done(msg, warnings)
        return {"FINISHED"}

    def _report_done(self, msg: str, warnings: list[str]) -> None:
        for w in warnings:
            self.report({"WARNING"}, w)
        self.report({"INFO"}, msg)

    # From the UI: the same rescale without blocking (rescale_job: a thread computes, a timer follows
    # it, the status bar shows progress, Esc cancels). Scripts and tests call execute().
    def invoke(self, context, event):
        from . import rescale_job

        try:
            self._job = rescale_job.RescaleJob(context).start()
        except ValueError as exc:
            self.report({"ERROR"}, f"Rescale: {exc}")
            return {"CANCELLED"}
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.1, window=context.window)
        wm.progress_begin(0.0, 1.0)
        context.workspace.status_text_set("ParaScale Rescale: Esc cancels")
        wm.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        job = self._job
        if event.type == "ESC" and event.value == "PRESS":
            job.cancel()
        if event.type != "TIMER" and not job.cancelling:
            return {"PASS_THROUGH"}
        context.window_manager.progress_update(job.progress)
        if not job.tick(context):
            return {"RUNNING_MODAL"}
        self._end(context)
        if job.state == "failed":
            self.report({"ERROR"}, f"Rescale: {job.error}")
            return {"CANCELLED"}
        if job.state == "cancelled":
            self.report({"WARNING"}, "Rescale cancelled: nothing changed")
            return {"CANCELLED"}
        self._report_done(job.message, job.warnings)
        return {"FINISHED"}

    def _end(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)


class PARASCALE_OT_switch_action(bpy.types.Operator):
    """Switch the target camera between its original action and the rescaled one"""

    bl_idname = "parascale.switch_action"
    bl_label = "Switch Original / Rescaled"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        if not polls.target_camera(cls, context, editable=True):
            return False
        return context.scene.parascale.result_action is not None or polls.fail(cls, "Switch: rescale first")

    def execute(self, context):
        s = context.scene.parascale
        cam = s.target_camera
        if cam is None or s.result_action is None:
            self.report({"ERROR"}, "Switch: rescale the target camera first")
            return {"CANCELLED"}
        current = cam.animation_data.action if cam.animation_data else None
        if current is s.result_action:
            show_original(context, cam, s)
            which = "original"
        else:
            compat.assign_action(cam, s.result_action)
            if s.result_lens_action is not None:
                compat.assign_action(cam.data, s.result_lens_action)
            which = "rescaled"
        self.report({"INFO"}, f"{cam.name}: {which} action")
        return {"FINISHED"}


def show_original(context, cam, s) -> None:
    """Give ``cam`` its latest original: the action it had at the last Rescale, and the pose the artist
    had set then where it was not keyed (kept until the next frame change, as Blender keeps such edits)."""
    if s.original_action is not None:
        compat.assign_action(cam, s.original_action)
    elif cam.animation_data is not None:
        cam.animation_data.action = None
    show_original_lens(cam, s)
    basis = cam.get("parascale_static_basis")
    if basis is not None:
        context.view_layer.update()  # the assigned action is evaluated first, then the un-keyed pose set over it
        cam.matrix_basis = Matrix(np.asarray(basis, dtype=np.float64).reshape(4, 4).tolist())


classes = (PARASCALE_OT_rescale, PARASCALE_OT_switch_action)
