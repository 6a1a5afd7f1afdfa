"""Point clouds as the target depth, in the artist's order: a plate cloud (*Points from Plate + Depth*
of a depth map ray-cast by ``scene.ray_cast``) keeps its plate's frustum and sky, so its views are
sky where the plate saw sky and *Cloud gaps are sky* adds sky only where the plate looked (truth:
Blender's ``world_to_camera_view`` of the plate camera), also after the cloud object is moved; with
open sky the plate cloud's rescale matches the one measured on the geometry, and the option brings a
*Points from Scene* cloud there; a *Points from Scene* cloud as target depth has its move measured
on the meshes it came from, in the report."""

from __future__ import annotations

import re

import numpy as np
import pytest
from scenes import add_camera, animate, opencv_track, reference_move

FRAMES = np.arange(1, 13)
PLATE = (160, 90)  # the plate depth map's size (the render is 640x360)


def _pixel_dirs(scene, cam, w: int, h: int) -> np.ndarray:
    """(h, w, 3) world directions through the pixel centres of ``cam``'s frame at w x h, from
    Blender's own camera frame (``view_frame``: top-right, bottom-right, bottom-left, top-left)."""
    tr, _, bl, tl = (np.array(v) for v in cam.data.view_frame(scene=scene))
    u, v = (np.arange(w) + 0.5) / w, (np.arange(h) + 0.5) / h
    local = tl + u[None, :, None] * (tr - tl) + v[:, None, None] * (bl - tl)
    R = np.array(cam.matrix_world)[:3, :3]
    return local @ (R / np.linalg.norm(R, axis=0)).T


def _ray_cast_depth(scene, cam, w: int, h: int) -> np.ndarray:
    """z-depth (along the view axis) per pixel by ``scene.ray_cast``; NaN where nothing is hit."""
    import bpy
    from mathutils import Vector

    dirs = _pixel_dirs(scene, cam, w, h).reshape(-1, 3)
    mw = np.array(cam.matrix_world)
    o, forward = mw[:3, 3], -mw[:3, 2] / np.linalg.norm(mw[:3, 2])
    dg = bpy.context.evaluated_depsgraph_get()
    depth = np.full(len(dirs), np.nan)
    for i, d in enumerate(dirs):
        hit, loc, *_ = scene.ray_cast(dg, Vector(o.tolist()), Vector((d / np.linalg.norm(d)).tolist()))
        if hit:
            depth[i] = (np.array(loc) - o) @ forward
    return depth.reshape(h, w)


def _inside(scene, plate_cam, dirs: np.ndarray) -> np.ndarray:
    """Which directions the plate camera sees inside its frame (Blender's ``world_to_camera_view``)."""
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    o = np.array(plate_cam.matrix_world)[:3, 3]
    out = np.empty(dirs.shape[:-1], dtype=bool)
    for idx in np.ndindex(out.shape):
        x, y, z = world_to_camera_view(scene, plate_cam, Vector((o + 1e3 * dirs[idx]).tolist()))
        out[idx] = z > 0 and 0 <= x <= 1 and 0 <= y <= 1
    return out


def _target_scene(scene, pitch_deg: float):
    """A 400 m ground plane and a box in the collection "Target", the target camera 2 m up looking
    along +Y ``pitch_deg`` from straight down (85: open sky above the horizon)."""
    import bpy

    coll = bpy.data.collections.new("Target")
    scene.collection.children.link(coll)
    for name, verts, faces in [
        ("ground", [(-200, -200, 0), (200, -200, 0), (200, 200, 0), (-200, 200, 0)], [(0, 1, 2, 3)]),
        ("box", [(x, y, z) for x in (-1, 1) for y in (5, 7) for z in (0, 2)],
         [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]),
    ]:  # fmt: skip
        me = bpy.data.meshes.new(name)
        me.from_pydata(verts, [], faces)
        coll.objects.link(bpy.data.objects.new(name, me))
    tgt = add_camera("tgt", (0, -10, 2), (np.radians(pitch_deg), 0, 0))
    s = scene.parascale
    s.target_camera, s.target_start_frame, s.target_collection = tgt, 1, coll
    bpy.context.view_layer.update()
    return tgt, coll


def _reference(scene):
    """An animated reference camera (truck + dolly + pan) at a known subject distance of 2."""
    import bpy

    ref = add_camera("ref", (0, -3, 1.5), (np.radians(80), 0, 0))
    loc, rot = reference_move(len(FRAMES))
    animate(ref, FRAMES, loc, rot)
    s = scene.parascale
    s.reference_depth, s.reference_distance = "DISTANCE", 2.0
    assert bpy.ops.parascale.reference_from_camera(camera="ref") == {"FINISHED"}


@pytest.fixture
def plate_cloud(scene, ext, tmp_path):
    """Open sky: the plate's depth (ray-cast from the target camera, written as EXR) unprojected by
    *Points from Plate + Depth*."""
    import bpy

    tgt, _ = _target_scene(scene, 85.0)
    depth = _ray_cast_depth(scene, tgt, *PLATE)
    assert 0.2 < np.isnan(depth).mean() < 0.5  # the sky above the horizon
    path = tmp_path / "plate.exr"
    ext("formats.depthmaps").write_depth_map(path, depth)
    assert bpy.ops.parascale.points_from_depth_map(depth_path=str(path)) == {"FINISHED"}
    s = scene.parascale
    assert s.target_depth == "POINTS" and s.target_points is not None
    return tgt, s.target_points


def test_a_plate_cloud_is_sky_only_inside_its_plate_and_its_frustum_moves_with_it(scene, ext, plate_cloud):
    import bpy
    from mathutils import Matrix

    tgt, cloud = plate_cloud
    s = scene.parascale
    convert, ops = ext("blender.convert"), ext("blender.ops_rescale")
    # A view yawed 40° left of the plate: its left part looks where the plate never looked.
    probe = add_camera("probe", tgt.location, (np.radians(85), 0, np.radians(40)))
    plate = tgt.copy()  # stands for the plate camera wherever the cloud goes (moved with it below)
    scene.collection.objects.link(plate)
    bpy.context.view_layer.update()
    c2w, work = convert.c2w_from_object(probe), convert.camera_intrinsics(probe, scene).working(64)
    dirs = _pixel_dirs(scene, probe, work.width, work.height)
    assert not s.cloud_sky  # off by default: the cloud's gaps are unknown, but what the plate saw as sky is sky
    view = ops.target_depth_source(bpy.context).view(c2w, work)
    inside = _inside(scene, plate, dirs)
    seen = view.sky_mask & ~view.extended  # the plate's own sky; what it did not see is extended from around
    assert not (seen & ~inside).any() and seen.mean() > 0.05
    assert view.extended[~inside].mean() > 0.9 and view.known_coverage < 0.9
    s.cloud_sky = True
    masks = []
    for move in (None, Matrix.Rotation(np.radians(30), 4, "Z") @ Matrix.Translation((3, 1, 0))):
        if move is not None:  # the artist moves the cloud: its frustum goes along
            cloud.matrix_world = move @ cloud.matrix_world
            plate.matrix_world = move @ plate.matrix_world
            bpy.context.view_layer.update()
        expected = _inside(scene, plate, dirs)
        assert 0.2 < expected.mean() < 0.8
        view = ops.target_depth_source(bpy.context).view(c2w, work)
        seen = view.sky_mask & ~view.extended
        assert seen.shape == expected.shape
        empty = ~view.valid & ~view.extended  # what the cloud leaves empty: sky exactly inside the plate's frame
        assert (seen != (expected & empty)).mean() < 0.01  # pixel centres on the frame's edge go either way
        assert not (seen & ~expected).any()  # never measured sky where the plate did not look
        assert seen.mean() > 0.05  # and sky where it looked past the horizon
        masks.append(expected)
    assert (masks[0] != masks[1]).mean() > 0.1


def _alpha(ext, tgt) -> np.ndarray:
    return ext("blender.keys").fcurve_values(tgt, '["alpha"]', 0)[1]


def test_under_open_sky_a_plate_cloud_and_a_marked_scene_cloud_rescale_as_the_geometry(scene, ext, plate_cloud):
    """The plate cloud knows its sky (the plate's empty directions): by default its rescale is the one
    measured on the geometry. A *Points from Scene* cloud does not: its gaps are unknown (left out of Π)
    until *Cloud gaps are sky* is on, which brings it to the geometry's."""
    import bpy

    tgt, _ = plate_cloud
    _reference(scene)
    s = scene.parascale
    s.target_depth = "SCENE"
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    on_mesh = _alpha(ext, tgt)

    def err() -> float:
        s.target_depth = "POINTS"
        assert bpy.ops.parascale.rescale() == {"FINISHED"}
        return float(np.abs(np.log(_alpha(ext, tgt) / on_mesh)).mean())

    plate = err()
    assert bpy.ops.parascale.points_from_scene() == {"FINISHED"}
    scene_gaps_unknown = err()
    s.cloud_sky = True
    scene_gaps_sky = err()
    print(f"mean |ln α/α_mesh|: plate {plate:.4f}; scene cloud gaps unknown {scene_gaps_unknown:.4f}, "
          f"sky {scene_gaps_sky:.4f}")  # fmt: skip
    assert plate < 0.05
    assert scene_gaps_sky < 0.1 and scene_gaps_unknown > 3 * scene_gaps_sky


def test_a_scene_cloud_as_target_depth_is_checked_on_its_meshes(scene, ext):
    """Points from Scene, then Point cloud as the target depth: the report says the PCE of the move
    re-measured on the Target collection's meshes, the modal job gives the same, and it agrees with
    Π measured by ``scene.ray_cast`` along the keyed camera."""
    import bpy

    tgt, _ = _target_scene(scene, 30.0)  # looking down at the ground and the box: no sky
    _reference(scene)
    s = scene.parascale
    assert bpy.ops.parascale.points_from_scene() == {"FINISHED"}
    assert s.target_points["parascale_source"] == "scene"
    s.target_depth = "POINTS"
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    found = re.search(r"PCE of the move measured on Target meshes: ([0-9.e+-]+)", s.last_report)
    assert found, s.last_report
    reported = float(found.group(1))
    # Independent: Π of the keyed move by scene.ray_cast, against the reference's Π keyed beside it.
    frames = FRAMES - FRAMES[0] + s.target_start_frame
    c2w = opencv_track(tgt, scene, frames)
    cam = ext("blender.convert").camera_intrinsics(tgt, scene).working(48)
    Probe = ext("core.parallax").ParallaxProbe
    steps = np.einsum("nji,nj->ni", c2w[:-1, :3, :3], c2w[1:, :3, 3] - c2w[:-1, :3, 3])
    measured = []
    for t in range(len(steps)):  # step t is seen from the pose at frames[t]
        scene.frame_set(int(frames[t]))
        view = ext("core.depth").DepthView(_ray_cast_depth(scene, tgt, cam.width, cam.height), cam, sky=True)
        measured.append(Probe.from_view(view).parallax(steps[t], "exact"))
    pi_ref = ext("blender.keys").fcurve_values(tgt, '["pi_ref"]', 0)[1]
    truth = float(np.abs(np.log(np.array(measured) / pi_ref)).mean())
    print(f"PCE on the meshes: reported {reported:.4f}, by scene.ray_cast {truth:.4f}")
    assert reported < 0.05 and abs(reported - truth) < 0.01
    # The modal job (a thread computes) measures the same.
    assert bpy.ops.parascale.switch_action() == {"FINISHED"}
    job_mod = ext("blender.rescale_job")
    job = job_mod.RescaleJob(bpy.context).start()
    while not job.tick(bpy.context):
        job.wait()
    assert job.state == job_mod.DONE, job.error
    assert job.result.checks["target_vs_geometry"]["pce"] == pytest.approx(reported, rel=1e-3, abs=1e-4)
