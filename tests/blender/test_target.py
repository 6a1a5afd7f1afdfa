"""Target point clouds: plate + depth map unprojected through the target camera (real TUM RGB-D data,
colours checked against OpenCV's decoder), scene-geometry points, wrong-size and missing inputs."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import add_camera, snapshot

TUM_K = (525.0, 525.0, 320.0, 240.0)  # TUM's cx=319.5 is in pixel-centre convention = 320 here


@pytest.fixture
def target(scene, ext):
    cam = add_camera("tgt", (1, 2, 3), (1.2, 0.1, 0.4))
    Camera = ext("core.camera").Camera
    ext("blender.convert").set_camera_intrinsics(cam.data, Camera(*TUM_K, 640, 480))
    scene.render.resolution_x, scene.render.resolution_y = 640, 480
    scene.parascale.target_camera = cam
    scene.parascale.target_start_frame = 1
    scene.frame_set(1)  # evaluated matrices, so snapshots compare like with like
    return cam


def test_plate_and_depth_map(scene, ext, target, shared_data):
    import bpy
    import cv2

    tum = shared_data / "depth" / "tum_open3d"
    res = bpy.ops.parascale.points_from_depth_map(
        depth_path=str(tum / "TUM_depth.png"), plate_path=str(tum / "TUM_color.png"), depth_scale=1 / 5000
    )
    assert res == {"FINISHED"}
    obj = scene.parascale.target_points
    assert scene.parascale.target_depth == "POINTS"
    raw = cv2.imread(str(tum / "TUM_depth.png"), cv2.IMREAD_UNCHANGED)
    bgr = cv2.imread(str(tum / "TUM_color.png"), cv2.IMREAD_COLOR)
    valid = raw > 0
    xyz, rgb = ext("blender.points").points_of(obj)
    assert len(xyz) == int(valid.sum())
    np.testing.assert_allclose(rgb, bgr[valid][:, ::-1] / 255.0, atol=1.5 / 255)
    # Positions: pixel centres unprojected by hand, then placed by the camera's OpenCV pose.
    c2w = ext("blender.convert").c2w_from_object(target)
    rows, cols = np.nonzero(valid)
    z = raw[valid] / 5000.0
    local = np.column_stack([(cols + 0.5 - TUM_K[2]) / TUM_K[0] * z, (rows + 0.5 - TUM_K[3]) / TUM_K[1] * z, z])
    np.testing.assert_allclose(xyz, local @ c2w[:3, :3].T + c2w[:3, 3], atol=2e-5)


def test_1080p_npy_builds_every_valid_point(scene, ext, target, tmp_path):
    """A full-HD depth map becomes one point per valid pixel (its speed is a benchmark row)."""
    import bpy

    scene.render.resolution_x, scene.render.resolution_y = 1920, 1080
    del target.data["parascale_size"]
    d = np.full((1080, 1920), 4.0, dtype=np.float32)
    d[:10] = np.nan
    np.save(tmp_path / "d.npy", d)
    assert bpy.ops.parascale.points_from_depth_map(depth_path=str(tmp_path / "d.npy")) == {"FINISHED"}
    assert len(scene.parascale.target_points.data.vertices) == 1070 * 1920


def test_bad_depth_inputs_change_nothing(scene, target, tmp_path, shared_data):
    import bpy
    import cv2

    tum = shared_data / "depth" / "tum_open3d"
    small = tmp_path / "small.png"
    cv2.imwrite(str(small), np.zeros((240, 320, 3), np.uint8))
    wide = tmp_path / "wide.npy"
    np.save(wide, np.ones((90, 160), np.float32))
    cases = [
        (dict(depth_path=str(tmp_path / "none.exr")), "not found"),
        (dict(depth_path=str(tum / "TUM_depth.png"), plate_path=str(tmp_path / "none.png")), "not found"),
        (dict(depth_path=str(wide)), "160x90 but the target camera renders 640x480"),
        (dict(depth_path=str(tum / "TUM_depth.png"), plate_path=str(small)), "is 320x240 but the depth map is 640x480"),
    ]
    for kw, match in cases:
        before = snapshot(scene)
        with pytest.raises(RuntimeError, match=match):
            bpy.ops.parascale.points_from_depth_map(**kw)
        assert snapshot(scene) == before
    scene.parascale.target_camera = None
    with pytest.raises(RuntimeError, match="choose a target camera"):
        bpy.ops.parascale.points_from_depth_map(depth_path=str(tum / "TUM_depth.png"))


def test_points_from_scene_geometry(scene, ext):
    """A camera 10 units above a ground plane, looking straight down: every point lies on the plane."""
    import bpy

    me = bpy.data.meshes.new("ground")
    me.from_pydata([(-50, -50, 0), (50, -50, 0), (50, 50, 0), (-50, 50, 0)], [], [(0, 1, 2, 3)])
    scene.collection.objects.link(bpy.data.objects.new("ground", me))
    cam = add_camera("tgt", (0, 0, 10), (0, 0, 0))
    s = scene.parascale
    s.target_camera = cam
    assert bpy.ops.parascale.points_from_scene(resolution=64) == {"FINISHED"}
    xyz, rgb = ext("blender.points").points_of(s.target_points)
    assert len(xyz) == 64 * 36  # 640x360 render -> 64x36 working pixels, all on the plane
    np.testing.assert_allclose(xyz[:, 2], 0.0, atol=1e-4)
    assert rgb is not None and s.target_depth == "SCENE"  # the cloud only shows the geometry it samples
    s.target_camera.rotation_euler = (np.pi, 0, 0)  # looking up: nothing to see
    bpy.context.view_layer.update()
    before = snapshot(scene)
    with pytest.raises(RuntimeError, match="sees no geometry"):
        bpy.ops.parascale.points_from_scene(resolution=64)
    assert snapshot(scene) == before


@pytest.mark.parametrize(
    "unit, stored, expected",
    [("AUTO", 12075, 12.075), ("MILLIMETRES", 12075, 12.075), ("METRES", 7, 7.0), ("INVERSE", 0.25, 4.0)],
)
def test_plate_depth_units(scene, ext, target, tmp_path, unit, stored, expected):
    """The target step's plate depth in the unit the artist names: a millimetre PNG (written by OpenCV)
    lands at 12.075 m, not 12,075 m; inverse depth is inverted. Checked in the camera's own frame by
    Blender's matrix_world."""
    import bpy
    import cv2

    if isinstance(stored, int):
        path = tmp_path / "depth.png"
        cv2.imwrite(str(path), np.full((48, 64), stored, np.uint16))
    else:
        path = tmp_path / "depth.npy"
        np.save(path, np.full((48, 64), stored, np.float32))
    s = scene.parascale
    s.target_plate_depth, s.target_plate_depth_unit = str(path), unit
    assert bpy.ops.parascale.points_from_depth_map() == {"FINISHED"}
    obj = s.target_points
    world = np.array([obj.matrix_world @ v.co for v in obj.data.vertices])
    cam_from_world = np.array(target.matrix_world.inverted())
    z = -(world @ cam_from_world[:3, :3].T + cam_from_world[:3, 3])[:, 2]  # Blender cameras look down -Z
    np.testing.assert_allclose(z, expected, rtol=1e-5)


def test_missing_plate_depth_names_the_field(scene, target):
    import bpy

    with pytest.raises(RuntimeError, match="Plate depth in the Target panel"):
        bpy.ops.parascale.points_from_depth_map()
