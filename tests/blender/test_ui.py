"""UI code paths headless: panels, menus and preferences drawn into a recording layout that checks
every property and operator they reference exists (typos there only show in the UI otherwise)."""

from __future__ import annotations

import types

import pytest


class RecordingLayout:
    def __init__(self, log):
        self.log = log
        self.enabled = True
        self.op_props: list = []  # (idname, the properties object the draw code filled in)

    def _child(self, *a, **k):
        return self

    row = column = box = split = _child

    def label(self, text="", **k):
        self.log.append(("label", text))

    def progress(self, factor=0.0, text="", **k):
        assert 0.0 <= factor <= 1.0
        self.log.append(("progress", text))

    def prop(self, data, name, **k):
        assert name in data.bl_rna.properties or name.startswith('["'), f"{type(data).__name__} has no {name}"
        self.log.append(("prop", name))

    def template_icon(self, icon_value=0, **k):
        self.log.append(("icon", icon_value))  # headless Blender makes no previews: 0 there

    def operator(self, idname, **k):
        mod, _, fn = idname.partition(".")
        cls_name = f"{mod.upper()}_OT_{fn}"
        assert hasattr(__import__("bpy").types, cls_name), f"operator {idname} is not registered"
        self.log.append(("operator", idname))
        props = types.SimpleNamespace()
        self.op_props.append((idname, props))
        return props


def _draw(cls, context, layout=None):
    layout = layout or RecordingLayout([])
    cls.draw(types.SimpleNamespace(layout=layout), context)
    return layout.log


@pytest.mark.parametrize("panel", ["main", "reference", "target", "rescale", "bake", "generate"])
def test_panels_draw(scene, panel):
    import bpy

    cls = getattr(bpy.types, f"PARASCALE_PT_{panel}")
    assert cls.bl_category == "ParaScale" and cls.bl_space_type == "VIEW_3D"
    s = scene.parascale
    for ref_depth in ("DISTANCE", "POINTS", "SCENE", "DEPTHMAPS"):
        for tgt_depth in ("SCENE", "POINTS", "DISTANCE"):
            s.reference_depth, s.target_depth = ref_depth, tgt_depth
            _draw(cls, bpy.context)


def test_plate_inputs_live_on_the_target_step(scene):
    """One home: the Target section and Generate's Plate source draw the same target_plate_* settings."""
    import bpy

    scene.parascale.target_plate_image = "/tmp/plate.png"
    scene.parascale_generate.source = "PLATE"
    plate = [("prop", "target_plate_image"), ("prop", "target_plate_depth"), ("prop", "target_plate_depth_unit")]
    for panel in ("target", "generate"):
        log = _draw(getattr(bpy.types, f"PARASCALE_PT_{panel}"), bpy.context)
        assert all(item in log for item in plate), panel
        assert ("operator", "parascale.estimate_plate_depth") in log, panel
    generate_props = set(scene.parascale_generate.bl_rna.properties.keys())
    assert generate_props.isdisjoint({"plate_image", "plate_depth", "depth_scale", "state", "job_id"})


def test_every_job_kind_shares_one_record_and_one_cancel(scene, ext):
    """One job model: a ParaScaleServerJob per kind, one state enum, one cancel operator taking the kind."""
    import bpy

    jobs = ext("blender.server_jobs")
    assert set(jobs.KINDS) == {"generate", "track", "depth"}
    for kind in jobs.KINDS:
        st = getattr(scene.parascale_jobs, kind)
        assert type(st).__name__ == "ParaScaleServerJob" and st.state == "idle"
        assert bpy.ops.parascale.server_job_cancel(kind=kind) == {"CANCELLED"}  # nothing running
        st.state, st.error = "failed", f"{kind} broke"
    states = {i.identifier for i in scene.parascale_jobs.generate.bl_rna.properties["state"].enum_items}
    assert {"idle", "queued", "running", "done", "failed", "cancelled", "interrupted", "lost"} <= states
    for panel, kind in (("reference", "track"), ("target", "depth"), ("generate", "generate")):
        assert ("label", f"{kind} broke") in _draw(getattr(bpy.types, f"PARASCALE_PT_{panel}"), bpy.context), panel
    assert hasattr(bpy.types, "PARASCALE_OT_server_job_cancel")
    for gone in ("generate_cancel", "track_video_cancel", "estimate_plate_depth_cancel"):
        assert not hasattr(bpy.types, f"PARASCALE_OT_{gone}"), gone


def test_target_panel_radius(scene, ext):
    import bpy
    import numpy as np

    s = scene.parascale
    s.target_points = ext("blender.points").create_points_object("pc", np.zeros((7, 3)), radius=0.05)
    log = _draw(bpy.types.PARASCALE_PT_target, bpy.context)
    assert ("label", "pc: 7 points") in log
    assert any(kind == "prop" and name.startswith('["Socket') for kind, name in log)


def test_rescale_panel_shows_results(scene):
    import bpy

    s = scene.parascale
    s.result_action = bpy.data.actions.new("r")
    s.pce, s.scale_min, s.scale_max = 0.0123, 10.0, 12.5
    log = _draw(bpy.types.PARASCALE_PT_rescale, bpy.context)
    assert ("label", "PCE 0.0123   α 10 – 12.5") in log
    assert ("operator", "parascale.switch_action") in log


def test_menus_file_handler_and_preferences(scene, ext):
    import bpy

    log = []
    ext("blender.ops_reference")._menu_import(types.SimpleNamespace(layout=RecordingLayout(log)), bpy.context)
    names = [n for n, _ in ext("blender.tracks").format_names()]
    assert len(log) == 1 + len(names) and {"re10k", "parascale", "colmap", "chan", "nerf"} <= set(names)
    fh = bpy.types.PARASCALE_FH_track
    assert fh.bl_import_operator == "import_scene.parascale_track" and ".chan" in fh.bl_file_extensions
    prefs = ext("blender.prefs").get()
    assert prefs is not None and prefs.server_url.startswith("http://127.0.0.1")
    plog = []
    type(prefs).draw(types.SimpleNamespace(layout=RecordingLayout(plog), bl_rna=prefs.bl_rna), bpy.context)
    assert {n for kind, n in plog if kind == "prop"} == {
        "server_url",
        "token",
        "server_python",
        "server_device",
        "weights_dir",
        "server_folder",
        "server_package",
        "setup_python",
        "setup_pip_args",
        "depth_model",
        "working_size",
        "default_mode",
        "point_radius",
    }
    assert {n for kind, n in plog if kind == "operator"} == {
        "parascale.server_start",
        "parascale.server_stop",
        "parascale.server_find",
        "parascale.server_setup",
        "parascale.server_setup_cancel",
    }
    vlog = []
    ext("blender.ops_video")._menu_import(types.SimpleNamespace(layout=RecordingLayout(vlog)), bpy.context)
    assert vlog == [("operator", "import_scene.parascale_video")]


def test_points_evaluate_to_point_cloud_with_radius_colour_material(scene, ext):
    import bpy
    import numpy as np

    rgb = np.random.default_rng(0).random((9, 3))
    obj = ext("blender.points").create_points_object("pc", np.random.default_rng(1).random((9, 3)), rgb, radius=0.05)
    ev = obj.evaluated_get(bpy.context.evaluated_depsgraph_get())
    if not hasattr(ev, "evaluated_geometry"):
        pytest.skip("Object.evaluated_geometry() needs Blender 4.3+")
    geometry = ev.evaluated_geometry()  # keep it alive while reading
    pc = geometry.pointcloud
    assert len(pc.points) == 9
    r = np.empty(9, np.float32)
    pc.attributes["radius"].data.foreach_get("value", r)
    np.testing.assert_allclose(r, 0.05)
    c = np.empty(36, np.float32)
    pc.attributes["parascale_color"].data.foreach_get("color", c)
    np.testing.assert_allclose(c.reshape(9, 4)[:, :3], rgb, atol=1e-6)
    assert pc.materials[0].name == "ParaScale Points"
