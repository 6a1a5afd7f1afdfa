"""Real bpy (headless) fixtures. bpy can be imported once per process, so the isolated Blender
user directories are set here, at collection time, before any test imports bpy; the built
extension zip is installed into that isolated ``user_default`` repository once per session.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
from pathlib import Path

import pytest
from scenes import encode_mp4

ROOT = Path(__file__).resolve().parents[2]
HAVE_BPY = importlib.util.find_spec("bpy") is not None
EXT_ID = "parascale"
MODULE = f"bl_ext.user_default.{EXT_ID}"

_TMP = Path(tempfile.mkdtemp(prefix="parascale-bpy-"))
if "bpy" not in sys.modules:
    os.environ["BLENDER_USER_EXTENSIONS"] = str(_TMP / "extensions")
    os.environ["BLENDER_USER_CONFIG"] = str(_TMP / "config")
    os.environ["BLENDER_USER_SCRIPTS"] = str(_TMP / "scripts")


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/blender/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.blender)
            if not HAVE_BPY:
                item.add_marker(pytest.mark.skip(reason="bpy not installed"))


@pytest.fixture(scope="session")
def ext_zip(tmp_path_factory) -> Path:
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_extension
    finally:
        sys.path.pop(0)
    return build_extension.build(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def addon(ext_zip):
    """The installed and enabled extension module (``bl_ext.user_default.parascale``)."""
    import bpy  # noqa: I001 (bpy first: it puts addon_utils on sys.path)
    import addon_utils

    if os.environ.get("BLENDER_USER_EXTENSIONS", "") and not str(bpy.utils.user_resource("EXTENSIONS")).startswith(
        str(_TMP)
    ):
        pytest.fail("bpy was imported before tests/blender/conftest.py could isolate the extensions directory")
    res = bpy.ops.extensions.package_install_files(filepath=str(ext_zip), repo="user_default", enable_on_install=False)
    assert res == {"FINISHED"}, res
    mod = addon_utils.enable(MODULE, default_set=True, handle_error=_raise)
    assert mod is not None
    return mod


def _raise(exc):
    raise exc


@pytest.fixture
def scene(addon):
    """A fresh empty scene with the add-on enabled (read_homefile keeps add-ons enabled)."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    sc = bpy.context.scene
    sc.render.resolution_x, sc.render.resolution_y = 640, 360
    return sc


@pytest.fixture(scope="session")
def ext(addon):
    """``ext("blender.convert")`` -> that submodule of the installed extension."""
    import importlib

    return lambda name: importlib.import_module(f"{MODULE}.{name}")


@pytest.fixture(scope="session")
def rendered_clip(addon, tmp_path_factory):
    """The test_clip scene rendered once: MP4 path, static MP4 path, ground-truth OpenCV c2w per frame."""
    import bpy
    import cv2
    from scenes import opencv_track
    from test_clip import N, _build_and_render

    bpy.ops.wm.read_homefile(use_empty=True)
    out = tmp_path_factory.mktemp("clip")
    gt = _build_and_render(bpy, out)
    truth = opencv_track(gt, bpy.context.scene, range(1, N + 1))
    frames = [cv2.imread(str(out / f"f_{i:04d}.png"))[:, :, ::-1].copy() for i in range(1, N + 1)]
    encode_mp4(frames, out / "move.mp4")
    encode_mp4([frames[0]] * N, out / "static.mp4")
    return {"video": out / "move.mp4", "static": out / "static.mp4", "truth": truth}
