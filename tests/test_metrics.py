"""core.metrics: hand-computed examples, invariances, degenerate tracks and clear errors."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from parascale_blender.core.camera import Trajectory, make_c2w
from parascale_blender.core.metrics import (
    Alignment,
    align_tracks,
    ate,
    cam_mc,
    geodesic_angle,
    match_frames,
    pce,
    pce_per_step,
    rot_err,
    rot_err_per_frame,
    rpe,
    summary,
    trans_err,
)
from parascale_blender.core.rotation import euler_to_matrix

I3 = np.eye(3)


def rz(theta: float) -> np.ndarray:
    return euler_to_matrix(np.array([0.0, 0.0, theta]))


def track(centres, rotations=None) -> np.ndarray:
    centres = np.asarray(centres, dtype=np.float64)
    if rotations is None:
        rotations = np.broadcast_to(I3, (len(centres), 3, 3))
    return make_c2w(np.asarray(rotations), centres)


def random_track(n: int = 40, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    R = euler_to_matrix(np.cumsum(rng.normal(0, 0.05, (n, 3)), axis=0))
    c = np.cumsum(rng.normal(0, 0.3, (n, 3)) + [0.0, 0.0, 0.2], axis=0)
    return track(c, R)


SIM = Alignment(euler_to_matrix(np.array([0.4, -1.1, 2.3])), np.array([3.0, -2.0, 7.0]), scale=0.02)


# ----------------------------------------------------------------------------- PCE
def test_pce_hand_computed_ignores_nan_and_nonpositive_steps():
    e = math.e
    pi_ref = np.array([np.nan, 1.0, 2.0, 4.0, 3.0, 5.0])
    pi_real = np.array([np.nan, e, 2.0, 4.0 / e**2, 0.0, np.inf])
    per = pce_per_step(pi_real, pi_ref)
    np.testing.assert_allclose(per[1:4], [1.0, 0.0, 2.0], atol=1e-15)
    assert np.isnan(per[[0, 4, 5]]).all()
    assert pce(pi_real, pi_ref) == pytest.approx(1.0, abs=1e-15)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.floats(1e-6, 1e6), min_size=2, max_size=30),
    st.floats(1e-3, 1e3),
    st.integers(0, 2**31),
)
def test_pce_is_scale_symmetric(pi, factor, seed):
    rng = np.random.default_rng(seed)
    pi_ref = np.array([np.nan, *pi])
    pi_real = pi_ref * factor * rng.uniform(0.5, 2.0, len(pi_ref))
    assert pce(pi_real, pi_ref) == pytest.approx(pce(pi_ref, pi_real), rel=1e-12, abs=1e-15)
    # A uniform factor k gives exactly |ln k| whichever way round.
    assert pce(pi_ref * factor, pi_ref) == pytest.approx(abs(math.log(factor)), rel=1e-9, abs=1e-12)


def test_pce_errors_are_clear():
    with pytest.raises(ValueError, match="none of the 3 steps"):
        pce([np.nan, 0.0, 1.0], [np.nan, 1.0, np.nan])
    with pytest.raises(ValueError, match="3 steps but pi_ref has 2"):
        pce([np.nan, 1.0, 1.0], [np.nan, 1.0])


# ----------------------------------------------------------------------------- RotErr / TransErr / CamMC
def test_rot_err_hand_computed_relative_to_first_frame():
    gt = track(np.zeros((3, 3)))
    # est's frame 0 is tilted: making both tracks relative to frame 0 removes the tilt.
    tilt = euler_to_matrix(np.array([0.5, 0.2, 0.0]))
    est = track(np.zeros((3, 3)), [tilt @ rz(0.2), tilt @ rz(0.3), tilt @ rz(0.5)])
    np.testing.assert_allclose(rot_err_per_frame(est, gt), [0.0, 0.1, 0.3], atol=1e-14)
    assert rot_err(est, gt) == pytest.approx(0.4, abs=1e-14)


def test_geodesic_angle_is_accurate_near_zero_and_pi():
    for theta in (1e-12, 1e-6, 0.7, math.pi - 1e-6, math.pi):
        assert geodesic_angle(rz(theta)) == pytest.approx(theta, rel=1e-9)


def test_trans_err_and_cam_mc_hand_computed():
    gt = track([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    est = track([[0, 0, 0], [0, 0, 5], [0, 0, 10]])
    # relative: gt / 2 and est / 10 -> (0, .5, 1) along x vs along z
    want = math.sqrt(0.5) + math.sqrt(2.0)
    assert trans_err(est, gt) == pytest.approx(want, rel=1e-14)
    assert cam_mc(est, gt) == pytest.approx(want, rel=1e-14)  # same rotations: only t differs
    # absolute with both in metric units: both divided by gt's extent 2
    assert trans_err(est, gt, "absolute") == pytest.approx(math.sqrt(6.5) + math.sqrt(26.0), rel=1e-14)
    # est known to be in decimetres: est_scale 0.2 brings it to gt's metric extent
    assert trans_err(est, gt, "absolute", est_scale=0.2) == pytest.approx(want, rel=1e-14)
    # gt stored in centimetres (gt_scale 0.01), est in metres: the same metric comparison
    gt_cm = gt.copy()
    gt_cm[:, :3, 3] *= 100.0
    assert trans_err(est, gt_cm, "absolute", est_scale=0.2, gt_scale=0.01) == pytest.approx(want, rel=1e-14)
    assert trans_err(est, gt, "none") == pytest.approx(math.sqrt(26) + math.sqrt(104), rel=1e-14)


def test_cam_mc_rotation_part_hand_computed():
    theta = 0.3
    gt = track([[0, 0, 0], [1, 0, 0]])
    est = track([[0, 0, 0], [1, 0, 0]], [I3, rz(theta)])
    # ||Rz(θ) - I||_F = sqrt(4 (1 - cos θ)) = 2√2 sin(θ/2)
    assert cam_mc(est, gt) == pytest.approx(2 * math.sqrt(2) * math.sin(theta / 2), rel=1e-13)
    assert trans_err(est, gt) == 0.0


def test_static_tracks_are_not_divided_by_zero():
    gt = track(np.zeros((4, 3)), [rz(a) for a in (0, 0.1, 0.2, 0.3)])
    est = track(np.zeros((4, 3)) + 5.0, [rz(a) for a in (0, 0.1, 0.2, 0.3)])
    for norm in ("relative", "absolute"):
        assert trans_err(est, gt, norm) == 0.0
        assert cam_mc(est, gt, norm) == pytest.approx(0.0, abs=1e-15)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_rigid_change_of_world_leaves_relative_metrics_unchanged(seed):
    gt = random_track(seed=seed)
    rng = np.random.default_rng(seed + 10)
    wobble = euler_to_matrix(rng.normal(0, 0.02, (len(gt), 3)))
    est = track(gt[:, :3, 3] + rng.normal(0, 0.05, (len(gt), 3)), gt[:, :3, :3] @ wobble)
    moved = Alignment(SIM.rotation, SIM.translation, 1.0).apply(est)  # the whole track rotated and shifted
    for f in (rot_err, trans_err, cam_mc, lambda a, b: trans_err(a, b, "absolute")):
        assert f(moved, gt) == pytest.approx(f(est, gt), rel=1e-9)
    r0, r1 = rpe(est, gt), rpe(moved, gt)
    np.testing.assert_allclose(r1.trans_errors, r0.trans_errors, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(r1.rot_errors, r0.rot_errors, rtol=1e-9, atol=1e-12)
    assert ate(moved, gt).rmse == pytest.approx(ate(est, gt).rmse, rel=1e-9)
    assert ate(moved, gt, "se3").rmse == pytest.approx(ate(est, gt, "se3").rmse, rel=1e-9)
    # relative normalisation also forgives a uniform scale
    scaled = SIM.apply(est)
    assert trans_err(scaled, gt) == pytest.approx(trans_err(est, gt), rel=1e-9)
    assert cam_mc(scaled, gt) == pytest.approx(cam_mc(est, gt), rel=1e-9)


# ----------------------------------------------------------------------------- ATE
def test_ate_hand_computed_without_alignment():
    gt = track([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    est = track([[0, 0, 0], [1, 3, 0], [2, 0, 4]])
    r = ate(est, gt, align="none")
    np.testing.assert_allclose(r.errors, [0, 3, 4])
    assert (r.rmse, r.mean, r.median, r.max) == pytest.approx((math.sqrt(25 / 3), 7 / 3, 3.0, 4.0))


def test_ate_se3_removes_a_rigid_offset_and_sim3_a_scale():
    gt = random_track()
    assert ate(Alignment(SIM.rotation, SIM.translation, 1.0).apply(gt), gt, "se3").max < 1e-12
    r = ate(SIM.apply(gt), gt)
    assert r.max < 1e-12 * np.abs(gt[:, :3, 3]).max()
    assert r.alignment.method == "umeyama"
    assert r.alignment.scale == pytest.approx(1 / SIM.scale, rel=1e-12)
    np.testing.assert_allclose(r.alignment.rotation, SIM.rotation.T, atol=1e-12)


def test_ate_pure_dolly_scaled_copy_is_zero_and_recovers_the_alignment():
    n = 25
    c = np.zeros((n, 3))
    c[:, 2] = np.linspace(0, 4, n) ** 1.5  # collinear centres, uneven speed
    gt = track(c, [rz(0.01 * i) for i in range(n)])
    est = SIM.apply(gt)
    for mode in ("sim3", "se3"):
        r = ate(est, gt, mode)
        assert np.isfinite(r.errors).all()
        assert r.alignment.method == "collinear"
    r = ate(est, gt)
    assert r.max < 1e-12
    assert r.alignment.scale == pytest.approx(1 / SIM.scale, rel=1e-12)
    # the twist about the dolly axis comes from the camera orientations
    np.testing.assert_allclose(r.alignment.rotation, SIM.rotation.T, atol=1e-12)


def test_ate_collinear_with_noise_is_optimal_among_similarities():
    rng = np.random.default_rng(3)
    n = 30
    c = np.zeros((n, 3))
    c[:, 0] = np.linspace(-1, 1, n)
    gt = track(c)
    est = SIM.apply(gt)
    est[:, :3, 3] += rng.normal(0, 0.002, (n, 3)) * SIM.scale
    r = ate(est, gt)
    # The true inverse similarity is one candidate; the least-squares alignment cannot do worse.
    inv = Alignment(SIM.rotation.T, -SIM.rotation.T @ SIM.translation / SIM.scale, 1 / SIM.scale)
    truth_err = np.linalg.norm(inv.apply(est)[:, :3, 3] - c, axis=1)
    assert r.rmse <= np.sqrt(np.mean(truth_err**2)) + 1e-12
    assert 0 < r.rmse < 0.01


def test_ate_static_and_nearly_static_tracks_stay_finite():
    n = 10
    rots = [rz(0.05 * i) for i in range(n)]
    gt = track(np.zeros((n, 3)) + [1.0, 2.0, 3.0], rots)
    est = track(np.zeros((n, 3)), [SIM.rotation @ R for R in rots])
    r = ate(est, gt)
    assert r.alignment.method == "orientation" and r.max < 1e-12 and r.alignment.scale == 1.0
    np.testing.assert_allclose(r.alignment.rotation, SIM.rotation.T, atol=1e-12)
    jitter = est.copy()
    jitter[:, :3, 3] += np.random.default_rng(0).normal(0, 1e-13, (n, 3))
    for mode in ("sim3", "se3"):
        assert np.isfinite(ate(jitter, gt, mode).errors).all()
    # a moving estimate against a static reference: scale undetermined, kept at 1 (no collapse to 0)
    moving = track(np.linspace(0, 1, n)[:, None] * [1.0, 0, 0], rots)
    r = ate(moving, gt)
    assert r.alignment.scale == 1.0 and r.rmse == pytest.approx(ate(moving, gt, "se3").rmse)


# ----------------------------------------------------------------------------- RPE
def test_rpe_hand_computed():
    gt = track([[0, 0, 0], [1, 0, 0], [2, 0, 0]])
    est = track([[0, 0, 0], [1, 0, 0], [2, 1, 0]], [I3, I3, rz(0.25)])
    r = rpe(est, gt)
    np.testing.assert_allclose(r.trans_errors, [0.0, 1.0], atol=1e-15)
    np.testing.assert_allclose(r.rot_errors, [0.0, 0.25], atol=1e-15)
    assert (r.trans_rmse, r.trans_mean) == pytest.approx((math.sqrt(0.5), 0.5))
    assert (r.rot_rmse, r.rot_mean) == pytest.approx((0.25 / math.sqrt(2), 0.125))
    r2 = rpe(est, gt, delta=2)
    np.testing.assert_allclose(r2.trans_errors, [1.0])


def test_rpe_sim3_removes_scale():
    gt = random_track()
    assert rpe(SIM.apply(gt), gt, align="sim3").trans_errors.max() < 1e-12
    assert rpe(SIM.apply(gt), gt).trans_errors.max() > 0.01


# ----------------------------------------------------------------------------- inputs and summary
def test_trajectory_inputs_match_arrays_and_frames_are_paired():
    gt_c2w, est_c2w = random_track(seed=1), random_track(seed=2)
    n = len(gt_c2w)
    gt = Trajectory(np.arange(n) + 1, gt_c2w, [500, 500, 320, 240], 640, 480)
    est = Trajectory(np.arange(n) + 1, est_c2w, [500, 500, 320, 240], 640, 480)
    assert rot_err(est, gt) == rot_err(est_c2w, gt_c2w)
    assert ate(est, gt).rmse == ate(est_c2w, gt_c2w).rmse
    # est covers frames 6..n only: summary pairs by frame number
    e2, g2 = match_frames(est.replace(frames=est.frames[5:], c2w=est_c2w[5:], intrinsics=est.intrinsics[5:]), gt)
    assert list(g2.frames) == list(range(6, n + 1))
    np.testing.assert_array_equal(g2.c2w, gt_c2w[5:])
    s = summary(e2, g2)
    assert s["frames"] == n - 5 and s["rot_err"] == pytest.approx(rot_err(est_c2w[5:], gt_c2w[5:]))


def test_summary_is_json_and_holds_every_metric():
    gt = random_track()
    est = SIM.apply(gt)
    pi_ref = np.r_[np.nan, np.linspace(1, 2, len(gt) - 1)]
    s = summary(est, gt, pi_ref=pi_ref, pi_realized=pi_ref * 2.0)
    json.dumps(s, allow_nan=False)
    assert s["pce"] == pytest.approx(math.log(2.0)) and s["pce_steps"] == len(gt) - 1
    assert s["rot_err"] < 1e-9 and s["trans_err_relative"] < 1e-9 and s["cam_mc_relative"] < 1e-9
    assert s["trans_err_absolute"] > 1.0  # est is 50x smaller than gt
    assert s["ate_sim3"]["rmse"] < 1e-12 and s["ate_se3"]["rmse"] > 0.1
    assert s["rpe_sim3"]["trans_rmse"] < 1e-12 and s["rpe"]["trans_rmse"] > 0.01
    assert "pce" not in summary(est, gt)
    none_usable = summary(est, gt, pi_ref=pi_ref, pi_realized=np.zeros_like(pi_ref))
    assert none_usable["pce"] is None and none_usable["pce_steps"] == 0


def test_bad_inputs_give_clear_errors():
    gt = random_track(n=5)
    bad = gt.copy()
    bad[3, 0, 3] = np.nan
    with pytest.raises(ValueError, match="est: frame 3: pose has non-finite"):
        ate(bad, gt)
    with pytest.raises(ValueError, match=r"gt: expected .* \(N, 4, 4\)"):
        rot_err(gt, gt[:, :3, :])
    with pytest.raises(ValueError, match="est has 4 frames but gt has 5"):
        trans_err(gt[:4], gt)
    with pytest.raises(ValueError, match="normalisation must be one of"):
        cam_mc(gt, gt, "metric")
    with pytest.raises(ValueError, match="est_scale must be positive"):
        trans_err(gt, gt, "absolute", est_scale=0.0)
    with pytest.raises(ValueError, match="align must be one of"):
        align_tracks(gt, gt, "affine")
    with pytest.raises(ValueError, match=r"delta must be an integer in \[1, 4\]"):
        rpe(gt, gt, delta=5)
    mirrored = gt.copy()
    mirrored[2, :3, 0] *= -1
    with pytest.raises(ValueError, match=r"est: frame 2: rotation determinant -1\.000 \(a reflection"):
        rpe(mirrored, gt)
    t = Trajectory(np.arange(5) + 10, bad, [1, 1, 0, 0], 2, 2)
    with pytest.raises(ValueError, match="gt: frame 13: pose has non-finite"):
        rot_err(gt, t)
