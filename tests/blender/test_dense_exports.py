"""Dense exports from Bake (``export_scene.parascale_track`` to .npy / .safetensors): pixel tracks of
the target camera over the scene's geometry checked against Blender's own ``scene.ray_cast`` (not
the project's z-buffer), and Plücker rays checked against the camera's ``matrix_world``."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import add_camera, animate, opencv_track

W, H = 160, 120


@pytest.fixture
def occluded(scene):
    """A wall at y = 8 and a post in front of it; the target camera trucks past the post."""
    import bpy

    scene.render.resolution_x, scene.render.resolution_y = W, H
    bpy.ops.mesh.primitive_cube_add(location=(0, 8, 0), scale=(30, 0.5, 30))
    bpy.ops.mesh.primitive_cube_add(location=(0, 3, 0), scale=(0.5, 0.5, 4))
    cam = add_camera("Target", (-1.5, -2, 0.2), (np.radians(90), 0, np.radians(-2)), lens=30)
    frames = [1, 4, 8]
    rots = [(np.radians(90), 0, np.radians(-2)), (np.radians(91), 0.01, 0), (np.radians(90), 0, np.radians(3))]
    animate(cam, frames, [(-1.5, -2, 0.2), (0.0, -1.8, 0.1), (1.5, -2, 0.0)], rots)
    scene.parascale.target_camera = cam
    scene.parascale.target_depth = "SCENE"
    scene.frame_start, scene.frame_end = 1, 8
    return scene, cam


def _ray_cast(scene, o, d):
    """(distance, object name) of the first hit of each ray (inf, '' for none), by Blender."""
    import bpy
    from mathutils import Vector

    dg = bpy.context.evaluated_depsgraph_get()
    dist, names = np.full(len(d), np.inf), [""] * len(d)
    for i, di in enumerate(d):
        hit, loc, _n, _i, obj, _m = scene.ray_cast(dg, Vector(o), Vector(di))
        if hit:
            dist[i], names[i] = (np.array(loc) - o).dot(di), obj.name
    return dist, np.array(names)


def _pixel_dirs(c2w, K, xy):
    d = np.column_stack([(xy[:, 0] - K[2]) / K[0], (xy[:, 1] - K[3]) / K[1], np.ones(len(xy))]) @ c2w[:3, :3].T
    return d / np.linalg.norm(d, axis=1, keepdims=True)


def test_tracks_from_bake_match_blenders_ray_cast(occluded, tmp_path):
    import bpy

    scene, cam = occluded
    path = tmp_path / "tracks.npy"
    res = bpy.ops.export_scene.parascale_track(filepath=str(path), camera=cam.name, dense="TRACKS", track_step=4)
    assert res == {"FINISHED"}
    tracks = np.load(path)
    frames = range(1, 9)
    c2w = opencv_track(cam, scene, frames)
    K = []
    for f in frames:
        scene.frame_set(f)
        fx = cam.data.lens / cam.data.sensor_width * W  # sensor fit AUTO, landscape
        K.append([fx, fx, W / 2, H / 2])
    xs, ys = np.meshgrid(np.arange(0, W, 4) + 0.5, np.arange(0, H, 4) + 0.5)
    q = np.column_stack([xs.ravel(), ys.ravel()])
    assert tracks.shape == (8, len(q), 3)
    d0 = _pixel_dirs(c2w[0], K[0], q)
    t0, _ = _ray_cast(scene, c2w[0, :3, 3], d0)
    P = c2w[0, :3, 3] + t0[:, None] * d0
    errs, agree, hidden, edge_free = [], [], 0, 0
    for i in range(len(frames)):
        o = c2w[i, :3, 3]
        Xc = (P - o) @ c2w[i, :3, :3]
        xy = np.column_stack([K[i][0] * Xc[:, 0] / Xc[:, 2] + K[i][2], K[i][1] * Xc[:, 1] / Xc[:, 2] + K[i][3]])
        dist = np.linalg.norm(P - o, axis=1)
        t, _ = _ray_cast(scene, o, (P - o) / dist[:, None])
        inside = (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
        vis = inside & (t >= dist - 1e-4 * dist)
        # within a pixel of a silhouette: the object seen around the point changes
        seen = [_ray_cast(scene, o, _pixel_dirs(c2w[i], K[i], np.clip(xy, 0, [W, H]) + s))[1]
                for s in ((0, 0), (1, 0), (-1, 0), (0, 1), (0, -1))]  # fmt: skip
        far = inside & np.all(np.array(seen) == seen[0], axis=0)
        got = tracks[i, :, 2].astype(bool)
        errs.append(np.linalg.norm(tracks[i, vis, :2] - xy[vis], axis=1))
        agree.append((got == vis)[far | ~inside])
        hidden += int((inside & ~vis).sum())
        edge_free += int((far & ~vis).sum())
    err = np.concatenate(errs)
    assert hidden > 100 and edge_free > 50, "the post hides part of the wall"
    assert np.median(err) <= 0.5, np.median(err)
    assert np.concatenate(agree).all(), (~np.concatenate(agree)).sum()


def test_plucker_rays_from_bake_follow_matrix_world(occluded, tmp_path):
    import bpy

    scene, cam = occluded
    scene.unit_settings.scale_length = 0.5
    path = tmp_path / "rays.safetensors"
    res = bpy.ops.export_scene.parascale_track(filepath=str(path), camera=cam.name, dense="RAYS", dense_width=32,
                                              dense_height=24)  # fmt: skip
    assert res == {"FINISHED"}
    from safetensors import safe_open

    with safe_open(str(path), "np") as f:
        rays, meta = f.get_tensor("plucker"), f.metadata()
    assert rays.shape == (8, 6, 24, 32) and meta["metres_per_unit"] == "1.0"
    c2w = opencv_track(cam, scene, range(1, 9))
    rel = np.linalg.inv(c2w[0]) @ c2w
    for i in range(8):
        # pixels (15, 11) and (16, 12) straddle the centre: their mean direction is the optical axis
        d = rays[i, 3:, 11:13, 15:17].reshape(3, -1).mean(axis=1)
        np.testing.assert_allclose(d / np.linalg.norm(d), rel[i, :3, 2], atol=1e-5)
        o = rel[i, :3, 3] * 0.5  # metres
        m = rays[i, :3, 5, 7]
        np.testing.assert_allclose(m, np.cross(o, rays[i, 3:, 5, 7]), atol=1e-5)
