"""ATE and RPE cross-checked against the `evo` package (GPL-3.0: imported here, at test time only)."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import invert_rigid, make_c2w
from parascale_blender.core.metrics import Alignment, ate, rpe
from parascale_blender.core.rotation import euler_to_matrix, nearest_rotation

evo_metrics = pytest.importorskip("evo.core.metrics")
from evo.core.geometry import GeometryException  # noqa: E402
from evo.core.trajectory import PoseTrajectory3D  # noqa: E402

SIM = Alignment(rotation=euler_to_matrix(np.array([-0.7, 0.3, 1.9])), translation=np.array([-4.0, 1.0, 0.5]), scale=3.7)


def evo_traj(c2w: np.ndarray) -> PoseTrajectory3D:
    return PoseTrajectory3D(poses_se3=list(c2w), timestamps=np.arange(len(c2w), dtype=float))


def evo_ate(est: np.ndarray, gt: np.ndarray, mode: str) -> dict:
    e = evo_traj(est)
    if mode != "none":
        e.align(evo_traj(gt), correct_scale=mode == "sim3")
    m = evo_metrics.APE(evo_metrics.PoseRelation.translation_part)
    m.process_data((evo_traj(gt), e))
    return m.get_all_statistics()


def evo_rpe(est: np.ndarray, gt: np.ndarray, delta: int, relation) -> dict:
    """evo's RPE over every overlapping pair (i, i+delta), as ours."""
    m = evo_metrics.RPE(relation, delta=delta, delta_unit=evo_metrics.Unit.frames, all_pairs=True)
    m.process_data((evo_traj(gt), evo_traj(est)))
    return m.get_all_statistics()


def noisy_copy(gt: np.ndarray, seed: int, pos_sigma: float, rot_sigma: float) -> np.ndarray:
    """gt moved into another world by SIM, with pose noise."""
    rng = np.random.default_rng(seed)
    noisy = gt.copy()
    noisy[:, :3, 3] += rng.normal(0, pos_sigma, (len(gt), 3))
    noisy[:, :3, :3] = noisy[:, :3, :3] @ euler_to_matrix(rng.normal(0, rot_sigma, (len(gt), 3)))
    return SIM.apply(noisy)


def synthetic_track(n: int = 60) -> np.ndarray:
    t = np.linspace(0, 2 * np.pi, n)
    centres = np.stack([3 * np.sin(t), 0.5 * np.cos(3 * t), 2 * t], axis=1)  # non-collinear, non-planar
    R = euler_to_matrix(np.stack([0.1 * np.sin(t), 0.4 * t, 0.05 * t], axis=1))
    return make_c2w(R, centres)


def re10k_track(path) -> np.ndarray:
    """A RealEstate10K pose file (12 world-to-camera numbers per line after 7) as c2w, OpenCV axes."""
    rows = np.loadtxt(path, skiprows=1)
    w2c = np.tile(np.eye(4), (len(rows), 1, 1))
    w2c[:, :3, :] = rows[:, 7:19].reshape(-1, 3, 4)
    w2c[:, :3, :3] = nearest_rotation(w2c[:, :3, :3])  # 9-digit files are orthonormal to ~1e-9
    return invert_rigid(w2c)


def tracks(shared_data):
    yield "synthetic", synthetic_track()
    for p in sorted((shared_data / "re10k").glob("*.txt"))[:4]:
        yield p.name, re10k_track(p)


@pytest.mark.parametrize("mode", ["sim3", "se3", "none"])
def test_ate_matches_evo(shared_data, mode):
    for i, (name, gt) in enumerate(tracks(shared_data)):
        extent = np.ptp(gt[:, :3, 3], axis=0).max()
        est = noisy_copy(gt, seed=i, pos_sigma=0.03 * extent, rot_sigma=0.01)
        if mode == "none":  # undo SIM so the unaligned error is the noise, not the change of world
            est = Alignment(SIM.rotation.T, -SIM.rotation.T @ SIM.translation / SIM.scale, 1 / SIM.scale).apply(est)
        ours, ref = ate(est, gt, align=mode), evo_ate(est, gt, mode)
        assert ours.alignment.method == ("none" if mode == "none" else "umeyama"), name
        for key in ("rmse", "mean", "median", "max"):
            assert getattr(ours, key) == pytest.approx(ref[key], rel=1e-9), (name, key)
        assert ours.rmse > 1e-4 * extent, name  # the noise shows: the comparison is not 0 == 0


@pytest.mark.parametrize("delta", [1, 3])
def test_rpe_matches_evo(shared_data, delta):
    rel = evo_metrics.PoseRelation
    for i, (name, gt) in enumerate(tracks(shared_data)):
        extent = np.ptp(gt[:, :3, 3], axis=0).max()
        est = noisy_copy(gt, seed=10 + i, pos_sigma=0.02 * extent, rot_sigma=0.02)
        est[:, :3, 3] /= SIM.scale  # RPE is invariant to the world rotation but not to scale
        ours = rpe(est, gt, delta=delta)
        t_ref = evo_rpe(est, gt, delta, rel.translation_part)
        r_ref = evo_rpe(est, gt, delta, rel.rotation_angle_rad)
        assert ours.trans_rmse == pytest.approx(t_ref["rmse"], rel=1e-9), name
        assert ours.trans_mean == pytest.approx(t_ref["mean"], rel=1e-9), name
        assert ours.rot_rmse == pytest.approx(r_ref["rmse"], rel=1e-7), name
        assert ours.rot_mean == pytest.approx(r_ref["mean"], rel=1e-7), name


def test_nearly_collinear_track_matches_evo_and_the_exact_dolly_stays_defined():
    """evo refuses a pure dolly; ours gives the limit of the nearly-collinear answers evo accepts."""
    n = 40
    c = np.zeros((n, 3))
    c[:, 2] = np.linspace(0, 6, n) ** 1.3
    gt = make_c2w(euler_to_matrix(np.stack([np.zeros(n), np.linspace(0, 0.2, n), np.zeros(n)], 1)), c)
    rng = np.random.default_rng(7)
    est = noisy_copy(gt, seed=7, pos_sigma=0.02, rot_sigma=0.0)
    with pytest.raises(GeometryException):
        evo_ate(SIM.apply(gt), gt, "sim3")  # why the fallback exists
    exact = ate(SIM.apply(gt), gt)
    assert exact.alignment.method == "collinear" and exact.rmse < 1e-12
    # Off-axis wiggle of 1e-4 on the reference makes evo well-posed; both agree.
    gt_wiggle = gt.copy()
    gt_wiggle[:, :2, 3] += rng.normal(0, 1e-4, (n, 2))
    ours, ref = ate(est, gt_wiggle), evo_ate(est, gt_wiggle, "sim3")
    assert ours.rmse == pytest.approx(ref["rmse"], rel=1e-6)
    # and the exactly collinear reference gives nearly the same number (continuity)
    assert ate(est, gt).rmse == pytest.approx(ref["rmse"], rel=1e-4)
