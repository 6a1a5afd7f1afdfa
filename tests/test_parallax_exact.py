"""The exact image-motion measure against closed forms and an independent projection oracle."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import Camera, Trajectory, make_c2w
from parascale_blender.core.parallax import APPROACH_LIMIT, ParallaxProbe
from parascale_blender.core.rescale import RescaleOptions, rescale
from parascale_tools.synthetic import PlanesDepth, camera_move, room, wall

CAM = Camera(300.0, 300.0, 160.0, 90.0, 320, 180)
WORK = CAM.working(160)


def track(c2w: np.ndarray) -> Trajectory:
    n = len(c2w)
    return Trajectory(np.arange(n), c2w, np.tile([CAM.fx, CAM.fy, CAM.cx, CAM.cy], (n, 1)), CAM.width, CAM.height)


def projected_motion(depth: np.ndarray, cam: Camera, step: np.ndarray) -> np.ndarray:
    """Oracle: each pixel's point projected before and after the camera moves by ``step`` (its own
    axes, no rotation); the mean displacement in normalised units over every pixel, sky moving 0."""
    u, v = np.meshgrid(np.arange(cam.width) + 0.5, np.arange(cam.height) + 0.5)
    x0, y0 = (u - cam.cx) / cam.fx, (v - cam.cy) / cam.fy
    z = np.where(np.isfinite(depth), depth, np.inf)
    P = np.stack([x0 * z, y0 * z, z], -1)
    Q = P - step
    with np.errstate(invalid="ignore"):
        x1 = np.where(np.isfinite(z), Q[..., 0] / Q[..., 2], x0)
        y1 = np.where(np.isfinite(z), Q[..., 1] / Q[..., 2], y0)
    return float(np.mean(np.hypot(x1 - x0, y1 - y0)))


def test_a_fronto_parallel_truck_moves_the_image_by_the_harmonic_number():
    view = wall(3.0).view(np.eye(4), WORK)
    probe = ParallaxProbe.from_view(view)
    d = np.array([0.12, -0.05, 0.0])
    assert probe.parallax(d, "exact") == pytest.approx(np.linalg.norm(d) / 3.0, rel=1e-12)
    assert probe.parallax(d, "exact") == pytest.approx(probe.parallax(d, "harmonic"), rel=1e-12)


def test_a_dolly_onto_a_wall_has_the_closed_form_motion():
    Z, dz = 4.0, 0.5
    probe = ParallaxProbe.from_view(wall(Z).view(np.eye(4), WORK))
    x, y = WORK.pixel_rays()
    closed = np.mean(np.hypot(x, y)) * dz / (Z - dz)  # each pixel slides out from the centre
    assert probe.parallax(np.array([0.0, 0.0, dz]), "exact") == pytest.approx(closed, rel=1e-12)
    # first order (flow) underestimates a forward step by exactly (Z - dz) / Z
    assert probe.parallax(np.array([0.0, 0.0, dz]), "flow") == pytest.approx(closed * (Z - dz) / Z, rel=1e-12)


@pytest.mark.parametrize("step", [(0.1, 0.0, 0.3), (-0.2, 0.05, 0.1), (0.05, 0.1, -0.4), (0.0, 0.0, 0.2)])
def test_exact_measure_equals_the_projected_image_motion_of_a_room(step):
    c2w = make_c2w(np.eye(3), [0.3, -0.2, -1.0])
    view = room().view(c2w, WORK)
    assert np.isfinite(view.depth).all()
    d = np.asarray(step)
    oracle = projected_motion(view.depth, WORK, d)
    assert ParallaxProbe.from_view(view).parallax(d, "exact") == pytest.approx(oracle, rel=1e-9)


def test_sky_counts_as_zero_motion():
    view = PlanesDepth([((0, 1, 0), 1.0)]).view(np.eye(4), WORK)  # a floor: the upper half is sky
    d = np.array([0.1, 0.0, 0.2])
    assert 0.3 < np.isfinite(view.depth).mean() < 0.7
    sky = ParallaxProbe.from_view(view, allow_sky=True).parallax(d, "exact")
    assert sky == pytest.approx(projected_motion(view.depth, WORK, d), rel=1e-9)
    assert sky < ParallaxProbe.from_view(view).parallax(d, "exact")


def test_alpha_search_is_monotone_and_bracketed():
    probe = ParallaxProbe.from_view(room().view(make_c2w(np.eye(3), [0.0, 0.0, -2.0]), WORK))
    d = np.array([0.03, 0.01, 0.08])
    base = probe.parallax(d, "exact")
    alphas = []
    for k in (0.01, 0.3, 1.0, 2.0, 7.0, 40.0):
        a, capped, its, realized = probe.solve_alpha(d, k * base)
        if capped:
            assert a == pytest.approx(probe.max_alpha(d))
            assert probe.parallax(a * d, "exact") < k * base
            continue
        assert probe.parallax(a * d, "exact") == pytest.approx(k * base, rel=1e-10)
        assert realized == pytest.approx(k * base, rel=1e-10)
        assert 0 < a <= probe.max_alpha(d) and its < 40
        alphas.append(a)
    assert np.all(np.diff(alphas) > 0) and len(alphas) >= 4
    # forward: more than proportional, so α < k for k > 1
    assert alphas[3] < 2.0


def test_the_cap_keeps_the_camera_short_of_a_small_object_on_the_axis():
    """A reference dolly across a far room onto a target with a 2 cm box 10 cm ahead of the camera
    on the optical axis, in front of a far wall: the harmonic or flow α would fly through it."""
    c2w = camera_move("dolly", 16, step=0.2)
    box_z = 0.1

    class BoxOnAxis(PlanesDepth):
        def view(self, c2w, camera, index=None):
            v = super().view(c2w, camera, index)
            x, y = camera.pixel_rays()
            zc = box_z - c2w[2, 3]  # the box face's depth from the camera (no rotation in this move)
            inside = (np.abs(x * zc + c2w[0, 3]) < 0.01) & (np.abs(y * zc + c2w[1, 3]) < 0.01) & (zc > 0)
            v.depth[inside] = np.minimum(v.depth[inside], zc)
            return v

    tgt = BoxOnAxis([((0, 0, 1), 50.0)])
    res = rescale(track(c2w), room(), tgt, np.eye(4), CAM, RescaleOptions(mode="exact"))
    z = res.trajectory.c2w[:, 2, 3]
    assert (z < box_z).all(), z
    gaps = box_z - z
    assert (gaps[1:] >= (1 - APPROACH_LIMIT) * gaps[:-1] * (1 - 1e-9)).all()  # each step closes at most half
    assert res.capped_frames and any("capped" in w for w in res.warnings)


@pytest.mark.parametrize("kind", ["truck", "dolly", "orbit", "crane", "handheld"])
def test_exact_mode_transfers_image_motion_across_scales(kind):
    c2w = camera_move(kind, 10, step=0.06, seed=2, turn_deg=8)
    res = rescale(track(c2w), room(), room(1000.0), np.eye(4), CAM, RescaleOptions(mode="exact", working_size=64))
    assert res.pce < 1e-9
    scaled = rescale(track(c2w), room(), room(0.01), np.eye(4), CAM, RescaleOptions(mode="exact", working_size=64))
    np.testing.assert_allclose(scaled.alpha[1:] * 1e5, res.alpha[1:], rtol=1e-6)
