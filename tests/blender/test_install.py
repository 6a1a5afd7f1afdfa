"""The built zip installs into an isolated extensions repo, enables, disables and re-enables."""

from __future__ import annotations

import zipfile

from conftest import MODULE


def test_zip_contents(ext_zip):
    names = zipfile.ZipFile(ext_zip).namelist()
    assert "blender_manifest.toml" in names
    assert "__init__.py" in names and "blender/__init__.py" in names and "core/camera.py" in names
    assert not any(n.startswith("bench/") or n.endswith(".pyc") for n in names)


def test_enable_disable_enable(addon):
    import bpy  # noqa: I001 (bpy first: it puts addon_utils on sys.path)
    import addon_utils

    assert addon.__name__ == MODULE
    assert hasattr(bpy.types, "PARASCALE_PT_main")
    assert bpy.context.preferences.addons[MODULE].preferences.working_size == 160
    assert hasattr(bpy.context.scene, "parascale")
    addon_utils.disable(MODULE, default_set=True)
    assert not hasattr(bpy.types, "PARASCALE_PT_main")
    assert not hasattr(bpy.types.Scene, "parascale")
    addon_utils.enable(MODULE, default_set=True)
    assert hasattr(bpy.types, "PARASCALE_PT_main")
    assert hasattr(bpy.context.scene, "parascale")
