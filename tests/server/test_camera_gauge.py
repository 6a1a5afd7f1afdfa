"""Camera scale (issue 12, point 8): the trajectory's translations are carried into the model's
training gauge with Π, so the camera conditioning is the same for the same shot at any scale."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
from server_helpers import plane_scene

torch = pytest.importorskip("torch")

from bridge_server.backends.base import GenerationJob  # noqa: E402
from bridge_server.backends.wan_fun_camera import CameraAdapter, CameraParams, camera_features  # noqa: E402
from bridge_server.config import Limits  # noqa: E402
from bridge_server.inputs import parse_trajectory  # noqa: E402
from bridge_server.plucker import conditioning_scale, plucker_maps  # noqa: E402
from parascale_blender.core.parallax import ParallaxProbe, gauge_scale  # noqa: E402

W, H, N = 64, 48, 9


def scaled_shot(scale: float):
    """The plane scene's trajectory and depth, every length multiplied by ``scale``; depth varies."""
    sc = plane_scene(W, H, N, step=0.1, yaw_deg=1.0)
    traj = parse_trajectory(json.dumps(sc.doc).encode(), Limits())
    ramp = np.linspace(1.0, 3.0, W)[None, :]  # a slanted scene: depth 1..3 x the plane's
    c2w = traj.c2w.copy()
    c2w[:, :3, 3] *= scale
    return traj.replace(c2w=c2w), sc.image, sc.depth * ramp * scale


def test_gauge_scale_is_the_model_depth_over_the_harmonic_mean_depth():
    z = np.array([[1.0, 2.0], [4.0, np.nan]])
    assert gauge_scale(z, 3.0) == pytest.approx(3.0 * (1 + 0.5 + 0.25) / 3)
    assert np.isnan(gauge_scale(np.full((2, 2), np.nan), 1.0))
    # The scaled step has, in a world at the model's depth, the Π it had in the shot.
    d = np.array([0.3, -0.1, 0.05])
    shot = ParallaxProbe(np.zeros(3), np.zeros(3), 1.0 / np.array([1.0, 2.0, 4.0]))
    model = ParallaxProbe(np.zeros(1), np.zeros(1), np.array([1.0 / 3.0]))
    assert model.parallax(gauge_scale(z, 3.0) * d) == pytest.approx(shot.parallax(d), rel=1e-12)


def test_the_same_shot_at_1cm_and_1km_gives_the_same_conditioning():
    small, big = scaled_shot(0.01), scaled_shot(1000.0)
    s_small, s_big = conditioning_scale(small[2], 1.0), conditioning_scale(big[2], 1.0)
    assert s_small / s_big == pytest.approx(1e5, rel=1e-9)
    maps_small = plucker_maps(small[0], 32, 24, s_small)
    maps_big = plucker_maps(big[0], 32, 24, s_big)
    assert np.abs(maps_small[:3]).max() > 1e-3, "the moment channels carry the translation"
    np.testing.assert_allclose(maps_small, maps_big, rtol=1e-5, atol=1e-6)

    # Through the backend's own conditioning path (a real adapter; the pipe only gives the VAE stride).
    torch.manual_seed(0)
    adapter = CameraAdapter(24, 16, (2, 2), downscale=8).eval()
    pipe = SimpleNamespace(vae_scale_factor_temporal=4)
    feats = []
    for traj, image, depth in (small, big):
        job = GenerationJob(traj, image, depth, CameraParams.model_construct(), output=None)  # type: ignore[arg-type]
        feats.append(camera_features(job, pipe, adapter, W, H).float())
    torch.testing.assert_close(feats[0], feats[1], rtol=1e-4, atol=1e-5)


def test_gauge_off_keeps_the_metres():
    traj, _, depth = scaled_shot(2.0)
    assert conditioning_scale(depth, None) == 1.0
    np.testing.assert_array_equal(
        plucker_maps(traj, 32, 24), plucker_maps(traj, 32, 24, conditioning_scale(depth, None))
    )
