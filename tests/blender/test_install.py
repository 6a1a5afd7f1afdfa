"""The built zip installs into an isolated extensions repo, enables, disables and re-enables."""

from __future__ import annotations

import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
MODULE = "bl_ext.user_default.parascale"  # where Blender puts an extension installed into user_default


def test_zip_contents(ext_zip):
    """The zip holds exactly the extension package (its files as on disk) plus the manifest: no tools,
    no server, no caches."""
    names = {n for n in zipfile.ZipFile(ext_zip).namelist() if not n.endswith("/")}
    package = ROOT / "parascale_blender"
    on_disk = {
        p.relative_to(package).as_posix()
        for p in package.rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"
    }
    assert names == on_disk | {"blender_manifest.toml"}
    assert {"__init__.py", "blender/__init__.py", "core/camera.py", "client/http.py"} <= names
    assert not any(n.split("/")[0] in {"parascale_tools", "bridge_server", "bench", "tests"} for n in names)


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
