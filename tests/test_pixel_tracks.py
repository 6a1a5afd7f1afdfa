"""Pixel trajectories against the test's own ray casting of an analytic scene (axis-aligned boxes:
a wall and a post in front of it, slab intersection in numpy, not the project's rasteriser): the
positions of frame 0's pixels in every frame within 0.5 px (median) and their visibility right as
the post sweeps across the wall; ``parascale export-tracks`` writes the same as .npy/.safetensors."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import Trajectory, make_c2w
from parascale_blender.core.depth_sources import MeshDepth
from parascale_blender.core.pixel_tracks import grid_queries, pixel_tracks
from parascale_blender.core.rotation import matrix_from_quat
from parascale_tools.synthetic import box_mesh

BOXES = [((-30.0, -30.0, 10.0), (30.0, 30.0, 11.0)), ((-0.6, -3.0, 4.5), (0.6, 3.0, 5.5))]  # wall, post
W, H = 160, 120


def _camera_path(n=9):
    """A truck left to right past the post, with a slow pan and roll (OpenCV axes, looking +z)."""
    t = np.linspace(-1.5, 1.5, n)
    ang = np.linspace(-0.05, 0.05, n)
    q = np.column_stack([np.cos(ang / 2), 0.2 * np.sin(ang / 2), np.sin(ang / 2), 0.1 * np.sin(ang / 2)])
    R = matrix_from_quat(q / np.linalg.norm(q, axis=1, keepdims=True))
    c2w = make_c2w(R, np.column_stack([t, 0.1 * t, -0.2 * t]))
    K = np.tile([100.0, 100.0, 80.0, 60.0], (n, 1))
    K[:, 0] = K[:, 1] = np.linspace(100.0, 110.0, n)  # a slight zoom
    return Trajectory(np.arange(n), c2w, K, W, H)


def _first_hit(o, d, which=False):
    """Distance along unit rays ``d`` (N, 3) from ``o`` (3,) to the nearest box (inf: none); with
    ``which``, also the index of that box (-1: none)."""
    best = np.full(len(d), np.inf)
    idx = np.full(len(d), -1)
    with np.errstate(divide="ignore", invalid="ignore"):
        for k, (lo, hi) in enumerate(BOXES):
            t1 = (np.array(lo) - o) / d
            t2 = (np.array(hi) - o) / d
            near = np.nanmax(np.minimum(t1, t2), axis=1)
            far = np.nanmin(np.maximum(t1, t2), axis=1)
            hit = (far >= near) & (near > 0)
            closer = hit & (near < best)
            best, idx = np.where(closer, near, best), np.where(closer, k, idx)
    return (best, idx) if which else best


def _near_silhouette(traj, xy):
    """(F, N): a box edge lies within one pixel of the point in that frame (the box seen through the
    pixel centre and through the points one pixel left, right, up or down differ)."""
    out = np.zeros(xy.shape[:2], dtype=bool)
    for f in range(len(traj)):
        fx, fy, cx, cy = traj.intrinsics[f]
        ids = []
        for dx, dy in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1)):
            d = np.column_stack([(xy[f, :, 0] + dx - cx) / fx, (xy[f, :, 1] + dy - cy) / fy, np.ones(len(xy[f]))])
            d = d @ traj.c2w[f, :3, :3].T
            ids.append(_first_hit(traj.c2w[f, :3, 3], d / np.linalg.norm(d, axis=1, keepdims=True), True)[1])
        out[f] = np.any(np.array(ids) != ids[0], axis=0)
    return out


def _truth(traj, queries):
    """Exact positions and visibility of the queries' frame-0 surface points in every frame."""
    fx, fy, cx, cy = traj.intrinsics[0]
    d = np.column_stack([(queries[:, 0] - cx) / fx, (queries[:, 1] - cy) / fy, np.ones(len(queries))])
    d = d @ traj.c2w[0, :3, :3].T
    d /= np.linalg.norm(d, axis=1, keepdims=True)
    P = traj.c2w[0, :3, 3] + _first_hit(traj.c2w[0, :3, 3], d)[:, None] * d
    xy, vis = [], []
    for f in range(len(traj)):
        o = traj.c2w[f, :3, 3]
        Xc = (P - o) @ traj.c2w[f, :3, :3]
        fx, fy, cx, cy = traj.intrinsics[f]
        uv = np.column_stack([fx * Xc[:, 0] / Xc[:, 2] + cx, fy * Xc[:, 1] / Xc[:, 2] + cy])
        dist = np.linalg.norm(P - o, axis=1)
        ray = (P - o) / dist[:, None]
        unblocked = _first_hit(o, ray) >= dist * (1 - 1e-9) - 1e-9
        inside = (uv[:, 0] >= 0) & (uv[:, 0] < W) & (uv[:, 1] >= 0) & (uv[:, 1] < H) & (Xc[:, 2] > 0)
        xy.append(uv)
        vis.append(unblocked & inside)
    return np.array(xy), np.array(vis), P


def _mesh():
    parts = [box_mesh(lo, hi) for lo, hi in BOXES]
    v = np.concatenate([p[0] for p in parts])
    t = np.concatenate([parts[0][1], parts[1][1] + len(parts[0][0])])
    return v, t


def test_tracks_follow_the_ray_cast_scene_and_hide_behind_the_post():
    traj = _camera_path()
    tracks = pixel_tracks(traj, MeshDepth(*_mesh()), step=2)
    queries, grid = grid_queries(W, H, 2)
    assert tracks.shape == (len(traj), grid[0] * grid[1], 3) and tracks.dtype == np.float32
    xy, vis, _ = _truth(traj, queries)
    err = np.linalg.norm(tracks[..., :2] - xy, axis=-1)
    assert np.median(err[vis]) <= 0.5, np.median(err[vis])
    assert np.percentile(err[vis], 95) <= 1.0
    got = tracks[..., 2].astype(bool)
    hidden = ~vis & np.isfinite(xy).all(-1) & (xy[..., 0] >= 0) & (xy[..., 0] < W)
    assert hidden.sum() > 200, "the post hides part of the wall in some frames"
    assert (got == vis).mean() >= 0.98, (got != vis).sum()
    # Exactly right away from the boxes' silhouettes (within a pixel of an edge, either answer is fair).
    far = ~_near_silhouette(traj, np.nan_to_num(xy, nan=-1e6))
    assert (hidden & far).sum() > 200
    np.testing.assert_array_equal(got[far], vis[far])
    np.testing.assert_array_equal(tracks[0, :, :2], queries)


def test_sparse_tracks_sample_pixels_with_depth():
    traj = _camera_path(5)
    tracks = pixel_tracks(traj, MeshDepth(*_mesh()), sparse=50, seed=3)
    assert tracks.shape == (5, 50, 3)
    q = tracks[0, :, :2].astype(np.float64)
    assert np.all(tracks[0, :, 2] == 1) and np.allclose(q % 1, 0.5)
    xy, vis, _ = _truth(traj, q)
    assert np.median(np.linalg.norm(tracks[..., :2] - xy, axis=-1)[vis]) <= 0.5
    with pytest.raises(ValueError, match="at least 1"):
        pixel_tracks(traj, MeshDepth(*_mesh()), sparse=0)


@pytest.mark.parametrize("suffix", [".npy", ".safetensors"])
def test_export_tracks_cli(tmp_path, suffix):
    from parascale_blender.formats.registry import write_trajectory
    from parascale_tools.cli import main

    traj = _camera_path(4)
    track = tmp_path / "cam.json"
    write_trajectory(traj, track, "parascale")
    v, t = _mesh()
    mesh = tmp_path / "scene.obj"
    mesh.write_text(
        "".join(f"v {a} {b} {c}\n" for a, b, c in v) + "".join(f"f {a + 1} {b + 1} {c + 1}\n" for a, b, c in t)
    )
    out = tmp_path / f"tracks{suffix}"
    plot = ["--plot", str(tmp_path / "tracks.png")] if suffix == ".npy" else []
    assert main(["export-tracks", str(track), "--target-depth", str(mesh), "--step", "8", "-o", str(out), *plot]) == 0
    if suffix == ".npy":
        got = np.load(out)
        import cv2

        assert cv2.imread(str(tmp_path / "tracks.png")).shape == (H, W, 3)
    else:
        from safetensors import safe_open

        with safe_open(str(out), "np") as f:
            got, meta = f.get_tensor("tracks"), f.metadata()
        assert meta["grid"] == "[15, 20]" and meta["layout"].startswith("frames,tracks")
    np.testing.assert_array_equal(got, pixel_tracks(traj, MeshDepth(v, t), step=8))
    xy, vis, _ = _truth(traj, grid_queries(W, H, 8)[0])
    assert np.median(np.linalg.norm(got[..., :2] - xy, axis=-1)[vis]) <= 0.5


def test_export_tracks_bad_depth_is_one_line_and_writes_nothing(tmp_path, capsys):
    from parascale_blender.formats.registry import write_trajectory
    from parascale_tools.cli import main

    track = tmp_path / "cam.json"
    write_trajectory(_camera_path(3), track, "parascale")
    out = tmp_path / "tracks.npy"
    assert main(["export-tracks", str(track), "--target-depth", str(tmp_path / "none.obj"), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert "none.obj" in err and err.count("\n") == 1 and not out.exists()
