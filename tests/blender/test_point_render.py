"""Target point clouds as the artist sees them, judged on Blender's own renders: saturated colours in
Solid view (Workbench, Attribute colours), Material Preview (EEVEE) and Cycles; a default point size
that covers the view whatever the scene's scale; and a cloud that, being a viewing aid, never renders.

The display tests render the cloud with F12 in each engine, so they un-hide it first (:func:`_show`):
that checks what the viewport draws, not the product's render settings, which the last tests check.
"""

from __future__ import annotations

import numpy as np
import pytest
from scenes import add_camera


def _eevee(bpy) -> str:
    """EEVEE's engine name: BLENDER_EEVEE_NEXT in 4.2-4.x, BLENDER_EEVEE again in 5.0."""
    names = bpy.types.RenderSettings.bl_rna.properties["engine"].enum_items.keys()
    return "BLENDER_EEVEE_NEXT" if "BLENDER_EEVEE_NEXT" in names else "BLENDER_EEVEE"


def _render(scene, tmp_path, engine: str) -> np.ndarray:
    """RGBA (H, W, 4) of an F12 render at 96x54, transparent film (alpha marks what was drawn)."""
    import bpy

    r = scene.render
    r.engine = _eevee(bpy) if engine == "EEVEE" else engine
    r.resolution_x, r.resolution_y, r.resolution_percentage = 96, 54, 100
    r.film_transparent = True
    scene.view_settings.view_transform = "Standard"  # colours as stored: judge the cloud, not AgX's tone map
    if engine == "CYCLES":
        scene.cycles.samples, scene.cycles.device = 4, "CPU"
        scene.cycles.use_denoising = False
    elif engine == "EEVEE":
        scene.eevee.taa_render_samples = 1
    else:  # Solid view as a new file draws it (studio light), with Attribute colours
        scene.display.shading.light = "STUDIO"
        scene.display.shading.color_type = "VERTEX"  # "Attribute" in the UI
    if scene.world is None:
        scene.world = bpy.data.worlds.new("w")
    out = tmp_path / f"{engine}.png"
    r.filepath = str(out)
    r.image_settings.file_format, r.image_settings.color_mode = "PNG", "RGBA"
    bpy.ops.render.render(write_still=True)
    img = bpy.data.images.load(str(out), check_existing=False)
    (w, h), c = img.size, img.channels
    px = np.empty(w * h * c, np.float32)
    img.pixels.foreach_get(px)
    bpy.data.images.remove(img)
    return px.reshape(h, w, c)[::-1]


def _saturation(rgb: np.ndarray) -> np.ndarray:
    hi, lo = rgb[..., :3].max(axis=-1), rgb[..., :3].min(axis=-1)
    return np.where(hi > 1e-6, (hi - lo) / np.maximum(hi, 1e-6), 0.0)


def _show(obj) -> None:
    """Make a helper render-visible (it and its collection): for tests of the display only."""
    obj.hide_render = False
    for coll in obj.users_collection:
        coll.hide_render = False


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
        obj = points.create_points_object("wall", xyz, rgb, radius=points.default_radius(cam, scene, xyz))
        _show(obj)
        return obj

    return make


@pytest.mark.parametrize("engine", ["BLENDER_WORKBENCH", "EEVEE", "CYCLES"])
def test_point_colours_show_in_each_engine(scene, tmp_path, wall_of_colour, engine):
    """Solid view (Workbench, Attribute colours), Material Preview (EEVEE) and Cycles show the cloud's
    own colours: over the pixels the cloud covers the median saturation is that of pure red/green, and
    the red half renders red, the green half green."""
    wall_of_colour(1.0)
    rgba = _render(scene, tmp_path, engine)
    cloud = rgba[..., 3] > 0.5
    assert cloud.mean() > 0.2, (engine, float(cloud.mean()))
    sat = _saturation(rgba)[cloud]
    assert np.median(sat) > 0.5, (engine, float(np.median(sat)))
    third = rgba.shape[1] // 3
    left, right = rgba[:, :third][cloud[:, :third]], rgba[:, -third:][cloud[:, -third:]]
    assert left[:, 0].mean() > 2 * left[:, 1].mean() and right[:, 1].mean() > 2 * right[:, 0].mean()


@pytest.mark.parametrize("scale", [0.01, 1.0, 1000.0])
def test_default_point_size_covers_the_view_at_any_scale(scene, tmp_path, wall_of_colour, scale):
    """The default radius comes from the camera: the same wall at 1 cm, 1 m and 1 km covers the frame."""
    wall_of_colour(scale)
    rgba = _render(scene, tmp_path, "CYCLES")
    assert ((rgba[..., 3] > 0.5) & (_saturation(rgba) > 0.5)).mean() > 0.5, scale


def _one_km_target(scene):
    """A 4 km plane 1 km in front of the target camera, and its *Points from Scene* cloud."""
    import bpy

    bpy.ops.mesh.primitive_plane_add(size=4000.0, location=(0, 1000.0, 0), rotation=(np.radians(90), 0, 0))
    plane = bpy.context.active_object
    cam = add_camera("tgt", (0, 0, 0), (np.radians(90), 0, 0), lens=35)
    cam.data.clip_end = 1e5
    s = scene.parascale
    s.target_camera, s.target_start_frame, scene.camera = cam, 1, cam
    scene.frame_set(1)
    assert bpy.ops.parascale.points_from_scene(resolution=160) == {"FINISHED"}
    return plane, s.target_points


def test_points_from_a_one_kilometre_scene_render(scene, tmp_path):
    """*Points from Scene* on a target 1 km away: the cloud's default size comes from the target
    camera, so the cloud covers the frame (a fixed 1 cm radius drew nothing)."""
    plane, cloud = _one_km_target(scene)
    plane.hide_render = True  # only the cloud
    _show(cloud)
    assert (_render(scene, tmp_path, "CYCLES")[..., 3] > 0.5).mean() > 0.5


@pytest.mark.parametrize("engine", ["BLENDER_WORKBENCH", "CYCLES"])
def test_the_cloud_is_a_viewing_aid_that_never_renders(scene, tmp_path, engine):
    """*Points from Scene* leaves the shot's render as it was: F12 renders the grey plane alone,
    pixel for pixel as with the cloud deleted, while the same cloud made render-visible colours it."""
    import bpy

    plane, cloud = _one_km_target(scene)
    coll = cloud.users_collection[0]
    assert cloud.hide_render and coll.hide_render and coll.name.startswith("ParaScale")
    assert coll.name in scene.collection.children, "one helper collection, under the scene collection"
    shot = _render(scene, tmp_path, engine)
    _show(cloud)
    shown = _render(scene, tmp_path, engine)
    bpy.data.objects.remove(cloud)
    without = _render(scene, tmp_path, engine)
    np.testing.assert_allclose(shot, without, atol=2 / 255)
    assert np.median(_saturation(shown)) > 0.3 > _saturation(shot).max()
