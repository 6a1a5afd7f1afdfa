"""Blender <-> core camera conversions checked against Blender's own projection
(``bpy_extras.object_utils.world_to_camera_view``), for every sensor fit, shifts and pixel aspects."""

from __future__ import annotations

import numpy as np
import pytest

CASES = [
    # (res_x, res_y, sensor_fit, lens, sensor_w, sensor_h, shift_x, shift_y, aspect_x, aspect_y)
    (640, 360, "AUTO", 35.0, 36.0, 24.0, 0.0, 0.0, 1.0, 1.0),
    (640, 360, "AUTO", 50.0, 36.0, 24.0, 0.1, -0.05, 1.0, 1.0),
    (360, 640, "AUTO", 28.0, 36.0, 24.0, -0.07, 0.12, 1.0, 1.0),
    (800, 600, "VERTICAL", 40.0, 30.0, 20.0, 0.03, 0.08, 1.0, 1.0),
    (800, 600, "HORIZONTAL", 24.0, 30.0, 20.0, -0.2, 0.1, 1.0, 1.0),
    (720, 576, "AUTO", 35.0, 36.0, 24.0, 0.05, 0.05, 1.0, 1.2),
    (720, 576, "VERTICAL", 35.0, 36.0, 24.0, 0.05, -0.1, 1.3, 1.0),
]


def _camera(bpy, scene, case, rng):
    rx, ry, fit, lens, sw, sh, shx, shy, ax, ay = case
    scene.render.resolution_x, scene.render.resolution_y = rx, ry
    scene.render.pixel_aspect_x, scene.render.pixel_aspect_y = ax, ay
    data = bpy.data.cameras.new("cam")
    data.sensor_fit, data.lens, data.sensor_width, data.sensor_height = fit, lens, sw, sh
    data.shift_x, data.shift_y = shx, shy
    obj = bpy.data.objects.new("cam", data)
    scene.collection.objects.link(obj)
    obj.rotation_euler = rng.uniform(-np.pi, np.pi, 3)
    obj.location = rng.uniform(-5, 5, 3)
    obj.scale = (1.7, 1.7, 1.7)  # scale must not leak into the pose
    bpy.context.view_layer.update()
    return obj


@pytest.mark.parametrize("case", CASES, ids=[f"{c[0]}x{c[1]}-{c[2]}-ax{c[8]}-ay{c[9]}" for c in CASES])
def test_projection_matches_blender(scene, ext, case):
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    convert = ext("blender.convert")
    rng = np.random.default_rng(7)
    obj = _camera(bpy, scene, case, rng)
    c2w = convert.c2w_from_object(obj)
    cam = convert.camera_intrinsics(obj, scene)
    # points in front of the camera (OpenCV +z forward), spread over the frame
    local = np.column_stack([rng.uniform(-1, 1, 50), rng.uniform(-1, 1, 50), np.ones(50)]) * rng.uniform(2, 20, (50, 1))
    world = local @ c2w[:3, :3].T + c2w[:3, 3]
    ours = np.column_stack([cam.fx * local[:, 0] / local[:, 2] + cam.cx, cam.fy * local[:, 1] / local[:, 2] + cam.cy])
    theirs = np.array([world_to_camera_view(scene, obj, Vector(p)) for p in world])
    px = np.column_stack([theirs[:, 0] * cam.width, (1 - theirs[:, 1]) * cam.height])
    np.testing.assert_allclose(theirs[:, 2], local[:, 2], rtol=1e-5)
    np.testing.assert_allclose(ours, px, atol=1e-2)


@pytest.mark.parametrize("case", CASES[:5], ids=[f"{c[0]}x{c[1]}-{c[2]}" for c in CASES[:5]])
def test_intrinsics_round_trip(scene, ext, case):
    import bpy

    convert = ext("blender.convert")
    obj = _camera(bpy, scene, case, np.random.default_rng(1))
    cam = convert.camera_intrinsics(obj, scene)
    data2 = bpy.data.cameras.new("c2")
    obj2 = bpy.data.objects.new("c2", data2)
    aspect = convert.set_camera_intrinsics(data2, cam)
    assert aspect == pytest.approx(1.0)
    back = convert.camera_intrinsics(obj2, scene)
    np.testing.assert_allclose([back.fx, back.fy, back.cx, back.cy], [cam.fx, cam.fy, cam.cx, cam.cy], rtol=1e-6)
