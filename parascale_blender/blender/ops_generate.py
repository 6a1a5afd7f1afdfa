"""Generate: check the server first (``server_status``: health, then the chosen backend), then send
the baked target camera (:func:`bake.baked_trajectory`, exactly what Bake exports; cut to *Frames*,
scaled to *Width/Height*) and its first frame to the generation server, follow the job without
blocking the UI, and insert the clip as a strip named ``<camera>·<mode>·<backend>`` at the shot's
start frame.

The job is a server job (kind ``"generate"``, recorded at ``scene.parascale_jobs.generate``: one
timer, no threads, re-attached on load; tests call ``server_jobs.tick_scene`` directly). The
conditioning is a render of the first frame (ParaScale's helpers hidden) with geometry depth, or the
target step's plate and plate depth (read through ``formats.depthmaps`` and sent as world-unit
``.npy``). Strips are never inserted while a file is being saved: a result that arrives during a save
waits in a queue that ``save_post`` empties.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import tempfile

import bpy
import numpy as np
from bpy.app.handlers import persistent

from ..client import BridgeError, JobRequest, ServerJob
from . import closed_loop, compat, convert, helpers, plate, polls, server_jobs, server_status
from .bake import baked_trajectory

KIND = "generate"  # server_jobs kind
_PENDING_STRIPS: list[tuple] = []  # (scene, mp4 path, start frame, frames, strip name, strip facts)
_SAVING = False


class GenerateError(ValueError):
    """Generate cannot start; the message is for the artist."""


def target_camera(context):
    cam = context.scene.parascale.target_camera or context.scene.camera
    if cam is None:
        raise GenerateError("choose a target camera (or set the scene camera)")
    return cam


def _read(path: str, what: str) -> bytes:
    if not path or not os.path.isfile(path):
        raise GenerateError(f"{what}: file not found at {path or '(empty path)'}")
    with open(path, "rb") as f:
        return f.read()


def _npy(depth) -> bytes:
    buf = io.BytesIO()
    np.save(buf, np.asarray(depth, dtype=np.float32))
    return buf.getvalue()


def plate_conditioning(scene) -> tuple[bytes, bytes]:
    """(the plate image file's bytes, .npy of the plate depth in world units) of the target step."""
    image = plate.plate_paths(scene)[0]
    return _read(image, "plate image"), _npy(plate.read_target_plate_depth(scene))


def render_conditioning(context, cam, frame: int, depth_side: int = 512) -> tuple[bytes, bytes]:
    """(PNG of the camera's view at ``frame`` rendered with the scene engine, .npy z-depth of the
    geometry); ParaScale's helpers (point clouds…) are in neither, whatever their visibility."""
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
            with helpers.hidden_from_render(scene):
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
    return png, _npy(z)


def _output_path(context, cam, g) -> str:
    folder = g.output_dir or "//"
    if folder.startswith("//") and not bpy.data.filepath:
        raise GenerateError("save the .blend first (the clip goes next to it) or choose an output folder")
    folder = bpy.path.abspath(folder)
    try:  # the artist's Output folder, made now (the download itself never creates folders)
        os.makedirs(folder, exist_ok=True)
    except OSError as e:
        raise GenerateError(f"Output folder {folder}: {e.strerror or e}") from None
    name = bpy.path.clean_name(f"{context.scene.name}_{cam.name}_parascale")
    n = 1
    while os.path.exists(os.path.join(folder, f"{name}_{n:03d}.mp4")):
        n += 1
    return os.path.join(folder, f"{name}_{n:03d}.mp4")


def shot_trajectory(context, cam, g):
    """The baked shot as Generate sends it: its first ``g.frames`` frames (0: all) with the
    intrinsics scaled to ``g.resolution_x`` x ``g.resolution_y`` (0: the scene's resolution)."""
    traj = baked_trajectory(context, cam)
    n = g.frames or len(traj)
    if n > len(traj):
        raise GenerateError(
            f"Frames: {n} asked but the baked shot has {len(traj)} (frames {traj.frames[0]}–{traj.frames[-1]}); "
            "key the camera further or lower Frames"
        )
    if n < 2:
        raise GenerateError("Frames: a clip needs at least 2 frames")
    w, h = generation_size(g, traj.width, traj.height)
    K = traj.intrinsics[:n] * np.array([w / traj.width, h / traj.height] * 2)
    return traj.replace(frames=traj.frames[:n], c2w=traj.c2w[:n], intrinsics=K, width=w, height=h,
                        extras={k: v[:n] for k, v in traj.extras.items()})  # fmt: skip


def generation_size(g, sw: int, sh: int) -> tuple[int, int]:
    """(width, height) of the clip: Width/Height, else the shot's ``sw`` x ``sh`` (one field set:
    the other follows the shot's aspect, which must be kept)."""
    w, h = g.resolution_x or sw, g.resolution_y or sh
    if g.resolution_x and not g.resolution_y:
        h = round(sh * w / sw)
    elif g.resolution_y and not g.resolution_x:
        w = round(sw * h / sh)
    if min(w, h) < 16:
        raise GenerateError(f"Width/Height: {w}x{h} is too small (at least 16 pixels a side)")
    if abs(w / h - sw / sh) > 0.01 * sw / sh:
        raise GenerateError(
            f"Width/Height: {w}x{h} has aspect {w / h:.3f} but the shot's {sw}x{sh} has {sw / sh:.3f}; "
            "keep the aspect (or set one of them to 0)"
        )
    return int(w), int(h)


def backend_params(g) -> tuple[dict, int | None]:
    """(params, seed sent): the seed goes to backends whose schema takes one (diffusion), else None."""
    if not server_status.takes_param(g.backend, "seed"):
        return {}, None
    seed = secrets.randbelow(2**31) if g.random_seed else int(g.seed)
    return {"seed": seed}, seed


def strip_name(cam, traj, backend: str) -> str:
    """``<camera>·<mode>·<backend>``: the shot, how its move was made (the Rescale mode, or
    ``keyed`` for a camera as the artist keyed it) and the backend that generated the clip."""
    return f"{cam.name}·{traj.metadata.get('mode') or 'keyed'}·{backend}"


def start_generate(context) -> ServerJob:
    """Check the server first (health, backend), then bake, render or read the conditioning,
    build the request, submit it (one HTTP call) and start following the job."""
    from ..formats.parascale_json import dumps

    scene = context.scene
    g = scene.parascale_generate
    server_jobs.check_idle(scene, KIND)
    cam = target_camera(context)
    output = _output_path(context, cam, g)
    server_status.check(context)  # seconds, not a render, when the server is down or refuses the token
    server_status.require_backend(g.backend)
    traj = shot_trajectory(context, cam, g)
    if g.source == "PLATE":
        image, depth = plate_conditioning(scene)
    else:
        image, depth = render_conditioning(context, cam, int(traj.frames[0]))
    params, seed = backend_params(g)
    request = JobRequest(dumps(traj).encode(), image, depth, g.backend, params, 1.0, num_frames=len(traj))
    job = server_jobs.submit_now(ServerJob(server_jobs.client(context), request, output))
    options = {
        "shot_start": int(traj.frames[0]),
        "frames": len(traj),
        "strip_name": strip_name(cam, traj, g.backend),
        "seed": seed,
        "size": [traj.width, traj.height],
        "camera": cam.name,
        "mode": traj.metadata.get("mode") or "keyed",
        "backend": g.backend,
    }
    return server_jobs.follow(scene, KIND, job, source=cam.name, options=options)


def _strip_for_result(scene, st, path: str) -> str:
    """server_jobs handler: the downloaded clip becomes a strip at the shot start (after a save)."""
    opts = json.loads(st.options or "{}")
    meta = {k: opts[k] for k in STRIP_FACTS if opts.get(k) is not None}
    request_strip(scene, path, int(opts["shot_start"]), int(opts["frames"]), opts.get("strip_name"), meta)
    return st.message if st.result_name else "the clip is inserted when the save in progress ends"


STRIP_FACTS = ("camera", "mode", "backend", "seed")  # kept on a generated strip as parascale_<key>


def free_channel(scene, start: int, length: int) -> int:
    """The lowest sequencer channel with no strip overlapping frames [start, start + length)."""
    used = set()
    for s in compat.strips(scene) or ():
        if s.frame_final_start < start + length and start < s.frame_final_end:
            used.add(s.channel)
    return next(c for c in range(1, 129) if c not in used)


def request_strip(scene, path: str, start: int, frames: int, name: str | None = None, meta=None) -> None:
    """Insert the clip now, or after the save in progress."""
    if _SAVING:
        _PENDING_STRIPS.append((scene.name_full, path, start, frames, name, meta))
    else:
        insert_strip(scene, path, start, frames, name, meta)


def unique_strip_name(scene, name: str) -> str:
    """``name``, or ``name·2``, ``name·3``… : the first no strip of the scene (meta strips included) has."""
    taken = {s.name for s in compat.all_strips(scene)}
    n, out = 1, name
    while out in taken:
        n += 1
        out = f"{name}·{n}"
    return out


def insert_strip(scene, path: str, start: int, frames: int, name: str | None = None, meta: dict | None = None):
    """A movie strip for ``path`` at ``start`` in a free channel, named ``name`` (made unique; default
    the file name); the strip's name becomes the job's result name. ``meta`` (``STRIP_FACTS``: camera,
    mode, backend, seed) is kept on the strip as ``parascale_<key>`` custom properties."""
    if scene.sequence_editor is None:
        scene.sequence_editor_create()
    channel = free_channel(scene, start, frames)
    name = unique_strip_name(scene, name or os.path.basename(path))
    strip = compat.strips(scene).new_movie(name, path, channel, start, fit_method="FIT")
    for key, value in (meta or {}).items():
        strip[f"parascale_{key}"] = value
    st = server_jobs.record(scene, KIND)
    st.result_name, st.message = strip.name, f"clip in channel {channel} from frame {start}"
    if pce := closed_loop.apply(scene, strip, closed_loop.report_of(st)):
        st.message = f"{st.message}; {pce}"
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
        scene_name, path, start, frames, name, meta = _PENDING_STRIPS.pop(0)
        scene = bpy.data.scenes.get(scene_name)
        if scene is not None:
            insert_strip(scene, path, start, frames, name, meta)
            server_jobs.push_undo("Generate result")


class PARASCALE_OT_generate(bpy.types.Operator):
    """Render a clip along the baked target camera on the generation server; it lands in the sequencer"""

    bl_idname = "parascale.generate"
    bl_label = "Generate"
    bl_options = {"REGISTER"}  # submits a server job; its strip lands later, outside undo

    @classmethod
    def poll(cls, context):
        scene = context.scene
        if server_jobs.is_running(scene, KIND):
            return polls.fail(cls, "Generate: a job is running; wait for it or Cancel it")
        if scene.parascale.target_camera is None and scene.camera is None:
            return polls.fail(cls, "Generate: choose a target camera (or set the scene camera)")
        return True

    def execute(self, context):
        try:
            job = start_generate(context)
        except (ValueError, BridgeError, OSError) as e:  # GenerateError, JobError, ConversionError: ValueErrors
            server_jobs.set_error(context.scene, KIND, e)
            self.report({"ERROR"}, f"Generate: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Generate: job {(job.job_id or 'being submitted')[:8]} {job.state}")
        return {"FINISHED"}


classes = (PARASCALE_OT_generate,)
_HANDLERS = (("save_pre", _save_pre), ("save_post", _save_post))


def register() -> None:
    server_jobs.register_handler(KIND, _strip_for_result)
    for name, fn in _HANDLERS:
        getattr(bpy.app.handlers, name).append(fn)


def unregister() -> None:
    for name, fn in _HANDLERS:
        handlers = getattr(bpy.app.handlers, name)
        if fn in handlers:
            handlers.remove(fn)
