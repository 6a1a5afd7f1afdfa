"""The closed loop in real bpy: Generate → real server → the clip's measured Π and PCE on the strip
(custom properties), as F-curves that Blender's own animation system evaluates at the scene frames
showing each clip frame, as a plot image, and in the Generate panel.

Truth: a fronto-parallel truck of 0.05 m per frame in front of a plate at 4 m moves every pixel by
exactly Π = 0.05 / 4 = 0.0125 normalised image units per step (closed form); that is the ``pi_ref``
keyed on the camera (as Rescale keys it), so the clip must come back with a small PCE."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
from test_generate import _run_to_end, server, use_plate  # noqa: E402,F401 (server: the module's real server fixture)

W, H, START, END, STEP, Z = 192, 108, 1001, 1010, 0.05, 4.0
PI_TRUE = STEP / Z
# DIS flow on a 192x108 H.264 clip of a random-texture plate reads the closed form to 0.046 (clips
# converted with BT.601, untagged) / 0.052 (BT.709, tagged: this release); the panel's "good" is <= 0.07
FLOW_FLOOR = 0.06


@pytest.fixture
def shot(scene, server, ext, tmp_path):  # noqa: F811 (server is the imported fixture)
    """A camera trucking along x at frames 1001-1010 (scene at 25 fps), facing a plate at 4 m, with
    the reference Π keyed on it as Rescale would."""
    from scenes import add_camera, animate

    sc = scene
    sc.render.resolution_x, sc.render.resolution_y, sc.render.resolution_percentage = W, H, 100
    sc.render.fps, sc.render.fps_base = 25, 1.0
    sc.frame_start, sc.frame_end = START, END
    cam = add_camera("Target", (0, -Z, 1), (np.radians(90), 0, 0))
    frames = np.arange(START, END + 1)
    loc = np.column_stack([STEP * (frames - START), np.full(len(frames), -Z), np.ones(len(frames))])
    animate(cam, frames, loc, [(np.radians(90), 0, 0)] * len(frames))
    cam["pi_ref"] = PI_TRUE
    for f in frames[1:]:
        cam.keyframe_insert('["pi_ref"]', frame=int(f))
    sc.parascale.target_camera = cam
    use_plate(sc, tmp_path, ext, server.url, Z, size=(W, H), seed=5)
    return sc


def test_the_returned_clip_carries_its_pce_curves_and_plot(shot, ext):
    import json

    import bpy
    from test_ui import RecordingLayout, _draw

    loop = ext("blender.closed_loop")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    g = shot.parascale_jobs.generate
    assert _run_to_end(ext("blender.server_jobs"), shot) == "done", g.error
    report = json.loads(g.report)
    strip = shot.sequence_editor.strips[g.result_name]

    # The PCE beside the strip: what the server reported, against the reference, and small.
    assert strip["parascale_pce_label"] == "PCE vs reference, flow/flow" == report["label"]
    assert strip["parascale_pce"] == pytest.approx(report["pce"], rel=1e-6)
    assert strip["parascale_pce"] < FLOW_FLOOR
    realized = np.array([np.nan if v is None else v for v in report["realized"]])
    np.testing.assert_allclose(realized[1:], PI_TRUE, rtol=0.1)  # the closed-form image motion

    # F-curves: Blender's animation system gives value t at the scene frame showing clip frame t.
    assert strip.frame_final_start == START and report["frames"] == list(range(START, END + 1))
    for name in ("reference", "target", "realized"):
        vals = report[name]
        for t in range(1, END - START + 1):
            shot.frame_set(strip.frame_final_start + t)
            assert strip[f"parascale_pi_{name}"] == pytest.approx(vals[t], rel=1e-6), (name, t)
    fc = [f for f in ext("blender.compat").fcurves_of(shot) if "parascale_pi_realized" in f.data_path]
    assert len(fc) == 1 and fc[0].data_path == f'{strip.path_from_id()}["parascale_pi_realized"]'
    keyed = np.array([k.co[0] for k in fc[0].keyframe_points])
    np.testing.assert_array_equal(keyed, np.arange(START + 1, END + 1))  # step 0 has no value: no key

    # The plot: an image with the realized curve (orange) drawn, packed into the .blend.
    img = bpy.data.images[strip["parascale_pi_image"]]
    px = np.empty(img.size[0] * img.size[1] * 4, np.float32)
    img.pixels.foreach_get(px)
    px = px.reshape(-1, 4)[:, :3]
    assert tuple(img.size) == (480, 240) and img.packed_file is not None
    for rgb in loop.COLOURS.values():
        assert (np.abs(px - rgb).max(axis=1) < 0.02).sum() > 50, rgb

    # The panel's Generate section shows the same line, the plot and a way to open it.
    layout = RecordingLayout([])
    log = _draw(bpy.types.PARASCALE_PT_generate, bpy.context, layout)
    line = f"PCE vs reference, flow/flow {report['pce']:.3f}: good (Π within ~"
    assert any(kind == "label" and text.startswith(line) for kind, text in log), log
    assert ("label", loop.SCALE_NOTE) in log  # what the number means
    assert not strip["parascale_pce_reliability"]  # every step measured: no warning
    assert any(kind == "icon" for kind, _ in log) and ("operator", "parascale.show_parallax_plot") in log
    assert bpy.ops.parascale.show_parallax_plot(image=img.name) == {"FINISHED"}


def test_the_plot_and_pce_survive_save_and_reopen(shot, ext, tmp_path):
    import bpy

    assert bpy.ops.parascale.generate() == {"FINISHED"}
    assert _run_to_end(ext("blender.server_jobs"), shot) == "done"
    name = shot.parascale_jobs.generate.result_name
    path = tmp_path / "closed_loop.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(path))
    bpy.ops.wm.open_mainfile(filepath=str(path))
    strip = bpy.context.scene.sequence_editor.strips[name]
    assert strip["parascale_pce"] < FLOW_FLOOR
    img = bpy.data.images[strip["parascale_pi_image"]]
    assert tuple(img.size) == (480, 240) and img.has_data


def test_a_camera_without_reference_parallax_is_compared_with_its_target(shot, ext):
    import bpy

    cam = shot.parascale.target_camera
    fcs = ext("blender.compat").fcurves_of(cam)
    fcs.remove(fcs.find('["pi_ref"]'))
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    g = shot.parascale_jobs.generate
    assert _run_to_end(ext("blender.server_jobs"), shot) == "done", g.error
    strip = shot.sequence_editor.strips[g.result_name]
    assert strip["parascale_pce_label"] == "PCE vs target (warp render), flow/flow"
    assert "parascale_pi_reference" not in strip and strip["parascale_pce"] < FLOW_FLOOR


def test_a_clip_the_flow_cannot_read_says_so(shot, ext):
    """Steps the server could not measure (NaN: too few valid flow pixels, e.g. low texture) make the
    PCE untrustworthy: the strip says how many steps were measured; a large PCE says how far off."""
    import bpy

    loop = ext("blender.closed_loop")
    bpy.context.scene.sequence_editor_create()
    strips = ext("blender.compat").strips(shot)
    n = 8
    span = {"length": n} if "length" in strips.bl_rna.functions["new_effect"].parameters else {"frame_end": n + 1}
    strip = strips.new_effect("c", "COLOR", 2, frame_start=1, **span)  # 4.2: frame_end; 5.0: length
    report = {"pce": 0.2, "label": "PCE vs reference, flow/flow", "frames": list(range(1, n + 1)),
              "realized": [None] * (n - 2) + [0.01, 0.012], "reference": [None] + [0.01] * (n - 1)}  # fmt: skip
    text = loop.apply(shot, strip, report)
    assert text == "PCE vs reference, flow/flow 0.200: Π off by ~22%/step (good is below 0.07)"
    assert strip["parascale_pce_reliability"].startswith(f"flow unreliable: 2 of {n - 1} steps measured")
