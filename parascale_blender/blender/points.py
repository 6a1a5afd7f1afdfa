"""Point-cloud objects: a vertex-only mesh (bulk ``foreach_set``) coloured by a POINT-domain colour
attribute (:data:`COLOR`; not ``color``, which Cycles takes for its own) that is the mesh's active and
render colour, shown by a Geometry Nodes modifier with a radius input (a distance, in scene units).

Each point is drawn as a small octahedron (a mesh, not a Geometry Nodes point cloud): Workbench
(Solid view) draws point clouds in their material's single colour and reads per-point colours only
from a mesh's active colour attribute. The octahedra are realized together with the data mesh, the
data mesh first, so the result takes the data mesh's parameters, the active colour attribute among
them (Blender's realize copies them from its first mesh): Solid view with Attribute colours shows
the colours, EEVEE and Cycles show them through an unlit material that reads the attribute. An
octahedron's circumradius is :data:`OCTAHEDRON` × the radius (same mean projected area as a sphere
of that radius). Above :data:`SHOWN` points a random subset of about :data:`SHOWN` is drawn, each
larger by 1/sqrt(fraction shown) so the cloud covers the same area (the data mesh keeps every point).
The default radius comes from the camera: :data:`PIXELS` working pixels. Every cloud is a ParaScale
helper (:mod:`.helpers`): it never renders.
"""

from __future__ import annotations

import bpy
import numpy as np

from . import helpers

NODE_GROUP = "ParaScale Points"
MATERIAL = "ParaScale Points"
MODIFIER = "ParaScale Points"
COLOR = "parascale_color"
PIXELS = 1.5  # default point radius, in pixels of the working resolution at the cloud's median depth
OCTAHEDRON = float(np.sqrt(np.pi / np.sqrt(3.0)))  # circumradius / radius: the mean projected area of a sphere
SHOWN = 500_000  # at most about this many points are drawn
VERSION = 2  # of the node group: an older file's group is rebuilt in place (its modifiers keep their radius)


def _node_group():
    ng = bpy.data.node_groups.get(NODE_GROUP)
    if ng is None:
        ng = bpy.data.node_groups.new(NODE_GROUP, "GeometryNodeTree")  # pyright: ignore[reportArgumentType]
        ng.interface.new_socket(name="Geometry", in_out="INPUT", socket_type="NodeSocketGeometry")
        radius = ng.interface.new_socket(name="Radius", in_out="INPUT", socket_type="NodeSocketFloat")
        radius.default_value = 0.01  # pyright: ignore[reportAttributeAccessIssue]
        radius.min_value = 0.0  # pyright: ignore[reportAttributeAccessIssue]
        radius.subtype = "DISTANCE"  # pyright: ignore[reportAttributeAccessIssue]
        ng.interface.new_socket(name="Geometry", in_out="OUTPUT", socket_type="NodeSocketGeometry")
    if ng.get("parascale_version") != VERSION:
        _build(ng)
        ng["parascale_version"] = VERSION
    return ng


def _math(ng, operation: str, a, b=None):
    """A Math node ``a <operation> b``; each operand a socket (linked) or a number."""
    node = ng.nodes.new("ShaderNodeMath")
    node.operation = operation  # pyright: ignore[reportAttributeAccessIssue]
    for socket, value in zip(node.inputs, (a, b)):
        if isinstance(value, bpy.types.NodeSocket):
            ng.links.new(value, socket)
        elif value is not None:
            socket.default_value = value  # pyright: ignore[reportAttributeAccessIssue]
    return node.outputs[0]


def _build(ng) -> None:
    """The nodes (see the module docstring): data mesh + octahedra at a random subset of its points."""
    ng.nodes.clear()
    n_in = ng.nodes.new("NodeGroupInput")
    n_out = ng.nodes.new("NodeGroupOutput")
    octa = ng.nodes.new("GeometryNodeMeshUVSphere")  # 4 segments x 2 rings: an octahedron
    octa.inputs["Segments"].default_value = 4  # pyright: ignore[reportAttributeAccessIssue]
    octa.inputs["Rings"].default_value = 2  # pyright: ignore[reportAttributeAccessIssue]
    octa.inputs["Radius"].default_value = OCTAHEDRON  # pyright: ignore[reportAttributeAccessIssue]
    setmat = ng.nodes.new("GeometryNodeSetMaterial")
    setmat.inputs["Material"].default_value = _material()  # pyright: ignore[reportAttributeAccessIssue]
    ng.links.new(octa.outputs["Mesh"], setmat.inputs["Geometry"])
    count = ng.nodes.new("GeometryNodeAttributeDomainSize")
    ng.links.new(n_in.outputs["Geometry"], count.inputs["Geometry"])
    shown = _math(ng, "MINIMUM", _math(ng, "DIVIDE", float(SHOWN), count.outputs["Point Count"]), 1.0)
    pick = ng.nodes.new("FunctionNodeRandomValue")
    pick.data_type = "BOOLEAN"  # pyright: ignore[reportAttributeAccessIssue]
    ng.links.new(shown, pick.inputs["Probability"])
    inst = ng.nodes.new("GeometryNodeInstanceOnPoints")
    ng.links.new(n_in.outputs["Geometry"], inst.inputs["Points"])
    ng.links.new(next(o for o in pick.outputs if o.enabled and o.type == "BOOLEAN"), inst.inputs["Selection"])
    ng.links.new(setmat.outputs["Geometry"], inst.inputs["Instance"])
    ng.links.new(_math(ng, "DIVIDE", n_in.outputs["Radius"], _math(ng, "SQRT", shown)), inst.inputs["Scale"])
    join = ng.nodes.new("GeometryNodeJoinGeometry")
    ng.links.new(inst.outputs["Instances"], join.inputs["Geometry"])
    ng.links.new(n_in.outputs["Geometry"], join.inputs["Geometry"])  # linked last: listed (and realized) first
    realize = ng.nodes.new("GeometryNodeRealizeInstances")
    ng.links.new(join.outputs["Geometry"], realize.inputs["Geometry"])
    ng.links.new(realize.outputs["Geometry"], n_out.inputs["Geometry"])


def _material():
    """An unlit material showing the colour attribute as it is (emission: no lighting, no specular
    grey-out), so the cloud reads the same in EEVEE and Cycles whatever the scene's lights."""
    mat = bpy.data.materials.get(MATERIAL)
    if mat is not None:
        return mat
    mat = bpy.data.materials.new(MATERIAL)
    if bpy.app.version < (5, 0, 0):
        mat.use_nodes = True
    nt = mat.node_tree
    for node in list(nt.nodes):
        if node.type != "OUTPUT_MATERIAL":
            nt.nodes.remove(node)
    out = next(n for n in nt.nodes if n.type == "OUTPUT_MATERIAL")
    attr = nt.nodes.new("ShaderNodeAttribute")
    attr.attribute_name = COLOR  # pyright: ignore[reportAttributeAccessIssue]
    emit = nt.nodes.new("ShaderNodeEmission")
    nt.links.new(attr.outputs["Color"], emit.inputs["Color"])
    nt.links.new(emit.outputs["Emission"], out.inputs["Surface"])
    return mat


def radius_identifier(mod) -> str:
    return next(s.identifier for s in mod.node_group.interface.items_tree if getattr(s, "name", "") == "Radius")


def create_points_object(name: str, xyz: np.ndarray, rgb: np.ndarray | None = None, radius: float = 0.01):
    """A new helper object (of the current scene) holding ``xyz`` (N,3 world) with optional ``rgb``
    (N,3, 0..1 floats or 0..255 ints)."""
    xyz = np.asarray(xyz, dtype=np.float32).reshape(-1, 3)
    me = bpy.data.meshes.new(name)
    me.vertices.add(len(xyz))
    me.vertices.foreach_set("co", xyz.ravel())
    if rgb is not None:
        c = np.asarray(rgb, dtype=np.float32).reshape(-1, 3)
        if np.issubdtype(np.asarray(rgb).dtype, np.integer) or (c.size and c.max() > 1.0):
            c = c / 255.0
        rgba = np.ones((len(c), 4), dtype=np.float32)
        rgba[:, :3] = c
        attr = me.color_attributes.new(COLOR, "FLOAT_COLOR", "POINT")
        attr.data.foreach_set("color", rgba.ravel())  # pyright: ignore[reportAttributeAccessIssue]
        me.color_attributes.active_color = attr
        me.color_attributes.render_color_index = me.color_attributes.active_color_index or 0
    me.update()
    obj = bpy.data.objects.new(name, me)
    helpers.adopt(obj, bpy.context.scene)
    mod = obj.modifiers.new(MODIFIER, "NODES")
    mod.node_group = _node_group()  # pyright: ignore[reportAttributeAccessIssue]
    mod[radius_identifier(mod)] = float(radius)
    obj["parascale_points"] = True
    return obj


def default_radius(cam_obj, scene, xyz: np.ndarray, working: int = 160) -> float:
    """A point radius (scene units) that covers :data:`PIXELS` pixels of the working resolution at the
    median depth of ``xyz`` (N,3 world) seen from the camera object."""
    from ..core.zbuffer import to_camera
    from .convert import c2w_from_object, camera_intrinsics

    z = to_camera(np.asarray(xyz, dtype=np.float64).reshape(-1, 3), c2w_from_object(cam_obj))[:, 2]
    z = z[np.isfinite(z) & (z > 0)]
    if not z.size:
        return 0.01
    return float(PIXELS * np.median(z) / camera_intrinsics(cam_obj, scene).working(working).fx)


def points_of(obj) -> tuple[np.ndarray, np.ndarray | None]:
    """(xyz world (N,3) float64, rgb (N,3) 0..1 or None) of a points object's mesh."""
    me = obj.data
    n = len(me.vertices)
    co = np.empty(3 * n, dtype=np.float32)
    me.vertices.foreach_get("co", co)
    xyz = co.reshape(-1, 3).astype(np.float64)
    mw = np.array(obj.matrix_world)
    xyz = xyz @ mw[:3, :3].T + mw[:3, 3]
    attr = me.attributes.get(COLOR) or me.attributes.get("color")  # "color": files of earlier versions
    rgb = None
    if attr is not None:
        c = np.empty(4 * n, dtype=np.float32)
        attr.data.foreach_get("color", c)
        rgb = c.reshape(-1, 4)[:, :3]
    return xyz, rgb


PLATE_C2W, PLATE_CAMERA, PLATE_SKY = "parascale_plate_c2w", "parascale_plate_camera", "parascale_plate_sky"
PLATE_SKY_SIDE = 320  # the plate sky mask kept on the cloud: at most this many pixels a side


def store_frustum(obj, c2w: np.ndarray, camera, sky: np.ndarray | None = None) -> None:
    """Keep on a cloud unprojected from a plate that plate's camera: its OpenCV c2w in the object's local
    frame (:data:`PLATE_C2W`, 16 floats row-major: moving the object moves the frustum with the points)
    and its pixel :class:`~..core.camera.Camera` (:data:`PLATE_CAMERA`: fx, fy, cx, cy, width, height);
    with ``sky`` (the plate depth map's empty pixels, (H, W) bool) the plate's own sky, sampled at pixel
    centres to at most :data:`PLATE_SKY_SIDE` pixels a side (:data:`PLATE_SKY`: height, width, then the
    mask's bits packed into bytes)."""
    local = np.linalg.inv(np.array(obj.matrix_world)) @ np.asarray(c2w, dtype=np.float64)
    obj[PLATE_C2W] = local.ravel().tolist()
    obj[PLATE_CAMERA] = [float(v) for v in (camera.fx, camera.fy, camera.cx, camera.cy, camera.width, camera.height)]
    if sky is not None:
        sky = np.asarray(sky, dtype=bool)
        H, W = sky.shape
        k = max(1, -(-max(H, W) // PLATE_SKY_SIDE))
        small = sky[k // 2 :: k, k // 2 :: k]
        obj[PLATE_SKY] = [int(small.shape[0]), int(small.shape[1]), *np.packbits(small.ravel()).tolist()]


def frustum_of(obj):
    """(plate c2w OpenCV in world, plate Camera, the plate's sky mask or None) stored by
    :func:`store_frustum`, placed by the object's current ``matrix_world`` (scale removed); None for a
    cloud that did not come from a plate."""
    from ..core.camera import Camera
    from ..core.depth import DepthError
    from .convert import unscaled

    local, cam = obj.get(PLATE_C2W), obj.get(PLATE_CAMERA)
    if local is None or cam is None:
        return None
    local, cam = np.asarray(local, dtype=np.float64), np.asarray(cam, dtype=np.float64)
    if local.shape != (16,) or cam.shape != (6,) or not (np.isfinite(local).all() and np.isfinite(cam).all()):
        raise DepthError(
            f"{obj.name}: the plate camera stored in {PLATE_C2W!r} / {PLATE_CAMERA!r} must be 16 and 6 finite "
            f"numbers, got {local.size} and {cam.size}; make the cloud again (Target > Points from Plate + Depth)"
        )
    c2w = unscaled(np.array(obj.matrix_world) @ local.reshape(4, 4))
    fx, fy, cx, cy, w, h = cam.tolist()
    plate = Camera(fx, fy, cx, cy, int(w), int(h))
    plate.validate(f"{obj.name}: the stored plate camera ({PLATE_CAMERA!r})")
    packed = obj.get(PLATE_SKY)
    sky = None
    if packed is not None:
        packed = np.asarray(packed, dtype=np.int64)
        h, w = (int(v) for v in packed[:2]) if packed.size >= 2 else (0, 0)
        if h < 1 or w < 1 or packed.size != 2 + -(-h * w // 8) or packed[2:].min(initial=0) < 0 or packed.max() > 255:
            raise DepthError(f"{obj.name}: the plate sky stored in {PLATE_SKY!r} is damaged; make the cloud again")
        sky = np.unpackbits(packed[2:].astype(np.uint8))[: h * w].reshape(h, w).astype(bool)
    return c2w, plate, sky


def store_visibility(obj, visibility) -> None:
    """Per-frame index lists as two int custom properties (flat indices + offsets)."""
    lens = [len(v) for v in visibility]
    obj["parascale_vis_offsets"] = np.concatenate([[0], np.cumsum(lens)]).astype(np.int32).tolist()
    flat = np.concatenate([np.asarray(v, dtype=np.int32) for v in visibility]) if lens else np.zeros(0, np.int32)
    obj["parascale_vis_index"] = flat.tolist()


def load_visibility(obj) -> list[np.ndarray] | None:
    off = obj.get("parascale_vis_offsets")
    idx = obj.get("parascale_vis_index")
    if off is None or idx is None:
        return None
    off = np.asarray(off, dtype=np.int64)
    idx = np.asarray(idx, dtype=np.int64)
    return [idx[off[i] : off[i + 1]] for i in range(len(off) - 1)]
