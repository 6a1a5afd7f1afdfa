"""Import Reference Video and Estimate Plate Depth through the real server, in real bpy, driven by
``server_jobs.tick_scene``: the tracked reference matches the ground truth of the project's room
clip (pycolmap cannot initialise on the noisy 320x180 Cycles clip of test_clip, which Blender's
tracker solves: see the benchmark); a static clip and a cancelled job change nothing; the
estimated plate depth lands next to the plate and feeds the target point cloud and Generate;
missing weights show the server's own message."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from scenes import add_camera, animate, opencv_track, snapshot
from test_clip import N as CLIP_FRAMES
from test_video import direction_deg, rotation_deg

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from server_helpers import Server, png_bytes, textured_image  # noqa: E402

pytest.importorskip("pycolmap")
pytest.importorskip("transformers")

TERMINAL = ("done", "failed", "cancelled", "interrupted", "lost")
W, H = 64, 40
N = 10


@pytest.fixture(scope="module")
def room_clip(tmp_path_factory):
    """The project's textured room (exact renderer), 256x160, 10 frames: MP4s and true OpenCV c2w."""
    from bridge_server.tracking.video import write_video
    from parascale_blender.core.camera import Camera
    from parascale_tools.tracking.synthetic import orbit_path, render_clip

    folder = tmp_path_factory.mktemp("room")
    poses = orbit_path(N)
    images, _ = render_clip(poses, Camera(200.0, 200.0, 128.0, 80.0, 256, 160), supersample=1)
    write_video(folder / "room.mp4", images)
    write_video(folder / "static.mp4", [images[0]] * N)
    return {"video": folder / "room.mp4", "static": folder / "static.mp4", "truth": poses}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from parascale_tools.bench.gen_bench import build_tiny_depth_anything

    root = tmp_path_factory.mktemp("weights")
    build_tiny_depth_anything(root / "depth-anything" / "default", metric=True)
    srv = Server(tmp_path_factory.mktemp("jobs"), ["--weights", str(root)]).start(60)
    yield srv
    srv.stop()


@pytest.fixture
def online(scene, ext, server):
    import bpy

    p = ext("blender.prefs").get(bpy.context)
    p.server_url, p.depth_model = server.url, "default"
    return scene


def _state(scene) -> dict:
    """The scene snapshot, less the status line (which says what was submitted)."""
    snap = snapshot(scene)
    snap["settings"].pop("last_report")
    return snap


def _run(jobs, scene, kind, timeout=300.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = jobs.tick_scene(scene, kind)
        if state in TERMINAL:
            return state
        time.sleep(0.05)
    raise AssertionError(f"{kind} job did not finish")


def test_video_is_tracked_on_the_server_and_imported(online, ext, room_clip, tmp_path):
    import shutil

    import bpy

    jobs = ext("blender.server_jobs")
    video = tmp_path / "shot.mp4"
    shutil.copy(room_clip["video"], video)
    res = bpy.ops.import_scene.parascale_video(filepath=str(video), focal_length=36 * 200 / 256, frame_start=101)
    assert res == {"FINISHED"}
    st = online.parascale_jobs.track
    assert len(st.job_id) == 32 and bpy.app.timers.is_registered(jobs._timer)
    assert online.parascale.reference_camera is None, "nothing is imported before the result arrives"
    assert _run(jobs, online, "track") == "done", st.error
    assert Path(st.output_path) == tmp_path / "shot_track.json" and Path(st.output_path).is_file()
    s = online.parascale
    assert s.reference_depth == "POINTS" and len(s.reference_points.data.vertices) > 50
    ref = ext("blender.tracks").reference_trajectory(bpy.context)
    np.testing.assert_array_equal(ref.frames, np.arange(101, 101 + N))
    assert (online.frame_start, online.frame_end) == (101, 100 + N)
    truth = room_clip["truth"]
    rot, direction = rotation_deg(ref.c2w, truth), direction_deg(ref.c2w, truth)
    print(f"server (pycolmap) on MP4: rot {rot.max():.2f} deg, direction {direction[2:].max():.2f} deg")
    assert rot.max() < 1.0 and direction[2:].max() < 5.0
    up = np.array(ref.c2w[0][:3, :3]) @ np.array([0.0, -1.0, 0.0])  # the first camera's up, in Blender's world
    assert up[2] > 0.9, "Y-down SfM world turned Z-up"
    # Levelled (floor of the points, else cameras): per frame, the world up seen from the camera is the
    # room's (-y), the path's ~6° downward tilt kept. pycolmap runs single-threaded, so the solve and its
    # floor are the same every run (1.22° off: sparse points on a grazing floor; multi-threaded runs
    # varied 0.7-5.9°, see tests/test_tracking.py::test_the_same_clip_gives_the_same_track_and_level_under_load).
    cos = np.einsum("nji,j,nki,k->n", ref.c2w[:, :3, :3], [0, 0, 1.0], truth[:, :3, :3], [0, -1.0, 0])
    print(f"server track up error {np.degrees(np.arccos(np.clip(cos, -1, 1))).max():.2f} deg")
    assert np.degrees(np.arccos(np.clip(cos, -1, 1))).max() < 2.0 and "levelled from the floor" in s.reference_source
    # The footage behind the reference camera, frame 1 at scene frame 101; the per-frame solve error keyed.
    cam = s.reference_camera
    bg = cam.data.background_images
    assert cam.data.show_background_images and bg[0].source == "MOVIE_CLIP" and bg[0].clip.frame_start == 101
    assert bpy.path.abspath(bg[0].clip.filepath) == str(video) and bg[0].clip.frame_duration == N
    doc = json.loads(Path(st.output_path).read_text())
    frames, err = ext("blender.keys").fcurve_values(cam, '["solve_error_px"]')
    np.testing.assert_allclose(err, [f["solve_error_px"] for f in doc["frames"]], rtol=1e-6)
    assert f"{N} of {N} frames solved" in s.reference_source


def test_a_server_tracking_failure_can_be_retried_with_blenders_tracker(online, ext, rendered_clip, tmp_path):
    """pycolmap cannot initialise on the noisy Cycles clip; one click re-tracks it in Blender with the
    same settings (focal length, start frame) and the failed job stops being shown."""
    import shutil

    import bpy

    jobs = ext("blender.server_jobs")
    video = tmp_path / "noisy.mp4"
    shutil.copy(rendered_clip["video"], video)
    before = _state(online)
    assert not bpy.ops.parascale.track_video_in_blender.poll()
    assert bpy.ops.import_scene.parascale_video(filepath=str(video), focal_length=28, frame_start=11) == {"FINISHED"}
    assert _run(jobs, online, "track") == "failed"
    st = online.parascale_jobs.track
    assert st.error and _state(online) == before
    assert bpy.ops.parascale.track_video_in_blender.poll()
    assert bpy.ops.parascale.track_video_in_blender() == {"FINISHED"}
    assert st.state == "idle" and st.error == st.job_id == "" and "Blender tracker" in st.message
    assert not bpy.ops.parascale.track_video_in_blender.poll()
    ref = ext("blender.tracks").reference_trajectory(bpy.context)
    np.testing.assert_array_equal(ref.frames, np.arange(11, 11 + CLIP_FRAMES))
    assert rotation_deg(ref.c2w, rendered_clip["truth"]).max() < 2.0


def test_a_static_video_is_a_stationary_reference_from_the_server(online, ext, room_clip):
    """A locked-off shot is a valid (zero) move; Rescale then holds the target still."""
    import bpy

    jobs = ext("blender.server_jobs")
    assert bpy.ops.import_scene.parascale_video(filepath=str(room_clip["static"]), method="SERVER") == {"FINISHED"}
    assert _run(jobs, online, "track") == "done", online.parascale_jobs.track.error
    cam = online.parascale.reference_camera
    c2w = opencv_track(cam, online, range(1, N + 1))  # Blender's own evaluation
    assert np.all(c2w[:, :3, 3] == c2w[0, :3, 3]) and rotation_deg(c2w, c2w[:1].repeat(N, 0)).max() < 0.1


def test_cancel_tracking_changes_nothing(online, ext, room_clip):
    import bpy

    jobs = ext("blender.server_jobs")
    before = _state(online)
    assert bpy.ops.import_scene.parascale_video(filepath=str(room_clip["video"])) == {"FINISHED"}
    assert bpy.ops.parascale.server_job_cancel(kind="track") == {"FINISHED"}
    assert _run(jobs, online, "track") == "cancelled"
    assert _state(online) == before
    assert bpy.ops.parascale.server_job_cancel(kind="track") == {"CANCELLED"}


@pytest.fixture
def plate_shot(online, tmp_path):
    sc = online
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = W, H, 100
    cam = add_camera("Target", (0, -4, 1), (np.radians(90), 0, 0))
    frames = np.arange(1, 7)
    loc = np.column_stack([0.05 * (frames - 1), np.full(len(frames), -4.0), np.ones(len(frames))])
    animate(cam, frames, loc, [(np.radians(90), 0, 0)] * len(frames))
    sc.parascale.target_camera = cam
    (tmp_path / "plate.png").write_bytes(png_bytes(textured_image(W, H)))
    sc.parascale.target_plate_image = str(tmp_path / "plate.png")
    g = sc.parascale_generate
    g.source, g.output_dir = "PLATE", str(tmp_path / "clips")
    return sc


def test_estimated_plate_depth_feeds_points_and_generate(plate_shot, ext, server, tmp_path):
    import bpy

    jobs = ext("blender.server_jobs")
    assert bpy.ops.parascale.estimate_plate_depth() == {"FINISHED"}
    assert _run(jobs, plate_shot, "depth") == "done", plate_shot.parascale_jobs.depth.error
    s = plate_shot.parascale
    assert Path(s.target_plate_depth) == tmp_path / "plate_depth.npy"
    depth = np.load(s.target_plate_depth, allow_pickle=False)
    assert depth.shape == (H, W) and depth.dtype == np.float32
    valid = np.isfinite(depth) & (depth > 0)
    assert bpy.ops.parascale.points_from_depth_map() == {"FINISHED"}  # defaults to the plate + its depth
    pts = plate_shot.parascale.target_points
    assert len(pts.data.vertices) == valid.sum() and plate_shot.parascale.target_depth == "POINTS"
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    assert _run(jobs, plate_shot, "generate", 60) == "done", plate_shot.parascale_jobs.generate.error
    sent = server.jobs_dir / plate_shot.parascale_jobs.generate.job_id / "depth.npy"
    np.testing.assert_allclose(np.load(sent, allow_pickle=False), depth, equal_nan=True)  # the plate depth as is
    # A second estimate does not overwrite the first file.
    assert bpy.ops.parascale.estimate_plate_depth() == {"FINISHED"}
    assert Path(plate_shot.parascale_jobs.depth.output_path) == tmp_path / "plate_depth_001.npy"
    assert _run(jobs, plate_shot, "depth") == "done"


def test_missing_depth_weights_show_the_servers_message(plate_shot, ext):
    import bpy

    ext("blender.prefs").get(bpy.context).depth_model = "absent"
    with pytest.raises(RuntimeError, match=r"params\.model.*absent"):
        bpy.ops.parascale.estimate_plate_depth()
    assert "absent" in plate_shot.parascale_jobs.depth.error and plate_shot.parascale.target_plate_depth == ""


def test_reopening_the_blend_reattaches_to_a_depth_job(plate_shot, ext, tmp_path):
    import bpy

    jobs = ext("blender.server_jobs")
    assert bpy.ops.parascale.estimate_plate_depth() == {"FINISHED"}
    job_id = plate_shot.parascale_jobs.depth.job_id
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    jobs._JOBS.clear()  # forget it, as a restarted Blender would
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))
    scene = bpy.context.scene
    assert scene.parascale_jobs.depth.job_id == job_id and jobs.is_running(scene, "depth"), "load_post re-attaches"
    assert _run(jobs, scene, "depth") == "done"
    assert Path(scene.parascale.target_plate_depth) == tmp_path / "plate_depth.npy"
