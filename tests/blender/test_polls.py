"""Buttons that cannot act grey out with the reason (operator polls, in real bpy), and a camera linked
from a library, read-only, is refused by every operator that keys it, while its library override works
and its move survives save and reopen."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import add_camera, animate, reference_move, snapshot

FRAMES = np.arange(1, 9)


def _poll_error(op) -> str:
    """The message a script gets from an operator whose poll fails (what the button's tooltip says)."""
    assert not op.poll()
    with pytest.raises(RuntimeError) as info:
        op()
    return str(info.value)


def test_each_button_says_what_it_needs(scene, tmp_path):
    import bpy

    ops = bpy.ops.parascale
    assert "no reference camera" in _poll_error(ops.rescale)
    assert "choose a target camera" in _poll_error(ops.points_from_scene)
    assert "choose a target camera" in _poll_error(ops.points_from_depth_map)
    assert "no movie clip" in _poll_error(ops.reference_from_clip)
    assert "no camera in this file" in _poll_error(ops.reference_from_camera)
    assert "choose a target camera" in _poll_error(ops.generate)
    assert "choose the plate image" in _poll_error(ops.estimate_plate_depth)
    scene.parascale.target_plate_image = str(tmp_path / "plate.png")
    assert ops.estimate_plate_depth.poll()
    ref = add_camera("ref", (0, -3, 1.5), (np.radians(80), 0, 0))
    animate(ref, FRAMES, *reference_move(len(FRAMES)))
    assert ops.reference_from_camera.poll() and ops.reference_from_camera(camera="ref") == {"FINISHED"}
    assert "choose a target camera" in _poll_error(ops.rescale)
    scene.parascale.target_camera = add_camera("tgt", (5, -30, 6), (np.radians(80), 0, 0))
    assert ops.rescale.poll() and ops.points_from_scene.poll() and ops.generate.poll()
    assert "rescale first" in _poll_error(ops.switch_action)


def _link_camera(tmp_path):
    """An animated camera written to a library .blend by bpy and linked (not appended) back."""
    import bpy

    cam = add_camera("shotcam", (5, -30, 6), (np.radians(80), 0, 0))
    animate(cam, [1, 50], [(5, -30, 6), (6, -30, 6)], [(np.radians(80), 0, 0)] * 2)
    lib = tmp_path / "lib.blend"
    bpy.data.libraries.write(str(lib), {cam}, fake_user=False)
    action, data = cam.animation_data.action, cam.data
    bpy.data.objects.remove(cam)
    bpy.data.actions.remove(action)
    bpy.data.cameras.remove(data)
    with bpy.data.libraries.load(str(lib), link=True) as (_src, dst):
        dst.objects = ["shotcam"]
    linked = dst.objects[0]
    bpy.context.scene.collection.objects.link(linked)
    bpy.context.view_layer.update()  # its evaluated matrix, before any snapshot
    assert linked.library is not None and linked.override_library is None
    return linked


def test_a_linked_camera_is_refused_and_its_override_keeps_the_move(scene, ext, tmp_path):
    import bpy

    ref = add_camera("ref", (0, -3, 1.5), (np.radians(80), 0, 0))
    animate(ref, FRAMES, *reference_move(len(FRAMES)))
    assert bpy.ops.parascale.reference_from_camera(camera="ref") == {"FINISHED"}
    s = scene.parascale
    s.reference_depth, s.reference_distance = "DISTANCE", 2.0
    s.target_depth, s.target_distance, s.target_start_frame = "DISTANCE", 25.0, 1
    linked = _link_camera(tmp_path)
    s.target_camera = linked
    keys_before = ext("blender.keys").fcurve_values(linked, "location", 0)
    before = snapshot(scene)
    for op in (bpy.ops.parascale.rescale, bpy.ops.parascale.switch_action):
        message = _poll_error(op)
        assert "'shotcam' is linked from lib.blend" in message and "Object > Library Override > Make" in message
    assert snapshot(scene) == before
    np.testing.assert_array_equal(ext("blender.keys").fcurve_values(linked, "location", 0), keys_before)
    # The way out the message names: a library override, made as the menu makes it.
    bpy.context.view_layer.objects.active = linked
    linked.select_set(True)
    assert bpy.ops.object.make_override_library() == {"FINISHED"}
    override = next(o for o in scene.objects if o.name == "shotcam" and o.override_library is not None)
    s.target_camera = override
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    moved = ext("blender.keys").fcurve_values(override, "location", 0)
    assert len(moved[0]) == len(FRAMES)
    path = tmp_path / "shot.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    cam = bpy.context.scene.parascale.target_camera
    assert cam.override_library is not None
    np.testing.assert_allclose(ext("blender.keys").fcurve_values(cam, "location", 0), moved)
