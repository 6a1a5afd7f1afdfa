"""Bake/export: the rescaled camera written in every writable format reads back as the same track;
the bake is every frame of the keyed range as Blender evaluates it (frame_set + matrix_world, the
lens per frame, the scene's fps), with the α keys where they are."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import add_camera, animate, opencv_track
from test_blender_rescale import rig  # noqa: F401 (fixture)

FORMATS = [("parascale", "shot.json"), ("re10k", "shot.txt"), ("wanfun", "wan.txt"), ("nerf", "transforms.json"),
           ("chan", "shot.chan"), ("motionctrl", "mc.json")]  # fmt: skip


@pytest.mark.parametrize("fmt,name", FORMATS, ids=[f for f, _ in FORMATS])
def test_export_reads_back(rig, ext, tmp_path, fmt, name):  # noqa: F811
    import bpy

    scene, _, tgt = rig
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    baked = ext("blender.bake").baked_trajectory(bpy.context, tgt)
    path = tmp_path / name
    assert bpy.ops.export_scene.parascale_track(filepath=str(path), format=fmt) == {"FINISHED"}
    reg = ext("formats.registry")
    opts = {"width": baked.width, "height": baked.height} if fmt in ("re10k", "wanfun") else {}
    if fmt == "wanfun":
        opts.update(original_width=baked.width, original_height=baked.height)
    back = reg.read_trajectory(path, fmt=fmt, **opts)
    back = ext("blender.tracks").to_blender_world(back, "AUTO")  # .chan is written in Nuke's Y-up world
    assert len(back) == len(baked)
    if fmt == "motionctrl":  # relative to frame 0 by definition
        np.testing.assert_allclose(back.relative_to_first().c2w, baked.relative_to_first().c2w, atol=1e-4)
    else:
        np.testing.assert_allclose(back.c2w, baked.c2w, atol=1e-4)
    if fmt in ("parascale", "re10k", "wanfun", "nerf"):
        np.testing.assert_allclose(back.intrinsics[:, :2], baked.intrinsics[:, :2], rtol=1e-4)
    if fmt == "nerf":  # the NeRF loaders' field of view is Blender's own camera angle
        import json

        assert json.loads(path.read_text())["camera_angle_x"] == pytest.approx(tgt.data.angle_x, rel=1e-6)
    if fmt == "parascale":
        np.testing.assert_array_equal(back.frames, baked.frames)
        np.testing.assert_allclose(back.extras["alpha"][1:], 12.5, rtol=1e-5)
        assert np.isnan(back.extras["alpha"][0])
        assert back.metadata["mode"] == "harmonic"


def test_export_errors(rig, tmp_path):  # noqa: F811
    import bpy

    scene = rig[0]
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.export_scene.parascale_track(filepath=str(tmp_path / "nope" / "x.json"))
    with pytest.raises(RuntimeError, match="has no animation"):
        static = bpy.data.objects.new("static", bpy.data.cameras.new("static"))
        scene.collection.objects.link(static)
        bpy.ops.export_scene.parascale_track(filepath=str(tmp_path / "x.json"), camera="static")
    with pytest.raises(RuntimeError, match="(?i)extension|format"):
        bpy.ops.export_scene.parascale_track(filepath=str(tmp_path / "x.xyz"))


def sparse_camera(scene, first: int, last: int):
    """A camera keyed only at three frames (plain keyframe_insert), zooming 30 → 45 mm, α keyed at two."""
    cam = add_camera("Sparse", (0, -4, 1), (np.radians(90), 0, 0))
    locs = [(0, -4, 1), (0.3, -3.5, 1.2), (0.5, -3.0, 1.1)]
    rots = [(np.radians(90), 0, 0.0), (np.radians(88), 0.02, 0.1), (np.radians(85), 0, 0.2)]
    animate(cam, [first, first + 3, last], locs, rots)
    for f, lens in ((first, 30.0), (last, 45.0)):
        cam.data.lens = lens
        cam.data.keyframe_insert("lens", frame=f)
    for f, a in ((first + 1, 2.0), (first + 4, 3.0)):
        cam["alpha"] = a
        cam.keyframe_insert('["alpha"]', frame=f)
    scene.parascale.target_camera = cam
    return cam


def assert_blender_evaluation(traj, cam, scene, first: int, last: int) -> None:
    """``traj`` is ``cam`` as Blender evaluates it at every frame first..last, with the α keys."""
    frames = np.arange(first, last + 1)
    w, h = scene.render.resolution_x, scene.render.resolution_y
    truth_c2w = opencv_track(cam, scene, frames)
    lens = []
    for f in frames:
        scene.frame_set(int(f))
        lens.append(cam.data.lens)
    fx = np.array(lens) / cam.data.sensor_width * w  # sensor fit AUTO, landscape: the width fits
    assert len(set(np.round(fx, 6))) == len(frames), "the zoom is sampled at every frame"
    np.testing.assert_array_equal(traj.frames, frames)
    np.testing.assert_allclose(traj.c2w, truth_c2w, atol=1e-5)
    np.testing.assert_allclose(traj.intrinsics[:, 0], fx, rtol=1e-6)
    np.testing.assert_allclose(traj.intrinsics[:, 2:], np.tile([w / 2, h / 2], (len(frames), 1)), atol=1e-6)
    assert (traj.width, traj.height) == (w, h)
    assert abs(traj.fps - scene.render.fps / scene.render.fps_base) < 1e-9
    alpha = traj.extras["alpha"]
    np.testing.assert_array_equal(np.flatnonzero(np.isfinite(alpha)), [1, 4])
    np.testing.assert_allclose(alpha[[1, 4]], [2.0, 3.0])


def test_bake_is_every_frame_as_blender_evaluates_it(scene, ext, tmp_path):
    import bpy

    scene.render.fps, scene.render.fps_base = 25, 1.0
    cam = sparse_camera(scene, 5, 14)
    path = tmp_path / "baked.json"
    assert bpy.ops.export_scene.parascale_track(filepath=str(path), format="parascale") == {"FINISHED"}
    assert_blender_evaluation(ext("formats.registry").read_trajectory(path, fmt="parascale"), cam, scene, 5, 14)


def test_chan_lands_in_nukes_y_up_world(scene, tmp_path):
    """A camera looking at the horizon exports to .chan with rx, ry, rz ≈ 0 (Nuke: Y up, the camera
    looks down -Z), read by the test from the file's text; imported back with the defaults, it stands
    where Blender evaluates it."""
    import bpy
    from scenes import add_camera, animate

    cam = add_camera("horizon", (1.0, -5.0, 1.7), (np.radians(90), 0, 0))
    animate(cam, [1, 2, 3], [(1.0, -5.0, 1.7), (1.5, -5.0, 1.7), (2.0, -5.0, 1.7)], [(np.radians(90), 0, 0)] * 3)
    path = tmp_path / "horizon.chan"
    assert bpy.ops.export_scene.parascale_track(filepath=str(path), camera="horizon") == {"FINISHED"}
    rows = np.array([[float(v) for v in line.split()] for line in path.read_text().splitlines() if line.strip()])
    np.testing.assert_allclose(rows[:, 4:7], 0.0, atol=1e-4)  # rx ry rz in degrees
    np.testing.assert_allclose(rows[:, 1:4], [[1.0, 1.7, 5.0], [1.5, 1.7, 5.0], [2.0, 1.7, 5.0]], atol=1e-5)
    assert bpy.ops.import_scene.parascale_track(filepath=str(path), set_scene=False, timing="FRAMES") == {"FINISHED"}
    back = scene.parascale.reference_camera
    for f in (1, 2, 3):
        scene.frame_set(f)
        want = np.array(cam.matrix_world)
        scene.frame_set(f)
        np.testing.assert_allclose(np.array(back.matrix_world), want, atol=1e-4)


@pytest.mark.parametrize("ext_name", [".fbx", ".abc"])
def test_rescaled_camera_through_blenders_exporters(rig, tmp_path, ext_name):  # noqa: F811
    """The rescaled camera exported with Blender's FBX / Alembic exporter and imported into a fresh
    scene by Blender's importer stands where the rescaled action puts it, frame by frame."""
    import bpy

    scene, _, tgt = rig
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    frames = list(range(101, 113))
    want = []
    for f in frames:
        scene.frame_set(f)
        want.append(np.array(tgt.matrix_world))
    path = tmp_path / f"shot{ext_name}"
    assert bpy.ops.export_scene.parascale_track(filepath=str(path), camera=tgt.name) == {"FINISHED"}
    bpy.ops.wm.read_homefile(use_empty=True)
    if ext_name == ".fbx":
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)  # the importer shifts by 1 by default
    else:
        bpy.ops.wm.alembic_import(filepath=str(path))
    cams = [o for o in bpy.context.scene.objects if o.type == "CAMERA"]
    assert len(cams) == 1
    for f, m in zip(frames, want):
        bpy.context.scene.frame_set(f)
        got = np.array(cams[0].matrix_world)
        np.testing.assert_allclose(got[:3, 3], m[:3, 3], atol=1e-4 * max(1.0, np.abs(m[:3, 3]).max()))
        rot = got[:3, :3] / np.linalg.norm(got[:3, :3], axis=0)
        np.testing.assert_allclose(rot, m[:3, :3] / np.linalg.norm(m[:3, :3], axis=0), atol=1e-4)


@pytest.mark.parametrize("name", ["shot.json", "shot.abc", "shot.fbx"])
def test_exports_are_in_metres_with_the_scenes_unit_scale(scene, ext, tmp_path, capfd, name):
    """A centimetre scene (Unit Scale 0.01): ParaScale JSON says its unit and holds metres (and comes
    back into the scene where it was); Alembic holds metres; FBX carries the scene's unit, so Blender's
    importer puts the camera at the same metres in a metre scene, with the frame offset said."""
    import bpy

    scene.unit_settings.system, scene.unit_settings.scale_length = "METRIC", 0.01
    cam = sparse_camera(scene, 5, 14)
    frames = range(5, 15)
    truth = opencv_track(cam, scene, frames)  # Blender units
    metres = truth.copy()
    metres[:, :3, 3] *= 0.01
    path = tmp_path / name
    capfd.readouterr()
    assert bpy.ops.export_scene.parascale_track(filepath=str(path), camera=cam.name) == {"FINISHED"}
    report = capfd.readouterr().out
    if name.endswith(".json"):
        traj = ext("formats.registry").read_trajectory(path, fmt="parascale")
        assert traj.metadata["metres_per_unit"] == 1.0 and "positions in metres" in report
        np.testing.assert_allclose(traj.c2w, metres, atol=1e-7)
        res = bpy.ops.import_scene.parascale_track(filepath=str(path), set_scene=False, frame_offset=0, timing="FRAMES")
        assert res == {"FINISHED"}
        np.testing.assert_allclose(opencv_track(scene.parascale.reference_camera, scene, frames), truth, atol=1e-5)
        return
    bpy.ops.wm.read_homefile(use_empty=True)  # a metre scene (Unit Scale 1)
    if name.endswith(".fbx"):
        assert "Animation Offset 0" in report and "one frame late" in report
        bpy.ops.import_scene.fbx(filepath=str(path), anim_offset=0.0)
    else:
        bpy.ops.wm.alembic_import(filepath=str(path))
    back = next(o for o in bpy.context.scene.objects if o.type == "CAMERA")
    got = opencv_track(back, bpy.context.scene, frames)
    np.testing.assert_allclose(got[:, :3, 3], metres[:, :3, 3], atol=1e-5)


@pytest.mark.parametrize("name,unit", [("shot.usda", 1.0), ("shot.usdc", 1.0), ("shot.usd", 0.01), ("shot.usda", 2.5)])
def test_usd_camera_reads_back_with_usd_core_as_blender_evaluates_it(scene, tmp_path, capfd, name, unit):
    """The camera through Blender's USD exporter, read back by usd-core (not Blender): at every frame
    of the keyed range the prim's local-to-world matrix is Blender's matrix_world and focal length /
    aperture (tenths of a stage unit) x metersPerUnit are the lens and sensor in mm; the stage states
    the scene's Unit Scale as metersPerUnit, frames as time codes, the scene's fps."""
    import bpy

    Usd = pytest.importorskip("pxr.Usd")
    from pxr import UsdGeom

    scene.render.fps, scene.render.fps_base = 25, 1.0
    scene.unit_settings.scale_length = unit
    cam = sparse_camera(scene, 5, 14)
    cam.data.sensor_width, cam.data.clip_start = 30.0, 0.25
    scene.frame_start, scene.frame_end = 1, 40
    path = tmp_path / name
    capfd.readouterr()
    assert bpy.ops.export_scene.parascale_track(filepath=str(path), camera=cam.name) == {"FINISHED"}
    assert f"metersPerUnit {unit:g}" in capfd.readouterr().out
    assert (scene.frame_start, scene.frame_end) == (1, 40), "the shot range is given back"
    stage = Usd.Stage.Open(str(path))
    assert UsdGeom.GetStageMetersPerUnit(stage) == scene.unit_settings.scale_length  # float32 in Blender
    assert (stage.GetStartTimeCode(), stage.GetEndTimeCode(), stage.GetTimeCodesPerSecond()) == (5, 14, 25)
    prims = [p for p in stage.Traverse() if p.IsA(UsdGeom.Camera)]
    assert len(prims) == 1, "the camera alone"
    ucam = UsdGeom.Camera(prims[0])
    mm = 100.0 * UsdGeom.GetStageMetersPerUnit(stage)  # millimetres per tenth of a stage unit
    for f in range(5, 15):
        scene.frame_set(f)
        t = Usd.TimeCode(f)
        got = np.array(UsdGeom.Xformable(prims[0]).ComputeLocalToWorldTransform(t)).T  # USD: row vectors
        np.testing.assert_allclose(got, np.array(cam.matrix_world), atol=1e-5)
        assert ucam.GetFocalLengthAttr().Get(t) * mm == pytest.approx(cam.data.lens, abs=1e-5 * cam.data.lens)
        assert ucam.GetHorizontalApertureAttr().Get(t) * mm == pytest.approx(30.0, rel=1e-5)
        assert ucam.GetClippingRangeAttr().Get(t)[0] == pytest.approx(0.25, rel=1e-5)
    assert ucam.GetFocalLengthAttr().Get(Usd.TimeCode(5)) * mm == pytest.approx(30.0, rel=1e-5)


def test_usdc_refuses_a_unit_scale_it_cannot_state(scene, tmp_path):
    import bpy

    scene.unit_settings.scale_length = 0.01
    cam = sparse_camera(scene, 1, 4)
    with pytest.raises(RuntimeError, match=r"\.usda or \.usd"):
        bpy.ops.export_scene.parascale_track(filepath=str(tmp_path / "x.usdc"), camera=cam.name)
    assert not (tmp_path / "x.usdc").exists()
