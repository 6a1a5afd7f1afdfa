"""Blender benchmark rows (real bpy, headless): 1080p depth map -> point cloud object, and target
depth of a ~1M-triangle scene for 500 frames, fast path (foreach_get + core MeshDepth) against the
exact ``scene.ray_cast`` path, with their Π agreement; Blender's own Movie Clip tracker + solver
against pycolmap (``bridge_server.tracking.track_video``) on the same synthetic clip (rotation and
translation-direction error against the exact cameras, seconds; skipped without pycolmap / PyAV).

The ray-cast path costs ~0.2 s a frame, so it is timed on a subset of frames and extrapolated
to the full shot (the per-frame cost is flat); Π agreement is checked on that same subset.
"""

from __future__ import annotations

import time

import numpy as np


def _terrain(n_side: int):
    """A bumpy grid mesh object of 2·(n_side-1)² triangles, built through foreach_set."""
    import bpy

    xs = np.linspace(-50, 50, n_side)
    X, Y = np.meshgrid(xs, xs)
    Z = 2.0 * np.sin(X / 3.0) * np.cos(Y / 4.0) + 0.5 * np.sin(X * 1.7 + Y * 0.9)
    verts = np.column_stack([X.ravel(), Y.ravel(), Z.ravel()]).astype(np.float32)
    i = np.arange(n_side - 1)
    I, J = np.meshgrid(i, i)
    a = (J * n_side + I).ravel()
    quads = np.column_stack([a, a + 1, a + n_side + 1, a + n_side]).astype(np.int32)
    me = bpy.data.meshes.new("terrain")
    me.vertices.add(len(verts))
    me.vertices.foreach_set("co", verts.ravel())
    me.loops.add(quads.size)
    me.loops.foreach_set("vertex_index", quads.ravel())
    me.polygons.add(len(quads))
    me.polygons.foreach_set("loop_start", np.arange(0, quads.size, 4, dtype=np.int32))
    me.update()
    obj = bpy.data.objects.new("terrain", me)
    bpy.context.scene.collection.objects.link(obj)
    return obj


def _poses(n: int) -> np.ndarray:
    """OpenCV c2w of a camera flying over the terrain, looking down at ~45 degrees."""
    from parascale_blender.core.camera import make_c2w
    from parascale_blender.core.rotation import euler_to_matrix

    t = np.linspace(0, 1, n)
    pos = np.column_stack([-30 + 60 * t, -20 + 10 * np.sin(3 * t), np.full(n, 12.0)])
    # Blender camera: rotate about X by 45 deg (looking down-forward), yaw along the path.
    R_bl = euler_to_matrix(np.column_stack([np.full(n, np.radians(45)), np.zeros(n), 0.3 * np.sin(2 * t)]), "XYZ")
    return make_c2w(R_bl, pos) @ np.diag([1.0, -1, -1, 1])


def point_cloud_rows(quick: bool) -> list[dict]:
    import bpy

    from parascale_blender.blender import points
    from parascale_blender.blender.ops_target import depth_colours
    from parascale_blender.core.camera import Camera

    W, H = (960, 540) if quick else (1920, 1080)
    cam = Camera(0.9 * W, 0.9 * W, W / 2, H / 2, W, H)
    yy, xx = np.mgrid[0:H, 0:W]
    depth = (5.0 + 2.0 * np.sin(xx / 50.0) * np.cos(yy / 70.0)).astype(np.float32)
    times = []
    for _ in range(3):
        t0 = time.perf_counter()
        xyz, idx = cam.unproject(depth, np.eye(4))[:2]
        obj = points.create_points_object("bench points", xyz, depth_colours(depth.reshape(-1)[idx]))
        times.append(time.perf_counter() - t0)
        me = obj.data
        bpy.data.objects.remove(obj)
        bpy.data.meshes.remove(me)
    t = sorted(times)[1]
    return [
        {
            "name": f"depth map {W}x{H} -> point cloud object ({W * H / 1e6:.1f}M points)",
            "value": t,
            "unit": "s",
            "baseline": 1.0,
            "ratio": t / 1.0,
            "note": "baseline = the 1 s budget; unproject + foreach_set + colour attribute + GN modifier",
        }
    ]


def scene_depth_rows(quick: bool) -> list[dict]:
    import bpy

    from parascale_blender.blender import scene_depth
    from parascale_blender.core.camera import Camera
    from parascale_blender.core.parallax import ParallaxProbe

    n_side, n_frames, n_ray = (230, 50, 3) if quick else (708, 500, 10)
    obj = _terrain(n_side)
    ctx = bpy.context
    dg = ctx.evaluated_depsgraph_get()
    n_tris = 2 * (n_side - 1) ** 2
    cam = Camera(160 * 0.9, 160 * 0.9, 80, 45, 160, 90)
    poses = _poses(n_frames)
    t0 = time.perf_counter()
    fast = scene_depth.mesh_depth(ctx)
    t_build = time.perf_counter() - t0
    t0 = time.perf_counter()
    fast_inv = [ParallaxProbe.from_view(fast.view(c, cam)).mean_inverse_depth for c in poses]
    t_fast = time.perf_counter() - t0 + t_build
    ray = scene_depth.RayCastDepth(ctx.scene, dg)
    sub = np.linspace(0, n_frames - 1, n_ray).round().astype(int)
    t0 = time.perf_counter()
    ray_inv = [ParallaxProbe.from_view(ray.view(poses[i], cam)).mean_inverse_depth for i in sub]
    t_ray = (time.perf_counter() - t0) / n_ray * n_frames
    err = float(np.max(np.abs(np.array(fast_inv)[sub] / np.array(ray_inv) - 1.0)))
    me = obj.data
    bpy.data.objects.remove(obj)
    bpy.data.meshes.remove(me)
    label = f"{n_frames} frames, {n_tris / 1e6:.2f}M triangles, 160x90"
    return [
        {
            "name": f"target depth fast path ({label})",
            "value": t_fast,
            "unit": "s",
            "baseline": t_ray,
            "ratio": t_ray / t_fast,
            "note": f"baseline = scene.ray_cast path (timed on {n_ray} frames, extrapolated); ratio = speed-up; "
            f"includes {t_build:.2f} s foreach_get + build",
        },
        {
            "name": f"Π (E[1/Z]) fast vs ray_cast, max relative difference ({n_ray} frames)",
            "value": err,
            "unit": "",
            "baseline": 0.01,
            "ratio": err / 0.01,
            "note": "baseline = the 1% agreement target",
        },
    ]


def _blender_solve(path, f_px: float, width: int, n: int):
    """(c2w (m,4,4) OpenCV, frame indices 0.., seconds) of Blender's tracker on ``path``, or the failure."""
    import bpy

    from parascale_blender.blender import clip as clip_mod
    from parascale_blender.blender import clip_tracker

    bpy.ops.wm.read_homefile(use_empty=True)
    t0 = time.perf_counter()
    try:
        mc, _info = clip_tracker.solve_video(bpy.context, str(path), clip_tracker.TrackerOptions(f_px / width * 36.0))
        traj = clip_mod.trajectory_from_clip(mc)
    except (clip_tracker.TrackerError, clip_mod.ClipError) as e:
        return None, None, time.perf_counter() - t0, str(e)
    return traj.c2w, traj.frames.astype(int) - 1, time.perf_counter() - t0, ""


def _pycolmap_solve(path, f_px: float, width: int, height: int):
    from bridge_server.tracking import TrackingError, track_video

    t0 = time.perf_counter()
    try:
        track = track_video(path, {"intrinsics": (f_px, f_px, width / 2, height / 2)})
    except TrackingError as e:
        return None, None, time.perf_counter() - t0, str(e)
    return track.c2w, track.frames.astype(int) - 1, time.perf_counter() - t0, ""


def tracker_rows(quick: bool) -> list[dict]:
    """Blender's tracker (value) vs pycolmap global mapper (baseline), both with the true focal length."""
    import importlib.util
    import tempfile
    from pathlib import Path

    if importlib.util.find_spec("pycolmap") is None or importlib.util.find_spec("av") is None:
        return []
    from bridge_server.tracking.video import write_video
    from parascale_blender.core.camera import Camera
    from parascale_tools.tracking.evaluate import pose_errors
    from parascale_tools.tracking.synthetic import orbit_path, render_clip

    W, H, n = 576, 320, (12 if quick else 24)
    f = 0.78 * W
    poses = orbit_path(n)
    images, _ = render_clip(poses, Camera(f, f, W / 2, H / 2, W, H))
    results = {}
    with tempfile.TemporaryDirectory(prefix="parascale-blbench-") as tmp:
        path = Path(tmp) / "room.mp4"
        write_video(path, images)
        results["blender"] = _blender_solve(path, f, W, n)
        results["pycolmap"] = _pycolmap_solve(path, f, W, H)
    acc, notes = {}, []
    for name, (c2w, idx, secs, err) in results.items():
        if c2w is None:
            acc[name] = (float("nan"), float("nan"), secs)
            notes.append(f"{name} failed: {err[:120]}")
            continue
        rot, direction = pose_errors(c2w, poses[idx])
        acc[name] = (float(rot.max()), float(np.nanmax(direction)), secs)
        notes.append(f"{name} solved {len(idx)}/{n} frames")
    label = f"synthetic room {W}x{H}, {n} frames, known focal"
    out = []
    for k, (what, unit) in enumerate(
        (("max rotation error", "deg"), ("max translation-direction error", "deg"), ("track + solve time", "s"))
    ):
        v, b = acc["blender"][k], acc["pycolmap"][k]
        out.append(
            {
                "name": f"Blender tracker vs pycolmap ({label}): {what}",
                "value": v,
                "unit": unit,
                "baseline": b,
                "ratio": v / b if b and np.isfinite(b) and np.isfinite(v) else None,
                "note": "baseline = pycolmap global mapper (server track-video); " + "; ".join(notes),
            }
        )
    return out


def rows(quick: bool = False) -> list[dict]:
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    return point_cloud_rows(quick) + scene_depth_rows(quick) + tracker_rows(quick)


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(rows("--quick" in sys.argv), indent=2))
