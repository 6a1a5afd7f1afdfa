"""The exact image-motion measure against closed forms and an independent projection oracle."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import Camera, Trajectory, make_c2w
from parascale_blender.core.collision import APPROACH_LIMIT
from parascale_blender.core.depth_sources import MeshDepth
from parascale_blender.core.parallax import REACHABLE_SHARE, ParallaxProbe
from parascale_blender.core.rescale import RescaleOptions, rescale
from parascale_tools.synthetic import PlanesDepth, box_mesh, camera_move, room, wall

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


def test_alpha_search_is_monotone_and_stays_below_the_pole():
    probe = ParallaxProbe.from_view(room().view(make_c2w(np.eye(3), [0.0, 0.0, -2.0]), WORK))
    d = np.array([0.03, 0.01, 0.08])
    base = probe.parallax(d, "exact")
    alphas = []
    for k in (0.01, 0.3, 1.0, 2.0, 7.0, 40.0, 1e4):  # a forward step reaches any motion short of the pole
        a, unreachable, its, realized = probe.solve_alpha(d, k * base)
        assert not unreachable
        assert probe.parallax(a * d, "exact") == pytest.approx(k * base, rel=1e-10)
        assert realized == pytest.approx(k * base, rel=1e-10)
        assert 0 < a < probe.pole_alpha(d) and its < 60
        alphas.append(a)
    assert np.all(np.diff(alphas) > 0)
    # forward: more than proportional, so α < k for k > 1
    assert alphas[3] < 2.0


def test_an_unreachable_backward_step_gets_a_finite_alpha():
    """Moving back from a wall, each pixel's motion tends to a/|b|: Π is bounded, closed form below."""
    Z = 2.0
    probe = ParallaxProbe.from_view(wall(Z).view(np.eye(4), WORK))
    d = np.array([0.0, 0.0, -0.1])
    x, y = WORK.pixel_rays()
    bound = float(np.mean(np.hypot(x, y)))  # r·(α·dz/Z)/(1 + α·dz/Z) → r as α → ∞
    assert probe.motion_bound(d) == pytest.approx(bound, rel=1e-12)
    a, unreachable, _, realized = probe.solve_alpha(d, 2.0 * bound)
    assert unreachable and np.isfinite(a) and 0 < a < 1e6
    assert realized == pytest.approx(REACHABLE_SHARE * bound, rel=1e-9)
    # the closed form of α for a wall: share = s/(1+s), s = α·|dz|/Z
    assert a * 0.1 / Z == pytest.approx(REACHABLE_SHARE / (1 - REACHABLE_SHARE), rel=1e-9)
    a2, unreachable2, _, _ = probe.solve_alpha(d, 0.5 * bound)
    assert not unreachable2 and a2 < a


def meshes(*parts) -> MeshDepth:
    vs, ts, n = [], [], 0
    for v, t in parts:
        vs.append(v)
        ts.append(t + n)
        n += len(v)
    return MeshDepth(np.vstack(vs), np.vstack(ts))


def test_the_cap_keeps_the_camera_short_of_a_small_object_on_the_axis():
    """A reference dolly across a far room onto a target with a 2 cm box 10 cm ahead of the camera
    on the optical axis, in front of a far wall: the harmonic or flow α would fly through it."""
    c2w = camera_move("dolly", 16, step=0.2)
    box_z = 0.1
    tgt = meshes(box_mesh((-0.01, -0.01, box_z), (0.01, 0.01, box_z + 0.02)), box_mesh((-80, -80, 50), (80, 80, 51)))
    res = rescale(track(c2w), room(), tgt, np.eye(4), CAM, RescaleOptions(mode="exact"))
    z = res.trajectory.c2w[:, 2, 3]
    assert (z < box_z).all(), z
    gaps = box_z - z
    assert (gaps[1:] >= (1 - APPROACH_LIMIT) * gaps[:-1] * (1 - 1e-9)).all()  # each step closes at most half
    assert res.capped_frames and any("shortened" in w for w in res.warnings)
    assert res.checks["collision_shortened_frames"] == res.capped_frames


def test_an_object_beside_the_path_does_not_shorten_the_move():
    """The same dolly with the box 10 cm to the side of the path: nothing to collide with, the move is
    not shortened (the old cap on the nearest visible depth shortened it)."""
    c2w = camera_move("dolly", 12, step=0.2)
    tgt = meshes(box_mesh((0.1, -0.01, 0.5), (0.12, 0.01, 0.52)), box_mesh((-80, -80, 50), (80, 80, 51)))
    res = rescale(track(c2w), room(), tgt, np.eye(4), CAM, RescaleOptions(mode="exact"))
    assert res.capped_frames == [] and res.solver_residual < 1e-9


@pytest.mark.parametrize("mode", ["exact", "harmonic", "flow"])
def test_a_dolly_back_in_a_closed_room_stops_short_of_the_back_wall_and_says_so(mode):
    """The reference dollies back 0.3 a frame in a deep room; the target room has its back wall 1 unit
    behind the camera, out of view: every step stays in the room, the shortened ones are named."""
    c2w = camera_move("dolly", 12, step=-0.3)
    tgt = meshes(box_mesh((-3, -2, 5), (3, 2, 5.1)), box_mesh((-3, -2, -1.1), (3, 2, -1.0)),
                 box_mesh((-3.1, -2, -1.1), (-3, 2, 5.1)), box_mesh((3, -2, -1.1), (3.1, 2, 5.1)))  # fmt: skip
    res = rescale(track(c2w), room(1.0), tgt, np.eye(4), CAM, RescaleOptions(mode=mode))
    z = res.trajectory.c2w[:, 2, 3]
    assert (z > -1.0).all() and z[-1] < 0, z
    assert res.capped_frames and any("shortened" in w and "collided" in w for w in res.warnings)


def test_a_fast_truck_stops_short_of_a_side_wall_out_of_view():
    c2w = camera_move("truck", 10, step=0.5)
    tgt = meshes(box_mesh((-20, -20, 8), (20, 20, 8.1)), box_mesh((1.0, -20, -20), (1.1, 20, 20)))
    res = rescale(track(c2w), room(0.2), tgt, np.eye(4), CAM, RescaleOptions(mode="exact"))
    x = res.trajectory.c2w[:, 0, 3]
    assert (x < 1.0).all() and res.capped_frames, x


def test_an_unreachable_dolly_back_is_finite_and_named():
    """Moving back, a pixel's motion tends to |(x, y) - (dx, dy)/dz|, whatever its depth: the bound is
    the same for every scene, except that sky adds nothing. A fast dolly back in a closed room onto a
    floor under an open sky: the target cannot reach the reference's motion, so the move stops at a
    finite α and the note says why."""
    c2w = camera_move("dolly", 6, step=-3.0)
    floor = PlanesDepth([((0, 1, 0), 1.0)])
    res = rescale(track(c2w), room(0.5), floor, np.eye(4), CAM, RescaleOptions(mode="exact"))
    assert np.isfinite(res.alpha[1:]).all() and res.alpha[1:].max() < 1e6
    assert res.unreachable_frames and any("cannot reach" in w for w in res.warnings)
    assert res.solver_residual > 0.1  # the shortfall shows in the residual
