"""Import Reference Video without a server: Blender's own tracker solves a Cycles-rendered MP4 and the
solve becomes the reference (motion matches the ground-truth camera); a static clip fails clearly
and leaves the scene as it was."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import encode_mp4, opencv_track
from test_clip import N


def _no_server(ext):
    import bpy

    ext("blender.prefs").get(bpy.context).server_url = "http://127.0.0.1:9"


def rotation_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame angle (degrees) between the frame-0-relative rotations of two pose stacks."""
    ra = np.linalg.inv(a[0]) @ a
    rb = np.linalg.inv(b[0]) @ b
    cos = (np.einsum("nij,nij->n", ra[:, :3, :3], rb[:, :3, :3]) - 1) / 2
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


def direction_deg(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-frame angle (degrees) between frame-0-relative camera positions (scale-free), frames 1.."""
    pa = (np.linalg.inv(a[0]) @ a)[1:, :3, 3]
    pb = (np.linalg.inv(b[0]) @ b)[1:, :3, 3]
    cos = np.einsum("ij,ij->i", pa, pb) / (np.linalg.norm(pa, axis=1) * np.linalg.norm(pb, axis=1))
    return np.degrees(np.arccos(np.clip(cos, -1, 1)))


@pytest.mark.slow
def test_video_without_server_uses_blenders_tracker(scene, ext, rendered_clip):
    import bpy

    _no_server(ext)
    res = bpy.ops.import_scene.parascale_video(filepath=str(rendered_clip["video"]), focal_length=28)
    assert res == {"FINISHED"}
    s = scene.parascale
    assert s.reference_camera is not None and s.reference_depth == "POINTS"
    assert len(s.reference_points.data.vertices) > 20
    assert "no server" in scene.parascale_jobs.track.message, scene.parascale_jobs.track.message
    assert (scene.render.resolution_x, scene.render.resolution_y) == (320, 180)
    ref = ext("blender.tracks").reference_trajectory(bpy.context)
    np.testing.assert_array_equal(ref.frames, np.arange(1, N + 1))
    truth = rendered_clip["truth"]
    rot, direction = rotation_deg(ref.c2w, truth), direction_deg(ref.c2w, truth)
    print(f"Blender tracker on MP4: rot {rot.max():.2f} deg, direction {direction[2:].max():.2f} deg")
    assert rot.max() < 2.0
    assert direction[2:].max() < 10.0  # frames 3.. (the first steps are short: direction is noisy)


@pytest.mark.slow
def test_static_video_is_a_stationary_reference(scene, ext, rendered_clip):
    """A locked-off shot is a valid (zero) move: Blender's tripod solver, a camera that does not move."""
    import bpy

    _no_server(ext)
    assert bpy.ops.import_scene.parascale_video(filepath=str(rendered_clip["static"]), focal_length=28) == {"FINISHED"}
    assert "tripod solve (stationary)" in scene.parascale_jobs.track.message
    cam = scene.parascale.reference_camera
    c2w = opencv_track(cam, scene, range(1, N + 1))  # Blender's own evaluation
    assert np.all(c2w[:, :3, 3] == c2w[0, :3, 3]) and rotation_deg(c2w, c2w[:1].repeat(N, 0)).max() < 0.01


@pytest.mark.slow
def test_video_into_a_shot_keeps_the_shot_and_is_retimed(scene, ext, rendered_clip, tmp_path):
    """The import rules of a track file hold for a video: into a 1920x1080, 1001-1100, 24 fps shot a
    12 fps video keeps the shot's size, range and rate, starts on 1001 and plays in its own time."""
    import av
    import bpy

    _no_server(ext)
    with av.open(str(rendered_clip["video"])) as f:
        frames = [fr.to_ndarray(format="rgb24") for fr in f.decode(video=0)]
    encode_mp4(frames, tmp_path / "twelve.mp4", fps=12)
    r = scene.render
    r.resolution_x, r.resolution_y, r.fps, r.fps_base = 1920, 1080, 24, 1.0
    scene.frame_start, scene.frame_end = 1001, 1100
    res = bpy.ops.import_scene.parascale_video(filepath=str(tmp_path / "twelve.mp4"), focal_length=28)
    assert res == {"FINISHED"}
    assert (r.resolution_x, r.resolution_y, r.fps, scene.frame_start, scene.frame_end) == (1920, 1080, 24, 1001, 1100)
    seconds = (N - 1) / 12  # the footage's duration at its own rate
    ref = ext("blender.tracks").reference_trajectory(bpy.context)
    np.testing.assert_array_equal(ref.frames, np.arange(1001, 1001 + round(seconds * 24) + 1))
    msg = scene.parascale_jobs.track.message
    assert f"retimed 12 -> 24 fps ({N} -> {len(ref)} frames, {seconds:.2f} s)" in msg
    assert f"shorter than the shot: frames 1001–{1000 + len(ref)} for the shot's 1001–1100" in msg
    assert "the footage behind the camera plays frame for frame, not retimed" in msg  # Blender's clips cannot
    # Footage frame k plays at scene frame 1001 + 2k: the keyed camera there turns as the true one did.
    cam = scene.parascale.reference_camera
    c2w = opencv_track(cam, scene, range(1001, 1001 + 2 * N, 2))  # Blender's own evaluation
    assert rotation_deg(c2w, rendered_clip["truth"]).max() < 2.0


def test_server_only_without_a_server_is_a_clear_error(scene, ext, rendered_clip):
    import bpy

    _no_server(ext)
    with pytest.raises(RuntimeError, match="server not running at http://127.0.0.1:9"):
        bpy.ops.import_scene.parascale_video(filepath=str(rendered_clip["video"]), method="SERVER")


@pytest.mark.slow
def test_three_runs_keep_user_counts_and_the_active_clip(scene, ext, rendered_clip, capfd):
    """Blender's solver made each clip the scene's active clip behind RNA's back: from the second run
    on Blender logged "ID user count error". The artist's active clip stays theirs."""
    import bpy

    _no_server(ext)
    mine = bpy.data.movieclips.load(str(rendered_clip["static"]))
    scene.active_clip = mine
    capfd.readouterr()
    for _ in range(3):
        assert bpy.ops.import_scene.parascale_video(filepath=str(rendered_clip["video"]), focal_length=28) == {
            "FINISHED"
        }
    out = capfd.readouterr()
    assert "user count error" not in out.out + out.err
    assert scene.active_clip == mine and len(bpy.data.movieclips) == 4
    # every solved clip is used once, by its reference camera's background
    assert [c.users for c in bpy.data.movieclips if c != mine] == [1, 1, 1]


def test_a_file_that_is_not_a_video_is_refused_by_its_content(scene, ext, tmp_path):
    """A text file (even named .mp4) is not decoded as a few frames of noise: a clear error naming it."""
    import bpy

    _no_server(ext)
    fake = tmp_path / "notes.mp4"
    fake.write_text("camera notes\n" * 40)
    with pytest.raises(RuntimeError, match=r"notes.mp4 is not a video \(no known video container"):
        bpy.ops.import_scene.parascale_video(filepath=str(fake), method="BLENDER")
    assert len(bpy.data.movieclips) == 0 and scene.parascale.reference_camera is None


def _markers(clip) -> dict:
    return {t.name: np.array([(m.frame, *m.co) for m in t.markers if not m.mute]) for t in clip.tracking.tracks}


@pytest.mark.slow
def test_tracking_a_frame_at_a_time_equals_blenders_sequence_and_stops_cleanly(scene, ext, rendered_clip):
    """The modal import tracks a frame per tick (progress, Esc): its markers equal Blender's own
    *Track Markers* over the whole sequence on the same clip; stopped half way, the scene's range,
    frame and active clip are the artist's again."""
    import bpy

    ct = ext("blender.clip_tracker")
    mine = bpy.data.movieclips.load(str(rendered_clip["static"]))
    scene.frame_start, scene.frame_end, scene.active_clip = 1001, 1100, mine
    scene.frame_set(1042)
    opts = ct.TrackerOptions(28.0, 36.0, 1, 0)
    stepped, whole = (bpy.data.movieclips.load(str(rendered_clip["video"]), check_existing=False) for _ in range(2))
    run = ct.TrackerRun(bpy.context, stepped, opts)
    progress = []
    while not run.step(bpy.context):
        progress.append(run.progress)
    run.abort()
    assert progress == sorted(progress) and 0 < progress[0] and progress[-1] < 1 and run.progress == 1
    ref = ct.TrackerRun(bpy.context, whole, opts)  # the same settings and detection, then Blender's own sequence
    with bpy.context.temp_override(**ref.override):
        bpy.ops.clip.track_markers(backwards=False, sequence=True)
    ref.abort()
    a, b = _markers(stepped), _markers(whole)
    assert a.keys() == b.keys() and len(a) >= 8
    size = np.array(stepped.size, dtype=np.float64)
    worst = max(float(np.abs((a[k][:, 1:] - b[k][:, 1:]) * size).max()) for k in a)
    print(f"stepped vs sequence tracking: {len(a)} tracks, worst {worst:.3f} px")
    # a sequence run predicts each search from the frames before; a frame per call starts from the last marker
    assert all(np.array_equal(a[k][:, 0], b[k][:, 0]) for k in a) and worst < 0.1
    assert max(len(v) for v in a.values()) == stepped.frame_duration
    half = ct.TrackerRun(bpy.context, bpy.data.movieclips.load(str(rendered_clip["video"]), check_existing=False), opts)
    half.step(bpy.context)
    half.abort()
    assert (scene.frame_start, scene.frame_end, scene.frame_current, scene.active_clip) == (1001, 1100, 1042, mine)
