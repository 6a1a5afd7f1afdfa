"""Plücker ray maps against projection (every ray re-projects onto its own pixel centre, the moment is
the same for any point of the line, poses are relative to frame 0) and against CameraCtrl's own
``get_relative_pose`` + ``ray_condition`` (re-written below from its published inference.py), and
``parascale export-rays`` read back with numpy and the ``safetensors`` library."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from bridge_server.plucker import plucker_maps
from parascale_blender.core.camera import Trajectory, make_c2w
from parascale_blender.core.rotation import matrix_from_quat


def _random_rotations(rng, n):
    q = rng.normal(size=(n, 4))
    return matrix_from_quat(q / np.linalg.norm(q, axis=1, keepdims=True))


def _trajectory(seed=0, n=5, width=40, height=24):
    rng = np.random.default_rng(seed)
    c2w = make_c2w(_random_rotations(rng, n), rng.normal(scale=3.0, size=(n, 3)))
    K = np.column_stack([rng.uniform(20, 60, n), rng.uniform(20, 60, n), rng.uniform(15, 25, n), rng.uniform(8, 16, n)])
    return Trajectory(np.arange(1, n + 1), c2w, K, width, height)


def _project(X, c2w, K):
    Xc = (X - c2w[:3, 3]) @ c2w[:3, :3]
    return np.array([K[0] * Xc[0] / Xc[2] + K[2], K[1] * Xc[1] / Xc[2] + K[3]]), Xc[2]


@pytest.mark.parametrize("size", [None, (20, 12), (80, 48)])
def test_rays_reproject_onto_their_pixel_centres(size):
    traj = _trajectory()
    W, H = size or (traj.width, traj.height)
    maps = plucker_maps(traj, *(size or ()))
    assert maps.shape == (6, len(traj), H, W) and maps.dtype == np.float32
    rel = np.linalg.inv(traj.c2w[0]) @ traj.c2w  # independent inverse (general, not rigid)
    scale = np.array([W / traj.width, H / traj.height] * 2)
    rng = np.random.default_rng(1)
    for f in range(len(traj)):
        K = traj.intrinsics[f] * scale
        for u, v in zip(rng.integers(0, W, 6), rng.integers(0, H, 6)):
            m, d = maps[:3, f, v, u].astype(float), maps[3:, f, v, u].astype(float)
            assert np.linalg.norm(d) == pytest.approx(1.0, abs=1e-6)
            o = rel[f, :3, 3]
            for s in (0.5, 7.0):
                P = o + s * d
                uv, z = _project(P, rel[f], K)
                assert z > 0
                assert uv == pytest.approx([u + 0.5, v + 0.5], abs=1e-4)
                # The moment is a property of the line: any point on it gives the same P x d.
                assert m == pytest.approx(np.cross(P, d), abs=1e-4 * max(1.0, np.abs(P).max()))


def test_frame_zero_is_the_identity_camera_and_world_placement_does_not_matter():
    traj = _trajectory(seed=3)
    maps = plucker_maps(traj)
    assert np.abs(maps[:3, 0]).max() < 1e-6, "frame 0 sits at the origin: zero moments"
    K = traj.intrinsics[0]
    u, v = 7, 5
    d = np.array([(u + 0.5 - K[2]) / K[0], (v + 0.5 - K[3]) / K[1], 1.0])
    assert maps[3:, 0, v, u] == pytest.approx(d / np.linalg.norm(d), abs=1e-6)
    rng = np.random.default_rng(9)
    moved = traj.placed_at(make_c2w(_random_rotations(rng, 1)[0], [100.0, -40.0, 3.0]))
    assert np.allclose(plucker_maps(moved), maps, atol=1e-4)


def test_pure_translation_moment_matches_closed_form():
    # Camera moved by t with identity rotation: the moment is t x d for every pixel.
    c2w = np.tile(np.eye(4), (2, 1, 1))
    c2w[1, :3, 3] = [0.3, -0.2, 1.5]
    traj = Trajectory([1, 2], c2w, [30.0, 30.0, 16.0, 8.0], 32, 16)
    maps = plucker_maps(traj)
    d = maps[3:, 1].reshape(3, -1).T
    expected = np.cross(c2w[1, :3, 3], d)
    assert np.allclose(maps[:3, 1].reshape(3, -1).T, expected, atol=1e-6)
    assert np.allclose(maps[3:, 0], maps[3:, 1])


RE10K = Path(__file__).resolve().parents[1] / "parascale_blender" / "data" / "re10k_0bf152ef84195293.txt"


def _cameractrl_plucker(path: Path, width: int, height: int) -> np.ndarray:
    """CameraCtrl's inference.py, independently re-written from github.com/hehao13/CameraCtrl: rows of a
    RealEstate10K file -> ``Camera`` (w2c from columns 7.., c2w = inv), ``get_relative_pose`` with
    ``zero_first_frame_scale=True`` (float32), ``ray_condition`` in torch float32, then
    ``permute(0, 1, 4, 2, 3)``: (frames, 6, H, W). Same aspect as the poses, so no fx/fy correction."""
    torch = pytest.importorskip("torch")
    rows = [[float(x) for x in line.split()] for line in path.read_text().splitlines()[1:] if line.strip()]
    w2cs, c2ws, K = [], [], []
    for e in rows:
        w2c = np.eye(4)
        w2c[:3, :] = np.array(e[7:]).reshape(3, 4)
        w2cs.append(w2c)
        c2ws.append(np.linalg.inv(w2c))
        K.append([e[1] * width, e[2] * height, e[3] * width, e[4] * height])
    target = np.eye(4)
    abs2rel = target @ w2cs[0]
    poses = np.array([target] + [abs2rel @ c for c in c2ws[1:]], dtype=np.float32)
    K = torch.as_tensor(np.asarray(K, dtype=np.float32))[None]  # 1, F, 4
    c2w = torch.as_tensor(poses)[None]  # 1, F, 4, 4
    B = K.shape[0]
    j, i = torch.meshgrid(
        torch.linspace(0, height - 1, height, dtype=c2w.dtype),
        torch.linspace(0, width - 1, width, dtype=c2w.dtype),
        indexing="ij",
    )
    i = i.reshape([1, 1, height * width]).expand([B, 1, height * width]) + 0.5
    j = j.reshape([1, 1, height * width]).expand([B, 1, height * width]) + 0.5
    fx, fy, cx, cy = K.chunk(4, dim=-1)
    zs = torch.ones_like(i)
    xs = (i - cx) / fx * zs
    ys = (j - cy) / fy * zs
    zs = zs.expand_as(ys)
    directions = torch.stack((xs, ys, zs), dim=-1)
    directions = directions / directions.norm(dim=-1, keepdim=True)
    rays_d = directions @ c2w[..., :3, :3].transpose(-1, -2)
    rays_o = c2w[..., :3, 3][:, :, None].expand_as(rays_d)
    plucker = torch.cat([torch.linalg.cross(rays_o, rays_d), rays_d], dim=-1)
    plucker = plucker.reshape(B, c2w.shape[1], height, width, 6).permute(0, 1, 4, 2, 3)
    return plucker[0].numpy()


def test_core_maps_equal_cameractrl_ray_condition_on_its_own_pose_file():
    from parascale_blender.core.plucker import plucker_maps as core_maps
    from parascale_blender.formats.registry import read_trajectory

    traj = read_trajectory(RE10K, "re10k", width=1280, height=720)
    ref = _cameractrl_plucker(RE10K, 256, 144)
    ours = core_maps(traj, 256, 144)
    assert ours.shape == ref.shape == (len(traj), 6, 144, 256) and ours.dtype == np.float32
    assert np.abs(ref[1:, :3]).max() > 0.05, "the file's camera moves: moments are not all zero"
    np.testing.assert_allclose(ours, ref, atol=1e-5, rtol=0)
    # The server's (6, F, H, W) maps are the same function in the adapter's axis order.
    np.testing.assert_array_equal(plucker_maps(traj, 256, 144), ours.transpose(1, 0, 2, 3))


def test_server_backend_uses_the_core_function():
    pytest.importorskip("torch")
    from bridge_server import plucker as server
    from bridge_server.backends import wan_fun_camera
    from parascale_blender.core import plucker as core

    traj = _trajectory(seed=2, n=5)
    assert wan_fun_camera.plucker_from_poses is server.plucker_from_poses
    rel = np.linalg.inv(traj.c2w[0]) @ traj.c2w
    np.testing.assert_allclose(
        wan_fun_camera.plucker_from_poses(rel, traj.intrinsics, 40, 24),
        core.plucker_from_poses(rel, traj.intrinsics, 40, 24).transpose(1, 0, 2, 3),
        atol=0,
    )


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_export_rays_cli_writes_cameractrl_maps(tmp_path, suffix):
    from parascale_tools.cli import main

    out = tmp_path / f"rays{suffix}"
    track = tmp_path / "track.txt"
    track.write_text(RE10K.read_text())
    assert main(["export-rays", str(track), "--width", "64", "--height", "36", "-o", str(out)]) == 0
    if suffix == ".npy":
        maps = np.load(out)
    else:
        from safetensors import safe_open

        with safe_open(str(out), "np") as f:
            maps = f.get_tensor("plucker")
            meta = f.metadata()
        assert meta["layout"] == "frames,6,height,width" and "CameraCtrl" in meta["convention"]
    assert maps.dtype == np.float32
    np.testing.assert_allclose(maps, _cameractrl_plucker(RE10K, 64, 36), atol=1e-5, rtol=0)
    assert main(["export-rays", str(track), "--layout", "cfhw", "--width", "8", "--height", "6", "-o", str(out)]) == 0


def test_export_rays_refuses_other_suffixes_and_writes_nothing(tmp_path, capsys):
    from parascale_tools.cli import main

    track = tmp_path / "track.txt"
    track.write_text(RE10K.read_text())
    assert main(["export-rays", str(track), "-o", str(tmp_path / "rays.png")]) == 2
    assert "rays.png: write .npy or .safetensors" in capsys.readouterr().err
    assert not (tmp_path / "rays.png").exists()
