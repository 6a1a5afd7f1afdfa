"""UI code paths headless: panels, menus and preferences drawn into a recording layout that checks
every property and operator they reference exists (typos there only show in the UI otherwise)."""

from __future__ import annotations

import types

import pytest


class RecordingLayout:
    def __init__(self, log):
        self.log = log
        self.enabled = True

    def _child(self, *a, **k):
        return self

    row = column = box = split = _child

    def label(self, text="", **k):
        self.log.append(("label", text))

    def prop(self, data, name, **k):
        assert name in data.bl_rna.properties or name.startswith('["'), f"{type(data).__name__} has no {name}"
        self.log.append(("prop", name))

    def operator(self, idname, **k):
        mod, _, fn = idname.partition(".")
        cls_name = f"{mod.upper()}_OT_{fn}"
        assert hasattr(__import__("bpy").types, cls_name), f"operator {idname} is not registered"
        self.log.append(("operator", idname))
        return types.SimpleNamespace()


def _draw(cls, context):
    log = []
    cls.draw(types.SimpleNamespace(layout=RecordingLayout(log)), context)
    return log


@pytest.mark.parametrize("panel", ["main", "reference", "target", "rescale", "bake"])
def test_panels_draw(scene, panel):
    import bpy

    cls = getattr(bpy.types, f"PARASCALE_PT_{panel}")
    assert cls.bl_category == "ParaScale" and cls.bl_space_type == "VIEW_3D"
    s = scene.parascale
    for ref_depth in ("DISTANCE", "POINTS", "SCENE", "DEPTHMAPS"):
        for tgt_depth in ("SCENE", "POINTS", "DISTANCE"):
            s.reference_depth, s.target_depth = ref_depth, tgt_depth
            _draw(cls, bpy.context)


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
        "working_size",
        "default_mode",
        "point_radius",
    }
