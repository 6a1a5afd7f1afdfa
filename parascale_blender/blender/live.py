"""Live re-rescale: the rescaled move follows the target camera while the artist moves it, unwritten.

A :class:`LiveSession` reads the reference once (its Π is cached by ``core.rescale.reference_parallax``)
and solves the move again whenever the target's start pose, the target scene (its objects' transforms,
the depth settings) or the mode changes: :meth:`LiveSession.update` with ``refined=False`` is the coarse
pass (``COARSE``: a small working size, α measured every few steps), run at once while dragging; the
refined pass (``REFINED``) follows when the change settles (a timer in Blender). Each result is kept,
never written: ``path`` (the camera centres per frame, world, for the viewport's draw handler) and
``curves`` (frames, Π of the reference, Π realized, Π of the target, α per frame: what the accepted
action's Π curves will hold; the coarse pass has Π only at the steps it measured, NaN between).
:meth:`LiveSession.accept` runs the Rescale itself with the scene's own options (``ops_rescale.compute``
+ ``finish``: the same keys as pressing Rescale) and writes one new action; :meth:`LiveSession.cancel`
drops the preview; the file only changes on accept.

In Blender :func:`start` adds a ``depsgraph_update_post`` handler (a coarse update when the target
camera, the target geometry or the ParaScale settings change; a timer schedules the refined one) and,
with a window, a ``gpu`` draw handler for the path. The bpy module has no event loop or GPU context:
tests call :meth:`LiveSession.changed` / :meth:`LiveSession.update` (or the handler) themselves.
"""

from __future__ import annotations

import time
from dataclasses import replace

import bpy
import numpy as np

from ..core.rescale import PREVIEW_COARSE, PREVIEW_REFINED, RescaleResult, rescale
from . import compat, convert, ops_rescale, scene_depth

COARSE, REFINED = PREVIEW_COARSE, PREVIEW_REFINED  # see core.rescale
REFINE_DELAY = 0.25  # seconds without a change before the refined pass


class LiveSession:
    """One live preview; see the module docstring. ``result`` / ``path`` / ``curves`` are the latest
    pass's (``refined`` says which), ``seconds`` its solve time, ``error`` the last failure (a ValueError
    naming what to fix: the previous preview stays)."""

    def __init__(self, context):
        self.inputs = ops_rescale.gather(context)  # ValueError: nothing started
        self.result: RescaleResult | None = None
        self.path: np.ndarray | None = None
        self.curves: dict[str, np.ndarray] = {}
        self.refined = False
        self.seconds = self.cpu_seconds = 0.0  # the last pass's solve: wall clock, CPU time of this process
        self.error = ""
        self.busy = False
        self._state = self._fingerprint(context)

    # -- what the preview depends on
    def _target_objects(self, context) -> list:
        s = context.scene.parascale
        if s.target_depth == "SCENE":
            return scene_depth.geometry_objects(context.scene, s.target_collection)
        if s.target_depth == "POINTS" and s.target_points is not None:
            return [s.target_points]
        return []

    def _fingerprint(self, context) -> tuple:
        """(start pose, mode and depth settings, target objects' transforms): what a re-solve follows."""
        s = context.scene.parascale
        start = _start_state(s.target_camera, context.scene, s.target_start_frame)
        depth = (s.target_depth, s.target_distance, s.cloud_sky, s.mode, s.allow_sky, s.fov_match,
                 s.target_start_frame, s.target_collection, s.target_points, s.transfer_zoom)  # fmt: skip
        objects = tuple((o.name, np.array(o.matrix_world).tobytes()) for o in self._target_objects(context))
        return start, depth, objects

    def changed(self, context) -> bool:
        """True when the scene changed what the preview depends on since the last :meth:`update`."""
        return self._fingerprint(context) != self._state

    # -- solving
    def _inputs(self, context) -> ops_rescale.Inputs:
        """The session's inputs with what may have changed read again: the start pose (the camera as
        the artist sees it at the start frame), the options, and the target depth if its scene moved."""
        s = context.scene.parascale
        cam = s.target_camera
        if cam is None or cam.name != self.inputs.target:
            raise convert.ConversionError("Target: the target camera changed; start the live preview again")
        if context.scene.frame_current == s.target_start_frame:  # the evaluated pose: no frame change
            c2w, tcam, lens = convert.c2w_from_object(cam), convert.camera_intrinsics(cam, context.scene), cam.data.lens
        else:
            with ops_rescale.keeping_unkeyed_pose(cam, context.scene):
                c2w, tcam, lens = ops_rescale.target_start_lens(context)
        opts = ops_rescale.rescale_options(context)
        inputs = replace(self.inputs, start_c2w=c2w, tcam=tcam, lens=float(lens), options=opts,
                         start_frame=s.target_start_frame)  # fmt: skip
        new = self._fingerprint(context)
        if self.inputs.tdepth is not None and new[1:] != self._state[1:]:  # the target scene or settings moved
            inputs.tdepth = ops_rescale.target_depth_source(context)
        self._state = new
        return inputs

    def update(self, context, refined: bool = False) -> RescaleResult:
        """Solve the move for the scene as it is now (coarse or refined) and keep it; nothing is written."""
        inputs = self._inputs(context)
        self.inputs = inputs
        opts = replace(inputs.options, **(REFINED if refined else COARSE), progress=None)
        opts.working_size = min(opts.working_size, inputs.options.working_size)
        t0, c0 = time.perf_counter(), time.process_time()
        result = rescale(inputs.ref, inputs.rdepth, inputs.tdepth, inputs.start_c2w, inputs.tcam, opts, inputs.zoom)
        self.seconds, self.cpu_seconds = time.perf_counter() - t0, time.process_time() - c0
        self.result, self.refined, self.error = result, refined, ""
        self.path = result.trajectory.c2w[:, :3, 3].copy()
        frames = result.trajectory.frames - result.trajectory.frames[0] + inputs.start_frame
        self.curves = {"frames": frames, "pi_ref": result.pi_ref, "pi_realized": result.pi_realized,
                       "pi_target": result.pi_target, "alpha": result.alpha}  # fmt: skip
        return result

    def accept(self, context) -> tuple[str, list[str]]:
        """Rescale with the scene's own options and write one new action (as the Rescale operator)."""
        inputs, result = ops_rescale.compute(context)
        return ops_rescale.finish(context, inputs, result)

    def cancel(self) -> None:
        """Drop the preview (nothing was written)."""
        self.result, self.path, self.curves = None, None, {}


def _start_state(cam, scene, start_frame: int):
    """What the start pose follows: the camera's evaluated pose at the start frame; at another frame (the
    artist scrubs) its keys, so playing an animated target does not re-solve."""
    if cam is None:
        return b""
    ad = cam.animation_data
    if scene.frame_current == start_frame or ad is None or ad.action is None:
        return np.array(cam.matrix_world).tobytes()
    keys = []
    for fc in compat.fcurves_of(cam) or ():
        co = np.empty(2 * len(fc.keyframe_points))
        fc.keyframe_points.foreach_get("co", co)
        keys.append((fc.data_path, fc.array_index, co.tobytes()))
    return ad.action.name, tuple(keys), np.array(cam.matrix_parent_inverse).tobytes()


# -- Blender side: the session in progress, its handlers and drawing

_session: LiveSession | None = None
_draw_handles: list = []


def session() -> LiveSession | None:
    return _session


def start(context) -> LiveSession:
    """Start a live preview (a coarse pass at once) and its handlers; a running one is replaced."""
    global _session
    stop()
    live = LiveSession(context)
    live.update(context)
    _session = live
    bpy.app.handlers.depsgraph_update_post.append(on_depsgraph_update)
    if not bpy.app.background:
        _add_draw_handlers()
    return live


def stop() -> None:
    """End the preview: handlers removed, the preview dropped."""
    global _session
    if _session is not None:
        _session.cancel()
    _session = None
    if on_depsgraph_update in bpy.app.handlers.depsgraph_update_post:
        bpy.app.handlers.depsgraph_update_post.remove(on_depsgraph_update)
    if bpy.app.timers.is_registered(_refine):
        bpy.app.timers.unregister(_refine)
    _remove_draw_handlers()
    _redraw()


def on_depsgraph_update(scene, depsgraph=None) -> None:
    """depsgraph_update_post: a coarse pass when what the preview depends on changed, then the refined
    pass once nothing changed for ``REFINE_DELAY`` seconds (a timer; none without an event loop)."""
    live = _session
    if live is None or live.busy:
        return
    context = bpy.context
    if context.scene != scene or not live.changed(context):
        return
    live.busy = True  # reading the start pose may update the view layer: no re-entry
    try:
        live.update(context)
    except ValueError as exc:
        live.error = str(exc)
    finally:
        live.busy = False
    if not bpy.app.background:
        if bpy.app.timers.is_registered(_refine):
            bpy.app.timers.unregister(_refine)
        bpy.app.timers.register(_refine, first_interval=REFINE_DELAY)
    _redraw()


def _refine():
    live = _session
    if live is not None and not live.busy:
        live.busy = True
        try:
            live.update(bpy.context, refined=True)
        except ValueError as exc:
            live.error = str(exc)
        finally:
            live.busy = False
        _redraw()
    return None  # once


def _redraw() -> None:
    wm = getattr(bpy.context, "window_manager", None)
    for window in getattr(wm, "windows", ()):
        for area in window.screen.areas:
            if area.type == "VIEW_3D":
                area.tag_redraw()


def _add_draw_handlers() -> None:
    _draw_handles.append(bpy.types.SpaceView3D.draw_handler_add(_draw_path, (), "WINDOW", "POST_VIEW"))
    _draw_handles.append(bpy.types.SpaceView3D.draw_handler_add(_draw_curves, (), "WINDOW", "POST_PIXEL"))


def _remove_draw_handlers() -> None:
    while _draw_handles:
        bpy.types.SpaceView3D.draw_handler_remove(_draw_handles.pop(), "WINDOW")


def _draw_path() -> None:
    """The previewed camera path as a line with a dot per frame (as Blender draws motion paths)."""
    live = _session
    if live is None or live.path is None:
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    pts = [tuple(p) for p in live.path.astype(np.float32)]
    shader = gpu.shader.from_builtin("UNIFORM_COLOR")
    if shader is None:
        return
    colour = (1.0, 0.55, 0.1, 1.0) if live.refined else (1.0, 0.85, 0.3, 0.8)
    gpu.state.blend_set("ALPHA")
    shader.uniform_float("color", colour)
    batch_for_shader(shader, "LINE_STRIP", {"pos": pts}).draw(shader)
    gpu.state.point_size_set(3.0)
    batch_for_shader(shader, "POINTS", {"pos": pts}).draw(shader)
    gpu.state.blend_set("NONE")


def _draw_curves() -> None:
    """Π of the reference and Π realized per frame, a small graph in the viewport's lower left."""
    live = _session
    if live is None or not live.curves:
        return
    import gpu
    from gpu_extras.batch import batch_for_shader

    ref, real = live.curves["pi_ref"][1:], live.curves["pi_realized"][1:]
    top = float(np.nanmax(np.r_[ref, real, 1e-30]))
    w, h, x0, y0 = 300.0, 90.0, 20.0, 20.0
    shader = gpu.shader.from_builtin("UNIFORM_COLOR")
    if shader is None:
        return
    for series, colour in ((ref, (0.6, 0.6, 0.6, 1.0)), (real, (1.0, 0.55, 0.1, 1.0))):
        known = np.isfinite(series)  # the coarse pass measures every few steps only
        xs = x0 + w * np.flatnonzero(known) / max(len(series) - 1, 1)
        ys = y0 + h * series[known] / top
        shader.uniform_float("color", colour)
        batch_for_shader(shader, "LINE_STRIP", {"pos": list(zip(xs.tolist(), ys.tolist()))}).draw(shader)


def accept(op, context) -> set[str]:
    """End the preview and write the move (``LiveSession.accept``), reporting through the operator ``op``."""
    live = _session
    stop()
    if live is None:
        return {"CANCELLED"}
    try:
        msg, warnings = live.accept(context)
    except ValueError as exc:
        op.report({"ERROR"}, f"Rescale: {exc}")
        return {"CANCELLED"}
    for w in warnings:
        op.report({"WARNING"}, w)
    op.report({"INFO"}, msg)
    return {"FINISHED"}


class PARASCALE_OT_live_rescale(bpy.types.Operator):
    """Preview the rescaled move live while moving the target camera (Enter accepts, Esc cancels)"""

    bl_idname = "parascale.live_rescale"
    bl_label = "Live Rescale"
    bl_options = {"REGISTER", "UNDO"}  # Enter ends it FINISHED, the written action one undo step; Esc CANCELLED

    @classmethod
    def poll(cls, context):
        return ops_rescale.PARASCALE_OT_rescale.poll(context)

    def execute(self, context):  # scripts: the preview runs until live_accept / live_cancel
        try:
            start(context)
        except ValueError as exc:
            self.report({"ERROR"}, f"Live Rescale: {exc}")
            return {"CANCELLED"}
        return {"FINISHED"}

    def invoke(self, context, event):
        if self.execute(context) != {"FINISHED"}:
            return {"CANCELLED"}
        context.workspace.status_text_set("ParaScale Live Rescale: move the target camera; Enter accepts, Esc cancels")
        context.window_manager.modal_handler_add(self)
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if _session is None:  # ended by the buttons
            context.workspace.status_text_set(None)
            return {"FINISHED"}
        if event.value == "PRESS" and event.type in {"RET", "NUMPAD_ENTER", "ESC"}:
            context.workspace.status_text_set(None)
            if event.type == "ESC":
                stop()
                return {"CANCELLED"}
            return accept(self, context)
        return {"PASS_THROUGH"}


class PARASCALE_OT_live_accept(bpy.types.Operator):
    """Write the previewed move as a new action (the Rescale with the scene's settings)"""

    bl_idname = "parascale.live_accept"
    bl_label = "Accept Live Rescale"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        return _session is not None

    def execute(self, context):
        return accept(self, context)


class PARASCALE_OT_live_cancel(bpy.types.Operator):
    """End the live preview without writing anything"""

    bl_idname = "parascale.live_cancel"
    bl_label = "Cancel Live Rescale"

    @classmethod
    def poll(cls, context):
        return _session is not None

    def execute(self, context):
        stop()
        return {"FINISHED"}


classes = (PARASCALE_OT_live_rescale, PARASCALE_OT_live_accept, PARASCALE_OT_live_cancel)


def unregister() -> None:
    stop()
