"""COLMAP text and binary models, checked against pycolmap (independent truth) and the shared models."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import invert_rigid
from parascale_blender.formats.colmap import read_colmap
from parascale_blender.formats.colmap_model import MODELS
from parascale_blender.formats.errors import FormatError

pycolmap = pytest.importorskip("pycolmap")


def build(seed=0, n_img=6, n_pts=60, models=("PINHOLE", "OPENCV"), names=None, sizes=None):
    """A small reconstruction made with pycolmap: cameras, registered images with poses, tracked points."""
    rng = np.random.default_rng(seed)
    rec = pycolmap.Reconstruction()
    for c, model in enumerate(models, start=1):
        w, h = (sizes or {}).get(c, (640, 480))
        cam = pycolmap.Camera.create_from_model_name(c, model, 500.0, w, h)
        p = np.array(cam.params)
        p[0] += rng.uniform(-50, 50)
        p[1:] += rng.uniform(-0.01, 0.01, len(p) - 1)
        cam.params = p
        rec.add_camera_with_trivial_rig(cam)
    X = rng.normal(size=(n_pts, 3)) + [0, 0, 8]
    for i in range(n_img):
        q = rng.normal(size=4)
        q /= np.linalg.norm(q)
        pose = pycolmap.Rigid3d(pycolmap.Rotation3d(q), rng.normal(size=3) * 3)
        name = names[i] if names else f"seq/img{3 * i + 2}.png"
        img = pycolmap.Image(
            name=name, keypoints=rng.uniform(0, 600, (n_pts, 2)), camera_id=1 + i % len(models), image_id=100 - i
        )
        rec.add_image_with_trivial_frame(img, pose)
    for j in rng.permutation(n_pts):
        track = pycolmap.Track()
        for i in range(n_img):
            if rng.random() < 0.5:
                track.add_element(100 - i, int(j))
        if track.length():
            rec.add_point3D(X[j], track, rng.integers(0, 256, 3).astype(np.uint8))
    return rec


def expected(rec):
    images = sorted(rec.images.values(), key=lambda im: (len(im.name), im.name))
    ids = sorted(rec.points3D)
    index = {pid: k for k, pid in enumerate(ids)}
    w2c = np.array([np.vstack([im.cam_from_world().matrix(), [0, 0, 0, 1]]) for im in images])
    K = []
    for im in images:
        cam = rec.cameras[im.camera_id]
        K.append([cam.focal_length_x, cam.focal_length_y, cam.principal_point_x, cam.principal_point_y])
    vis = [np.unique([index[p.point3D_id] for p in im.points2D if p.has_point3D()]).astype(np.int64) for im in images]
    xyz = np.array([rec.points3D[p].xyz for p in ids])
    rgb = np.array([rec.points3D[p].color for p in ids])
    return images, w2c, np.array(K), vis, xyz, rgb


@pytest.mark.parametrize("encoding", ["text", "binary"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_pycolmap_models_read_back_equal(tmp_path, encoding, seed):
    rec = build(seed, models=("PINHOLE", "OPENCV", "SIMPLE_RADIAL", "SIMPLE_PINHOLE", "RADIAL", "FULL_OPENCV"))
    (rec.write_text if encoding == "text" else rec.write_binary)(str(tmp_path))
    t = read_colmap(tmp_path)
    images, w2c, K, vis, xyz, rgb = expected(rec)
    assert t.metadata["encoding"] == encoding
    assert t.metadata["image_names"] == [im.name for im in images]
    np.testing.assert_array_equal(t.frames, [int(im.name[7:-4]) for im in images])  # digits of seq/imgN.png
    tol = 0 if encoding == "binary" else 1e-15  # text: 17 significant digits
    np.testing.assert_allclose(t.w2c, w2c, atol=1e-12)
    np.testing.assert_allclose(t.c2w, invert_rigid(w2c), atol=1e-12)
    np.testing.assert_allclose(t.intrinsics, K, rtol=tol)
    np.testing.assert_allclose(t.points.xyz, xyz, rtol=tol)
    np.testing.assert_array_equal(t.points.rgb, rgb)
    assert len(t.points.visibility) == len(images)
    for a, b in zip(t.points.visibility, vis, strict=True):
        np.testing.assert_array_equal(a, b)
    assert sum(len(v) for v in vis) > 0
    opencv = {k: v for k, v in t.metadata["distortion"].items() if v["model"] == "OPENCV"}
    assert opencv and all(set(v) == {"model", "k1", "k2", "p1", "p2"} for v in opencv.values())


def test_text_and_binary_agree(tmp_path):
    rec = build(5)
    (tmp_path / "t").mkdir()
    (tmp_path / "b").mkdir()
    rec.write_text(str(tmp_path / "t"))
    rec.write_binary(str(tmp_path / "b"))
    a, b = read_colmap(tmp_path / "t"), read_colmap(tmp_path / "b" / "images.bin")
    np.testing.assert_allclose(a.c2w, b.c2w, atol=1e-14)
    np.testing.assert_array_equal(a.frames, b.frames)


def test_frame_numbers_fall_back_to_order(tmp_path):
    rec = build(3, n_img=3, names=["b.jpg", "a.jpg", "c.jpg"])
    rec.write_binary(str(tmp_path))
    t = read_colmap(tmp_path)
    np.testing.assert_array_equal(t.frames, [0, 1, 2])
    assert t.metadata["image_names"] == ["a.jpg", "b.jpg", "c.jpg"]
    with pytest.raises(FormatError, match="frame numbers"):
        read_colmap(tmp_path, frame_numbers="name")


def test_natural_name_order(tmp_path):
    rec = build(4, n_img=3, names=["f10.jpg", "f2.jpg", "f1.jpg"])
    rec.write_text(str(tmp_path))
    np.testing.assert_array_equal(read_colmap(tmp_path).frames, [1, 2, 10])


def test_fisheye_is_refused(tmp_path):
    build(6, models=("OPENCV_FISHEYE",)).write_text(str(tmp_path))
    with pytest.raises(FormatError, match=r"cameras.txt:4: field 'MODEL': camera model OPENCV_FISHEYE is not"):
        read_colmap(tmp_path)


def test_mixed_image_sizes_are_refused(tmp_path):
    build(7, sizes={2: (800, 600)}).write_binary(str(tmp_path))
    with pytest.raises(FormatError, match="different sizes: 640x480 .*800x600"):
        read_colmap(tmp_path)


def test_shared_maupertuis_model(shared_data):
    t = read_colmap(shared_data / "colmap" / "kapture_maupertuis")
    assert len(t) == 4 and (t.width, t.height) == (1919, 1079)
    np.testing.assert_allclose(t.intrinsics[0], [1847.53, 1847.53, 959.5, 539.5])
    np.testing.assert_array_equal(t.frames, [0, 1, 2, 3])  # 00.jpg .. 03.jpg
    assert len(t.points.xyz) == 1039
    # the real track's reprojection: points seen by a frame project inside it, in front of the camera
    for i in range(4):
        p = t.points.xyz[t.points.visibility[i]]
        cam = (t.w2c[i, :3, :3] @ p.T).T + t.w2c[i, :3, 3]
        assert (cam[:, 2] > 0).all()
        uv = cam[:, :2] / cam[:, 2:] * t.intrinsics[i, :2] + t.intrinsics[i, 2:]
        inside = (uv >= -1).all(1) & (uv[:, 0] <= 1920) & (uv[:, 1] <= 1080)
        assert inside.mean() > 0.99
    # the tracks in points3D.txt agree with the per-image visibility taken from images.txt
    rows = [
        ln.split() for ln in (shared_data / "colmap/kapture_maupertuis/sparse/points3D.txt").read_text().splitlines()
    ]
    rows = [r for r in rows if r and not r[0].startswith("#")]
    ids = t.metadata["point_ids"]
    by_image = {iid: set() for iid in t.metadata["image_ids"]}
    for r in rows:
        for iid in r[8::2]:
            by_image[int(iid)].add(ids.index(int(r[0])))
    for i, iid in enumerate(t.metadata["image_ids"]):
        assert set(t.points.visibility[i].tolist()) == by_image[iid]


def test_kapture_t265_edgecase_fails_clearly(shared_data):
    with pytest.raises(FormatError) as ei:
        read_colmap(shared_data / "colmap" / "kapture_t265_edgecase")
    e = ei.value
    assert e.file.endswith("images.txt") and e.line == 5 and "comma-separated" in str(e)


@pytest.mark.parametrize("name", ["cameras.bin", "images.bin", "points3D.bin"])
def test_truncated_binary(tmp_path, name):
    build(8).write_binary(str(tmp_path))
    data = (tmp_path / name).read_bytes()
    for cut in (3, len(data) // 2, len(data) - 1):
        (tmp_path / name).write_bytes(data[:cut])
        with pytest.raises(FormatError) as ei:
            read_colmap(tmp_path)
        assert ei.value.file.endswith(name)
    (tmp_path / name).write_bytes(data + b"\0")
    with pytest.raises(FormatError, match="unexpected bytes"):
        read_colmap(tmp_path)


@pytest.mark.parametrize(
    "file, old, new, line, field",
    [
        ("cameras.txt", "PINHOLE 640", "PINHOLE x640", 4, "WIDTH"),
        ("cameras.txt", "PINHOLE 640", "PINHOL 640", 4, "MODEL"),
        ("images.txt", " 1 seq/img2.png", " one seq/img2.png", None, "CAMERA_ID"),
        ("points3D.txt", "\n1 ", "\n1 abc", 4, "X"),
    ],
)
def test_text_errors_name_line_and_field(tmp_path, file, old, new, line, field):
    build(9).write_text(str(tmp_path))
    text = (tmp_path / file).read_text()
    assert old in text
    (tmp_path / file).write_text(text.replace(old, new, 1))
    with pytest.raises(FormatError) as ei:
        read_colmap(tmp_path)
    assert ei.value.field == field and ei.value.file.endswith(file)
    if line is not None:
        assert ei.value.line == line


def test_model_table_matches_pycolmap():
    for name, (mid, nparams, _) in MODELS.items():
        cam = pycolmap.Camera.create_from_model_name(1, name, 100.0, 10, 10)
        assert int(cam.model) == mid and len(cam.params) == nparams, name
