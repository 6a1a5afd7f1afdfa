"""PLY / OBJ readers against files written by Blender (bpy, in a subprocess) and pycolmap."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.meshes import fan_triangles, read_mesh, read_obj, read_ply, write_obj, write_ply

BPY_EXPORT = textwrap.dedent(
    """
    import sys, numpy as np, bpy
    out = sys.argv[-1]
    bpy.ops.wm.read_factory_settings(use_empty=True)
    bpy.ops.mesh.primitive_uv_sphere_add(segments=16, ring_count=8, radius=2.0, location=(0.5, -1.0, 3.0))
    ob = bpy.context.active_object
    me = ob.data
    co = np.empty(3 * len(me.vertices)); me.vertices.foreach_get("co", co)
    mw = np.array(ob.matrix_world); co = co.reshape(-1, 3) @ mw[:3, :3].T + mw[:3, 3]
    me.calc_loop_triangles()
    lt = np.empty(3 * len(me.loop_triangles), dtype=np.int32); me.loop_triangles.foreach_get("vertices", lt)
    np.save(out + "/verts.npy", co); np.save(out + "/tris.npy", lt.reshape(-1, 3))
    kw = dict(forward_axis="Y", up_axis="Z", export_uv=False, export_normals=False)
    bpy.ops.wm.obj_export(filepath=out + "/sphere.obj", export_materials=False, **kw)
    bpy.ops.wm.ply_export(filepath=out + "/sphere_ascii.ply", ascii_format=True, **kw)
    bpy.ops.wm.ply_export(filepath=out + "/sphere_bin.ply", ascii_format=False, **kw)
    """
)


def area(v: np.ndarray, t: np.ndarray) -> float:
    return float(0.5 * np.linalg.norm(np.cross(v[t[:, 1]] - v[t[:, 0]], v[t[:, 2]] - v[t[:, 0]]), axis=1).sum())


@pytest.fixture(scope="module")
def blender_files(tmp_path_factory):
    if importlib.util.find_spec("bpy") is None:
        pytest.skip("bpy not installed")
    out = tmp_path_factory.mktemp("bpy_meshes")
    script = out / "export.py"
    script.write_text(BPY_EXPORT)
    subprocess.run([sys.executable, str(script), str(out)], check=True, capture_output=True, timeout=120)
    return out


@pytest.mark.parametrize("name", ["sphere.obj", "sphere_ascii.ply", "sphere_bin.ply"])
def test_blender_exports_read_back_as_the_same_surface(blender_files, name):
    verts = np.load(blender_files / "verts.npy")
    tris = np.load(blender_files / "tris.npy")
    mesh = read_mesh(blender_files / name)
    assert not mesh.is_point_cloud
    np.testing.assert_allclose(np.unique(mesh.vertices.round(5), axis=0), np.unique(verts.round(5), axis=0), atol=1e-5)
    assert len(mesh.triangles) == len(tris)  # 16*6 quads -> 192 + 2*16 pole triangles
    assert area(mesh.vertices, mesh.triangles) == pytest.approx(area(verts, tris), rel=1e-6)


def test_pycolmap_point_cloud_with_colours(tmp_path):
    pycolmap = pytest.importorskip("pycolmap")
    rec = pycolmap.Reconstruction()
    rng = np.random.default_rng(0)
    xyz = rng.normal(size=(50, 3))
    rgb = rng.integers(0, 256, (50, 3)).astype(np.uint8)
    for p, c in zip(xyz, rgb):
        rec.add_point3D(p, pycolmap.Track(), c)
    rec.export_PLY(str(tmp_path / "pc.ply"))
    mesh = read_ply(tmp_path / "pc.ply")
    assert mesh.is_point_cloud
    order = np.lexsort(mesh.vertices.T)
    expect = np.lexsort(xyz.astype(np.float32).T)
    np.testing.assert_allclose(mesh.vertices[order], xyz[expect], rtol=1e-6)
    np.testing.assert_array_equal(mesh.colors[order], rgb[expect])


@pytest.mark.parametrize("binary", [True, False])
def test_ply_writer_round_trip(tmp_path, binary):
    rng = np.random.default_rng(1)
    v = rng.normal(size=(30, 3)).astype(np.float32)
    t = rng.integers(0, 30, (20, 3))
    c = rng.integers(0, 256, (30, 3)).astype(np.uint8)
    write_ply(tmp_path / "m.ply", v, t, c, binary=binary)
    m = read_ply(tmp_path / "m.ply")
    np.testing.assert_allclose(m.vertices, v.astype(np.float64), rtol=0 if binary else 1e-7)
    np.testing.assert_array_equal(m.triangles, t)
    np.testing.assert_array_equal(m.colors, c)


def test_big_endian_ply_with_quads_extra_element_and_float_colours(tmp_path):
    head = (
        "ply\nformat binary_big_endian 1.0\ncomment made by hand\nelement vertex 4\n"
        "property double x\nproperty double y\nproperty double z\nproperty float r\nproperty float g\n"
        "property float b\nelement face 1\nproperty list uchar int vertex_index\nproperty uchar flags\n"
        "element edge 1\nproperty int a\nproperty int b\nend_header\n"
    )
    v = np.array([[0, 0, 1], [1, 0, 1], [1, 1, 1], [0, 1, 1]], dtype=">f8")
    rows = b"".join(p.tobytes() + np.array([1.0, 0.5, 0.0], ">f4").tobytes() for p in v)
    face = bytes([4]) + np.array([0, 1, 2, 3], ">i4").tobytes() + bytes([7])
    (tmp_path / "q.ply").write_bytes(head.encode() + rows + face + np.array([0, 1], ">i4").tobytes())
    m = read_ply(tmp_path / "q.ply")
    np.testing.assert_array_equal(m.triangles, [[0, 1, 2], [0, 2, 3]])
    np.testing.assert_array_equal(m.colors[0], [255, 128, 0])
    assert area(m.vertices, m.triangles) == pytest.approx(1.0)


def test_ascii_ply_with_mixed_polygons(tmp_path):
    text = (
        "ply\nformat ascii 1.0\nelement vertex 5\nproperty float x\nproperty float y\nproperty float z\n"
        "element face 2\nproperty list uchar int vertex_indices\nend_header\n"
        "0 0 0\n1 0 0\n1 1 0\n0 1 0\n2 0 0\n3 0 1 2\n4 0 1 4 3\n"
    )
    (tmp_path / "a.ply").write_text(text)
    assert read_ply(tmp_path / "a.ply").triangles.tolist() == [[0, 1, 2], [0, 1, 4], [0, 4, 3]]


def test_obj_polygons_negative_indices_slashes_and_colours(tmp_path):
    text = (
        "# comment\nmtllib x.mtl\nv 0 0 0 1 0 0\nv 1 0 0 0 1 0\nv 1 1 0 0 0 1\nv 0 1 0 1 1 1\nvt 0 0\nvn 0 0 1\n"
        "o thing\nusemtl m\nf 1/1/1 2/1/1 3/1/1 4/1/1\nf -4//1 -3//1 -1//1\n"
    )
    (tmp_path / "p.obj").write_text(text)
    m = read_obj(tmp_path / "p.obj")
    assert m.triangles.tolist() == [[0, 1, 2], [0, 2, 3], [0, 1, 3]]
    np.testing.assert_array_equal(m.colors[1], [0, 255, 0])


def test_obj_round_trip(tmp_path):
    v = np.random.default_rng(2).normal(size=(8, 3))
    t = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7]])
    write_obj(tmp_path / "r.obj", v, t)
    m = read_obj(tmp_path / "r.obj")
    np.testing.assert_allclose(m.vertices, v, rtol=1e-8)
    np.testing.assert_array_equal(m.triangles, t)


def test_fan_triangulation():
    assert fan_triangles([[5, 6, 7, 8, 9]]).tolist() == [[5, 6, 7], [5, 7, 8], [5, 8, 9]]


@pytest.mark.parametrize(
    "name,text,match,line",
    [
        ("bad.obj", "v 0 0 0\nv 1 x 0\n", "expected numbers", 2),
        ("idx.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 7\n", "vertex 7 does not exist", 4),
        ("short.obj", "v 0 0 0\nf 1 1\n", "at least 3 vertices", 2),
        ("none.obj", "# nothing\n", "no vertices", None),
        ("hdr.ply", "ply\nformat ascii 1.0\nelement vertex 1\nproperty float32x x\nend_header\n", "cannot parse", 4),
        ("fmt.ply", "ply\nformat weird 1.0\nend_header\n", "unknown PLY format", 2),
        ("nov.ply", "ply\nformat ascii 1.0\nelement face 0\nend_header\n", "no 'vertex' element", 1),
        (
            "row.ply",
            "ply\nformat ascii 1.0\nelement vertex 2\nproperty float x\nproperty float y\nproperty float z\n"
            "end_header\n0 0 0\n1 2\n",
            "has 2 values, expected 3",
            9,
        ),
        (
            "face.ply",
            "ply\nformat ascii 1.0\nelement vertex 1\nproperty float x\nproperty float y\nproperty float z\n"
            "element face 1\nproperty list uchar int vertex_indices\nend_header\n0 0 0\n3 0 0 5\n",
            "uses vertex",
            None,
        ),
    ],
)
def test_malformed_meshes_name_file_line_and_field(tmp_path, name, text, match, line):
    (tmp_path / name).write_text(text)
    with pytest.raises(FormatError, match=match) as e:
        read_mesh(tmp_path / name)
    assert e.value.line == line and name in str(e.value)


def test_truncated_binary_ply(tmp_path):
    write_ply(tmp_path / "m.ply", np.zeros((10, 3)), np.array([[0, 1, 2]] * 4))
    data = (tmp_path / "m.ply").read_bytes()
    (tmp_path / "cut.ply").write_bytes(data[:-30])
    with pytest.raises(FormatError, match="file ends"):
        read_ply(tmp_path / "cut.ply")


@pytest.fixture(scope="module")
def seed_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("meshfuzz")
    rng = np.random.default_rng(3)
    v, t = rng.normal(size=(6, 3)), np.array([[0, 1, 2], [3, 4, 5]])
    write_ply(d / "b.ply", v, t, rng.integers(0, 256, (6, 3)))
    write_ply(d / "a.ply", v, t, binary=False)
    write_obj(d / "o.obj", v, t)
    return {p.name: p.read_bytes() for p in d.iterdir()}


@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzzed_mesh_files_never_crash(seed_files, tmp_path, data):
    name = data.draw(st.sampled_from(sorted(seed_files)))
    blob = bytearray(seed_files[name])
    for _ in range(data.draw(st.integers(1, 4))):
        i = data.draw(st.integers(0, max(len(blob) - 1, 0)))
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        if op == "flip" and blob:
            blob[i] = data.draw(st.sampled_from(list(b"0123456789 -.\nxe/") + [data.draw(st.integers(0, 255))]))
        elif op == "cut":
            del blob[i : i + data.draw(st.integers(1, 32))]
        else:
            blob[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    (tmp_path / name).write_bytes(bytes(blob))
    try:
        m = read_mesh(tmp_path / name)
    except FormatError:
        return
    assert m.vertices.ndim == 2 and m.vertices.shape[1] == 3
    if len(m.triangles):
        assert m.triangles.min() >= 0 and m.triangles.max() < len(m.vertices)


def test_a_small_subject_close_to_the_camera_survives_a_huge_ground_plane():
    """A ±50 km ground plane and a 2 cm cube 3 cm in front of the camera: the near plane follows the
    nearest geometry, not the scene's extent (it used to clip at 5 cm and erase the cube)."""
    from parascale_blender.core.camera import Camera
    from parascale_blender.core.depth_sources import MeshDepth
    from parascale_tools.synthetic import box_mesh

    ground_v = np.array([[-5e4, 1.0, -5e4], [5e4, 1.0, -5e4], [5e4, 1.0, 5e4], [-5e4, 1.0, 5e4]])
    ground_t = np.array([[0, 1, 2], [0, 2, 3]])
    cube_v, cube_t = box_mesh([-0.01, -0.01, 0.03], [0.01, 0.01, 0.05])
    v = np.concatenate([ground_v, cube_v])
    t = np.concatenate([ground_t, cube_t + len(ground_v)])
    cam = Camera(80.0, 80.0, 40.0, 30.0, 80, 60)
    depth = MeshDepth(v, t).view(np.eye(4), cam).depth
    assert depth[30, 40] == pytest.approx(0.03, rel=1e-9)  # the cube's front face, on the axis
    assert np.nanmax(depth[-1]) == pytest.approx(1.0 / ((59.5 - 30.0) / 80.0), rel=1e-9)  # the ground row


@pytest.mark.parametrize(
    ("name", "text", "match"),
    [
        ("huge.obj", "v 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 " + "9" * 5000 + "\n", r"huge\.obj:4: field 'f': bad vertex"),
        ("huge.ply", "ply\nformat ascii 1.0\nelement vertex " + "9" * 5000 + "\nproperty float x\nend_header\n",
         r"huge\.ply:3: field 'element': element 'vertex' claims a 5000-digit count"),
    ],
)  # fmt: skip
def test_a_5000_digit_index_or_count_is_a_format_error(tmp_path, name, text, match):
    """Python refuses int() of more than 4,300 digits with a ValueError: a clear error instead."""
    (tmp_path / name).write_text(text)
    with pytest.raises(FormatError, match=match):
        read_mesh(tmp_path / name)
