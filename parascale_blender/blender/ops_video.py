"""Import Reference Video: a clip → the reference camera with its own sparse depth, in one step.

With a reachable ParaScale server offering ``track-video`` the video is uploaded and tracked there
(pycolmap) as a server job (kind ``"track"``); the resulting ParaScale JSON is saved next to the
video (or the .blend) and imported as the reference with its points. Without a server, Blender's
own Movie Clip tracker and solver run here (a modal job in the UI: a frame per tick, the status bar's
progress, Esc to stop; blocking in the ``bpy`` module) and the solve is imported through the Movie
Clip path. Either way a failure or a stop changes nothing in the scene.
"""

from __future__ import annotations

import json
import os
import time
import types

import bpy
from bpy_extras.io_utils import ImportHelper

from ..client import BridgeError, tracking_request, wire
from ..formats.magic import VIDEO_SUFFIXES, sniff_suffix
from . import clip as clip_mod
from . import clip_tracker, server_jobs, solve_qa, tracks
from .ops_reference import _set_report, import_clip_solve

KIND = "track"  # server_jobs kind
BACKEND = wire.TRACK_VIDEO
VIDEO_GLOB = "*.mp4;*.mov;*.mkv;*.avi;*.webm;*.m4v;*.ts;*.mpg"
METHOD_ITEMS = [
    ("AUTO", "Auto", "The ParaScale server when it answers, else Blender's own tracker"),
    ("SERVER", "Server (pycolmap)", "Track on the ParaScale server; fail if it does not answer"),
    ("BLENDER", "Blender tracker", "Blender's Movie Clip tracker and camera solver, here"),
]


def import_track_result(scene, st, path: str) -> str:
    """Server-jobs handler: the downloaded ParaScale JSON becomes the scene's reference, fitted to the
    shot by the import rules (:func:`tracks.fit_to_shot`) as the request decided them."""
    opts = json.loads(st.options or "{}")
    first = int(opts.get("frame_start", int(opts.get("frame_offset", 0)) + 1))  # the video's frame 1 plays there
    name = os.path.splitext(os.path.basename(st.source_path))[0] or "reference"
    traj = tracks.read_track(path, "parascale")
    traj = tracks.to_blender_world(traj, opts.get("up_axis", "Y_DOWN"))
    traj, oriented = solve_qa.orient_world(traj, opts.get("orient", "AUTO"))
    gaps = solve_qa.recorded_gaps(traj)
    traj, qa = gaps.trajectory, solve_qa.summary(gaps.trajectory, gaps, len(traj))
    timing, set_scene = opts.get("timing", "SCENE_FPS"), bool(opts.get("set_scene", True))
    fit = tracks.fit_to_shot(traj, scene, os.path.basename(path), timing, set_scene, first + int(traj.frames[0]) - 1)
    ctx = types.SimpleNamespace(scene=scene)
    cam, pts = tracks.create_reference(
        ctx, fit.trajectory, f"{name} track", fit.offset, fit.set_scene, extras=solve_qa.EXTRAS
    )
    solve_qa.mark(scene, cam, gaps, qa, fit.scene_frames)
    footage = ""
    if os.path.isfile(bpy.path.abspath(st.source_path)):
        solve_qa.set_background(cam, solve_qa.load_footage(bpy.path.abspath(st.source_path), first))
        footage = fit.footage_note
    tripod = traj.metadata.get("tripod")
    tripod = f"; tripod ({tripod}): no translation, Rescale copies the rotation" if tripod else ""
    source = f"{os.path.basename(st.source_path)} tracked on the server ({qa}; {oriented}{tripod}{fit.note}{footage})"
    tracks.use_as_reference(scene, cam, pts, source)
    st.result_name = cam.name
    msg = f"Reference: {source}, {0 if pts is None else len(pts.data.vertices)} points"  # pyright: ignore[reportAttributeAccessIssue]
    scene.parascale.last_report = msg[:200]
    return msg


def not_a_video(path: str) -> str:
    """Why the file is not a video, from its first bytes (:mod:`..formats.magic`); "" when it is one.
    Blender would otherwise decode a text file as a few frames of noise."""
    with open(path, "rb") as f:
        head = f.read(512)
    kind = sniff_suffix(head)
    if kind in VIDEO_SUFFIXES:
        return ""
    what = f"a {kind[1:].upper()} file" if kind else f"no known video container; it starts {head[:8]!r}"
    return f"{os.path.basename(path)} is not a video ({what}); choose an MP4, MOV, MKV/WebM, AVI or MPEG file"


def video_size(path: str) -> tuple[int, int]:
    """(width, height) of a video as Blender reads it (a temporary movie clip)."""
    clip = bpy.data.movieclips.load(path, check_existing=False)
    try:
        return int(clip.size[0]), int(clip.size[1])
    finally:
        bpy.data.movieclips.remove(clip)


class IMPORT_SCENE_OT_parascale_video(bpy.types.Operator, ImportHelper):
    """Track a reference video (ParaScale server, or Blender's own tracker) and use it as the reference"""

    bl_idname = "import_scene.parascale_video"
    bl_label = "Import Reference Video (ParaScale)"
    bl_options = {"REGISTER", "UNDO"}

    filter_glob: bpy.props.StringProperty(default=VIDEO_GLOB, options={"HIDDEN"})
    method: bpy.props.EnumProperty(name="Tracker", items=METHOD_ITEMS, default="AUTO")
    focal_length: bpy.props.FloatProperty(
        name="Focal length", default=0.0, min=0.0, soft_max=300.0, unit="CAMERA",
        description="Lens in mm for the sensor width; 0 = unknown (estimated)",
    )  # fmt: skip
    sensor_width: bpy.props.FloatProperty(name="Sensor width", default=36.0, min=1.0, max=100.0, unit="CAMERA")
    frame_start: bpy.props.IntProperty(
        name="Start frame", default=1,
        description="Scene frame of the video's first (unset: the shot's first frame, or 1 in a scene without a shot)",
    )  # fmt: skip
    timing: bpy.props.EnumProperty(name="Timing", items=tracks.TIMING_ITEMS, default="SCENE_FPS")
    every: bpy.props.IntProperty(name="Every", default=1, min=1, max=100, description="Server: track every n-th frame")
    max_frames: bpy.props.IntProperty(name="Max frames", default=0, min=0, max=2000, description="0 = all")
    mapper: bpy.props.EnumProperty(
        name="Mapper",
        items=[("global", "Global", "pycolmap global mapper"), ("incremental", "Incremental", "pycolmap incremental")],
        default="global",
    )
    up_axis: bpy.props.EnumProperty(name="World up", items=tracks.UP_AXIS_ITEMS, default="Y_DOWN")
    orient: bpy.props.EnumProperty(name="Orientation", items=solve_qa.ORIENT_ITEMS, default="AUTO")
    set_scene: bpy.props.BoolProperty(
        name="Set scene size and range",
        default=True,
        description="Set the scene's resolution and frame range from the video (unset: only in a scene without a shot)",
    )

    def _rules(self, scene) -> tuple[int, bool]:
        """(start frame, set_scene) as the import rules decide them when clicked (:func:`tracks.fit_to_shot`)."""
        is_set = self.properties.is_property_set
        start = tracks.import_start(scene, self.frame_start if is_set("frame_start") else None)
        set_scene = self.set_scene if is_set("set_scene") else not tracks.scene_has_shot(scene)
        return (1 if start is None else start), set_scene

    def execute(self, context):
        path = bpy.path.abspath(self.filepath)
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"Import video: file not found: {path or '(no file)'}")
            return {"CANCELLED"}
        if problem := not_a_video(path):
            self.report({"ERROR"}, f"Import video: {problem}")
            return {"CANCELLED"}
        why = ""
        if self.method != "BLENDER":
            try:
                cl = server_jobs.client(context, timeout=2.0)
                ok, why = server_jobs.backend_ready(cl, BACKEND)
            except server_jobs.JobError as e:
                ok, why = False, str(e)
            if ok:
                return self._on_server(context, cl, path)
            if self.method == "SERVER":
                self.report({"ERROR"}, f"Import video: {why}")
                return {"CANCELLED"}
        return self._in_blender(context, path, why)

    def _params(self, path: str) -> dict:
        params = {"every": self.every, "mapper": self.mapper}
        if self.max_frames:
            params["max_frames"] = self.max_frames
        if self.focal_length > 0:
            w, h = video_size(path)
            f = self.focal_length / self.sensor_width * w
            params["intrinsics"] = [f, f, w / 2.0, h / 2.0]
        return params

    def _on_server(self, context, cl, path: str):
        scene = context.scene
        try:
            server_jobs.check_idle(scene, KIND)
            stem = os.path.splitext(os.path.basename(path))[0]
            output = server_jobs.unique_path(server_jobs.output_folder(path), f"{stem}_track", ".json")
            request = tracking_request(path, os.path.basename(path), self._params(path))
            start, set_scene = self._rules(scene)
            options = {
                "frame_start": start,
                "timing": self.timing,
                "up_axis": self.up_axis,
                "orient": self.orient,
                "set_scene": set_scene,
                # for "Retry in Blender" after a server-side failure
                "focal_length": self.focal_length,
                "sensor_width": self.sensor_width,
                "max_frames": self.max_frames,
            }
            job = server_jobs.start(scene, KIND, cl, request, path, output, options)
        except (server_jobs.JobError, BridgeError, OSError) as e:
            server_jobs.set_error(scene, KIND, e)
            self.report({"ERROR"}, f"Import video: {e}")
            return {"CANCELLED"}
        msg = f"Tracking {os.path.basename(path)} on the server (job {(job.job_id or 'being submitted')[:8]})"
        _set_report(context, msg)
        self.report({"INFO"}, msg)
        return {"FINISHED"}

    def _in_blender(self, context, path: str, why: str):
        """Blender's tracker: blocking where there is no event loop (the ``bpy`` module, scripts),
        else a modal job, a frame per timer tick with the status bar's progress and Esc to stop."""
        start, set_scene = self._rules(context.scene)
        opts = clip_tracker.TrackerOptions(self.focal_length, self.sensor_width, start, self.max_frames)
        self._why, self._set_scene = why, set_scene
        if bpy.app.background or context.window is None:
            try:
                mc, info = clip_tracker.solve_video(context, path, opts)
            except clip_tracker.TrackerError as e:
                return self._failed(context, e)
            return self._land(context, mc, info)
        try:
            self._clip = clip_tracker.load_clip(path)
        except clip_tracker.TrackerError as e:
            return self._failed(context, e)
        try:
            self._run = clip_tracker.TrackerRun(context, self._clip, opts)
        except clip_tracker.TrackerError as e:
            bpy.data.movieclips.remove(self._clip)
            return self._failed(context, e)
        wm = context.window_manager
        self._timer = wm.event_timer_add(0.01, window=context.window)
        wm.modal_handler_add(self)
        wm.progress_begin(0, 1000)
        context.workspace.status_text_set(f"Tracking {os.path.basename(path)} (Esc to stop)")
        return {"RUNNING_MODAL"}

    def modal(self, context, event):
        if event.type == "ESC":
            self._end(context)
            self._run.abort()
            bpy.data.movieclips.remove(self._clip)
            self.report({"WARNING"}, "Import video: tracking stopped; nothing was changed")
            return {"CANCELLED"}
        if event.type != "TIMER":
            return {"PASS_THROUGH"}
        t_end = time.perf_counter() + 0.1  # a tick's share of the UI
        while not self._run.tracked and time.perf_counter() < t_end:
            self._run.step(context)
        context.window_manager.progress_update(int(999 * self._run.progress))
        if not self._run.tracked:
            return {"RUNNING_MODAL"}
        self._end(context)
        try:
            info = self._run.finish(context)
        except clip_tracker.TrackerError as e:
            bpy.data.movieclips.remove(self._clip)
            return self._failed(context, e)
        return self._land(context, self._clip, info)

    def _end(self, context) -> None:
        wm = context.window_manager
        wm.event_timer_remove(self._timer)
        wm.progress_end()
        context.workspace.status_text_set(None)

    def _failed(self, context, e: Exception):
        server_jobs.record(context.scene, KIND).error = str(e)[:1000]
        self.report({"ERROR"}, f"Import video: {e}")
        return {"CANCELLED"}

    def _land(self, context, mc, info: dict):
        """The solved clip becomes the reference (the clip is removed again if that fails)."""
        st = server_jobs.record(context.scene, KIND)
        try:
            source, gaps = import_clip_solve(context, mc, self._set_scene, self.orient, self.max_frames, self.timing)
        except (clip_mod.ClipError, tracks.TrackError) as e:
            bpy.data.movieclips.remove(mc)
            return self._failed(context, e)
        st.error = st.job_id = ""  # a failed server job, if any, is superseded
        st.state, st.result_name = server_jobs.IDLE, context.scene.parascale.reference_camera.name
        note = f" (no server: {self._why})" if self._why else ""
        tripod = info["tripod"] and f"; tripod solve ({info['tripod']}): no translation, Rescale copies the rotation"
        msg = f"Blender tracker: {source}{tripod}; {info['tracks']} tracks in {info['seconds']:.1f} s{note}"
        st.message = msg[:500]
        if gaps.dropped:
            self.report({"WARNING"}, f"Import video: {solve_qa.dropped_warning(gaps)}")
        self.report({"INFO"}, msg)
        return {"FINISHED"}


class PARASCALE_OT_track_video_in_blender(bpy.types.Operator):
    """Track the video of the failed server job with Blender's own tracker instead (same settings)"""

    bl_idname = "parascale.track_video_in_blender"
    bl_label = "Retry with Blender Tracker"
    bl_options = {"REGISTER", "UNDO"}

    @classmethod
    def poll(cls, context):
        st = server_jobs.record(context.scene, KIND)
        return st.state == wire.FAILED and bool(st.source_path) and not server_jobs.is_running(context.scene, KIND)

    def execute(self, context):
        st = server_jobs.record(context.scene, KIND)
        path = bpy.path.abspath(st.source_path)
        if not os.path.isfile(path):
            self.report({"ERROR"}, f"Import video: file not found: {path}")
            return {"CANCELLED"}
        o = json.loads(st.options or "{}")
        return bpy.ops.import_scene.parascale_video(  # pyright: ignore[reportAttributeAccessIssue]
            filepath=path,
            method="BLENDER",
            focal_length=float(o.get("focal_length", 0.0)),
            sensor_width=float(o.get("sensor_width", 36.0)),
            frame_start=int(o.get("frame_start", int(o.get("frame_offset", 0)) + 1)),
            max_frames=int(o.get("max_frames", 0)),
            timing=o.get("timing", "SCENE_FPS"),
            set_scene=bool(o.get("set_scene", True)),
        )


def _menu_import(self, context):
    self.layout.operator(IMPORT_SCENE_OT_parascale_video.bl_idname, text="ParaScale Reference Video (track)")


classes = (IMPORT_SCENE_OT_parascale_video, PARASCALE_OT_track_video_in_blender)


def register() -> None:
    server_jobs.register_handler(KIND, import_track_result)
    bpy.types.TOPBAR_MT_file_import.append(_menu_import)


def unregister() -> None:
    bpy.types.TOPBAR_MT_file_import.remove(_menu_import)
