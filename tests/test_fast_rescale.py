"""Fast paths of the rescale against the plain ones: first-order re-measuring of float32 keys, reused
target views, and the oracle on the landscape case (``parascale_tools.bench.landscape``)."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.depth_sources import MeshDepth
from parascale_blender.core.parallax import ParallaxProbe
from parascale_blender.core.rescale import RescaleOptions, rescale, step_parallax
from parascale_tools.bench import landscape as L


@pytest.fixture(scope="module")
def land():
    V, T = L.terrain()
    ref = L.reference(60)
    src = MeshDepth(V, T)
    opts = RescaleOptions(working_size=64, gradient=True)
    res = rescale(ref, L.reference_depth(), src, L.target_start(), L.CAM, opts)
    return V, T, ref, src, res


@pytest.mark.parametrize("measure", ["harmonic", "flow", "arithmetic", "exact"])
def test_the_gradient_is_the_derivative_of_the_parallax(measure):
    rng = np.random.default_rng(0)
    w = np.r_[rng.uniform(0.05, 1, 900), np.zeros(100)]
    probe = ParallaxProbe(rng.uniform(-0.5, 0.5, 1000), rng.uniform(-0.3, 0.3, 1000), w)
    for s in (np.array([0.1, 0.02, 0.3]), np.array([0.05, -0.1, -0.4])):
        h = 1e-7
        num = [(probe.parallax(s + e, measure) - probe.parallax(s - e, measure)) / (2 * h) for e in np.eye(3) * h]
        np.testing.assert_allclose(probe.gradient(s, measure), num, rtol=1e-6, atol=1e-9)
        np.testing.assert_allclose(probe.gradient(s / 2.5, measure, scale=2.5), num, rtol=1e-6, atol=1e-9)


def test_float32_keys_are_re_measured_to_first_order_as_their_own_views_measure_them(land):
    """The move rounded to float32 (what Blender keys): measured from the result's views to first order,
    Π agrees with rendering every rounded pose to 1e-6; a pose moved by a percent of a step is rendered."""
    _, _, _, src, res = land
    opts = RescaleOptions(working_size=64)
    rounded = res.trajectory.c2w.astype(np.float32).astype(np.float64)
    views = step_parallax(rounded, src, L.CAM, opts)
    linear = step_parallax(rounded, src, L.CAM, opts, near=res)
    np.testing.assert_allclose(linear[1:], views[1:], rtol=1e-6)
    assert np.abs(linear[1:] / res.pi_realized[1:] - 1).max() > 1e-9  # the rounding did change Π
    moved = rounded.copy()
    moved[10:, :3, 3] += 0.01 * np.linalg.norm(res.steps[10])  # from frame 10 on: off by 1% of a step
    got = step_parallax(moved, src, L.CAM, opts, near=res)
    np.testing.assert_array_equal(got[11:], step_parallax(moved, src, L.CAM, opts)[11:])


def test_reused_views_stay_near_the_oracle(land):
    """A target view every 4 poses, re-projected between: the oracle PCE (true triangles at 256 px)
    stays within 0.005 of rendering every pose, with a quarter of the views."""
    V, T, ref, src, res = land
    opts = RescaleOptions(working_size=64, view_every=4)
    fast = rescale(ref, L.reference_depth(), src, L.target_start(), L.CAM, opts)
    every = L.oracle_pce(res.trajectory.c2w, ref, V, T)
    reused = L.oracle_pce(fast.trajectory.c2w, ref, V, T)
    assert every < 1e-3
    assert reused < every + 0.005


def test_reference_parallax_is_cached_by_content_across_runs(land):
    """A re-run with an equal reference depth (a new object, the same content) reads no reference view
    and gives the same move; other options or another track measure again."""
    from parascale_blender.core.depth import ConstantDepth

    class Counting(ConstantDepth):
        views = 0

        def view(self, c2w, camera, index=None):
            Counting.views += 1
            return super().view(c2w, camera, index)

    _, _, ref, src, _ = land
    Counting.views = 0
    first = rescale(ref, Counting(2.0), src, L.target_start(), L.CAM, RescaleOptions(working_size=64, mode="flow"))
    assert Counting.views == len(ref) - 1
    again = rescale(ref, Counting(2.0), src, L.target_start(), L.CAM, RescaleOptions(working_size=64, mode="flow"))
    assert Counting.views == len(ref) - 1  # nothing read the second time
    np.testing.assert_array_equal(again.trajectory.c2w, first.trajectory.c2w)
    rescale(ref, Counting(2.0), src, L.target_start(), L.CAM, RescaleOptions(working_size=48, mode="flow"))
    assert Counting.views == 2 * (len(ref) - 1)  # another working size: measured again
    other = L.reference(61)
    rescale(other, Counting(2.0), src, L.target_start(), L.CAM, RescaleOptions(working_size=48, mode="flow"))
    assert Counting.views == 2 * (len(ref) - 1) + len(other) - 1  # another track


def test_a_subclass_answering_per_frame_never_shares_the_cache(land):
    """A ConstantDepth subclass with holes at some frames is not the plain subject distance: its Π is its
    own, after the plain one was cached for the same track and options."""
    from parascale_blender.core.depth import ConstantDepth, DepthView

    class Holey(ConstantDepth):
        def view(self, c2w, camera, index=None):
            v = super().view(c2w, camera, index)
            return DepthView(np.full_like(v.depth, np.nan), camera, sky=False) if index in (3, 4) else v

    _, _, ref, src, _ = land
    opts = RescaleOptions(working_size=48, mode="flow")
    plain = rescale(ref, ConstantDepth(2.0), src, L.target_start(), L.CAM, opts)
    holey = rescale(ref, Holey(2.0), src, L.target_start(), L.CAM, opts)
    assert np.isfinite(plain.pi_ref[4:6]).all() and np.isnan(holey.pi_ref[4:6]).all()
    assert holey.interpolated_frames == [4, 5]


@pytest.mark.parametrize(("points", "shape", "radius"), [(300, (90, 160), 16.0), (4000, (90, 160), 16.0),
                                                         (5, (90, 160), 16.0), (300, (90, 160), 2.5)])  # fmt: skip
def test_nearest_fill_equals_comparing_every_pair(points, shape, radius):
    """SfM fill (``fill_nearest``) against the plain all-pairs nearest search, ties to the first filled
    pixel in row-major order: the same map, a hole wider than the radius left empty."""
    from parascale_blender.core.depth_sources import fill_nearest

    rng = np.random.default_rng(points)
    h, w = shape
    d = np.full(shape, np.nan)
    d.flat[rng.choice(h * w, points, replace=False)] = rng.uniform(1, 5, points)
    d[:30, :60] = np.nan
    fy, fx = np.nonzero(np.isfinite(d))
    ey, ex = np.nonzero(~np.isfinite(d))
    d2 = (ey[:, None] - fy[None, :]) ** 2 + (ex[:, None] - fx[None, :]) ** 2
    j = np.argmin(d2, axis=1)
    want = d.copy()
    ok = d2[np.arange(len(j)), j] <= radius**2
    want[ey[ok], ex[ok]] = d[fy[j[ok]], fx[j[ok]]]
    got = fill_nearest(d, radius)
    np.testing.assert_array_equal(got, want)
    assert np.isnan(got[:5, :20]).all()  # farther than the radius from every sample
