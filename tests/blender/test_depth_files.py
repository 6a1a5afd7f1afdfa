"""Blender's own Depth pass, saved the ways an artist saves it (multilayer EXR at 32 and 16 bits,
single-layer EXR through the compositor, grey and RGB), read back by the add-on (inside Blender:
OpenImageIO), by the CLI and by the server (fresh processes without bpy: OpenEXR) to within 1e-3 of
the depth ``scene.ray_cast`` gives at the pixel centres; Blender's 16-bit PNGs read back exactly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from scenes import add_camera

ROOT = Path(__file__).resolve().parents[2]
W, H = 32, 24
CODECS = {"multilayer32": "ZIP", "multilayer16": "DWAA", "single_bw": "PIZ", "single_rgb": "ZIP"}
FILES = list(CODECS)


def _compositor_depth_output(bpy, scene) -> None:
    """The compositor's output is the Depth pass (what a single-layer EXR then holds)."""
    if bpy.app.version >= (5, 0, 0):  # 5.0: the compositor is a node group with a Group Output
        tree = bpy.data.node_groups.new("depth_out", "CompositorNodeTree")
        tree.interface.new_socket("Image", in_out="OUTPUT", socket_type="NodeSocketColor")
        out = tree.nodes.new("NodeGroupOutput")
        scene.compositing_node_group = tree
    else:  # 4.2: the scene's own tree and a Composite node
        scene.use_nodes = True
        tree = scene.node_tree
        tree.nodes.clear()
        out = tree.nodes.new("CompositorNodeComposite")
    layers = tree.nodes.new("CompositorNodeRLayers")
    tree.links.new(layers.outputs["Depth"], out.inputs[0])


def _render(bpy, scene, path: Path, multilayer: bool, bits: str, codec: str, mode: str = "RGB") -> Path:
    s = scene.render.image_settings
    if bpy.app.version >= (5, 0, 0):
        s.media_type = "MULTI_LAYER_IMAGE" if multilayer else "IMAGE"
    if not multilayer or bpy.app.version < (5, 0, 0):
        s.file_format = "OPEN_EXR_MULTILAYER" if multilayer else "OPEN_EXR"
    s.color_depth, s.exr_codec = bits, codec
    if not multilayer:
        s.color_mode = mode
    scene.render.filepath = str(path)
    bpy.ops.render.render(write_still=True)
    return path


def _ray_cast_depth(bpy, scene, cam) -> np.ndarray:
    """Blender's z-depth at each pixel centre (row 0 at the top), NaN where the ray hits nothing."""
    from mathutils import Vector

    dg = bpy.context.evaluated_depsgraph_get()
    tr, br, bl, tl = (cam.matrix_world @ v for v in cam.data.view_frame(scene=scene))
    origin = cam.matrix_world.translation
    forward = -(cam.matrix_world.to_3x3() @ Vector((0, 0, 1))).normalized()
    z = np.full((H, W), np.nan)
    for i in range(H):
        for j in range(W):
            p = tl + (tr - tl) * ((j + 0.5) / W) + (bl - tl) * ((i + 0.5) / H)
            hit, loc, *_ = scene.ray_cast(dg, origin, (p - origin).normalized())
            if hit:
                z[i, j] = (loc - origin).dot(forward)
    return z


@pytest.fixture(scope="module")
def renders(addon, tmp_path_factory):
    """A ground plane and a cube seen from above at 32x24 by Cycles (1 sample, a 0.01 px box filter:
    each pixel's depth is taken at its centre), the Depth pass saved four ways; and the truth."""
    import bpy

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    me = bpy.data.meshes.new("ground")
    me.from_pydata([(-20, -20, 0), (20, -20, 0), (20, 20, 0), (-20, 20, 0)], [], [(0, 1, 2, 3)])
    scene.collection.objects.link(bpy.data.objects.new("ground", me))
    bpy.ops.mesh.primitive_cube_add(size=2, location=(0.5, 0, 1))
    cam = add_camera("cam", (0, -8, 3), (np.radians(75), 0, 0), lens=50.0)  # the top rows see the sky
    scene.camera = cam
    r = scene.render
    r.resolution_x, r.resolution_y, r.resolution_percentage = W, H, 100
    r.engine = "CYCLES"
    scene.cycles.samples, scene.cycles.device, scene.cycles.use_denoising = 1, "CPU", False
    scene.cycles.pixel_filter_type, scene.cycles.filter_width = "BOX", 0.01
    scene.view_layers[0].use_pass_z = True
    out = tmp_path_factory.mktemp("depth_pass")
    files = {
        "multilayer32": _render(bpy, scene, out / "ml32.exr", True, "32", CODECS["multilayer32"]),
        "multilayer16": _render(bpy, scene, out / "ml16.exr", True, "16", CODECS["multilayer16"]),
    }
    _compositor_depth_output(bpy, scene)
    files["single_bw"] = _render(bpy, scene, out / "bw.exr", False, "32", CODECS["single_bw"], "BW")
    files["single_rgb"] = _render(bpy, scene, out / "rgb.exr", False, "16", CODECS["single_rgb"], "RGB")
    truth = _ray_cast_depth(bpy, scene, cam)
    assert 0.2 < np.isnan(truth).mean() < 0.6, "the view holds both sky and geometry"
    return files, truth, cam


def _close(got: np.ndarray, truth: np.ndarray, rtol: float = 1e-3) -> None:
    np.testing.assert_array_equal(np.isnan(got), np.isnan(truth))  # sky (Blender's 1e10) is empty
    np.testing.assert_allclose(got[np.isfinite(truth)], truth[np.isfinite(truth)], rtol=rtol)


@pytest.mark.parametrize("name", FILES)
def test_the_addon_reads_blenders_depth_pass(renders, ext, name):
    """Inside Blender the add-on's reader decodes through OpenImageIO (bundled with Blender); the
    16-bit saves hold half floats (11 significant bits) and the sky clamped to 65504."""
    import bpy

    files, truth, _ = renders
    backends = ext("formats.image_backends")
    if bpy.app.version >= (5, 0, 0):
        assert backends.exr_backend() == "oiio", "Blender 5.0 bundles OpenImageIO: the add-on must find it"
    elif backends.exr_backend() == "builtin" and CODECS[name] not in ("ZIP", "ZIPS", "NONE"):
        pytest.skip(f"this Blender bundles no OpenImageIO module: the built-in decoder cannot read {CODECS[name]}")
    _close(ext("blender.plate").read_plate_depth(str(files[name])), truth)


def test_target_points_from_a_depth_pass_lie_on_the_geometry(renders, ext):
    """The artist's click: Target Points from Plate + Depth on the multilayer render, through the
    render camera: every point lies on the ground (z = 0) or on the cube's surface."""
    import bpy

    files, truth, cam = renders
    scene = bpy.context.scene
    scene.parascale.target_camera = cam
    scene.parascale.target_start_frame = scene.frame_current
    assert bpy.ops.parascale.points_from_depth_map(depth_path=str(files["multilayer32"])) == {"FINISHED"}
    xyz, _ = ext("blender.points").points_of(scene.parascale.target_points)
    assert len(xyz) == int(np.isfinite(truth).sum())
    on_ground = np.abs(xyz[:, 2]) < 5e-3
    on_cube = np.abs(np.max(np.abs(xyz - [0.5, 0, 1]), axis=1) - 1) < 5e-3
    assert (on_ground | on_cube).all() and on_cube.sum() > 20


_OUTSIDE = """
import json, sys
import numpy as np
from bridge_server.config import Limits
from bridge_server.inputs import decode_depth
from parascale_blender.formats.depth_spec import parse_depth_spec
from parascale_blender.formats.image_backends import exr_backend
out = {"backend": exr_backend(), "bpy": "bpy" in sys.modules}
for name, path in json.loads(sys.argv[1]).items():
    cli = parse_depth_spec(path).maps[0]()  # what `parascale rescale --target-depth FILE` reads
    server = decode_depth(open(path, "rb").read(), None, Limits())  # a /generate depth upload
    out[name] = [np.nan_to_num(cli, nan=-1).tolist(), np.nan_to_num(server, nan=-1).tolist()]
print(json.dumps(out))
"""


def test_the_cli_and_the_server_read_blenders_depth_pass(renders):
    """The CLI's and the server's readers, in a fresh Python without bpy (OpenEXR decodes there)."""
    import importlib.util

    if importlib.util.find_spec("OpenEXR") is None or importlib.util.find_spec("fastapi") is None:
        pytest.skip("the server extra (OpenEXR, FastAPI) is not installed in this environment")
    files, truth, _ = renders
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    arg = json.dumps({k: str(v) for k, v in files.items()})
    run = subprocess.run([sys.executable, "-c", _OUTSIDE, arg], env=env, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-2000:]
    got = json.loads(run.stdout)
    assert got["backend"] == "openexr" and not got["bpy"]
    for name in FILES:
        for values in got[name]:
            a = np.array(values)
            _close(np.where(a == -1, np.nan, a), truth)


def _save_png16(bpy, scene, counts: np.ndarray, path: Path, mode: str) -> None:
    """Counts 0..65535 saved by Blender as a 16-bit PNG (``mode`` BW or RGB), no colour transform."""
    img = bpy.data.images.new("counts", counts.shape[1], counts.shape[0], float_buffer=True)
    img.colorspace_settings.name = "Non-Color"
    px = np.repeat((counts[::-1] / 65535.0).astype(np.float32)[:, :, None], 4, axis=2)
    px[:, :, 3] = 1
    img.pixels.foreach_set(px.ravel())
    s = scene.render.image_settings
    if bpy.app.version >= (5, 0, 0):
        s.media_type = "IMAGE"
    s.file_format, s.color_depth, s.color_mode = "PNG", "16", mode
    img.save_render(str(path), scene=scene)
    bpy.data.images.remove(img)


@pytest.mark.parametrize("mode", ["BW", "RGB"])
def test_blenders_16_bit_png_reads_back_exactly(scene, ext, tmp_path, mode):
    """A millimetre depth image saved by Blender as 16-bit grey or RGB (Blender's default) PNG
    reads back count for count, through the add-on's reader and through OpenCV's."""
    import bpy
    import cv2

    scene.view_settings.view_transform = "Raw" if "Raw" in _views(scene) else "Standard"
    counts = (np.arange(H * W).reshape(H, W) * 83 + 1000).astype(np.uint16)
    _save_png16(bpy, scene, counts, tmp_path / "d.png", mode)
    raw = cv2.imread(str(tmp_path / "d.png"), cv2.IMREAD_UNCHANGED)
    assert raw.dtype == np.uint16 and raw.ndim == (2 if mode == "BW" else 3)
    np.testing.assert_array_equal(raw if mode == "BW" else raw[:, :, 2], counts)  # Blender wrote what we gave
    got = ext("blender.plate").read_plate_depth(str(tmp_path / "d.png"), "MILLIMETRES")
    np.testing.assert_allclose(got, counts / 1000.0, rtol=1e-7)


def _views(scene) -> list[str]:
    prop = scene.view_settings.bl_rna.properties["view_transform"]
    return [i.identifier for i in prop.enum_items]
