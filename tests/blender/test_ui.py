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
    s.pce, s.scale_min, s.scale_max, s.solver_residual = 0.0123, 10.0, 12.5, 1e-14
    s.pce_measured_on, s.check_summary = "Cube", "depth known over 97% of the first view; 0 steps shortened"
    log = _draw(bpy.types.PARASCALE_PT_rescale, bpy.context)
    assert ("label", "PCE 0.0123   α 10 – 12.5") in log
    assert ("label", "as played, measured on Cube") in log
    assert ("label", "0 steps shortened") in log
    assert not any("1e-14" in str(name) for _, name in log), "the solver's residual is not a PCE to show"
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
        "server_token",  # kept in an owner-only file; "token" (where earlier versions kept it) is not drawn
        "server_python",
        "server_device",
        "weights_dir",
        "server_folder",
        "server_package",
        "setup_python",
        "setup_pip_args",
        "depth_model",
        "working_size",
        "view_every",
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


def _octahedra(obj):
    """(positions (V,3), colours (V,3)) of a points object's evaluated mesh, its polygon count, its
    active colour attribute's name and its materials' names, as Blender evaluates it."""
    import bpy
    import numpy as np

    me = obj.evaluated_get(bpy.context.evaluated_depsgraph_get()).data
    n = len(me.vertices)
    co, col = np.empty(3 * n, np.float32), np.empty(4 * n, np.float32)
    me.vertices.foreach_get("co", co)
    me.attributes["parascale_color"].data.foreach_get("color", col)
    names = [m.name for m in me.materials if m is not None]
    return co.reshape(-1, 3), col.reshape(-1, 4)[:, :3], len(me.polygons), me.color_attributes.active_color_name, names


@pytest.mark.parametrize("shown", [None, 100])
def test_points_evaluate_to_coloured_octahedra(scene, ext, monkeypatch, shown):
    """Each point is drawn as an octahedron of circumradius OCTAHEDRON x radius around it, in the
    point's colour, on a mesh whose active colour attribute is the cloud's (what Solid view's
    Attribute colours read); above SHOWN points (100 here) a random ~SHOWN are drawn, 1/sqrt(fraction)
    larger. The data points themselves stay in the mesh."""
    import bpy
    import numpy as np

    points = ext("blender.points")
    n = 9 if shown is None else 400
    if shown is not None:
        monkeypatch.setattr(points, "SHOWN", shown)  # read when the node group is built, below
        assert bpy.data.node_groups.get(points.NODE_GROUP) is None
    rng = np.random.default_rng(0)
    xyz, rgb = rng.random((n, 3)) * 10, rng.random((n, 3))
    obj = points.create_points_object("pc", xyz, rgb, radius=0.05)
    co, col, polygons, active, materials = _octahedra(obj)
    assert active == "parascale_color" and materials == ["ParaScale Points"]
    fraction = 1.0 if shown is None else shown / n
    drawn = polygons // 8
    assert len(co) == n + 6 * drawn and polygons == 8 * drawn
    assert abs(drawn - fraction * n) <= 4 * np.sqrt(n * fraction * (1 - fraction))  # binomial, 4 sigma
    circumradius = points.OCTAHEDRON * 0.05 / np.sqrt(fraction)
    which = np.argmin(np.abs(col[:, None, :] - rgb[None].astype(np.float32)).sum(axis=2), axis=1)
    np.testing.assert_allclose(col, rgb[which], atol=1e-6)  # each vertex in its point's colour
    d = np.linalg.norm(co - xyz[which], axis=1)
    assert np.bincount(which, minlength=n).min() >= 1  # every point kept in the data mesh
    np.testing.assert_allclose(np.sort(d)[:n], 0.0, atol=1e-5)  # the data points themselves
    np.testing.assert_allclose(np.sort(d)[n:], circumradius, atol=1e-5)  # the octahedra's corners
