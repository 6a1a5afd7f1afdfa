"""Live re-rescale in real bpy: the preview follows the target camera through Blender's own
depsgraph handler, is as accurate as Blender's ray_cast says, writes nothing until accepted, and
accepting writes one action with the keys the Rescale operator writes."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import snapshot

N = 40
WORK = 48


@pytest.fixture
def land_rig(scene):
    """The bench's landscape (13,122 triangles) as the target geometry, the reference move at a 2-unit
    subject distance keyed on a camera, the target camera 12 units above the landscape (the scene the
    Rescale benchmark times, built by it)."""
    import bpy

    from parascale_tools.bench.rescale_bench import build_scene

    tgt = build_scene(bpy, N, None)
    return bpy.context.scene, bpy.data.objects["ref"], tgt


def _oracle_pce(ext, scene, c2w, cam):
    """PCE of a previewed move's exact Π measured by Blender's scene.ray_cast against the reference's
    exact Π at its 2-unit subject distance (the reference track re-read from the keyed camera)."""
    import bpy

    from parascale_tools.bench import landscape as L

    Probe = ext("core.parallax").ParallaxProbe
    ray = ext("blender.scene_depth").RayCastDepth(scene, bpy.context.evaluated_depsgraph_get())
    work = cam.working(WORK)
    ref = L.reference(N).c2w
    out, want = [], []
    for t in range(1, len(c2w)):
        step = c2w[t - 1, :3, :3].T @ (c2w[t, :3, 3] - c2w[t - 1, :3, 3])
        out.append(Probe.from_view(ray.view(c2w[t - 1], work), allow_sky=True).parallax(step, "exact"))
        rstep = ref[t - 1, :3, :3].T @ (ref[t, :3, 3] - ref[t - 1, :3, 3])
        flat = np.full((work.height, work.width), L.REF_DISTANCE)
        x, y = work.pixel_rays()
        want.append(Probe(x.ravel(), y.ravel(), 1.0 / flat.ravel()).parallax(rstep, "exact"))
    return float(np.mean(np.abs(np.log(np.array(out) / np.array(want)))))


def test_the_preview_follows_the_start_and_writes_nothing_until_cancelled(land_rig, ext):
    import bpy

    scene, _, tgt = land_rig
    live = ext("blender.live")
    actions = len(bpy.data.actions)
    session = live.start(bpy.context)
    try:
        assert not session.refined and session.path.shape == (N, 3)
        np.testing.assert_allclose(session.path[0], tgt.matrix_world.translation, atol=1e-5)
        path0, target0 = session.path.copy(), session.curves["pi_target"].copy()
        # the artist grabs the target at the start frame: Blender's depsgraph handler re-solves
        tgt.location.x += 3.0
        tgt.rotation_euler.z += 0.15
        bpy.context.view_layer.update()
        assert session.error == ""
        np.testing.assert_allclose(session.path[0], tgt.matrix_world.translation, atol=1e-5)
        assert not np.allclose(session.path[1:] - session.path[0], path0[1:] - path0[0])  # turned with it
        target1 = session.curves["pi_target"]
        measured = np.isfinite(target0) & np.isfinite(target1)  # the coarse pass measures every few steps
        assert measured.sum() >= 5 and not np.allclose(target1[measured], target0[measured])  # another view
        # the Π curves: the realized Π matches the reference's; Blender's ray_cast agrees within 0.02
        c = session.curves
        assert np.nanmax(np.abs(c["pi_realized"][1:] / c["pi_ref"][1:] - 1)) < 1e-6
        coarse = _oracle_pce(ext, scene, session.result.trajectory.c2w, session.inputs.tcam)
        assert coarse < 0.02
        session.update(bpy.context, refined=True)
        assert session.refined
        refined = _oracle_pce(ext, scene, session.result.trajectory.c2w, session.inputs.tcam)
        assert refined < 0.02
        # nothing was written: cancelling leaves the scene as the artist left it
        before = snapshot(scene)
        assert bpy.ops.parascale.live_cancel() == {"FINISHED"}
        assert live.session() is None and live.on_depsgraph_update not in bpy.app.handlers.depsgraph_update_post
        assert snapshot(scene) == before and len(bpy.data.actions) == actions
        assert tgt.animation_data is None
    finally:
        live.stop()


def test_accepting_writes_one_action_with_the_rescale_operators_keys(land_rig, ext):
    import bpy
    from test_blender_rescale import _all_keys

    scene, _, tgt = land_rig
    live = ext("blender.live")
    assert bpy.ops.parascale.live_rescale() == {"FINISHED"}
    tgt.location.y += 2.0
    bpy.context.view_layer.update()
    names = {a.name for a in bpy.data.actions}
    assert bpy.ops.parascale.live_accept() == {"FINISHED"}
    assert live.session() is None
    new = {a.name for a in bpy.data.actions} - names
    assert len(new) == 1 and tgt.animation_data.action.name in new
    accepted = _all_keys(ext, tgt)
    assert bpy.ops.parascale.switch_action() == {"FINISHED"}  # back to the moved, un-keyed start
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    pressed = _all_keys(ext, tgt)
    assert accepted.keys() == pressed.keys()
    for k in accepted:
        np.testing.assert_array_equal(accepted[k], pressed[k])


def test_scrubbing_an_animated_target_does_not_re_solve_and_a_new_key_does(land_rig, ext):
    """Away from the start frame the preview follows the target's keys, not where it is at that frame."""
    import bpy

    scene, _, tgt = land_rig
    tgt.keyframe_insert("location", frame=1)
    tgt.location.z += 1.0
    tgt.keyframe_insert("location", frame=N)
    scene.frame_set(1)
    live = ext("blender.live")
    session = live.start(bpy.context)
    try:
        first = session.result
        scene.frame_set(20)  # the camera moves along its keys: the start pose did not change
        assert session.result is first
        tgt.location.x += 2.0
        tgt.keyframe_insert("location", frame=1)  # the start frame's key moves (keyed from frame 20)
        bpy.context.view_layer.update()
        assert session.result is not first and session.error == ""
        assert scene.frame_current == 20
        path = session.path.copy()
        assert abs(path[0][0] - first.trajectory.c2w[0, 0, 3]) > 1.0
        scene.frame_set(1)  # Blender's own evaluation of the start
        np.testing.assert_allclose(path[0], tgt.matrix_world.translation, atol=1e-4)
    finally:
        live.stop()


def test_scaling_the_target_scene_re_reads_its_depth(land_rig, ext):
    """The artist scales the landscape 3x about the camera's start: the preview's target depth is read
    again and the move grows with the scene (Π is kept, so α scales by about the scene's factor)."""
    import bpy
    from mathutils import Matrix

    scene, _, tgt = land_rig
    terrain = bpy.data.objects["terrain"]
    live = ext("blender.live")
    session = live.start(bpy.context)
    try:
        depth0, alpha0 = session.inputs.tdepth, np.nanmedian(session.result.alpha[1:])
        pivot = Matrix.Translation(tgt.matrix_world.translation)
        terrain.matrix_world = pivot @ Matrix.Scale(3.0, 4) @ pivot.inverted() @ terrain.matrix_world
        bpy.context.view_layer.update()
        assert session.error == "" and session.inputs.tdepth is not depth0
        assert np.nanmedian(session.result.alpha[1:]) / alpha0 == pytest.approx(3.0, rel=0.1)
    finally:
        live.stop()
