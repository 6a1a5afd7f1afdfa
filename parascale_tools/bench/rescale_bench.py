"""Rescale-speed rows, each with its accuracy beside it: the bench's landscape case
(:mod:`.landscape`: 13,122 triangles, or a point cloud sampled on them) at 300 and 3,000 frames.

* engine: frames/s per core (CPU time) at 48 / 80 / 160 px working size and with the speed options
  (``view_every``: views re-projected between renders), baseline the 160 px default;
* Blender (the ``bpy`` module, background: no GPU context): the Rescale operator end to end (reading
  the scene, solving, keying, reading back and re-measuring the keys) on a mesh and a point-cloud
  target, wall-clock frames/s against the issue's 300 frames/s goal (3,000 frames in 10 s);
* live re-rescale: one coarse and one refined update of a 240-frame move after the target camera
  moved (``blender.live``), ms against the 100 ms / 1 s goals.

Every row's note carries the oracle PCE of the move it timed: the exact image motion on the true
triangles (256 px) against the reference's (:func:`.landscape.oracle_pce`).
"""

from __future__ import annotations

import time

import numpy as np

from parascale_blender.core.depth_sources import MeshDepth
from parascale_blender.core.rescale import PREVIEW_COARSE, PREVIEW_REFINED, RescaleOptions, rescale

from . import landscape as L
from .table import median_time

GOAL_FPS = 300.0  # 3,000 frames in 10 s
LIVE_GOALS = {"coarse": 0.1, "refined": 1.0}  # seconds for 240 frames


def engine_rows(quick: bool) -> list[dict]:
    V, T = L.terrain()
    n = 60 if quick else 300
    ref, start, src = L.reference(n), L.target_start(), MeshDepth(V, T)
    configs = [(160, 1), (80, 1), (48, 1)] + ([] if quick else [(160, 4), (48, 4)])
    out, base = [], None
    for size, every in configs:
        opts = RescaleOptions(working_size=size, view_every=every)
        res = []

        def run(opts=opts, res=res):
            res[:] = [rescale(ref, L.reference_depth(), src, start, L.CAM, opts)]

        secs = median_time(run, 1 if quick else 3, 1, clock=time.process_time)
        fps = (n - 1) / secs
        base = base or fps
        oracle = L.oracle_pce(res[0].trajectory.c2w, ref, V, T)
        extra = f", a view every {every} poses" if every > 1 else ""
        out.append({
            "name": f"engine rescale, landscape mesh (13,122 triangles), {n} frames, {size} px{extra}",
            "value": fps, "unit": "frames/s/core", "baseline": base, "ratio": fps / base,
            "note": f"oracle PCE {oracle:.5f}; baseline: 160 px, every view rendered (the default)",
        })  # fmt: skip
    return out


def live_cloud_rows(quick: bool) -> list[dict]:
    """The live re-rescale's two passes (``core.rescale.PREVIEW_COARSE`` / ``PREVIEW_REFINED``) on a point cloud
    sampled on the landscape, 240 frames, engine only (CPU time)."""
    from parascale_blender.core.depth_sources import PointCloudDepth

    from .engine_bench import sample_surface

    V, T = L.terrain()
    points = 100_000 if quick else 1_000_000
    ref, start = L.reference(240), L.target_start()
    src = PointCloudDepth(sample_surface(V, T, points))
    out = []
    for which, kw in (("coarse", PREVIEW_COARSE), ("refined", PREVIEW_REFINED)):
        res = []

        def run(kw=kw, res=res):
            res[:] = [rescale(ref, L.reference_depth(), src, start, L.CAM, RescaleOptions(**kw))]

        secs = median_time(run, 1 if quick else 3, 1, clock=time.process_time)
        oracle = L.oracle_pce(res[0].trajectory.c2w, ref, V, T)
        goal = LIVE_GOALS[which]
        out.append({
            "name": f"live re-rescale, 240 frames, {which} pass, {points:,}-point cloud (engine)",
            "value": secs * 1e3, "unit": "ms CPU", "baseline": goal * 1e3, "ratio": secs / goal,
            "note": f"oracle PCE {oracle:.5f}; baseline: the goal",
        })  # fmt: skip
    return out


def build_scene(bpy, n: int, cloud_points: int | None):
    """The landscape scene in Blender: terrain mesh (or a points object sampled on it), the reference
    keyed on a camera, the target camera; the add-on's settings pointed at them."""
    from mathutils import Matrix

    from parascale_blender.blender import points

    from .engine_bench import sample_surface

    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.render.resolution_x, sc.render.resolution_y = L.CAM.width, L.CAM.height
    V, quads = L.terrain()[0], L.quads()
    me = bpy.data.meshes.new("terrain")
    me.vertices.add(len(V))
    me.vertices.foreach_set("co", V.astype(np.float32).ravel())
    me.loops.add(quads.size)
    me.loops.foreach_set("vertex_index", quads.ravel().astype(np.int32))
    me.polygons.add(len(quads))
    me.polygons.foreach_set("loop_start", np.arange(0, quads.size, 4, dtype=np.int32))
    me.update()
    coll = bpy.data.collections.new("target geometry")
    sc.collection.children.link(coll)
    coll.objects.link(bpy.data.objects.new("terrain", me))
    flip = np.diag([1.0, -1, -1, 1])

    def camera(name, c2w):
        data = bpy.data.cameras.new(name)
        data.sensor_width, data.lens = 36.0, L.CAM.fx / L.CAM.width * 36.0
        obj = bpy.data.objects.new(name, data)
        sc.collection.objects.link(obj)
        obj.matrix_world = Matrix((c2w @ flip).tolist())
        return obj

    ref_c2w = L.reference(n).c2w
    rc = camera("ref", ref_c2w[0])
    for i, c in enumerate(ref_c2w):
        rc.matrix_world = Matrix((c @ flip).tolist())
        rc.keyframe_insert("location", frame=i + 1)
        rc.keyframe_insert("rotation_euler", frame=i + 1)
    s = sc.parascale
    s.target_camera, s.target_start_frame = camera("tgt", L.target_start()), 1
    s.reference_depth, s.reference_distance = "DISTANCE", L.REF_DISTANCE
    s.mode = "exact"
    if cloud_points:
        V, T = L.terrain()
        s.target_depth = "POINTS"
        s.target_points = points.create_points_object("terrain points", sample_surface(V, T, cloud_points))
        coll.hide_render = True
    else:
        s.target_depth, s.target_collection = "SCENE", coll
    sc.frame_end = n
    assert bpy.ops.parascale.reference_from_camera(camera="ref") == {"FINISHED"}
    sc.frame_set(1)
    return s.target_camera


def _ensure_addon(bpy) -> None:
    if not hasattr(bpy.types.Scene, "parascale"):
        import parascale_blender

        parascale_blender.register()


def blender_rows(quick: bool) -> list[dict]:
    import bpy

    from parascale_blender.blender import convert, live

    _ensure_addon(bpy)
    V, T = L.terrain()
    out = []
    lengths = (60,) if quick else (300, 3000)
    clouds = (100_000,) if quick else (1_000_000,)
    cases = [(cloud, n, 1) for cloud in (None, *clouds) for n in lengths] + [(None, n, 4) for n in lengths]
    for cloud, n, every in cases:
        tgt = build_scene(bpy, n, cloud)
        t0, c0 = time.perf_counter(), time.process_time()
        if every == 1:  # the operator as a script calls it
            assert bpy.ops.parascale.rescale() == {"FINISHED"}
        else:  # the same steps with the preference "Target view every" at 4
            from parascale_blender.blender import ops_rescale

            inputs = ops_rescale.gather(bpy.context)
            inputs.options.view_every = every
            ops_rescale.finish(bpy.context, inputs, ops_rescale.run(inputs))
        secs, cpu = time.perf_counter() - t0, time.process_time() - c0
        c2w = convert.trajectory_from_camera(tgt, bpy.context.scene, np.arange(1, n + 1)).c2w
        oracle = L.oracle_pce(c2w, L.reference(n), V, T)
        what = f"{cloud:,}-point cloud" if cloud else "13,122-triangle mesh"
        what += f", a target view every {every} frames" if every > 1 else ""
        fps = n / secs
        out.append({
            "name": f"Rescale in Blender (bpy, background), landscape {what}, {n} frames",
            "value": fps, "unit": "frames/s", "baseline": GOAL_FPS, "ratio": fps / GOAL_FPS,
            "note": f"{secs:.2f} s wall, {cpu:.2f} s CPU; oracle PCE {oracle:.5f} (keys as Blender evaluates them); "
            "baseline: the goal, 3,000 frames in 10 s",
        })  # fmt: skip
    # live: 240 frames, one update after the target moved, coarse (the handler) then refined
    tgt = build_scene(bpy, 240, None)
    session = live.start(bpy.context)
    try:
        for refined in (False, True):
            times = []
            for _ in range(1 if quick else 3):
                tgt.location.x += 0.5
                bpy.context.view_layer.update()  # the handler runs the coarse pass
                if refined:
                    session.update(bpy.context, refined=True)
                times.append((session.cpu_seconds, session.seconds))
            oracle = L.oracle_pce(session.result.trajectory.c2w, L.reference(240), V, T)
            which = "refined" if refined else "coarse"
            cpu, wall = sorted(times)[len(times) // 2]
            goal = LIVE_GOALS[which]
            out.append({
                "name": f"live re-rescale, 240 frames, {which} update (landscape mesh)",
                "value": cpu * 1e3, "unit": "ms CPU", "baseline": goal * 1e3, "ratio": cpu / goal,
                "note": f"oracle PCE {oracle:.5f}; {wall * 1e3:.0f} ms wall; the solve after the start moved; "
                "baseline: the goal",
            })  # fmt: skip
    finally:
        live.stop()
    return out


def rows(quick: bool = True) -> list[dict]:
    out = engine_rows(quick) + live_cloud_rows(quick)
    try:
        import bpy
    except ModuleNotFoundError:
        return out
    return out + blender_rows(quick) if bpy else out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(rows("--quick" in sys.argv), indent=2))
