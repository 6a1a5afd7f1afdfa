"""Depth of Blender scene geometry, for Π: a fast path and the exact ray-cast reference.

* Fast: evaluated meshes are pulled once with ``foreach_get`` (vertices + loop triangles, world
  space) and handed to the core (``mesh_depth_source``), which z-buffers them per view, vectorised.
* Exact: :class:`RayCastDepth` casts one ``scene.ray_cast`` per working pixel (slow); the fast
  path is checked against it.
Both return OpenCV z-depth (along the optical axis) per working pixel, NaN where nothing is hit.
"""

from __future__ import annotations

import numpy as np

from ..core.camera import Camera
from ..core.depth import DepthError, DepthSource, DepthView
from ..core.depth_sources import mesh_depth_source
from . import helpers

GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES"}


def geometry_objects(scene, collection=None) -> list:
    """Visible geometry in ``collection`` (recursively) or the whole scene, minus ParaScale helpers."""
    objs = collection.all_objects if collection is not None else scene.objects
    return [
        o
        for o in objs
        if o.type in GEOMETRY_TYPES and not helpers.is_helper(o) and o.visible_get() and not o.hide_render
    ]


def evaluated_triangles(depsgraph, objects) -> tuple[np.ndarray, np.ndarray]:
    """World-space vertices (V,3) float64 and triangles (T,3) int64 of the objects' evaluated meshes."""
    verts, tris, base = [], [], 0
    for obj in objects:
        ob = obj.evaluated_get(depsgraph)
        me = ob.to_mesh()
        try:
            me.calc_loop_triangles()
            nv, nt = len(me.vertices), len(me.loop_triangles)
            if nt == 0:
                continue
            co = np.empty(3 * nv, dtype=np.float32)
            me.vertices.foreach_get("co", co)
            lt = np.empty(3 * nt, dtype=np.int32)
            me.loop_triangles.foreach_get("vertices", lt)
        finally:
            ob.to_mesh_clear()
        mw = np.array(ob.matrix_world)
        verts.append(co.reshape(-1, 3).astype(np.float64) @ mw[:3, :3].T + mw[:3, 3])
        tris.append(lt.reshape(-1, 3).astype(np.int64) + base)
        base += nv
    if not verts:
        return np.zeros((0, 3)), np.zeros((0, 3), dtype=np.int64)
    return np.concatenate(verts), np.concatenate(tris)


def mesh_depth(context, collection=None, where: str = "geometry") -> DepthSource:
    """Fast depth source over the evaluated meshes of ``collection`` (or the scene), see
    :func:`~..core.depth_sources.mesh_depth_source`."""
    objs = geometry_objects(context.scene, collection)
    verts, tris = evaluated_triangles(context.evaluated_depsgraph_get(), objs)
    scope = f"collection {collection.name!r}" if collection is not None else "the scene"
    if len(tris) == 0:
        raise DepthError(f"{where}: {scope} has no visible mesh geometry to measure depth on")
    src = mesh_depth_source(verts, tris)
    src.description = f"the geometry of {scope}, {src.description}"
    return src


class RayCastDepth(DepthSource):
    """Exact per-pixel z-depth by ``scene.ray_cast`` (one ray per working pixel; slow reference)."""

    geometric = True
    kind = "geometry"
    description = "scene ray_cast"

    def __init__(self, scene, depsgraph):
        self.scene = scene
        self.depsgraph = depsgraph

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        from mathutils import Vector

        x, y = camera.pixel_rays()
        rays = np.stack([x, y, np.ones_like(x)], axis=-1).reshape(-1, 3)
        R, o = np.asarray(c2w)[:3, :3], np.asarray(c2w)[:3, 3]
        dirs = rays @ R.T
        dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
        origin = Vector(o.tolist())
        depth = np.full(len(dirs), np.nan)
        cast = self.scene.ray_cast
        dg = self.depsgraph
        for i, d in enumerate(dirs.tolist()):
            hit, loc, *_ = cast(dg, origin, Vector(d))
            if hit:
                depth[i] = (np.asarray(loc) - o) @ R[:, 2]
        return DepthView(depth.reshape(camera.height, camera.width), camera, sky=True)


__all__ = ["geometry_objects", "evaluated_triangles", "mesh_depth", "RayCastDepth"]
