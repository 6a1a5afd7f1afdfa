"""RealEstate10K / CameraCtrl / Wan-Fun / CamI2V txt: real files, conventions, round trips."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_formats_helpers import assert_same_track, random_trajectory, trajectories

from parascale_blender.core.rotation import rotation_angle
from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.re10k import read_re10k, write_re10k, write_wanfun

FAST = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
REFLECTIONS = {"orbit_left.txt", "look_down.txt"}


def _all_txt(shared_data):
    files = sorted((shared_data / "re10k").glob("*.txt"))
    files += sorted((shared_data / "trajectories").glob("*/*.txt"))
    files += sorted((shared_data / "video").glob("*/*.txt"))
    assert len(files) >= 8 + 6 + 3
    return files


def test_every_shared_pose_file_parses(shared_data):
    for f in _all_txt(shared_data):
        if f.name in REFLECTIONS:
            with pytest.raises(FormatError, match=r"determinant -1\.000 \(a reflection") as ei:
                read_re10k(f)
            assert "repair_rotations" in str(ei.value) and str(f) in str(ei.value)
            t = read_re10k(f, repair_rotations=True)
            assert np.allclose(np.linalg.det(t.c2w[:, :3, :3]), 1.0)
            assert t.metadata["repaired_rotations"] == list(range(len(t)))
            continue
        t = read_re10k(f)
        assert len(t) >= 8 and np.isfinite(t.c2w).all()
        # the file holds w2c: our c2w times the file's matrix must be the identity
        rows = np.loadtxt(f, skiprows=1, ndmin=2)
        w2c = np.concatenate([rows[:, 7:].reshape(-1, 3, 4), np.tile([[[0, 0, 0, 1.0]]], (len(rows), 1, 1))], 1)
        np.testing.assert_allclose(t.c2w @ w2c, np.tile(np.eye(4), (len(t), 1, 1)), atol=1e-5)


def test_real_re10k_fields(shared_data):
    f = shared_data / "re10k" / "0f47577ab3441480.txt"
    t = read_re10k(f, width=640, height=360)
    first = np.loadtxt(f, skiprows=1)[0]
    assert t.metadata["url"] == "https://www.youtube.com/watch?v=in69BD2eZqg"
    np.testing.assert_allclose(t.intrinsics[0], first[1:5] * [640, 360, 640, 360])
    assert t.extras["timestamp"][0] == 195562033
    assert t.fps == pytest.approx(1e6 / 266934, rel=0.01)  # timestamps are microseconds
    np.testing.assert_array_equal(t.frames, np.arange(16))
    R, tt = first[7:].reshape(3, 4)[:, :3], first[7:].reshape(3, 4)[:, 3]
    np.testing.assert_allclose(t.centres[0], -R.T @ tt, atol=1e-12)
    # default size: square pixels at 720 lines
    d = read_re10k(f)
    assert (d.width, d.height) == (1280, 720) and abs(d.intrinsics[0, 0] - d.intrinsics[0, 1]) < 1e-3


def test_real_clip_poses_agree_with_the_video(shared_data):
    """Independent truth: relative poses re-estimated from the pixels by OpenCV (SIFT + essential matrix)."""
    av = pytest.importorskip("av")
    cv2 = pytest.importorskip("cv2")
    base = shared_data / "video" / "re10k_25f" / "0bf152ef84195293_svdxt"
    frames = [f.to_ndarray(format="gray") for f in av.open(str(base) + ".mp4").decode(video=0)]
    h, w = frames[0].shape
    t = read_re10k(str(base) + ".txt", width=w, height=h)
    K = t.camera(0).K
    sift = cv2.SIFT_create()
    feats = [sift.detectAndCompute(f, None) for f in frames[::2]]
    errs, wrong, cosines, angles = [], [], [], []
    for a in range(len(feats) - 1):
        (k1, d1), (k2, d2) = feats[a], feats[a + 1]
        good = [m for m, n in cv2.BFMatcher().knnMatch(d1, d2, k=2) if m.distance < 0.8 * n.distance]
        p1 = np.float32([k1[g.queryIdx].pt for g in good])
        p2 = np.float32([k2[g.trainIdx].pt for g in good])
        E, mask = cv2.findEssentialMat(p1, p2, K, cv2.RANSAC, 0.999, 1.0)
        _, R, tr, _ = cv2.recoverPose(E, p1, p2, K, mask=mask)
        rel = t.w2c[2 * a + 2] @ t.c2w[2 * a]  # camera a -> camera b, OpenCV axes
        angles.append(np.degrees(rotation_angle(rel[:3, :3])))
        errs.append(np.degrees(rotation_angle(R.T @ rel[:3, :3])))
        wrong.append(np.degrees(rotation_angle(R.T @ rel[:3, :3].T)))  # if the file were c2w
        cosines.append(float(tr.ravel() @ rel[:3, 3]) / np.linalg.norm(rel[:3, 3]))
    assert np.median(angles) > 3.0
    assert np.median(errs) < 1.0 and np.median(wrong) > 5 * np.median(errs)
    assert np.median(cosines) > 0.97


def test_wanfun_presets(shared_data):
    for name in ("CW.txt", "Pan_Left.txt", "Zoom_In.txt"):
        t = read_re10k(shared_data / "trajectories" / "videox_fun" / name)
        assert t.metadata["variant"] == "wanfun" and len(t) == 81 and (t.width, t.height) == (1280, 720)
        np.testing.assert_allclose(t.intrinsics[:, 0], t.intrinsics[:, 1], rtol=1e-6)  # square pixels at 1280x720
    cw = read_re10k(shared_data / "trajectories" / "videox_fun" / "CW.txt")
    assert np.abs(cw.centres).max() == 0  # roll only
    axis = cw.c2w[-1, :3, :3] - cw.c2w[-1, :3, :3].T
    assert abs(axis[1, 0]) > 0.1 and abs(axis[2, 1]) < 1e-12 and abs(axis[0, 2]) < 1e-12  # about the optical axis


@pytest.mark.parametrize("size", [(672, 384), (384, 672), (512, 512), (1280, 720), (832, 480)])
def test_wanfun_sample_size_matches_videox_fun(shared_data, size):
    f = shared_data / "trajectories" / "videox_fun" / "Pan_Left.txt"
    w, h = size
    t = read_re10k(f, width=w, height=h)
    fxn, fyn, cxn, cyn = np.loadtxt(f, ndmin=2)[0, 1:5]
    # VideoX-Fun process_pose_file, restated: resize 1280x720 to cover the sample, crop the centre
    ratio = 1280 / 720
    if ratio > w / h:
        fx, fy = (h * ratio) * fxn / w * w, fyn * h
    else:
        fx, fy = fxn * w, (w / ratio) * fyn / h * h
    np.testing.assert_allclose(t.intrinsics[0], [fx, fy, cxn * w, cyn * h])
    assert t.intrinsics[0, 0] == pytest.approx(t.intrinsics[0, 1], rel=1e-6)  # square pixels survive the crop


def test_cami2v_variants(shared_data, tmp_path):
    z = read_re10k(shared_data / "trajectories" / "cami2v" / "zoom_in.txt")
    assert z.metadata["variant"] == "cami2v" and len(z) == 8
    # the 18-column, pixel-intrinsics variant without timestamp
    rows = np.loadtxt(shared_data / "trajectories" / "cami2v" / "zoom_in.txt", skiprows=1)
    px = rows[:, 1:].copy()
    px[:, :4] *= [256, 256, 256, 256]
    (tmp_path / "px.txt").write_text("https://xxx\n" + "\n".join(" ".join(map(repr, r)) for r in px) + "\n")
    p = read_re10k(tmp_path / "px.txt")
    assert p.metadata["columns"] == 18 and (p.width, p.height) == (256, 256) and "timestamp" not in p.extras
    np.testing.assert_allclose(p.intrinsics, px[:, :4])
    np.testing.assert_allclose(p.c2w, z.c2w)


@FAST
@given(trajectories(), st.booleans())
def test_re10k_round_trip(tmp_path_factory, traj, pixel):
    path = tmp_path_factory.mktemp("r") / "t.txt"
    write_re10k(traj, path, pixel_intrinsics=pixel)
    back = read_re10k(path, width=traj.width, height=traj.height, fps=traj.fps)
    assert_same_track(traj, back, atol=1e-9, frames=False)
    np.testing.assert_array_equal(back.frames, np.arange(len(traj)))
    if not pixel:
        again = read_re10k(path, width=traj.width, height=traj.height)
        np.testing.assert_allclose(again.extras["timestamp"], np.round((traj.frames - traj.frames[0]) / traj.fps * 1e6))
        if len(traj) > 1 and np.all(np.diff(traj.frames) == 1):  # fps recovered from the timestamps
            assert again.fps == pytest.approx(traj.fps, rel=1e-3 if traj.fps < 100 else 1e-2)


@FAST
@given(trajectories(square=True, centred=True), st.sampled_from([(1280, 720), (720, 1280), (1000, 1000)]))
def test_wanfun_round_trip(tmp_path_factory, traj, original):
    path = tmp_path_factory.mktemp("w") / "t.txt"
    write_wanfun(traj, path, original_width=original[0], original_height=original[1])
    lines = path.read_text().splitlines()
    assert lines[0] == "" and all(ln.startswith("0 ") for ln in lines[1:])
    back = read_re10k(path, width=traj.width, height=traj.height, original_width=original[0],
                      original_height=original[1])  # fmt: skip
    assert back.metadata["variant"] == "wanfun"
    assert_same_track(traj, back, atol=1e-9, frames=False)


def test_wanfun_writer_uses_the_original_size(tmp_path):
    traj = random_trajectory(3, 2, square=True, centred=True, size=(672, 384))
    write_wanfun(traj, tmp_path / "w.txt")
    fxn, fyn = np.loadtxt(tmp_path / "w.txt", ndmin=2)[0, 1:3]
    # at the original 1280x720 the pixels are square (the 672x384 sample is a centre crop of it)
    assert fxn * 1280 == pytest.approx(fyn * 720, rel=1e-12)
    assert fyn * 384 == pytest.approx(traj.intrinsics[0, 1], rel=1e-12)


@pytest.mark.parametrize(
    "text, line, field, words",
    [
        ("url\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 abc 0\n", 2, "r33", "expected a number, got 'abc'"),
        ("url\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 1\n", 2, None, "expected 19 columns"),
        ("url\n" + "0 0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n" * 2 + "0 1 2\n", 4, None, "expected 19 columns"),
        ("url\n0 0.5 0.5 0.5 0.5 0 0 1 0 0 nan 0 1 0 0 0 0 1 0\n", 2, "t1", "non-finite"),
        ("url\n", None, None, "no frame lines"),
        ("", None, None, "empty file"),
        ("url\n0 -0.5 0.5 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n", 2, "fx", "must be positive"),
        ("url\n0 0.5 0.5 0.5 0.5 0 0 2 0 0 0 0 1 0 0 0 0 1 0\n", None, None, "not orthonormal"),
    ],
)
def test_errors_name_line_and_field(tmp_path, text, line, field, words):
    (tmp_path / "poses.txt").write_text(text)
    with pytest.raises(FormatError) as ei:
        read_re10k(tmp_path / "poses.txt")
    e = ei.value
    assert words in str(e) and e.line == line and e.field == field, str(e)
