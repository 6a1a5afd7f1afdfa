"""Π rescaling: closed forms, gauge invariance and the special cases."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parascale_blender.core.camera import Camera, Trajectory
from parascale_blender.core.depth import ConstantDepth, DepthView
from parascale_blender.core.parallax import ParallaxProbe, parallax_number
from parascale_blender.core.rescale import RescaleError, RescaleOptions, rescale
from parascale_tools.synthetic import PlanesDepth, camera_move, room, wall

CAM = Camera(500.0, 500.0, 320.0, 180.0, 640, 360)


def track(c2w, cam=CAM) -> Trajectory:
    n = len(c2w)
    return Trajectory(np.arange(1, n + 1), c2w, [cam.fx, cam.fy, cam.cx, cam.cy], cam.width, cam.height, fps=24)


@pytest.mark.parametrize("mode", ["harmonic", "flow", "arithmetic", "global"])
def test_fronto_parallel_truck_alpha_is_depth_ratio(mode):
    ref = track(camera_move("truck", 8, step=0.1))
    res = rescale(ref, wall(2.0), wall(5000.0), np.eye(4), options=RescaleOptions(mode=mode))
    np.testing.assert_allclose(res.alpha[1:], 2500.0, rtol=1e-9)
    np.testing.assert_allclose(res.trajectory.centres[-1], [0.7 * 2500, 0, 0], rtol=1e-9)


def test_constant_depth_truck_matches_closed_form():
    ref = track(camera_move("truck", 5, step=0.2))
    res = rescale(ref, ConstantDepth(4.0), ConstantDepth(0.01), np.eye(4))
    np.testing.assert_allclose(res.alpha[1:], 0.01 / 4.0, rtol=1e-12)
    assert res.solver_residual < 1e-12


def test_rotation_copied_exactly_and_placed_at_target_start():
    ref = track(camera_move("orbit", 10, step=0.1, turn_deg=30))
    start = np.eye(4)
    start[:3, 3] = [3.0, -1.0, 2.0]
    res = rescale(ref, room(), room(100.0), start)
    rel_ref = ref.relative_to_first().c2w[:, :3, :3]
    rel_out = res.trajectory.relative_to_first().c2w[:, :3, :3]
    np.testing.assert_array_equal(res.trajectory.c2w[0], start)
    np.testing.assert_allclose(rel_out, rel_ref, atol=1e-15)


@settings(max_examples=25, deadline=None)
@given(
    s=st.floats(1e-4, 1e4),
    kind=st.sampled_from(["truck", "dolly", "crane", "orbit", "handheld"]),
    mode=st.sampled_from(["harmonic", "flow", "arithmetic", "global"]),
)
def test_gauge_invariance_of_reference_scale(s, kind, mode):
    c2w = camera_move(kind, 8, step=0.08, turn_deg=10, seed=1)
    base = rescale(track(c2w), room(), room(30.0), np.eye(4), options=RescaleOptions(mode=mode, working_size=48))
    c2w_s = c2w.copy()
    c2w_s[:, :3, 3] *= s
    scaled = rescale(track(c2w_s), room(s), room(30.0), np.eye(4), options=RescaleOptions(mode=mode, working_size=48))
    np.testing.assert_allclose(scaled.trajectory.c2w, base.trajectory.c2w, rtol=1e-9, atol=1e-9 * 30)


@settings(max_examples=25, deadline=None)
@given(s=st.floats(1e-4, 1e4), kind=st.sampled_from(["truck", "dolly", "orbit", "handheld"]))
def test_target_scale_scales_output_translations(s, kind):
    c2w = camera_move(kind, 8, step=0.08, turn_deg=10, seed=2)
    start = np.eye(4)
    start[:3, 3] = [0.5, 0.2, -1.0]
    base = rescale(track(c2w), room(), room(), start, options=RescaleOptions(working_size=48))
    start_s = start.copy()
    start_s[:3, 3] *= s
    scaled = rescale(track(c2w), room(), room(s), start_s, options=RescaleOptions(working_size=48))
    np.testing.assert_allclose(scaled.trajectory.centres, base.trajectory.centres * s, rtol=1e-9, atol=1e-12 * s)
    np.testing.assert_allclose(scaled.trajectory.c2w[:, :3, :3], base.trajectory.c2w[:, :3, :3], atol=1e-15)


def test_realized_parallax_equals_reference_on_varying_depth():
    ref = track(camera_move("handheld", 16, step=0.05, seed=3))
    res = rescale(ref, room(), PlanesDepth([((0, 0, 1), 900.0), ((1, 0, 1), 1200.0)]), np.eye(4))
    assert res.solver_residual < 1e-9
    # Independent re-measure on the output trajectory.
    out = res.trajectory
    steps = out.steps_in_camera()
    tgt = PlanesDepth([((0, 0, 1), 900.0), ((1, 0, 1), 1200.0)])
    measure = out.metadata["measure"]  # the default mode's measure
    for t in (1, 7, 15):
        v = tgt.view(out.c2w[t - 1], out.camera(t - 1).working(160))
        assert parallax_number(steps[t - 1], v, measure) == pytest.approx(res.pi_ref[t], rel=1e-9)


def test_arithmetic_vs_harmonic_follow_jensen():
    depth = np.linspace(1.0, 100.0, 90 * 160).reshape(90, 160)
    view = DepthView(depth, CAM.working(160), sky=True)
    d = np.array([0.1, 0, 0])
    h = parallax_number(d, view, "harmonic")
    a = parallax_number(d, view, "arithmetic")
    assert a < h
    np.testing.assert_allclose(h, 0.1 * np.mean(1 / depth))
    np.testing.assert_allclose(a, 0.1 / np.mean(depth))
    const = DepthView(np.full((90, 160), 7.0), CAM.working(160), sky=True)
    assert parallax_number(d, const, "arithmetic") == pytest.approx(parallax_number(d, const, "harmonic"))


@pytest.mark.parametrize("d", [(0.02, 0.0, 0.0), (0.0, 0.0, 0.02), (0.01, -0.005, 0.015)])
def test_flow_parallax_equals_finite_difference_flow(d):
    """Mean optical flow of a rendered scene (projection differences) equals the flow Π within 1%."""
    scene = PlanesDepth([((0, 0, 1), 3.0), ((1, 0, 1), 4.0), ((0, 1, 0), 1.0)])
    cam = CAM.working(160)
    view = scene.view(np.eye(4), cam)
    x, y = cam.pixel_rays()
    ok = view.valid
    X = np.stack([x, y, np.ones_like(x)], -1)[ok] * view.depth[ok][:, None]
    Xn = X - np.asarray(d)
    flow = Xn[:, :2] / Xn[:, 2:] - X[:, :2] / X[:, 2:]
    measured = np.linalg.norm(flow, axis=1).mean()
    assert parallax_number(np.asarray(d), view, "flow") == pytest.approx(measured, rel=0.01)


def test_flow_distinguishes_dolly_from_truck_but_harmonic_does_not():
    view = wall(2.0).view(np.eye(4), CAM.working(160))
    probe = ParallaxProbe.from_view(view)
    truck, dolly = np.array([0.1, 0, 0]), np.array([0, 0, 0.1])
    assert probe.parallax(truck) == pytest.approx(probe.parallax(dolly))
    assert probe.parallax(dolly, "flow") < 0.5 * probe.parallax(truck, "flow")


def test_zero_steps_stay_zero_and_are_reported():
    c2w = camera_move("truck", 6, step=0.1)
    c2w[3] = c2w[2]
    c2w[4:, :3, 3] -= [0.1, 0, 0]
    res = rescale(track(c2w), wall(2.0), wall(20.0), np.eye(4))
    assert res.zero_step_frames == [4]
    np.testing.assert_array_equal(res.trajectory.c2w[3], res.trajectory.c2w[2])
    assert np.isfinite(res.alpha[1:]).all()


class HoleyDepth(ConstantDepth):
    """Constant depth, but frames listed in ``holes`` see nothing known (as sparse SfM frames can)."""

    def __init__(self, distance, holes):
        super().__init__(distance)
        self.holes = set(holes)

    def view(self, c2w, camera, index=None):
        v = super().view(c2w, camera, index)
        if index in self.holes:
            v.depth[:] = np.nan
            v.sky = False
        return v


def test_missing_reference_depth_is_interpolated_and_listed():
    ref = track(camera_move("truck", 10, step=0.1))
    res = rescale(ref, HoleyDepth(2.0, {3, 4}), wall(10.0), np.eye(4))
    assert res.interpolated_frames == [5, 6]
    np.testing.assert_allclose(res.alpha[1:], 5.0, rtol=1e-12)
    assert res.warnings


class EndingWall(ConstantDepth):
    """A wall that ends: cameras right of ``x_end`` see nothing."""

    def __init__(self, distance, x_end):
        super().__init__(distance)
        self.x_end = x_end

    def view(self, c2w, camera, index=None):
        v = super().view(c2w, camera, index)
        if c2w[0, 3] > self.x_end:
            v.depth[:] = np.nan
        return v


def test_target_that_sees_nothing_names_the_frame():
    ref = track(camera_move("truck", 6, step=0.5))
    with pytest.raises(RescaleError, match="frame 4 sees no depth"):
        rescale(ref, wall(5.0), EndingWall(10.0, 2.5), np.eye(4))


def test_sky_counts_as_not_moving_by_default_for_dense_targets():
    ref = track(camera_move("truck", 6, step=0.1))
    ground = PlanesDepth([((0, 1, 0), 1.0)])  # a floor 1 unit below: half the view is sky
    for sky in (True, False):  # a view of nothing but sky has no depth to measure, either way
        with pytest.raises(RescaleError, match="sees no depth"):
            rescale(ref, wall(2.0), PlanesDepth([((0, 0, 1), -1.0)]), np.eye(4), options=RescaleOptions(allow_sky=sky))
    default = rescale(ref, wall(2.0), ground, np.eye(4))
    counted = rescale(ref, wall(2.0), ground, np.eye(4), options=RescaleOptions(allow_sky=True))
    left_out = rescale(ref, wall(2.0), ground, np.eye(4), options=RescaleOptions(allow_sky=False))
    np.testing.assert_array_equal(default.alpha, counted.alpha)
    # Counting sky as 1/Z = 0 lowers the mean inverse depth, so the move grows.
    assert counted.alpha[1] > left_out.alpha[1]


def test_frame_relative_fov_match_scales_with_focal_length():
    ref = track(camera_move("truck", 5, step=0.1))
    wide = Camera(250.0, 250.0, 320.0, 180.0, 640, 360)
    angular = rescale(ref, wall(2.0), wall(2.0), np.eye(4), target_camera=wide)
    frame = rescale(ref, wall(2.0), wall(2.0), np.eye(4), target_camera=wide, options=RescaleOptions(fov_match="frame"))
    np.testing.assert_allclose(angular.alpha[1:], 1.0)
    np.testing.assert_allclose(frame.alpha[1:], 2.0)


def test_none_mode_is_the_raw_relative_track():
    c2w = camera_move("handheld", 6, step=0.1, seed=5)
    res = rescale(track(c2w), wall(2.0), wall(1e4), np.eye(4), options=RescaleOptions(mode="none"))
    np.testing.assert_allclose(res.trajectory.c2w, track(c2w).relative_to_first().c2w, atol=1e-12)


def test_smoothing_and_clamping_limit_alpha():
    ref = track(camera_move("truck", 12, step=0.1))
    scene = PlanesDepth([((0, 0, 1), 3.0), ((1, 0, 0), 0.6)])  # a side wall the camera approaches
    raw = rescale(ref, wall(2.0), scene, np.eye(4))
    clamped = rescale(ref, wall(2.0), scene, np.eye(4), options=RescaleOptions(clamp_ratio=1.05))
    med = np.median(clamped.alpha[1:])
    assert clamped.alpha[1:].max() <= med * 1.05 * (1 + 1e-9)
    assert np.ptp(raw.alpha[1:]) > np.ptp(clamped.alpha[1:])


def test_bad_inputs_are_clear():
    one = track(camera_move("truck", 1, step=0.05))
    with pytest.raises(RescaleError, match="single frame"):
        rescale(one, wall(1.0), wall(1.0), np.eye(4))
    bad = camera_move("truck", 4, step=0.05)
    bad[2, 0, 3] = np.nan
    with pytest.raises(ValueError, match="frame 3: pose has non-finite"):
        rescale(track(bad), wall(1.0), wall(1.0), np.eye(4))
    with pytest.raises(RescaleError, match="mode must be"):
        rescale(
            track(camera_move("truck", 4, step=0.05)),
            wall(1.0),
            wall(1.0),
            np.eye(4),
            options=RescaleOptions(mode="magic"),
        )


def test_dropped_sky_is_said():
    ref = track(camera_move("truck", 6, step=0.1))
    ground = PlanesDepth([((0, 1, 0), 1.0)])  # a floor: the upper half of the view is sky
    dropped = rescale(ref, wall(2.0), ground, np.eye(4), options=RescaleOptions(allow_sky=False))
    assert any("target: up to" in w and "sky" in w for w in dropped.warnings), dropped.warnings
    counted = rescale(ref, wall(2.0), ground, np.eye(4))
    assert not any("sky" in w for w in counted.warnings)
    assert not any("sky" in w for w in rescale(ref, wall(2.0), wall(9.0), np.eye(4)).warnings)


@pytest.mark.parametrize("turn_deg", [0.0, 25.0])
def test_tripod_reference_gives_zero_translation_and_copied_rotation(turn_deg):
    """A rotation-only (or stationary) reference is a valid move: no depth is read, the target holds
    its start position exactly, and R_t = R_start · R_ref,0ᵀ · R_ref,t (closed form)."""
    c2w = camera_move("truck", 9, step=0.1, turn_deg=turn_deg)
    c2w[:, :3, 3] = [0.4, -0.2, 1.0]  # the pan (or nothing) stays, the translation goes
    start = camera_move("truck", 2, step=0.3, turn_deg=40)[1]
    res = rescale(track(c2w), None, None, start)
    out = res.trajectory.c2w
    assert np.all(out[:, :3, 3] == start[:3, 3])
    expect = start[:3, :3] @ c2w[0, :3, :3].T @ c2w[:, :3, :3]
    np.testing.assert_allclose(out[:, :3, :3], expect, atol=1e-12)
    assert res.warnings == [] and "tripod reference" in res.info[0]
    assert ("stationary" in res.info[0]) == (turn_deg == 0.0)
    with pytest.raises(RescaleError, match="depth"):  # a moving reference still needs its depths
        rescale(track(camera_move("truck", 4, step=0.1)), None, None, start)


def test_target_zoom_keys_per_frame_intrinsics_and_keeps_frame_pi_exact():
    """A reference zooming 2x over a sideways truck at constant depth, matched as a share of the frame
    (harmonic, closed form): Π_ref,t = |d| / Z_ref · fx_ref[t-1] / W. With the zoom transferred the target's
    Π uses its zoomed focal length too, so α is the depth ratio at every step; with one lens α follows the
    zoom (up to 2x off). The target track carries its zoomed intrinsics per frame."""
    c2w = camera_move("truck", 9, step=0.1)
    zoom = 2.0 ** np.linspace(0.0, 1.0, 9)
    K = np.array([[CAM.fx * z, CAM.fy * z, CAM.cx, CAM.cy] for z in zoom])
    ref = Trajectory(np.arange(1, 10), c2w, K, CAM.width, CAM.height)
    opts = RescaleOptions(mode="harmonic", fov_match="frame")
    res = rescale(ref, ConstantDepth(2.0), ConstantDepth(50.0), np.eye(4), CAM, opts, target_zoom=zoom)
    np.testing.assert_allclose(res.alpha[1:], 25.0, rtol=1e-12)
    np.testing.assert_allclose(res.trajectory.intrinsics, K, rtol=1e-12)
    assert res.solver_residual < 1e-12
    one_lens = rescale(ref, ConstantDepth(2.0), ConstantDepth(50.0), np.eye(4), CAM, opts)
    np.testing.assert_allclose(one_lens.alpha[1:], 25.0 * zoom[:-1], rtol=1e-12)
    with pytest.raises(RescaleError, match="target_zoom must be 9 finite positive"):
        rescale(ref, ConstantDepth(2.0), ConstantDepth(50.0), np.eye(4), CAM, opts, target_zoom=zoom[:-1])


def test_step_parallax_remeasures_a_zoomed_move_as_rescale_measured_it():
    from parascale_blender.core.rescale import step_parallax

    ref = track(camera_move("handheld", 8, step=0.05, turn_deg=5, seed=2))
    zoom = np.linspace(1.0, 1.5, 8)
    opts = RescaleOptions(mode="exact", fov_match="frame", working_size=48)
    res = rescale(ref, room(), room(20.0), np.eye(4), CAM, opts, target_zoom=zoom)
    again = step_parallax(res.trajectory.c2w, room(20.0), CAM, opts, zoom=zoom)
    np.testing.assert_allclose(again[1:], res.pi_realized[1:], rtol=1e-9)
    assert res.solver_residual < 1e-6
