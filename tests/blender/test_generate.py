"""Generate round trip in real bpy: operator → real server → tick_scene() → movie strip at the shot
start with the right length and fps; strip insertion waits for a save; reopening re-attaches."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_helpers import Server, npy_bytes, png_bytes, textured_image  # noqa: E402

W, H, START, END = 96, 54, 10, 17


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("jobs")).start()
    yield srv
    srv.stop()


@pytest.fixture
def shot(scene, server, ext, tmp_path):
    """A keyed camera (frames 10-17) at 29.97 fps, a plate + depth on disk, prefs pointing at the server."""
    from scenes import add_camera, animate

    sc = scene
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = W, H, 100
    sc.render.fps, sc.render.fps_base = 30, 1.001
    cam = add_camera("Target", (0, -4, 1), (np.radians(90), 0, 0))
    frames = np.arange(START, END + 1)
    loc = np.column_stack([0.05 * (frames - START), np.full(len(frames), -4.0), np.ones(len(frames))])
    animate(cam, frames, loc, [(np.radians(90), 0, 0)] * len(frames))
    sc.parascale.target_camera = cam
    use_plate(sc, tmp_path, ext, server.url, 4.0)
    return sc


def use_plate(sc, tmp_path, ext, url: str, depth: float, size=(W, H), seed: int = 0) -> None:
    """Generate from a textured plate of ``size`` (w, h) at a constant ``depth`` (m), clips into
    ``tmp_path/clips``."""
    import bpy

    (tmp_path / "plate.png").write_bytes(png_bytes(textured_image(*size, seed=seed)))
    (tmp_path / "depth.npy").write_bytes(npy_bytes(np.full(size[::-1], depth)))
    sc.parascale.target_plate_image = str(tmp_path / "plate.png")
    sc.parascale.target_plate_depth = str(tmp_path / "depth.npy")
    g = sc.parascale_generate
    g.source, g.output_dir = "PLATE", str(tmp_path / "clips")
    ext("blender.prefs").get(bpy.context).server_url = url


def _run_to_end(jobs, scene, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = jobs.tick_scene(scene, "generate")
        if state in ("done", "failed", "cancelled", "interrupted", "lost"):
            return state
        time.sleep(0.02)
    raise AssertionError("Generate did not finish")


def test_generate_lands_a_strip_at_the_shot_start(shot, ext):
    import bpy

    jobs = ext("blender.server_jobs")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    g = shot.parascale_jobs.generate
    assert len(g.job_id) == 32 and g.state in ("queued", "running", "downloading")
    assert bpy.app.timers.is_registered(ext("blender.server_jobs")._timer)
    assert _run_to_end(jobs, shot) == "done", g.error
    strip = shot.sequence_editor.strips[g.result_name]
    assert strip.type == "MOVIE" and Path(strip.filepath) == Path(g.output_path)
    assert strip.frame_final_start == START and strip.frame_final_duration == END - START + 1
    assert abs(strip.fps - 30 / 1.001) < 1e-3
    assert strip.channel == 1
    # A second clip over the same frames goes to the next free channel.
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    assert _run_to_end(jobs, shot) == "done"
    assert shot.sequence_editor.strips[g.result_name].channel == 2


def test_ctrl_z_after_a_strip_lands_takes_back_only_the_strip(shot, ext):
    """The artist rescales, generates, the strip lands from the timer; Ctrl-Z removes the strip and
    keeps the rescaled action, Ctrl-Shift-Z brings the strip back. Operators are called as the UI
    calls them (each pushes its undo step); Blender's own undo stack does the rest."""
    import bpy
    from scenes import add_camera, animate

    jobs = ext("blender.server_jobs")
    ref = add_camera("Reference", (0, -6, 1), (np.radians(90), 0, 0))
    frames = np.arange(1, 9)
    animate(ref, frames, np.column_stack([0.1 * frames, np.full(8, -6.0), np.ones(8)]), [(np.radians(90), 0, 0)] * 8)
    bpy.ops.ed.undo_push(message="the shot")
    assert bpy.ops.parascale.reference_from_camera("EXEC_DEFAULT", True, camera="Reference") == {"FINISHED"}
    shot.parascale.target_start_frame, shot.parascale.target_depth = START, "DISTANCE"
    assert bpy.ops.parascale.rescale("EXEC_DEFAULT", True) == {"FINISHED"}
    rescaled = shot.parascale.result_action.name
    assert bpy.ops.parascale.generate("EXEC_DEFAULT", True) == {"FINISHED"}
    for _ in range(2):  # the artist works on while the job runs: undo steps that record it running
        assert bpy.ops.parascale.switch_action("EXEC_DEFAULT", True) == {"FINISHED"}
    assert _run_to_end(jobs, shot) == "done"
    name = shot.parascale_jobs.generate.result_name
    assert name in bpy.context.scene.sequence_editor.strips
    bpy.ops.ed.undo()
    scene = bpy.context.scene  # undo reloads the data
    assert scene.sequence_editor is None or name not in scene.sequence_editor.strips
    assert scene.parascale.result_action is not None and scene.parascale.result_action.name == rescaled
    assert scene.parascale.target_camera.animation_data.action.name == rescaled
    g = scene.parascale_jobs.generate
    assert g.state == "done" and "result undone" in g.message, "the job is over: not followed again on reopening"
    bpy.ops.ed.redo()
    assert name in bpy.context.scene.sequence_editor.strips


def test_a_result_arriving_during_a_save_waits_for_save_post(shot, ext, tmp_path):
    import bpy

    gen, jobs = ext("blender.ops_generate"), ext("blender.server_jobs")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    gen._save_pre()  # a save is in progress while the job finishes
    assert _run_to_end(jobs, shot) == "done"
    assert shot.sequence_editor is None or not len(shot.sequence_editor.strips), "no strip during a save"
    assert len(gen._PENDING_STRIPS) == 1
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "saved.blend"))  # the real save_post inserts it
    scene = bpy.context.scene
    assert len(scene.sequence_editor.strips) == 1
    assert scene.sequence_editor.strips[0].frame_final_start == START


def test_reopening_the_blend_reattaches_to_the_job(shot, ext, tmp_path):
    import bpy

    jobs = ext("blender.server_jobs")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    job_id = shot.parascale_jobs.generate.job_id
    path = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    jobs._JOBS.clear()  # forget it, as a restarted Blender would
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    assert scene.parascale_jobs.generate.job_id == job_id
    assert (scene.name_full, "generate") in jobs._JOBS, "load_post must re-attach"
    assert _run_to_end(jobs, scene) == "done"
    strip = scene.sequence_editor.strips[scene.parascale_jobs.generate.result_name]
    assert strip.frame_final_start == START and strip.frame_final_duration == END - START + 1


def test_generate_reports_a_missing_server(shot, ext):
    import bpy

    ext("blender.prefs").get(bpy.context).server_url = "http://127.0.0.1:9"
    with pytest.raises(RuntimeError, match="server not running at http://127.0.0.1:9: press Start in the ParaScale"):
        bpy.ops.parascale.generate()


def test_render_source_renders_the_first_frame_and_measures_geometry_depth(shot, ext, server):
    import bpy

    shot.render.engine = "CYCLES"
    shot.cycles.samples = 1
    shot.cycles.device = "CPU"
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 2, 1), rotation=(np.radians(90), 0, 0))
    shot.parascale_generate.source = "RENDER"
    assert bpy.ops.parascale.generate() == {"FINISHED"}, shot.parascale_jobs.generate.error
    folder = server.jobs_dir / shot.parascale_jobs.generate.job_id
    import cv2

    assert cv2.imread(str(folder / "image.png")).shape[:2] == (H, W)
    depth = np.load(folder / "depth.npy", allow_pickle=False)
    assert abs(depth.shape[1] / depth.shape[0] - W / H) < 0.02
    assert np.allclose(np.nanmedian(depth), 6.0, rtol=1e-3)  # the plane is 6 units in front of the camera
    assert _run_to_end(ext("blender.server_jobs"), shot) == "done"


def test_bake_writes_what_generate_sends(shot, ext, server, tmp_path):
    """One bake: the ParaScale JSON that Bake exports and the trajectory Generate uploads are both the
    shot as Blender evaluates it at every frame of the keyed range (see test_bake)."""
    import bpy
    from test_bake import assert_blender_evaluation, sparse_camera

    cam = sparse_camera(shot, START, END)
    exported = tmp_path / "baked.json"
    assert bpy.ops.export_scene.parascale_track(filepath=str(exported), format="parascale") == {"FINISHED"}
    assert bpy.ops.parascale.generate() == {"FINISHED"}, shot.parascale_jobs.generate.error
    sent = server.jobs_dir / shot.parascale_jobs.generate.job_id / "trajectory.json"
    read = ext("formats.registry").read_trajectory
    for traj in (read(exported, fmt="parascale"), read(sent, fmt="parascale")):
        assert_blender_evaluation(traj, cam, shot, START, END)
    assert _run_to_end(ext("blender.server_jobs"), shot) == "done"


def test_the_panel_shows_a_running_generate_job_and_cancels_it(shot, ext):
    """The one draw function: progress + Cancel (for this kind) while running, the outcome after."""
    import bpy
    from test_ui import RecordingLayout, _draw

    shot.parascale.target_camera.keyframe_insert("location", frame=END + 500)  # a long shot: time to cancel
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    layout = RecordingLayout([])
    log = _draw(bpy.types.PARASCALE_PT_generate, bpy.context, layout)
    assert any(kind == "progress" and text.startswith("Generate: ") for kind, text in log)
    ops = [(i, vars(p)) for i, p in layout.op_props]
    assert ("parascale.server_job_cancel", {"kind": "generate"}) in ops
    assert ("parascale.generate", {}) not in ops, "no second Generate while one runs"
    assert bpy.ops.parascale.server_job_cancel(kind="generate") == {"FINISHED"}
    assert _run_to_end(ext("blender.server_jobs"), shot) == "cancelled"
    log = _draw(bpy.types.PARASCALE_PT_generate, bpy.context)
    assert ("label", "Generate: cancelled") in log and ("operator", "parascale.generate") in log
    assert shot.sequence_editor is None or not len(shot.sequence_editor.strips)


def _saturation(png) -> np.ndarray:
    import cv2

    rgb = cv2.imread(str(png)).astype(np.float64)
    hi, lo = rgb.max(axis=2), rgb.min(axis=2)
    return np.where(hi > 0, (hi - lo) / np.maximum(hi, 1), 0.0)


def test_the_conditioning_render_leaves_out_the_point_cloud_even_unhidden(shot, ext, server, tmp_path):
    """*Points from Scene* makes a cloud (saturated depth colours) in front of a grey wall. The artist
    makes it render-visible, yet the image Generate sends shows the grey wall alone; the artist's
    settings are theirs again afterwards (after an error too), and their own F12 shows the cloud."""
    import bpy

    shot.render.engine, shot.cycles.samples, shot.cycles.device = "CYCLES", 1, "CPU"
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 2, 1), rotation=(np.radians(90), 0, 0))
    s = shot.parascale
    s.target_start_frame = START
    assert bpy.ops.parascale.points_from_scene(resolution=64) == {"FINISHED"}
    cloud = s.target_points
    coll = cloud.users_collection[0]
    cloud.hide_render = coll.hide_render = False  # the artist un-hides the cloud and its collection
    shot.parascale_generate.source = "RENDER"
    assert bpy.ops.parascale.generate() == {"FINISHED"}, shot.parascale_jobs.generate.error
    sent = server.jobs_dir / shot.parascale_jobs.generate.job_id / "image.png"
    assert _saturation(sent).max() < 0.1  # grey: no cloud
    assert not cloud.hide_render and not coll.hide_render
    with pytest.raises(ZeroDivisionError), ext("blender.helpers").hidden_from_render(shot):
        assert cloud.hide_render and coll.hide_render
        _ = 1 / 0
    assert not cloud.hide_render and not coll.hide_render
    shot.camera = s.target_camera
    shot.frame_set(START)
    shot.render.filepath = str(tmp_path / "f12.png")
    bpy.ops.render.render(write_still=True)  # the artist's own render, with the cloud they un-hid
    assert np.median(_saturation(tmp_path / "f12.png")) > 0.3  # orange under the default AgX view
    assert _run_to_end(ext("blender.server_jobs"), shot) == "done"
