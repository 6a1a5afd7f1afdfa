"""wan-fun-camera's adapter features are built one latent frame at a time: host memory for the
Plücker maps stays that of one latent frame (4 frames) whatever the clip's length, and the features
equal the whole clip's maps packed by ``pack_plucker`` and passed through the adapter at once."""

from __future__ import annotations

import tracemalloc
from types import SimpleNamespace

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from bridge_server.backends.base import GenerationJob  # noqa: E402
from bridge_server.backends.wan_fun_camera import CameraAdapter, camera_features, pack_plucker  # noqa: E402
from bridge_server.plucker import plucker_from_poses  # noqa: E402
from parascale_blender.core.camera import Trajectory, relative_to_first  # noqa: E402

W, H = 256, 160


def trajectory(n: int) -> Trajectory:
    t = np.linspace(0, 1, n)
    c2w = np.tile(np.eye(4), (n, 1, 1))
    a = np.radians(10) * t
    c2w[:, 0, 0], c2w[:, 0, 2], c2w[:, 2, 0], c2w[:, 2, 2] = np.cos(a), np.sin(a), -np.sin(a), np.cos(a)
    c2w[:, :3, 3] = np.stack([0.7 * t, 0.1 * t, -0.4 * t], axis=1)
    return Trajectory(np.arange(1, n + 1), c2w, np.tile([200.0, 200.0, W / 2, H / 2], (n, 1)), W, H, 24.0)


def features(n: int, adapter) -> tuple[torch.Tensor, int]:
    job = GenerationJob(trajectory(n), None, None, None, None)
    pipe = SimpleNamespace(vae_scale_factor_temporal=4)
    tracemalloc.start()
    try:
        feats = camera_features(job, pipe, adapter, W, H, gauge_depth=None)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return feats, peak


def test_plucker_memory_is_one_latent_frame_and_the_features_match_the_whole_clip():
    torch.manual_seed(0)
    adapter = CameraAdapter(24, 8, (2, 2), 8, 1).eval()
    short, peak_short = features(17, adapter)
    long, peak_long = features(81, adapter)
    whole_clip = 6 * 81 * H * W * 8  # the float64 maps of every frame
    assert peak_long < 1.3 * peak_short and peak_long < whole_clip / 4, (peak_short, peak_long, whole_clip)

    traj = trajectory(81)  # the truth: every frame's maps at once, packed, through the adapter
    maps = plucker_from_poses(relative_to_first(traj.c2w), traj.intrinsics, W, H)
    with torch.inference_mode():
        ref = adapter(torch.as_tensor(pack_plucker(maps, 4))[None])
    assert long.shape == ref.shape == (1, 8, 21, H // 16, W // 16)
    assert torch.allclose(long, ref, atol=1e-6)
    assert torch.equal(short, features(17, adapter)[0])
