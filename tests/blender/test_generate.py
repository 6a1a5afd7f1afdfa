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
    import bpy
    from scenes import add_camera, animate

    sc = scene
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = W, H, 100
    sc.render.fps, sc.render.fps_base = 30, 1.001
    cam = add_camera("Target", (0, -4, 1), (np.radians(90), 0, 0))
    frames = np.arange(START, END + 1)
    loc = np.column_stack([0.05 * (frames - START), np.full(len(frames), -4.0), np.ones(len(frames))])
    animate(cam, frames, loc, [(np.radians(90), 0, 0)] * len(frames))
    sc.parascale.target_camera = cam
    (tmp_path / "plate.png").write_bytes(png_bytes(textured_image(W, H)))
    (tmp_path / "depth.npy").write_bytes(npy_bytes(np.full((H, W), 4.0)))
    g = sc.parascale_generate
    g.source, g.plate_image, g.plate_depth = "PLATE", str(tmp_path / "plate.png"), str(tmp_path / "depth.npy")
    g.output_dir = str(tmp_path / "clips")
    ext("blender.prefs").get(bpy.context).server_url = server.url
    return sc


def _run_to_end(gen, scene, timeout=60.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = gen.tick_scene(scene)
        if state in ("done", "failed", "cancelled", "interrupted", "lost"):
            return state
        time.sleep(0.02)
    raise AssertionError("Generate did not finish")


def test_generate_lands_a_strip_at_the_shot_start(shot, ext):
    import bpy

    gen = ext("blender.ops_generate")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    g = shot.parascale_generate
    assert len(g.job_id) == 32 and g.state in ("queued", "running", "downloading")
    assert bpy.app.timers.is_registered(ext("blender.server_jobs")._timer)
    assert _run_to_end(gen, shot) == "done", g.error
    strip = shot.sequence_editor.strips[g.strip_name]
    assert strip.type == "MOVIE" and Path(strip.filepath) == Path(g.output_path)
    assert strip.frame_final_start == START and strip.frame_final_duration == END - START + 1
    assert abs(strip.fps - 30 / 1.001) < 1e-3
    assert strip.channel == 1
    # A second clip over the same frames goes to the next free channel.
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    assert _run_to_end(gen, shot) == "done"
    assert shot.sequence_editor.strips[g.strip_name].channel == 2


def test_a_result_arriving_during_a_save_waits_for_save_post(shot, ext, tmp_path):
    import bpy

    gen = ext("blender.ops_generate")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    gen._save_pre()  # a save is in progress while the job finishes
    assert _run_to_end(gen, shot) == "done"
    assert shot.sequence_editor is None or not len(shot.sequence_editor.strips), "no strip during a save"
    assert len(gen._PENDING_STRIPS) == 1
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "saved.blend"))  # the real save_post inserts it
    scene = bpy.context.scene
    assert len(scene.sequence_editor.strips) == 1
    assert scene.sequence_editor.strips[0].frame_final_start == START


def test_reopening_the_blend_reattaches_to_the_job(shot, ext, tmp_path):
    import bpy

    gen, jobs = ext("blender.ops_generate"), ext("blender.server_jobs")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    job_id = shot.parascale_generate.job_id
    path = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    jobs._JOBS.clear()  # forget it, as a restarted Blender would
    bpy.ops.wm.open_mainfile(filepath=str(path))
    scene = bpy.context.scene
    assert scene.parascale_generate.job_id == job_id
    assert (scene.name_full, gen.KIND) in jobs._JOBS, "load_post must re-attach"
    assert _run_to_end(gen, scene) == "done"
    strip = scene.sequence_editor.strips[scene.parascale_generate.strip_name]
    assert strip.frame_final_start == START and strip.frame_final_duration == END - START + 1


def test_generate_reports_a_missing_server(shot, ext):
    import bpy

    ext("blender.prefs").get(bpy.context).server_url = "http://127.0.0.1:9"
    with pytest.raises(RuntimeError, match="server not running at http://127.0.0.1:9: start it with"):
        bpy.ops.parascale.generate()


def test_render_source_renders_the_first_frame_and_measures_geometry_depth(shot, ext, server):
    import bpy

    shot.render.engine = "CYCLES"
    shot.cycles.samples = 1
    shot.cycles.device = "CPU"
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 2, 1), rotation=(np.radians(90), 0, 0))
    shot.parascale_generate.source = "RENDER"
    assert bpy.ops.parascale.generate() == {"FINISHED"}, shot.parascale_generate.error
    folder = server.jobs_dir / shot.parascale_generate.job_id
    import cv2

    assert cv2.imread(str(folder / "image.png")).shape[:2] == (H, W)
    depth = np.load(folder / "depth.npy", allow_pickle=False)
    assert abs(depth.shape[1] / depth.shape[0] - W / H) < 0.02
    assert np.allclose(np.nanmedian(depth), 6.0, rtol=1e-3)  # the plane is 6 units in front of the camera
    assert _run_to_end(ext("blender.ops_generate"), shot) == "done"
