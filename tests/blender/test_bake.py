"""Bake/export: the rescaled camera written in every writable format reads back as the same track."""

from __future__ import annotations

import numpy as np
import pytest
from test_blender_rescale import rig  # noqa: F401 (fixture)

FORMATS = [("parascale", "shot.json"), ("re10k", "shot.txt"), ("wanfun", "wan.txt"), ("nerf", "transforms.json"),
           ("chan", "shot.chan"), ("motionctrl", "mc.json")]  # fmt: skip


@pytest.mark.parametrize("fmt,name", FORMATS, ids=[f for f, _ in FORMATS])
def test_export_reads_back(rig, ext, tmp_path, fmt, name):  # noqa: F811
    import bpy

    scene, _, tgt = rig
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    baked = ext("blender.ops_bake").baked_trajectory(bpy.context, tgt)
    path = tmp_path / name
    assert bpy.ops.export_scene.parascale_track(filepath=str(path), format=fmt) == {"FINISHED"}
    reg = ext("formats.registry")
    opts = {"width": baked.width, "height": baked.height} if fmt in ("re10k", "wanfun") else {}
    if fmt == "wanfun":
        opts.update(original_width=baked.width, original_height=baked.height)
    back = reg.read_trajectory(path, fmt=fmt, **opts)
    assert len(back) == len(baked)
    if fmt == "motionctrl":  # relative to frame 0 by definition
        np.testing.assert_allclose(back.relative_to_first().c2w, baked.relative_to_first().c2w, atol=1e-4)
    else:
        np.testing.assert_allclose(back.c2w, baked.c2w, atol=1e-4)
    if fmt in ("parascale", "re10k", "wanfun", "nerf"):
        np.testing.assert_allclose(back.intrinsics[:, :2], baked.intrinsics[:, :2], rtol=1e-4)
    if fmt == "parascale":
        np.testing.assert_array_equal(back.frames, baked.frames)
        np.testing.assert_allclose(back.extras["alpha"][1:], 12.5, rtol=1e-5)
        assert np.isnan(back.extras["alpha"][0])
        assert back.metadata["mode"] == "harmonic"


def test_export_errors(rig, tmp_path):  # noqa: F811
    import bpy

    scene = rig[0]
    with pytest.raises(RuntimeError, match="does not exist"):
        bpy.ops.export_scene.parascale_track(filepath=str(tmp_path / "nope" / "x.json"))
    with pytest.raises(RuntimeError, match="has no animation"):
        static = bpy.data.objects.new("static", bpy.data.cameras.new("static"))
        scene.collection.objects.link(static)
        bpy.ops.export_scene.parascale_track(filepath=str(tmp_path / "x.json"), camera="static")
    with pytest.raises(RuntimeError, match="(?i)extension|format"):
        bpy.ops.export_scene.parascale_track(filepath=str(tmp_path / "x.xyz"))
