"""Relative Depth Anything: its disparity is affine-invariant (s / Z + t); anchors of known depth fix
both the scale and the shift. Checked against the closed form on a synthetic disparity and against
transformers' own prediction of a relative model."""

from __future__ import annotations

import io

import numpy as np
import pytest
from test_gen_backends import make_job, run, weights  # noqa: F401  (the weights fixture)

from parascale_blender.core.depth import depth_from_affine_disparity

torch = pytest.importorskip("torch")


def test_scale_and_shift_are_recovered_exactly_from_two_anchors():
    Z = np.linspace(1.0, 9.0, 48).reshape(6, 8)
    disparity = 0.37 / Z + 0.2  # a relative model's output: unknown scale and shift
    px = np.array([[0.5, 0.5], [7.5, 5.5]])
    depth, s, t = depth_from_affine_disparity(disparity, px, Z[[0, 5], [0, 7]])
    assert (s, t) == (pytest.approx(0.37, rel=1e-12), pytest.approx(0.2, rel=1e-12))
    np.testing.assert_allclose(depth, Z, rtol=1e-12)
    # Ignoring the shift (1/disparity, scaled to the near anchor) puts the far end 3.8x too near.
    naive = (1.0 / disparity) * (Z[0, 0] * disparity[0, 0])
    assert np.min(naive / Z) == pytest.approx((0.37 / 9 + 0.2) ** -1 * 0.57 / 9, rel=1e-12)


def test_bad_anchors_are_refused_with_the_reason():
    d = np.ones((4, 4))
    with pytest.raises(ValueError, match="outside the 4x4 image"):
        depth_from_affine_disparity(d, [[4.0, 0.0], [0.0, 0.0]], [1.0, 2.0])
    with pytest.raises(ValueError, match="different disparity"):
        depth_from_affine_disparity(d, [[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0])


def test_relative_depth_anything_job_fits_scale_and_shift_to_the_anchors(weights, tmp_path):  # noqa: F811
    from transformers import AutoImageProcessor, AutoModelForDepthEstimation

    from bridge_server.backends.base import JobFailed
    from bridge_server.backends.depth_anything import DepthAnythingBackend

    backend = DepthAnythingBackend()
    job, _ = make_job(backend, tmp_path, model="relative")
    folder = weights / "depth-anything" / "relative"
    proc = AutoImageProcessor.from_pretrained(folder)
    model = AutoModelForDepthEstimation.from_pretrained(folder).eval()
    with torch.no_grad():
        out = model(**proc(images=job.image, return_tensors="pt"))
    disp = proc.post_process_depth_estimation(out, target_sizes=[job.image.shape[:2]])[0]["predicted_depth"].numpy()
    assert np.ptp(disp) > 0
    # A scene whose depth the prediction gives up to a scale and a shift: Z = s / (d - t), in 1.8..20.
    s, t = 2.0 * np.ptp(disp), float(np.min(disp) - 0.1 * np.ptp(disp))
    truth = s / (disp - t)
    ys, xs = np.unravel_index([np.argmin(disp), np.argmax(disp), disp.size // 2], disp.shape)
    anchors = [(float(x) + 0.5, float(y) + 0.5, float(truth[y, x])) for x, y in zip(xs, ys, strict=True)]
    job, logs = make_job(backend, tmp_path, model="relative", anchors=anchors)
    run(backend, job)
    depth = np.load(io.BytesIO(job.output.read_bytes()), allow_pickle=False)
    np.testing.assert_allclose(depth, truth, rtol=2e-3)
    assert any("fitted to 3 anchors" in m for m in logs)

    job, _ = make_job(backend, tmp_path, model="relative", anchors=[(1.0, 1.0, 2.0)])
    with pytest.raises(JobFailed, match="params.anchors: need at least two anchors"):
        run(backend, job)
