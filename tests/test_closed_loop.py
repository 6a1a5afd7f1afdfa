"""The closed-loop regression guard: rendered clips must show the reference's parallax.

Runs the benchmark's quick mode (rescale, render both clips, measure both with optical flow)
and fails if the product's default mode stops beating uncalibrated transfer by 10x.
"""

from __future__ import annotations

import numpy as np
import pytest

from bridge_server.flow_parallax import measured_parallax
from parascale_blender.core.camera import Camera
from parascale_blender.core.parallax import ParallaxProbe
from parascale_tools.bench import closed_loop as cl
from parascale_tools.bench import raytrace
from parascale_tools.synthetic import camera_move


@pytest.fixture(scope="module")
def quick_summary(shared_data):
    cases = cl.run(quick=True, shared_data=shared_data, log=None)
    return cases, cl.summarize(cases)


def test_harmonic_beats_uncalibrated_by_10x_and_arithmetic_by_3x(quick_summary):
    _, s = quick_summary
    assert s["harmonic"]["pce_mean"] * 10 <= s["none"]["pce_mean"], s
    assert s["harmonic"]["pce_mean"] * 3 <= s["arithmetic"]["pce_mean"], s
    assert s["flow"]["pce_mean"] < 0.1, s


def test_rotation_is_never_touched(quick_summary):
    cases, _ = quick_summary
    assert max(c.rot_err_deg for c in cases) < 1e-6


def test_pairings_span_four_orders_of_magnitude():
    for (_, rs), (_, ts) in cl.PAIRINGS:
        assert abs(np.log10(rs / ts)) >= 4


@pytest.mark.parametrize("name", sorted(raytrace.SCENES))
@pytest.mark.parametrize("step", [(1.0, 0, 0), (0, 0, 1.0)])
def test_flow_measurement_agrees_with_analytic_flow(name, step):
    """The optical-flow yardstick itself: within 8% of the exact mean flow on every scene."""
    cam = Camera(170.0, 170.0, 96.0, 56.0, 192, 112)
    scene = raytrace.SCENES[name](3.0)
    d = np.asarray(step, dtype=float)
    exact = ParallaxProbe.from_view(scene.view(np.eye(4), cam), allow_sky=True).parallax(d, "flow")
    c1 = np.eye(4)
    c1[:3, 3] = d * (4.0 / cam.fx / exact)  # about 4 px of mean flow
    traj = cl._track(np.stack([np.eye(4), c1]), cam)
    frames, covered = cl.render_clip(scene, traj, "raytrace")
    measured = measured_parallax(frames, covered, traj)[1]
    assert measured == pytest.approx(4.0 / cam.fx, rel=0.08)


def test_pycolmap_retrack_of_an_output_clip_reads_the_reference_parallax():
    """The second, independent measurement: SfM on the rendered output clip (no ground truth given)
    recovers the reference's Π, and the scene choice that the full report re-tracks is solvable."""
    pytest.importorskip("pycolmap")
    import tempfile
    from pathlib import Path

    from parascale_blender.core.rescale import RescaleOptions, rescale

    (rs, rscale), (ts, tscale) = next(p for p in cl.PAIRINGS if p[1][0] == "room")
    assert ts in cl.RETRACK_TARGETS
    cam = Camera(288.0, 288.0, 160.0, 96.0, 320, 192)
    ref_scene, tgt_scene = raytrace.SCENES[rs](rscale), raytrace.SCENES[ts](tscale)
    c2w = camera_move("truck", 12)
    c2w[:, :3, 3] *= rscale
    probe = rescale(cl._track(c2w, cam), ref_scene, ref_scene, np.eye(4), cam, RescaleOptions(mode="none"))
    c2w[:, :3, 3] *= cl.TARGET_FLOW_PX / cam.fx / np.nanmedian(probe.pi_ref[1:])
    res = rescale(cl._track(c2w, cam), ref_scene, tgt_scene, np.eye(4), cam, RescaleOptions(allow_sky=True))
    frames, _ = cl.render_clip(tgt_scene, res.trajectory, "raytrace")
    with tempfile.TemporaryDirectory() as tmp:
        pce = cl.colmap_pce(frames, res.trajectory, res.pi_ref, Path(tmp))
    assert pce < 0.1, pce


def test_oracle_parallax_of_a_dolly_onto_a_wall_is_the_closed_form():
    """The oracle (projection of traced points) against the closed form of a dolly onto a
    fronto-parallel wall: every pixel slides out by |(x, y)|·dz / (Z - dz)."""
    from parascale_blender.core.camera import Trajectory, make_c2w

    cam = Camera(60.0, 60.0, 32.0, 18.0, 64, 36)
    scene = raytrace.wall(3.0)  # 3 units in front of the origin
    c2w = np.stack([make_c2w(np.eye(3), [0.0, 0.0, z]) for z in (0.0, 0.5, 0.8)])
    traj = Trajectory(np.arange(3), c2w, [cam.fx, cam.fy, cam.cx, cam.cy], cam.width, cam.height)
    x, y = cam.pixel_rays()
    r = np.mean(np.hypot(x, y))
    oracle = cl.oracle_parallax(scene, traj)
    assert oracle[1] == pytest.approx(r * 0.5 / 2.5, rel=1e-9)
    assert oracle[2] == pytest.approx(r * 0.3 / 2.2, rel=1e-9)


def test_exact_mode_matches_the_oracle_in_the_closed_loop(quick_summary):
    cases, s = quick_summary
    assert s["exact"]["oracle_mean"] <= 0.01, s
    assert s["exact"]["oracle_mean"] < s["harmonic"]["oracle_mean"] < s["none"]["oracle_mean"], s
    # the gate is the worst motion class, not the mean
    classes = cl.by_class(cases, "exact")
    assert {"truck", "dolly", "push_pan", "accelerate"} <= set(classes)
    assert max(c["oracle_mean"] for c in classes.values()) <= 0.05, classes
