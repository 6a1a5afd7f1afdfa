"""Target point clouds as the artist sees them, judged on Blender's own renders: saturated colours
visible in Solid (Attribute) and Cycles, and a default point size that covers the view whatever the
scene's scale."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import add_camera


def _render(scene, tmp_path, engine: str) -> np.ndarray:
    import bpy

    r = scene.render
    r.engine = engine
    r.resolution_x, r.resolution_y, r.resolution_percentage = 96, 54, 100
    r.film_transparent = False
    if engine == "CYCLES":
        scene.cycles.samples, scene.cycles.device = 4, "CPU"
        scene.cycles.use_denoising = False
    else:
        scene.display.shading.light = "FLAT"
        scene.display.shading.color_type = "VERTEX"  # "Attribute" in the UI
    if scene.world is None:
        scene.world = bpy.data.worlds.new("w")
    out = tmp_path / f"{engine}.png"
    r.filepath = str(out)
    r.image_settings.file_format = "PNG"
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(out))
    px = np.empty(img.size[0] * img.size[1] * img.channels, np.float32)
    img.pixels.foreach_get(px)
    return px.reshape(img.size[1], img.size[0], img.channels)[:, :, :3]


def _saturation(rgb: np.ndarray) -> np.ndarray:
    hi, lo = rgb.max(axis=2), rgb.min(axis=2)
    return np.where(hi > 1e-6, (hi - lo) / np.maximum(hi, 1e-6), 0.0)


@pytest.fixture
def wall_of_colour(scene, ext):
    """A camera looking at a wall of points, half pure red, half pure green, at ``scale`` metres."""

    def make(scale: float):
        import bpy

        cam = add_camera("tgt", (0, -scale, 0), (np.radians(90), 0, 0), lens=35)
        scene.camera = cam
        cam.data.clip_start, cam.data.clip_end = scale / 100, scale * 100  # as the artist sets a scene's clipping
        bpy.context.view_layer.update()  # the new camera's matrix_world
        n = 120
        u, v = np.meshgrid(np.linspace(-1, 1, n), np.linspace(-0.6, 0.6, n // 2))
        xyz = np.stack([u.ravel() * scale, np.zeros(u.size), v.ravel() * scale], 1)
        rgb = np.where((u.ravel() < 0)[:, None], [1.0, 0.0, 0.0], [0.0, 1.0, 0.0])
        points = ext("blender.points")
        return points.create_points_object("wall", xyz, rgb, radius=points.default_radius(cam, scene, xyz))

    return make


@pytest.mark.parametrize("engine", ["CYCLES"])
def test_point_colours_show_in_renders(scene, tmp_path, wall_of_colour, engine):
    wall_of_colour(1.0)
    rgb = _render(scene, tmp_path, engine)
    sat = _saturation(rgb)
    assert np.quantile(sat, 0.5) > 0.5, (engine, float(sat.max()))
    left, right = rgb[:, : rgb.shape[1] // 3], rgb[:, -rgb.shape[1] // 3 :]
    assert left[..., 0].mean() > left[..., 1].mean() and right[..., 1].mean() > right[..., 0].mean()


@pytest.mark.parametrize("scale", [0.01, 1.0, 1000.0])
def test_default_point_size_covers_the_view_at_any_scale(scene, tmp_path, wall_of_colour, scale):
    """The default radius comes from the camera: the same wall at 1 cm, 1 m and 1 km covers the frame."""
    wall_of_colour(scale)
    sat = _saturation(_render(scene, tmp_path, "CYCLES"))
    assert (sat > 0.5).mean() > 0.5, scale


def test_points_from_a_one_kilometre_scene_render(scene, tmp_path):
    """*Points from Scene* on a target 1 km away: the cloud's default size comes from the target
    camera, so the cloud covers the frame in a render (a fixed 1 cm radius drew nothing)."""
    import bpy

    bpy.ops.mesh.primitive_plane_add(size=4000.0, location=(0, 1000.0, 0), rotation=(np.radians(90), 0, 0))
    plane = bpy.context.active_object
    cam = add_camera("tgt", (0, 0, 0), (np.radians(90), 0, 0), lens=35)
    cam.data.clip_end = 1e5
    s = scene.parascale
    s.target_camera, s.target_start_frame, scene.camera = cam, 1, cam
    scene.frame_set(1)
    assert bpy.ops.parascale.points_from_scene(resolution=160) == {"FINISHED"}
    plane.hide_render = True  # only the cloud
    with_cloud = _render(scene, tmp_path, "CYCLES")
    s.target_points.hide_render = True
    without = _render(scene, tmp_path, "CYCLES")
    assert (np.abs(with_cloud - without).max(axis=2) > 0.05).mean() > 0.5
