"""Fast tests of the tracker's pieces: options, decoding, static check, conversion, CLI errors."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pycolmap")
pytest.importorskip("av")

from bridge_server.tracking import TrackingCancelled, TrackingError, TrackOptions, track_video  # noqa: E402
from bridge_server.tracking.convert import to_trajectory  # noqa: E402
from bridge_server.tracking.motion import is_static  # noqa: E402
from bridge_server.tracking.reconstruct import MatchStats, SfmResult  # noqa: E402
from bridge_server.tracking.video import DecodedVideo, decode_video, write_video  # noqa: E402
from parascale_blender.core.camera import Camera, invert_rigid  # noqa: E402
from parascale_tools.tracking.synthetic import orbit_path, render, room_scene  # noqa: E402
from parascale_tools.tracking.track_cli import track_main  # noqa: E402

CAM = Camera(150.0, 150.0, 96.0, 64.0, 192, 128)


@pytest.fixture(scope="module")
def small_clip(tmp_path_factory):
    """8 frames 192x128 of the synthetic room, as an H.264 file, with the true poses."""
    scene = room_scene(1)
    poses = orbit_path(8)
    images = [render(scene, T, CAM, supersample=1)[0] for T in poses]
    path = tmp_path_factory.mktemp("clip") / "room.mp4"
    write_video(path, images, fps=12)
    return path, images, poses


def test_decode_keeps_frame_numbers_every_and_max(small_clip):
    path, images, _ = small_clip
    v = decode_video(path, every=3, max_frames=2)
    assert list(v.frames) == [1, 4]
    assert (v.width, v.height, v.scale) == (192, 128, 1.0)
    assert v.fps == pytest.approx(12.0)
    # Decoded frame 4 is rendered image 3 (not a neighbour): frame numbers start at 1.
    errors = [np.abs(v.images[1].astype(float) - im).mean() for im in images]
    assert int(np.argmin(errors)) == 3
    half = decode_video(path, max_side=96)
    assert half.images[0].shape == (64, 96, 3) and half.scale == pytest.approx(0.5)
    assert len(half.frames) == 8


def test_decode_errors_name_the_file(tmp_path):
    with pytest.raises(TrackingError, match="not found"):
        decode_video(tmp_path / "missing.mp4")
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"not a video at all" * 10)
    with pytest.raises(TrackingError, match="junk.mp4: cannot decode"):
        decode_video(junk)
    with pytest.raises(TrackingError, match="every"):
        decode_video(junk, every=0)


def test_static_check_separates_still_and_moving(small_clip):
    _, images, _ = small_clip
    rng = np.random.default_rng(0)
    still = [np.clip(images[0] + rng.normal(0, 2, images[0].shape), 0, 255).astype(np.uint8) for _ in range(6)]
    static, motion = is_static(still)
    assert static and motion < 0.2
    static, motion = is_static(images)
    assert not static and motion > 2.0


def test_static_clip_is_a_stationary_track(tmp_path, small_clip):
    """A locked-off shot is a valid (zero) move, not an error: identity poses, zero translation."""
    _, images, _ = small_clip
    path = tmp_path / "still.mp4"
    write_video(path, [images[2]] * 6)
    track = track_video(path)
    assert track.metadata["tripod"] == "stationary" and len(track) == 6
    assert np.all(track.centres == 0.0)
    np.testing.assert_allclose(track.c2w[:, :3, :3], np.broadcast_to(np.eye(3), (6, 3, 3)), atol=1e-3)


def test_options_from_mapping_and_validation():
    opts = TrackOptions.from_mapping({"mapper": "incremental", "intrinsics": [1, 2, 3, 4]})
    assert opts.mapper == "incremental" and opts.intrinsics == (1.0, 2.0, 3.0, 4.0)
    with pytest.raises(TrackingError, match="unknown tracking option"):
        TrackOptions.from_mapping({"mapperr": "global"})
    with pytest.raises(TrackingError, match="unknown mapper"):
        TrackOptions(mapper="magic").validate()
    with pytest.raises(TrackingError, match="intrinsics"):
        TrackOptions(intrinsics=(1, -2, 3, 4)).validate()


def test_cancel_before_reconstruction(small_clip):
    path, _, _ = small_clip
    messages = []
    with pytest.raises(TrackingCancelled):
        track_video(path, progress=lambda f, m: messages.append((f, m)), cancelled=lambda: True)
    assert messages and messages[0][0] == 0.0


def _fake_sfm(poses: np.ndarray, registered: np.ndarray, scale: float = 3.0) -> tuple[SfmResult, np.ndarray]:
    """An SfM result in a different gauge (rotated, shifted, scaled world) with points on a plane z=5."""
    rng = np.random.default_rng(0)
    xyz = np.column_stack([rng.uniform(-2, 2, 300), rng.uniform(-1, 1, 300), np.full(300, 5.0)])
    G = np.eye(4)
    a = 0.7
    G[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    G[:3, 3] = [4.0, -1.0, 2.0]
    c2w = G @ poses
    c2w[:, :3, 3] *= scale
    xyz_g = (xyz @ G[:3, :3].T + G[:3, 3]) * scale
    w2c = invert_rigid(c2w)
    w2c[~registered] = np.nan
    vis = [np.arange(300) if r else np.zeros(0, np.int64) for r in registered]
    stats = MatchStats(10, 10, 20.0, 0, 500.0)
    K = np.array([75.0, 75.0, 48.0, 32.0])
    sfm = SfmResult(registered, w2c, K, [], xyz_g, np.zeros((300, 3), np.uint8), vis, stats)
    return sfm, xyz


def test_conversion_gauge_interpolation_and_visibility():
    poses = orbit_path(6)
    registered = np.array([True, True, False, True, True, True])
    sfm, _ = _fake_sfm(poses, registered)
    video = DecodedVideo([], np.array([1, 3, 5, 7, 9, 11]), 24.0, 384, 256, scale=0.5)
    track = to_trajectory(sfm, video, "clip.mp4")
    assert list(track.frames) == [1, 3, 5, 7, 9, 11]
    assert track.metadata["interpolated_frames"] == [5]
    np.testing.assert_allclose(track.c2w[0], np.eye(4), atol=1e-12)
    np.testing.assert_allclose(track.intrinsics[0], [150, 150, 96, 64])  # back at the video's size
    # Gauge: unit = median depth seen from frame 1, so relative poses match the truth up to that scale.
    rel = np.linalg.inv(poses[0]) @ poses
    xyz = _fake_sfm(poses, registered)[1]
    depth0 = np.median((xyz @ invert_rigid(poses[0])[:3, :3].T + invert_rigid(poses[0])[:3, 3])[:, 2])
    keep = registered
    np.testing.assert_allclose(track.c2w[keep, :3, :3], rel[keep, :3, :3], atol=1e-9)
    np.testing.assert_allclose(track.c2w[keep, :3, 3], rel[keep, :3, 3] / depth0, atol=1e-9)
    # The interpolated frame lies between its neighbours and borrows the nearest visibility.
    assert np.linalg.norm(track.centres[2] - (track.centres[1] + track.centres[3]) / 2) < 0.05
    assert len(track.points.visibility[2]) == 300
    assert np.median(track.points.xyz[:, 2]) == pytest.approx(1.0, rel=0.05)


def test_conversion_refuses_too_few_registered_frames():
    poses = orbit_path(6)
    registered = np.array([True, True, False, False, False, False])
    sfm, _ = _fake_sfm(poses, registered)
    video = DecodedVideo([], np.arange(1, 7), 24.0, 192, 128, scale=1.0)
    with pytest.raises(TrackingError, match=r"only 2 of 6 frames .*3-6") as err:
        to_trajectory(sfm, video, "clip.mp4")
    assert err.value.kind == "registration"


def test_cli_errors_are_messages_not_tracebacks(tmp_path, capsys):
    assert track_main([str(tmp_path / "nope.mp4"), "-o", str(tmp_path / "t.json"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "parascale track: error:" in err and "nope.mp4" in err and "Traceback" not in err
    with pytest.raises(SystemExit) as exit_:
        track_main(["x.mp4", "--intrinsics", "1,2,3"])
    assert exit_.value.code == 2
    assert "fx,fy,cx,cy" in capsys.readouterr().err
    assert not (tmp_path / "t.json").exists()


def test_the_same_clip_gives_the_same_track_and_level_under_load(small_clip):
    """pycolmap's thread pools reorder its work run to run (the server's levelled up varied by
    degrees); the default single-threaded solve is the same bit for bit, also with the CPU busy."""
    import subprocess
    import sys

    from parascale_blender.core.orient import level

    path, _, poses = small_clip
    first = track_video(path, {"intrinsics": [CAM.fx, CAM.fy, CAM.cx, CAM.cy]})
    busy = subprocess.Popen([sys.executable, "-c", "while True: pass"])  # load: other work on the cores
    try:
        second = track_video(path, {"intrinsics": [CAM.fx, CAM.fy, CAM.cx, CAM.cy]})
    finally:
        busy.kill()
        busy.wait()
    assert len(first) == len(poses) and len(first.points.xyz) > 50
    np.testing.assert_array_equal(second.c2w, first.c2w)
    np.testing.assert_array_equal(second.points.xyz, first.points.xyz)
    ups = [level(t.c2w, t.points.xyz, "AUTO").up for t in (first, second)]
    np.testing.assert_array_equal(ups[0], ups[1])
