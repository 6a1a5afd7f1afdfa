"""Generate: send the baked target camera and its first frame to the generation server, follow the
job without blocking the UI, and insert the clip as a movie strip at the shot's start frame.

The job is followed by ``server_jobs`` (kind ``"generate"``, mirrored into ``scene.parascale_generate``:
one timer, no threads, re-attached on load; tests call :func:`tick_scene` directly). Strips are never
inserted while a file is being saved: a result that arrives during a save waits in a queue that
``save_post`` empties.
"""

from __future__ import annotations

import io
import os
import tempfile

import bpy
import numpy as np
from bpy.app.handlers import persistent

from ..client import BridgeError, JobRequest, ServerJob
from . import compat, convert, server_jobs

KIND = "generate"  # server_jobs kind
_PENDING_STRIPS: list[tuple[str, str, int, int]] = []  # (scene, mp4 path, start frame, frames)
_SAVING = False


class GenerateError(ValueError):
    """Generate cannot start; the message is for the artist."""


class ParaScaleGenerateSettings(bpy.types.PropertyGroup):
    source: bpy.props.EnumProperty(
        name="Image",
        items=[
            ("RENDER", "Render", "Render the target camera's first frame with the scene's engine; depth from geometry"),
            ("PLATE", "Plate", "A plate image and its depth map chosen from disk"),
        ],
        default="RENDER",
    )
    plate_image: bpy.props.StringProperty(name="Plate", subtype="FILE_PATH", description="PNG or JPEG")
    plate_depth: bpy.props.StringProperty(name="Depth", subtype="FILE_PATH", description=".npy, 16-bit PNG or EXR")
    depth_scale: bpy.props.FloatProperty(name="Depth scale", default=1.0, min=1e-9, description="depth = value × scale")
    backend: bpy.props.StringProperty(name="Backend", default="warp")
    output_dir: bpy.props.StringProperty(name="Output folder", subtype="DIR_PATH", default="//")
    job_id: bpy.props.StringProperty(name="Job")
    output_path: bpy.props.StringProperty(name="Clip", subtype="FILE_PATH")
    shot_start: bpy.props.IntProperty(name="Shot start")
    frames: bpy.props.IntProperty(name="Frames")
    state: bpy.props.StringProperty(name="State")
    progress: bpy.props.FloatProperty(name="Progress", min=0.0, max=1.0, subtype="FACTOR")
    message: bpy.props.StringProperty(name="Message")
    error: bpy.props.StringProperty(name="Error")
    strip_name: bpy.props.StringProperty(name="Strip")


def target_camera(context):
    cam = context.scene.parascale.target_camera or context.scene.camera
    if cam is None:
        raise GenerateError("choose a target camera (or set the scene camera)")
    return cam


def baked_trajectory(context, cam):
    """The camera at every frame from its first to its last key, at the scene's frame rate."""
    scene = context.scene
    keys = convert.keyed_frames(cam)
    if len(keys) < 2:
        raise GenerateError(f"camera {cam.name!r} has no baked move: run Rescale (or key the camera) first")
    traj = convert.trajectory_from_camera(cam, scene, np.arange(keys[0], keys[-1] + 1), source=f"camera {cam.name!r}")
    return traj.replace(fps=scene.render.fps / scene.render.fps_base)


def _read(path: str, what: str) -> bytes:
    full = bpy.path.abspath(path)
    if not path or not os.path.isfile(full):
        raise GenerateError(f"{what}: file not found at {full or '(empty path)'}")
    with open(full, "rb") as f:
        return f.read()


def render_conditioning(context, cam, frame: int, depth_side: int = 512) -> tuple[bytes, bytes]:
    """(PNG of the camera's view at ``frame`` rendered with the scene engine, .npy z-depth of the geometry)."""
    from . import scene_depth

    scene, r = context.scene, context.scene.render
    saved = (scene.camera, scene.frame_current, r.filepath, r.image_settings.file_format, r.image_settings.color_mode)
    post = (r.use_sequencer, r.use_compositing)
    with tempfile.TemporaryDirectory(prefix="parascale-gen-") as tmp:
        path = os.path.join(tmp, "first_frame.png")
        try:
            scene.camera = cam
            scene.frame_set(frame)
            # The camera's view, not the edit: strips (e.g. an earlier generated clip) would replace it.
            r.use_sequencer = r.use_compositing = False
            r.filepath, r.image_settings.file_format, r.image_settings.color_mode = path, "PNG", "RGB"
            bpy.ops.render.render(write_still=True)
            c2w = convert.c2w_from_object(cam)
            camera = convert.camera_intrinsics(cam, scene)
            depth = scene_depth.mesh_depth(context, scene.parascale.target_collection, "Generate depth")
            z = depth.view(c2w, camera.working(depth_side)).depth
        finally:
            scene.camera, r.filepath = saved[0], saved[2]
            r.use_sequencer, r.use_compositing = post
            r.image_settings.file_format, r.image_settings.color_mode = saved[3], saved[4]
            scene.frame_set(saved[1])
        if not os.path.isfile(path):
            raise GenerateError(f"the {r.engine} render of frame {frame} produced no image")
        with open(path, "rb") as f:
            png = f.read()
    buf = io.BytesIO()
    np.save(buf, np.asarray(z, dtype=np.float32))
    return png, buf.getvalue()


def _output_path(context, cam, g) -> str:
    folder = g.output_dir or "//"
    if folder.startswith("//") and not bpy.data.filepath:
        raise GenerateError("save the .blend first (the clip goes next to it) or choose an output folder")
    folder = bpy.path.abspath(folder)
    name = bpy.path.clean_name(f"{context.scene.name}_{cam.name}_parascale")
    n = 1
    while os.path.exists(os.path.join(folder, f"{name}_{n:03d}.mp4")):
        n += 1
    return os.path.join(folder, f"{name}_{n:03d}.mp4")


def start_generate(context) -> ServerJob:
    """Build the request, submit it (one HTTP call) and start following the job."""
    from ..formats.parascale_json import dumps

    scene = context.scene
    g = scene.parascale_generate
    if server_jobs.is_running(scene, KIND):
        raise GenerateError("a Generate job is already running for this scene: cancel it first")
    cam = target_camera(context)
    try:
        traj = baked_trajectory(context, cam)
    except convert.ConversionError as e:
        raise GenerateError(str(e)) from None
    if g.source == "PLATE":
        image, depth = _read(g.plate_image, "plate image"), _read(g.plate_depth, "plate depth")
    else:
        image, depth = render_conditioning(context, cam, int(traj.frames[0]))
    output = _output_path(context, cam, g)
    request = JobRequest(dumps(traj).encode(), image, depth, g.backend, {}, g.depth_scale)
    job = ServerJob(server_jobs.client(context), request, output)
    job.tick()  # submits now, so a refusal is reported by the operator itself
    if job.state == "failed":
        raise GenerateError(job.error or "the server refused the job")
    g.output_path, g.shot_start, g.frames, g.strip_name = output, int(traj.frames[0]), len(traj), ""
    return server_jobs.follow(scene, KIND, job)


def tick_scene(scene) -> str:
    """Advance the scene's job by one step; on success insert (or queue) the strip. Returns the state."""
    return server_jobs.tick_scene(scene, KIND)


def _strip_for_result(scene, g, path: str) -> str:
    """server_jobs handler: the downloaded clip becomes a strip at the shot start (after a save)."""
    request_strip(scene, path, g.shot_start, g.frames)
    return g.message


def free_channel(scene, start: int, length: int) -> int:
    """The lowest sequencer channel with no strip overlapping frames [start, start + length)."""
    used = set()
    for s in compat.strips(scene) or ():
        if s.frame_final_start < start + length and start < s.frame_final_end:
            used.add(s.channel)
    return next(c for c in range(1, 129) if c not in used)


def request_strip(scene, path: str, start: int, frames: int) -> None:
    """Insert the clip now, or after the save in progress."""
    if _SAVING:
        _PENDING_STRIPS.append((scene.name_full, path, start, frames))
    else:
        insert_strip(scene, path, start, frames)


def insert_strip(scene, path: str, start: int, frames: int):
    """A movie strip for ``path`` at ``start`` in a free channel; its name is kept in the settings."""
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    channel = free_channel(scene, start, frames)
    strip = compat.strips(scene).new_movie(os.path.basename(path), path, channel, start, fit_method="FIT")
    scene.parascale_generate.strip_name = strip.name
    scene.parascale_generate.message = f"clip in channel {channel} from frame {start}"
    return strip


@persistent
def _save_pre(*_args) -> None:
    global _SAVING
    _SAVING = True


@persistent
def _save_post(*_args) -> None:
    global _SAVING
    _SAVING = False
    while _PENDING_STRIPS:
        name, path, start, frames = _PENDING_STRIPS.pop(0)
        scene = bpy.data.scenes.get(name)
        if scene is not None:
            insert_strip(scene, path, start, frames)


class PARASCALE_OT_generate(bpy.types.Operator):
    """Render a clip along the baked target camera on the generation server; it lands in the sequencer"""

    bl_idname = "parascale.generate"
    bl_label = "Generate"

    def execute(self, context):
        try:
            job = start_generate(context)
        except (GenerateError, BridgeError, OSError, ValueError) as e:
            context.scene.parascale_generate.error = str(e)
            self.report({"ERROR"}, f"Generate: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Generate: job {job.job_id[:8]} {job.state}")
        return {"FINISHED"}


class PARASCALE_OT_generate_cancel(bpy.types.Operator):
    """Cancel the running Generate job (it stops before its next frame)"""

    bl_idname = "parascale.generate_cancel"
    bl_label = "Cancel"

    def execute(self, context):
        if not server_jobs.cancel(context.scene, KIND):
            self.report({"WARNING"}, "Generate: no running job")
            return {"CANCELLED"}
        return {"FINISHED"}


class PARASCALE_PT_generate(bpy.types.Panel):
    bl_space_type, bl_region_type, bl_category = "VIEW_3D", "UI", "ParaScale"
    bl_label = "5 Generate"
    bl_parent_id = "PARASCALE_PT_main"

    def draw(self, context):
        g = context.scene.parascale_generate
        col = self.layout.column()
        col.prop(g, "source")
        if g.source == "PLATE":
            col.prop(g, "plate_image")
            col.prop(g, "plate_depth")
            from . import ops_depth

            ops_depth.draw(col, context)
            col.prop(g, "depth_scale")
        col.prop(g, "output_dir")
        if server_jobs.is_running(context.scene, KIND):
            col.progress(factor=g.progress, text=f"{g.state} {g.message}")
            col.operator("parascale.generate_cancel", icon="CANCEL")
        else:
            col.operator("parascale.generate", icon="RENDER_ANIMATION")
            if g.state:
                col.label(text=f"Last: {g.state} {g.strip_name}")
        if g.error:
            col.label(text=g.error, icon="ERROR")


classes = (ParaScaleGenerateSettings, PARASCALE_OT_generate, PARASCALE_OT_generate_cancel, PARASCALE_PT_generate)
_HANDLERS = (("save_pre", _save_pre), ("save_post", _save_post))


def register() -> None:
    bpy.types.Scene.parascale_generate = bpy.props.PointerProperty(type=ParaScaleGenerateSettings)
    server_jobs.register_handler(KIND, _strip_for_result, settings=lambda scene: scene.parascale_generate)
    for name, fn in _HANDLERS:
        getattr(bpy.app.handlers, name).append(fn)


def unregister() -> None:
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn in handlers:
            handlers.remove(fn)
    del bpy.types.Scene.parascale_generate
