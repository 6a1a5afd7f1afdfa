"""The splatting renderer against closed forms: identity, exact integer shifts, z-buffer
occlusion with background-biased hole filling, and points at infinity under pure rotation."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from server_helpers import textured_image

from bridge_server.render import fill_holes, splat, to_uint8, unproject_image
from parascale_blender.core.camera import Camera

W, H = 80, 48
CAM = Camera(60.0, 60.0, 40.0, 24.0, W, H)


def render(image, depth, c2w, cam=CAM, fill=False, **kw):
    cloud = unproject_image(image, depth, np.eye(4), cam, **kw)
    rgb, z = splat(cloud, c2w, cam)
    return to_uint8(fill_holes(rgb, z) if fill else rgb), z.numpy()


def translation(x=0.0, y=0.0, z=0.0):
    T = np.eye(4)
    T[:3, 3] = [x, y, z]
    return T


def test_identity_pose_reproduces_the_image_exactly():
    img = textured_image(W, H, seed=1)
    depth = np.random.default_rng(0).uniform(1, 20, (H, W))
    out, z = render(img, depth, np.eye(4))
    assert np.array_equal(out, img)
    assert np.allclose(z, depth)


@pytest.mark.parametrize(("shift_px", "axis"), [(3, 0), (-5, 0), (2, 1)])
def test_truck_moves_a_frontal_plane_by_f_t_over_z_pixels(shift_px, axis):
    img = textured_image(W, H, seed=2)
    Z = 5.0
    t = -shift_px * Z / 60.0  # the image moves opposite to the camera: du = -f t / Z
    out, z = render(img, np.full((H, W), Z), translation(**{"xy"[axis]: t}))
    expected = np.roll(img, shift_px, axis=1 - axis)
    sl = [slice(None), slice(None)]
    sl[1 - axis] = slice(shift_px, None) if shift_px > 0 else slice(None, shift_px)
    assert np.array_equal(out[tuple(sl)], expected[tuple(sl)])
    assert np.isinf(z).sum() == abs(shift_px) * (H if axis == 0 else W)  # the uncovered strip


def test_nearest_depth_wins_and_holes_take_the_background():
    img = np.zeros((H, W, 3), np.uint8)
    img[...] = (200, 40, 40)  # background red at z = 10
    depth = np.full((H, W), 10.0)
    img[16:32, 30:50] = (40, 200, 40)  # foreground green square at z = 2
    depth[16:32, 30:50] = 2.0
    # Truck left by 0.4: foreground moves +12 px, background +2.4 px.
    out, z = render(img, depth, translation(x=-0.4), fill=True)
    assert (out[16:32, 42:62] == (40, 200, 40)).all(), "the near square must cover the far plane"
    assert np.allclose(z[16:32, 42:62], 2.0)
    revealed = out[18:30, 33:40].reshape(-1, 3).astype(int)  # behind the square's old place
    assert np.isinf(z[18:30, 33:40]).all()
    assert (np.abs(revealed - (200, 40, 40)).max(axis=1) < 60).mean() > 0.9, "holes must be filled with background"


def _yaw_pose(deg: float) -> np.ndarray:
    a = np.radians(deg)
    c2w = np.eye(4)
    c2w[:3, :3] = [[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]]
    c2w[:3, 3] = [5.0, 1.0, -3.0]  # translation must not matter at infinity
    return c2w


def test_points_without_depth_are_at_infinity_and_follow_the_rotation_homography():
    img = textured_image(W, H, seed=3)
    c2w = _yaw_pose(4.0)
    # Truth: each target pixel centre c shows the source at H^-1 c with H = K R^T K^-1 (OpenCV remap).
    K = CAM.K
    Hinv = K @ c2w[:3, :3] @ np.linalg.inv(K)
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    p = np.stack([u, v, np.ones_like(u)], -1) @ Hinv.T
    su, sv = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
    truth = cv2.remap(img, (su - 0.5).astype(np.float32), (sv - 0.5).astype(np.float32), cv2.INTER_LINEAR)
    inside = (su > 1) & (su < W - 1) & (sv > 1) & (sv < H - 1)
    out, z = render(img, np.full((H, W), np.nan), c2w, sky=True)
    assert np.abs(out[inside].astype(int) - truth[inside]).max() <= 2
    assert np.isinf(z[inside]).sum() == 0
    dropped, _ = render(img, np.full((H, W), np.nan), np.eye(4), sky=False)
    assert not dropped.any(), "without sky, pixels without depth are not rendered"


def test_without_resampling_each_pixel_shows_the_point_projected_into_it():
    img = textured_image(W, H, seed=3)
    c2w = _yaw_pose(4.0)
    cloud = unproject_image(img, np.full((H, W), np.nan), np.eye(4), CAM)
    out = to_uint8(splat(cloud, c2w, CAM, resample=False)[0])
    Hm = CAM.K @ c2w[:3, :3].T @ np.linalg.inv(CAM.K)
    u, v = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    p = np.stack([u, v, np.ones_like(u)], -1) @ Hm.T
    tu, tv = p[..., 0] / p[..., 2], p[..., 1] / p[..., 2]
    inside = (tu > 1) & (tu < W - 1) & (tv > 1) & (tv < H - 1)
    got = out[np.floor(tv[inside]).astype(int), np.floor(tu[inside]).astype(int)]
    assert (got == img[inside]).all(axis=1).mean() > 0.95


def test_dolly_in_leaves_no_cracks_inside_the_view():
    img = textured_image(W, H, seed=4)
    cloud = unproject_image(img, np.full((H, W), 4.0), np.eye(4), CAM)
    rgb, z = splat(cloud, translation(z=1.5), CAM)  # magnification 1.6
    assert torch.isfinite(z).all()


@pytest.mark.parametrize("magnification", [5, 10])
def test_splats_follow_the_magnification_so_a_close_up_is_fully_covered(magnification):
    """A frontal plane at depth Z seen from Z/m closer is magnified m times: source points land m px
    apart. Footprints capped at 4 px would cover exactly (4/m)² of the pixels (64% at 5x) and leave
    no latent cell of 8x8 pixels fully visible; footprints that follow the magnification cover all."""
    from bridge_server.backends.noise_shaping import latent_mask

    img = textured_image(W, H, seed=5)
    Z = 10.0
    cloud = unproject_image(img, np.full((H, W), Z), np.eye(4), CAM)
    rgb, z = splat(cloud, translation(z=Z - Z / magnification), CAM)
    covered = torch.isfinite(z).numpy()
    assert covered.mean() == 1.0
    assert np.allclose(z.numpy(), Z / magnification)
    cells = latent_mask(np.stack([covered] * 5), erode_px=0, spatial=8, temporal=4)
    assert cells[1:].mean() == 1.0
    capped = torch.isfinite(splat(cloud, translation(z=Z - Z / magnification), CAM, max_footprint=4.0)[1]).numpy()
    assert capped.mean() == pytest.approx((4 / magnification) ** 2, abs=0.03)  # the closed form of the old cap
