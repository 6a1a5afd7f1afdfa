"""Z-buffer and level of detail: closed forms, occlusion, the splat rule, LOD vs brute force."""

from __future__ import annotations

import numpy as np
import pytest
from depth_scenes import icl_frames

from parascale_blender.core.camera import Camera
from parascale_blender.core.zbuffer import PointHierarchy, fill_pinholes, morton_codes, rasterise, to_camera, zbuffer
from parascale_tools.synthetic import PlanesDepth, look_at, plane_grid, room_cloud, room_views, sphere_points

CAM = Camera(1500.0, 1500.0, 960.0, 540.0, 1920, 1080).working(160)  # 160 x 90, fx = 125
EYE = np.eye(4)


def inv_mean(depth: np.ndarray) -> float:
    return float(np.nanmean(1.0 / depth))


def render(pts: np.ndarray, lod: bool, c2w: np.ndarray = EYE) -> np.ndarray:
    """Either path with the same automatic splat radius."""
    h = PointHierarchy(pts)
    return h.view(c2w, CAM) if lod else zbuffer(h.points, c2w, CAM, radius=h.radius)


def test_working_camera_is_160x90():
    assert (CAM.width, CAM.height) == (160, 90)


@pytest.mark.parametrize("lod", [False, True])
def test_fronto_parallel_plane_every_pixel_at_its_depth(lod):
    Z = 7.0
    pts = plane_grid(Z, half=6.0, spacing=0.02)  # 0.36 px apart at this depth: dense
    depth = render(pts, lod)
    assert np.isfinite(depth).all()
    np.testing.assert_allclose(depth, Z, rtol=1e-12)


def test_sparse_plane_seen_close_needs_the_auto_splat():
    Z = 2.0
    pts = plane_grid(Z, half=2.0, spacing=0.05)  # 3.1 px apart: points alone leave holes
    bare = zbuffer(pts, EYE, CAM, radius=0.0)
    assert np.isnan(bare).mean() > 0.5
    h = PointHierarchy(pts)  # auto radius ~ spacing / 2
    assert np.median(h.radius) == pytest.approx(1.5 * 0.025, rel=0.2)
    for depth in (zbuffer(h.points, EYE, CAM, radius=h.radius), h.view(EYE, CAM)):
        assert np.isfinite(depth).all()
        np.testing.assert_allclose(depth, Z)


def sphere_depth_from_outside(camera: Camera, centre, radius) -> np.ndarray:
    """Exact z-depth of a sphere seen from the origin (camera looking +z), NaN off the sphere."""
    x, y = camera.pixel_rays()
    d = np.stack([x, y, np.ones_like(x)], -1)  # ray parameter = z-depth
    c = np.asarray(centre, float)
    a = (d * d).sum(-1)
    b = -2 * (d @ c)
    disc = b * b - 4 * a * (c @ c - radius**2)
    with np.errstate(invalid="ignore"):
        t = (-b - np.sqrt(disc)) / (2 * a)
    return np.where(disc >= 0, t, np.nan)


@pytest.mark.parametrize("lod", [False, True])
def test_sphere_from_inside_matches_closed_form(lod):
    R = 3.0
    pts = sphere_points(400_000, R)
    depth = render(pts, lod)
    x, y = CAM.pixel_rays()
    exact = R / np.sqrt(1 + x * x + y * y)
    assert np.isfinite(depth).all()
    np.testing.assert_allclose(depth, exact, rtol=0.01)
    assert inv_mean(depth) == pytest.approx(inv_mean(exact), rel=2e-3)


@pytest.mark.parametrize("lod", [False, True])
def test_sphere_from_outside_matches_ray_casting(lod):
    centre, R = (0.4, -0.2, 6.0), 1.5
    pts = sphere_points(300_000, R, centre)
    depth = render(pts, lod)
    exact = sphere_depth_from_outside(CAM, centre, R)
    both = np.isfinite(depth) & np.isfinite(exact)
    # coverage agrees except along the silhouette (one pixel ring)
    assert abs(np.isfinite(depth).sum() - np.isfinite(exact).sum()) < 0.1 * np.isfinite(exact).sum()
    # away from the silhouette (where a pixel spans a range of depths and the nearest one wins)
    pad = np.pad(exact, 1, constant_values=np.nan)
    step = np.max([np.abs(pad[1:-1, 2:] - exact), np.abs(pad[1:-1, :-2] - exact),
                      np.abs(pad[2:, 1:-1] - exact), np.abs(pad[:-2, 1:-1] - exact)], axis=0)  # fmt: skip
    interior = both & (step < 0.01 * exact)
    assert interior.sum() > 0.5 * both.sum()
    # level-of-detail nodes span up to 1.5 px, so single pixels may be off by a little more
    np.testing.assert_allclose(depth[interior], exact[interior], rtol=0.015 if lod else 0.01)
    assert inv_mean(depth) == pytest.approx(inv_mean(exact), rel=0.01)


def test_nearest_surface_wins_per_pixel():
    far = plane_grid(10.0, half=10.0, spacing=0.05)
    near = plane_grid(3.0, half=0.5, spacing=0.01)
    for depth in (render(np.vstack([far, near]), False), render(np.vstack([near, far]), True)):
        x, y = CAM.pixel_rays()
        inside = (np.abs(x) < 0.5 / 3 - 0.02) & (np.abs(y) < 0.5 / 3 - 0.02)
        outside = (np.abs(x) > 0.5 / 3 + 0.02) | (np.abs(y) > 0.5 / 3 + 0.02)
        np.testing.assert_allclose(depth[inside], 3.0)
        np.testing.assert_allclose(depth[outside], 10.0)


def test_splat_rule_for_one_point():
    # u = fx * 0.1 / 2 + 80 = 86.25, v = 45 + 0 -> pixel (86, 45)
    p = np.array([[0.1, 0.0, 2.0]])
    d = rasterise(p, CAM, radius=0.0)
    assert np.argwhere(np.isfinite(d)).tolist() == [[45, 86]]
    # radius 0.04 at z 2 -> h = 125 * 0.04 / 2 = 2.5 px: centres in (83.75, 88.75] x (42.5, 47.5]
    d = rasterise(p, CAM, radius=0.04)
    rows, cols = np.nonzero(np.isfinite(d))
    assert (cols.min(), cols.max(), rows.min(), rows.max()) == (84, 88, 43, 47)
    assert np.all(d[np.isfinite(d)] == 2.0)


def test_splat_reaches_in_from_outside_the_image_and_is_clipped():
    p = np.array([[-0.68, 0.0, 1.0]])  # u = -5 (left of the image), h = 12.5 px
    d = rasterise(p, CAM, radius=0.1)
    cols = np.nonzero(np.isfinite(d))[1]
    assert cols.min() == 0 and cols.max() == 7


def test_points_behind_camera_and_non_finite_are_ignored():
    pts = np.array([[0, 0, -1.0], [0.1, 0.1, -5.0], [np.nan, 0, 1.0], [0, 0, 0.0]])
    assert np.isnan(zbuffer(pts[:2], EYE, CAM)).all()
    assert np.isnan(PointHierarchy(pts).view(EYE, CAM)).all()
    assert np.isnan(PointHierarchy(np.zeros((0, 3))).view(EYE, CAM)).all()


def test_single_point_cloud_and_duplicate_points():
    for pts in (np.array([[0.0, 0.0, 5.0]]), np.repeat([[0.0, 0.0, 5.0]], 10, axis=0)):
        d = PointHierarchy(pts, radius=0.0).view(EYE, CAM)
        assert np.nanmin(d) == 5.0 and np.isfinite(d).sum() == 1


def test_to_camera_inverts_the_pose():
    c2w = look_at([1.0, -2.0, 3.0], [0.0, 0.5, 9.0])
    cam_pts = np.random.default_rng(0).normal(size=(50, 3))
    world = cam_pts @ c2w[:3, :3].T + c2w[:3, 3]
    np.testing.assert_allclose(to_camera(world, c2w), cam_pts, atol=1e-12)


def test_morton_codes_interleave_bits():
    rng = np.random.default_rng(0)
    q = rng.integers(0, 2**21, (200, 3))

    def slow(x, y, z):
        return sum(((int(x) >> b & 1) << 3 * b) | ((int(y) >> b & 1) << 3 * b + 1) | ((int(z) >> b & 1) << 3 * b + 2)
                   for b in range(21))  # fmt: skip

    assert morton_codes(q).tolist() == [slow(*r) for r in q]


def test_hierarchy_rejects_a_bad_radius_word():
    with pytest.raises(ValueError, match="radius"):
        PointHierarchy(np.zeros((3, 3)), radius="big")


@pytest.fixture(scope="module")
def room():
    pts = room_cloud(400_000)
    return PointHierarchy(pts)


def test_lod_agrees_with_brute_force_in_a_furnished_room(room):
    for c2w in room_views(8):
        brute = zbuffer(room.points, c2w, CAM, radius=room.radius)
        lod = room.view(c2w, CAM)
        assert inv_mean(lod) == pytest.approx(inv_mean(brute), rel=0.01)
        # random samples leave pinholes in brute force that the larger LOD splats cover
        assert np.isfinite(lod).mean() > np.isfinite(brute).mean() - 0.01


def test_lod_selects_far_fewer_points_than_the_cloud(room):
    pts, rad = room.select(room_views(1)[0], CAM)
    assert len(pts) < room.size / 4 and len(rad) == len(pts)


def test_lod_agrees_with_brute_force_on_real_icl_depth(shared_data):
    maps, poses = icl_frames(shared_data)
    full = Camera(525.0, 525.0, 319.5, 239.5, 640, 480)
    x, y = full.pixel_rays()
    clouds = []
    for d, c2w in zip(maps, poses):
        ok = np.isfinite(d)
        pc = np.stack([x[ok] * d[ok], y[ok] * d[ok], d[ok]], 1)
        clouds.append(pc @ c2w[:3, :3].T + c2w[:3, 3])
    h = PointHierarchy(np.concatenate(clouds))
    assert h.size > 1_000_000
    cam = full.working(160)
    for c2w in poses:
        brute = zbuffer(h.points, c2w, cam, radius=h.radius)
        lod = h.view(c2w, cam)
        assert inv_mean(lod) == pytest.approx(inv_mean(brute), rel=0.01)


def test_fill_pinholes_fills_isolated_holes_only():
    d = np.full((6, 8), 3.0)
    d[2, 3] = np.nan  # pinhole inside a surface
    d[0, 0] = np.nan  # corner pinhole: its 3 in-image neighbours are covered
    d[:, 6:] = np.nan  # a real 2-pixel-wide gap
    out = fill_pinholes(d)
    assert out[2, 3] == 3.0 and out[0, 0] == 3.0
    assert np.isnan(out[:, 6:]).all()
    assert np.isnan(d[2, 3])  # input untouched


def test_slanted_floor_front_layer_mean_removes_the_nearest_corner_bias():
    """A floor seen at grazing angles: the harmonic mean of a pixel's front layer matches ray casting
    at pixel centres; the plain minimum reads each pixel at its nearest corner (~1.5% too near)."""

    g = np.arange(-15, 15, 0.03)
    X, Z = np.meshgrid(g, np.arange(0.2, 30, 0.03))
    pts = np.stack([X.ravel(), np.full(X.size, 1.5), Z.ravel()], 1)
    c2w = look_at([0, 0, 0], [0, 0.5, 5])
    ref = PlanesDepth([((0, 1, 0), 1.5)]).view(c2w, CAM).depth
    use = np.isfinite(ref) & (ref < 20)
    layer = zbuffer(pts, c2w, CAM)
    nearest = zbuffer(pts, c2w, CAM, front_tolerance=0.0)
    both = use & np.isfinite(layer) & np.isfinite(nearest)
    assert both.sum() > 0.95 * use.sum()
    truth = np.mean(1 / ref[both])
    assert np.mean(1 / layer[both]) == pytest.approx(truth, rel=1e-3)
    assert np.mean(1 / nearest[both]) / truth - 1 > 0.005


def test_a_floater_does_not_blot_out_the_view():
    """One isolated point at 2.5% of the wall's distance in front of a dense wall: it covers about one
    working pixel, so the mean inverse depth (and with it α) barely moves; it used to be splatted over
    up to 32x32 px and change α 3.7x."""
    from parascale_blender.core.depth_sources import PointCloudDepth
    from parascale_blender.core.parallax import ParallaxProbe

    wall = plane_grid(4.0, 3.0, 0.01)  # 361,201 points 4 units away, 1 cm apart
    floater = np.array([[0.0, 0.0, 0.1]])
    clean = PointCloudDepth(wall).view(np.eye(4), CAM)
    dirty = PointCloudDepth(np.concatenate([wall, floater])).view(np.eye(4), CAM)
    covered = np.sum(dirty.depth < 1.0)
    assert 1 <= covered <= 4, covered
    a = ParallaxProbe.from_view(clean).mean_inverse_depth
    b = ParallaxProbe.from_view(dirty).mean_inverse_depth
    assert b / a - 1 < 0.05
