"""End to end on rendered clips with exact ground truth: poses, Π, CLI output, rotation-only failure.

The clip is rendered by our own ray caster (textured walls and boxes, known cameras), encoded to
H.264 and tracked through the public entry points. Π is measured from the track's own sparse
points (z-buffered at 160 px) and compared with Π from the exact rendered depth.
"""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pycolmap")
pytest.importorskip("av")

from bridge_server.tracking import track_video  # noqa: E402
from bridge_server.tracking.video import write_video  # noqa: E402
from parascale_blender.core.camera import Camera  # noqa: E402
from parascale_blender.formats.registry import read_trajectory  # noqa: E402
from parascale_tools.tracking.evaluate import dense_views, parallax_series, pose_errors, track_parallax  # noqa: E402
from parascale_tools.tracking.synthetic import look_at, orbit_path, render_clip  # noqa: E402
from parascale_tools.tracking.track_cli import track_main  # noqa: E402

pytestmark = pytest.mark.slow
CAM = Camera(300.0, 300.0, 192.0, 128.0, 384, 256)
N_FRAMES = 16


@pytest.fixture(scope="module")
def room_clip(tmp_path_factory):
    """(video path, true c2w, true per-step Π from exact depth)."""
    poses = orbit_path(N_FRAMES)
    images, _ = render_clip(poses, CAM)
    working = CAM.working(160)
    _, depth = render_clip(poses, working, supersample=1)
    path = tmp_path_factory.mktemp("synth") / "room.mp4"
    write_video(path, images, fps=24)
    return path, poses, parallax_series(poses, dense_views(depth, working))


def _check_accuracy(track, poses, true_pi) -> dict:
    assert len(track) == N_FRAMES and track.metadata["interpolated_frames"] == []
    rot, direction = pose_errors(track.c2w, poses)
    pi = track_parallax(track)
    rel = pi[1:] / true_pi[1:] - 1.0
    assert rot.max() <= 1.0, rot
    assert np.nanmax(direction) <= 3.0, direction
    assert np.abs(rel).max() <= 0.10, rel
    return {"rot_max": rot.max(), "dir_max": np.nanmax(direction), "pi_err_max": np.abs(rel).max()}


def test_global_mapper_self_calibrated(room_clip):
    path, poses, true_pi = room_clip
    progress = []
    track = track_video(path, {"mapper": "global"}, progress=lambda f, m: progress.append(f))
    _check_accuracy(track, poses, true_pi)
    # Per-frame solve error: every frame has one, small, and their observation-weighted mean agrees
    # with pycolmap's own mean reprojection error (a mean over points: same residuals, other weights).
    err = track.extras["solve_error_px"]
    counts = np.array([len(v) for v in track.points.visibility])
    assert np.isfinite(err).all() and (err < 2.0).all()
    mean = (err * counts).sum() / counts.sum()
    np.testing.assert_allclose(mean, track.metadata["mean_reprojection_error_px"], rtol=0.1)
    print(f"server per-frame error {np.round(err, 3)} px")
    # Self-calibration finds the true focal length; the principal point stays at the centre.
    np.testing.assert_allclose(track.intrinsics[0], [300, 300, 192, 128], rtol=0.01)
    assert progress[0] == 0.0 and progress[-1] == 1.0 and np.all(np.diff(progress) >= 0)


def test_incremental_mapper_known_intrinsics_via_cli(room_clip, tmp_path, capsys):
    path, poses, true_pi = room_clip
    out = tmp_path / "room.track.json"
    code = track_main([str(path), "-o", str(out), "--mapper", "incremental", "--intrinsics", "300,300,192,128"])
    assert code == 0, capsys.readouterr().err
    track = read_trajectory(out)  # the ParaScale JSON, read back by the formats package
    assert track.points is not None and len(track.points.visibility) == N_FRAMES
    assert min(len(v) for v in track.points.visibility) > 200
    np.testing.assert_allclose(track.intrinsics, np.tile([300, 300, 192, 128], (N_FRAMES, 1)))
    _check_accuracy(track, poses, true_pi)
    assert "incremental" in track.metadata["tracker"]


def test_every_other_frame_keeps_frame_numbers(room_clip):
    path, poses, _ = room_clip
    track = track_video(path, {"every": 2, "intrinsics": (300, 300, 192, 128)})
    assert list(track.frames) == list(range(1, N_FRAMES + 1, 2))
    rot, direction = pose_errors(track.c2w, poses[::2])
    assert rot.max() <= 1.0 and np.nanmax(direction) <= 3.0


@pytest.mark.parametrize("intrinsics", [None, (220.0, 220.0, 144.0, 96.0)])
def test_pure_rotation_is_a_tripod_track(tmp_path, intrinsics):
    """A tripod pan has no parallax for SfM, but it is a valid move: zero translation and the true
    rotations (from homographies), the focal length recovered when not given."""
    cam = Camera(220.0, 220.0, 144.0, 96.0, 288, 192)
    yaw = np.radians(np.linspace(-12, 12, 10))
    poses = np.stack([look_at((0, 0, 0.5), (4 * np.sin(a), 0.4, 0.5 + 4 * np.cos(a))) for a in yaw])
    images, _ = render_clip(poses, cam)
    path = tmp_path / "pan.mp4"
    write_video(path, images)
    track = track_video(path, {"intrinsics": intrinsics} if intrinsics else None)
    assert track.metadata["tripod"] == "rotation only" and len(track) == len(poses)
    assert np.all(track.centres == 0.0)
    rot, _ = pose_errors(track.c2w, poses)
    print(f"tripod pan: rotation error {rot.max():.3f} deg max, focal {track.intrinsics[0, 0]:.1f} px (true 220)")
    assert rot.max() < 0.3
    np.testing.assert_allclose(track.intrinsics[0, :2], 220.0, rtol=0.03)
    assert np.isfinite(track.extras["solve_error_px"][1:]).all() and (track.extras["solve_error_px"][1:] < 0.5).all()
