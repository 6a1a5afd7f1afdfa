"""Depth sources against closed forms: analytic planes / spheres, map resampling, unprojection round trips."""

from __future__ import annotations

import numpy as np
import pytest
from depth_scenes import icl_frames
from hypothesis import given, settings
from hypothesis import strategies as st

from parascale_blender.core.camera import Camera, SparsePoints, Trajectory
from parascale_blender.core.depth import ConstantDepth, DepthError
from parascale_blender.core.depth_sources import (
    DepthMapSequence,
    MeshDepth,
    PointCloudDepth,
    SparsePointsDepth,
    resample_depth,
)
from parascale_blender.core.zbuffer import zbuffer
from parascale_blender.formats.depth_spec import depth_map_sequence, parse_depth_spec
from parascale_blender.formats.depthmaps import write_depth_map
from parascale_blender.formats.meshes import write_obj, write_ply
from parascale_tools.synthetic import PlanesDepth, box_mesh, box_surface_points, icosphere, look_at, plane_grid, room

CAM = Camera(1500.0, 1500.0, 960.0, 540.0, 1920, 1080).working(160)
ICL_CAM = Camera(525.0, 525.0, 319.5, 239.5, 640, 480)
ROOM_LO, ROOM_HI = (-4.0, -1.5, -4.0), (4.0, 1.5, 6.0)  # parascale_tools.synthetic.room()


def views_inside_room(count: int, seed: int = 1) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    lo, hi = np.array([-3.5, -1.2, -3.5]), np.array([3.5, 1.2, 5.5])
    return [look_at(rng.uniform(lo, hi), rng.uniform(lo, hi)) for _ in range(count)]


def inv_mean(d: np.ndarray) -> float:
    return float(np.nanmean(1.0 / d))


# ------------------------------------------------------------------ meshes


def test_mesh_box_room_matches_analytic_planes_per_pixel():
    src = MeshDepth(*box_mesh(ROOM_LO, ROOM_HI))
    truth = room()
    for c2w in views_inside_room(6):
        d, ref = src.view(c2w, CAM).depth, truth.view(c2w, CAM).depth
        assert np.isfinite(d).all()
        np.testing.assert_allclose(d, ref, rtol=1e-9)


def test_mesh_floor_passing_under_the_camera_is_clipped_not_dropped():
    V = np.array([[-100, 1.5, -100], [100, 1.5, -100], [100, 1.5, 100], [-100, 1.5, 100.0]])
    src = MeshDepth(V, np.array([[0, 1, 2], [0, 2, 3]]))
    c2w = look_at([0, 0, 0], [0, 0.6, 5])
    d = src.view(c2w, CAM).depth
    ref = PlanesDepth([((0, 1, 0), 1.5)]).view(c2w, CAM).depth
    near = np.isfinite(ref) & (ref < 50)  # the mesh ends at 100 units, the analytic plane does not
    assert near.sum() > 0.5 * ref.size
    np.testing.assert_allclose(d[near], ref[near], rtol=1e-9)
    assert np.isnan(d[np.isnan(ref)]).all()


@pytest.mark.parametrize("outside", [False, True])
def test_mesh_sphere_matches_closed_form(outside):
    R = 2.0
    centre = (0.3, -0.2, 7.0) if outside else (0.0, 0.0, 0.0)
    src = MeshDepth(*icosphere(5, R, centre))  # 20480 triangles, chord error ~ 1e-3 R
    d = src.view(np.eye(4), CAM).depth
    x, y = CAM.pixel_rays()
    ray = np.stack([x, y, np.ones_like(x)], -1)
    c = np.asarray(centre)
    a, b, cc = (ray * ray).sum(-1), -2 * ray @ c, c @ c - R * R
    disc = b * b - 4 * a * cc
    with np.errstate(invalid="ignore"):
        t = np.where(disc >= 0, ((-b - np.sqrt(disc)) if outside else (-b + np.sqrt(disc))) / (2 * a), np.nan)
    both = np.isfinite(t) & np.isfinite(d)
    assert abs(np.isfinite(d).sum() - np.isfinite(t).sum()) <= 0.03 * np.isfinite(t).sum() + 2
    np.testing.assert_allclose(d[both], t[both], rtol=0.01 if outside else 2e-3)
    assert inv_mean(d) == pytest.approx(inv_mean(t), rel=2e-3)


def test_mesh_input_errors():
    with pytest.raises(DepthError, match="no triangles"):
        MeshDepth(np.zeros((3, 3)), np.zeros((0, 3)))
    with pytest.raises(DepthError, match="indices must lie"):
        MeshDepth(np.zeros((3, 3)), np.array([[0, 1, 3]]))


# ------------------------------------------------------------------ point clouds


def test_point_cloud_plane_is_constant_depth():
    src = PointCloudDepth(plane_grid(5.0, 6.0, 0.02))
    np.testing.assert_allclose(src.view(np.eye(4), CAM).depth, ConstantDepth(5.0).view(np.eye(4), CAM).depth)


def test_point_cloud_room_matches_analytic_mean_inverse_depth():
    src = PointCloudDepth(box_surface_points(ROOM_LO, ROOM_HI, 600_000))
    brute = PointCloudDepth(src.hierarchy.points, lod_pixels=0)
    truth = room()
    for c2w in views_inside_room(6):
        view, ref = src.view(c2w, CAM), truth.view(c2w, CAM)
        assert view.coverage > 0.97  # Poisson-random samples: a few pinholes survive the fill
        # the z-buffer keeps the nearest point in each pixel, so grazing walls read slightly near
        assert inv_mean(view.depth) == pytest.approx(inv_mean(ref.depth), rel=0.03)
        assert inv_mean(view.depth) == pytest.approx(inv_mean(brute.view(c2w, CAM).depth), rel=0.01)


def test_point_cloud_errors():
    with pytest.raises(DepthError, match=r"\(N, 3\)"):
        PointCloudDepth(np.zeros((4, 2)))
    with pytest.raises(DepthError, match="no finite points"):
        PointCloudDepth(np.full((4, 3), np.nan))


# ------------------------------------------------------------------ depth maps


def test_resample_min_pooling_keeps_nan_as_nan():
    d = np.full((4, 6), 5.0)
    d[:2, :2] = np.nan  # a whole 2x2 block empty -> NaN
    d[2, 4] = np.nan  # partly empty block -> min of the rest
    d[3, 5] = 2.0
    out = resample_depth(d, 3, 2)
    assert np.isnan(out[0, 0])
    assert out[1, 2] == 2.0 and out[0, 1] == 5.0


def test_resample_upsampling_is_nearest_and_identity_is_a_copy():
    d = np.array([[1.0, 2.0], [3.0, np.nan]])
    np.testing.assert_array_equal(resample_depth(d, 4, 4), np.kron(d, np.ones((2, 2))))
    same = resample_depth(d, 2, 2)
    assert same is not d and np.array_equal(same, d, equal_nan=True)


def test_unproject_then_zbuffer_reproduces_the_map(shared_data):
    maps, poses = icl_frames(shared_data)
    d, c2w = maps[1], poses[1]
    pts = ICL_CAM.unproject(d, c2w).xyz
    assert len(pts) == np.isfinite(d).sum()
    full = zbuffer(pts, c2w, ICL_CAM)  # each point lands on its own pixel centre
    np.testing.assert_array_equal(np.isnan(full), np.isnan(d))
    np.testing.assert_allclose(full, d, rtol=1e-12)
    work = ICL_CAM.working(160)  # at the working size, the z-buffer is the min pooling of the map
    np.testing.assert_allclose(zbuffer(pts, c2w, work), resample_depth(d, work.width, work.height), rtol=1e-12)
    with pytest.raises(ValueError, match="100x480 but the camera is 640x480"):
        ICL_CAM.unproject(d[:, :100], c2w)


def test_icl_map_predicts_the_next_frame(shared_data):
    """Frame 0 unprojected and seen from frame 1's pose agrees with frame 1's own map (real data)."""
    maps, poses = icl_frames(shared_data)
    src = PointCloudDepth(ICL_CAM.unproject(maps[0], poses[0]).xyz)
    work = ICL_CAM.working(160)
    seen = src.view(poses[1], work).depth
    own = DepthMapSequence(maps[1:2]).view(poses[1], work, index=0).depth
    both = np.isfinite(seen) & np.isfinite(own)
    assert both.mean() > 0.8
    assert np.median(np.abs(seen[both] / own[both] - 1)) < 0.01
    assert inv_mean(seen) == pytest.approx(inv_mean(own), rel=0.02)


def test_depth_map_sequence_from_a_folder_with_errors(tmp_path):
    for i in range(3):
        write_depth_map(tmp_path / f"d{i}.npy", np.full((48, 64), 2.0 + i))
    src = depth_map_sequence(tmp_path)
    cam = Camera(60.0, 60.0, 32.0, 24.0, 64, 48).working(16)
    assert (cam.width, cam.height) == (16, 12)
    assert src.per_frame and src.view(np.eye(4), cam, index=0).sky is True  # a map's empty pixels are sky
    np.testing.assert_array_equal(src.view(np.eye(4), cam, index=2).depth, np.full((12, 16), 4.0))
    with pytest.raises(DepthError, match="need the frame index"):
        src.view(np.eye(4), cam)
    with pytest.raises(DepthError, match="no depth map for frame index 3: 3 maps"):
        src.view(np.eye(4), cam, index=3)
    wide = Camera(60.0, 60.0, 32.0, 18.0, 64, 36)
    with pytest.raises(DepthError, match=r"frame index 1 \(d1.npy\) is 64x48, which does not match"):
        src.view(np.eye(4), wide, index=1)
    fixed = depth_map_sequence(tmp_path, camera=Camera(60.0, 60.0, 32.0, 24.0, 128, 96))
    with pytest.raises(DepthError, match=r"frame index 0 \(d0.npy\) is 64x48 but the maps' camera is 128x96"):
        fixed.view(np.eye(4), cam, index=0)


# ------------------------------------------------------------------ sparse points


def test_sparse_fill_weights_samples_by_area_not_by_feature_count():
    """Half the view at depth 2 with 30 features, half at depth 8 with 600: E[1/Z] is 0.3125."""
    rng = np.random.default_rng(0)
    cam = Camera(80.0, 80.0, 80.0, 45.0, 160, 90)

    def half(n, z, left):
        u = rng.uniform(2, 78, n) + (0 if left else 80)
        v = rng.uniform(2, 88, n)
        return np.stack([(u - cam.cx) / cam.fx * z, (v - cam.cy) / cam.fy * z, np.full(n, z)], 1)

    xyz = np.concatenate([half(30, 2.0, True), half(600, 8.0, False)])
    pts = SparsePoints(xyz, visibility=[np.arange(len(xyz))])
    raw = SparsePointsDepth(pts, fill=0.0).view(np.eye(4), cam, index=0)
    filled = SparsePointsDepth(pts, fill=0.5).view(np.eye(4), cam, index=0)
    truth = (1 / 2 + 1 / 8) / 2
    assert raw.samples()[2].mean() < 0.5 * truth  # biased towards where features are dense
    assert filled.samples()[2].mean() == pytest.approx(truth, rel=0.1)
    assert filled.sky is False


def test_sparse_points_use_visibility_and_are_never_sky():
    xyz = np.array([[0.0, 0.0, 4.0], [0.2, 0.0, 2.0], [-0.3, 0.1, 8.0]])
    pts = SparsePoints(xyz, visibility=[np.array([0, 2]), np.array([1])])
    src = SparsePointsDepth(pts, fill=0.0)
    v0 = src.view(np.eye(4), CAM, index=0)
    assert v0.sky is False and sorted(v0.depth[np.isfinite(v0.depth)]) == [4.0, 8.0]
    assert len(v0.samples(allow_sky=True)[2]) == 2  # empty pixels are unknown, not sky
    assert src.view(np.eye(4), CAM, index=1).depth[np.isfinite(src.view(np.eye(4), CAM, 1).depth)].tolist() == [2.0]
    cloud = PointCloudDepth(xyz, radius=0.0).view(np.eye(4), CAM)
    assert len(cloud.samples(allow_sky=True)[2]) == 3  # a cloud's gaps are unknown by default ...
    marked = PointCloudDepth(xyz, radius=0.0, sky=True).view(np.eye(4), CAM)
    assert len(marked.samples(allow_sky=True)[2]) == CAM.width * CAM.height  # ... sky when the user says so
    with pytest.raises(DepthError, match="frame index"):
        src.view(np.eye(4), CAM)
    with pytest.raises(DepthError, match="no visibility for frame index 5"):
        src.view(np.eye(4), CAM, index=5)


def test_sparse_points_with_bad_visibility_name_the_frame():
    with pytest.raises(DepthError, match="frame index 1 refers to points outside 0..2"):
        SparsePointsDepth(SparsePoints(np.ones((3, 3)), visibility=[np.array([0, 2]), np.array([3])]))


def test_sparse_points_without_visibility_are_zbuffered():
    xyz = np.array([[0.0, 0.0, 4.0], [0.0, 0.0, 2.0]])  # same pixel: the nearer wins
    d = SparsePointsDepth(SparsePoints(xyz), fill=0.0).view(np.eye(4), CAM).depth
    assert np.nanmin(d) == 2.0 and np.isfinite(d).sum() == 1


# ------------------------------------------------------------------ parse_depth_spec


def test_spec_number_track_and_missing():
    assert isinstance(parse_depth_spec("2.5"), ConstantDepth)
    traj = Trajectory([0], np.eye(4)[None], [100, 100, 50, 50], 100, 100, points=SparsePoints(np.ones((4, 3))))
    assert isinstance(parse_depth_spec("track", traj), SparsePointsDepth)
    with pytest.raises(DepthError, match="no SfM points"):
        parse_depth_spec("track", traj.replace(points=None))
    with pytest.raises(DepthError, match="not a number, 'track', or an existing file"):
        parse_depth_spec("/no/such/thing.ply")
    with pytest.raises(DepthError, match="positive finite"):
        parse_depth_spec("-3")


def test_spec_files(tmp_path):
    v, t = box_mesh(ROOM_LO, ROOM_HI)
    write_ply(tmp_path / "mesh.ply", v, t)
    write_ply(tmp_path / "cloud.ply", box_surface_points(ROOM_LO, ROOM_HI, 1000))
    write_obj(tmp_path / "mesh.obj", v, t)
    np.save(tmp_path / "cloud.npy", np.random.default_rng(0).normal(size=(100, 3)))
    write_depth_map(tmp_path / "map.npy", np.full((9, 16), 3.0))
    write_depth_map(tmp_path / "map.png", np.full((9, 16), 3.0), scale=0.0002)
    (tmp_path / "maps").mkdir()
    write_depth_map(tmp_path / "maps" / "0.pfm", np.full((9, 16), 1.0))
    kinds = {
        "mesh.ply": MeshDepth,
        "mesh.obj": MeshDepth,
        "cloud.ply": PointCloudDepth,
        "cloud.npy": PointCloudDepth,
        "map.npy": DepthMapSequence,
        "maps": DepthMapSequence,
    }
    for name, kind in kinds.items():
        assert type(parse_depth_spec(str(tmp_path / name))) is kind, name
    png = parse_depth_spec(f"{tmp_path / 'map.png'}?scale=0.0002")
    np.testing.assert_allclose(png.view(np.eye(4), CAM, index=7).depth, 3.0)
    (tmp_path / "bad.ply").write_text("ply\nformat ascii 1.0\nend_header\n")
    with pytest.raises(DepthError, match=r"bad.ply.*no 'vertex' element"):
        parse_depth_spec(str(tmp_path / "bad.ply"))
    (tmp_path / "x.txt").write_text("")
    with pytest.raises(DepthError, match="unknown file type"):
        parse_depth_spec(str(tmp_path / "x.txt"))


def test_spec_colmap_folder_uses_visibility_only_for_its_own_track(shared_data):
    from parascale_blender.formats.colmap import read_colmap

    folder = shared_data / "colmap" / "kapture_maupertuis"
    traj = read_colmap(folder)
    own = parse_depth_spec(str(folder), traj)
    assert isinstance(own, SparsePointsDepth) and own.per_frame
    other = parse_depth_spec(str(folder))
    assert not other.per_frame
    cam = traj.camera(0).working(160)
    view = own.view(traj.c2w[0], cam, index=0)
    assert view.sky is False and 0 < view.coverage < 0.95  # sparse: filled near samples only
    assert np.nanmin(view.depth) > 0


# ------------------------------------------------------------------ gauge


@settings(max_examples=15, deadline=None)
@given(s=st.floats(1e-4, 1e4), view=st.integers(0, 3))
def test_scaling_scene_and_pose_scales_depth(s, view):
    """Gauge invariance: scene and camera scaled by s give depth scaled by s (cloud LOD and mesh)."""
    c2w = views_inside_room(4)[view]
    scaled = c2w.copy()
    scaled[:3, 3] *= s
    for make in (lambda k: PointCloudDepth(GAUGE_CLOUD * k), lambda k: MeshDepth(GAUGE_BOX[0] * k, GAUGE_BOX[1])):
        a = make(1.0).view(c2w, CAM).depth
        b = make(s).view(scaled, CAM).depth / s
        np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
        np.testing.assert_allclose(b, a, rtol=1e-9)


GAUGE_CLOUD = box_surface_points(ROOM_LO, ROOM_HI, 30_000, seed=5)
GAUGE_BOX = box_mesh(ROOM_LO, ROOM_HI)


def test_icl_working_size_mean_inverse_depth_matches_full_resolution(shared_data):
    """Real depth: at 160 px the map source and the unprojected cloud keep E[1/Z] of the 640x480 map
    (measured +0.45% and +1.2%: splats bleed near surfaces over depth edges by a fraction of a pixel)."""
    maps, poses = icl_frames(shared_data)
    work = ICL_CAM.working(160)
    for d, c2w in zip(maps[::2], poses[::2]):
        full = np.nanmean(1 / d)
        mapped = DepthMapSequence([d]).view(c2w, work, index=0).depth
        cloud = PointCloudDepth(ICL_CAM.unproject(d, c2w).xyz).view(c2w, work).depth
        assert inv_mean(mapped) == pytest.approx(full, rel=0.01)
        assert inv_mean(cloud) == pytest.approx(full, rel=0.02)
