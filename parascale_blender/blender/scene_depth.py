"""Depth of Blender scene geometry, for Π: a fast path and the exact ray-cast reference.

* Fast: evaluated meshes are pulled once with ``foreach_get`` (vertices + loop triangles, world
  space) and handed to the core (``MeshDepth``), which z-buffers them per view, vectorised.
* Exact: :class:`RayCastDepth` casts one ``scene.ray_cast`` per working pixel (~11 µs a ray);
  it is the reference the fast path is benchmarked against.
Both return OpenCV z-depth (along the optical axis) per working pixel, NaN where nothing is hit.
"""

from __future__ import annotations

import bpy
import numpy as np

from ..core.camera import Camera
from ..core.depth import DepthError, DepthSource, DepthView

GEOMETRY_TYPES = {"MESH", "CURVE", "SURFACE", "META", "FONT", "CURVES"}


def geometry_objects(scene, collection=None) -> list:
    """Visible geometry in ``collection`` (recursively) or the whole scene, minus ParaScale point clouds."""
    objs = collection.all_objects if collection is not None else scene.objects
    return [
        o
        for o in objs
        if o.type in GEOMETRY_TYPES and not o.get("parascale_points") and o.visible_get() and not o.hide_render
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


EXACT_MAX_TRIANGLES = 200_000  # up to this many, rasterise every triangle exactly (core MeshDepth)
LARGE_EDGE_FACTOR = 4.0  # "large" triangles: longest edge above this multiple of the median


class HybridMeshDepth(DepthSource):
    """Depth of a big mesh at working resolution: exact rasterisation for its few large triangles,
    a level-of-detail point cloud of the small triangles' vertices for the rest, combined by the
    per-pixel minimum. The cost follows the working pixels instead of the triangle count. Measured
    against ``scene.ray_cast``: E[1/Z] within 0.1% on a 1M-triangle terrain, 1.3% on a near dense
    sphere over a plane (adding triangle centroids as points cost 3x the points for no gain).
    """

    dense = True

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray):
        from ..core.depth_sources import MeshDepth, PointCloudDepth

        v = np.asarray(vertices, dtype=np.float64)
        t = np.asarray(triangles, dtype=np.int64)
        P = v[t]
        edge = np.sqrt(np.max([((P[:, i] - P[:, (i + 1) % 3]) ** 2).sum(axis=1) for i in range(3)], axis=0))
        large = edge > LARGE_EDGE_FACTOR * np.median(edge)
        small = t[~large]
        self.mesh = MeshDepth(v, t[large]) if large.any() else None
        self.points = None
        if len(small):
            used = np.zeros(len(v), dtype=bool)
            used[small.ravel()] = True
            self.points = PointCloudDepth(v[used])
        self.description = f"mesh ({len(t)} triangles: {int(large.sum())} rasterised, {len(small)} as points)"

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        views = [s.view(c2w, camera).depth for s in (self.mesh, self.points) if s is not None]
        depth = views[0] if len(views) == 1 else np.fmin(views[0], views[1])
        return DepthView(depth, camera, dense=True)


def mesh_depth(context, collection=None, where: str = "geometry") -> DepthSource:
    """Fast depth source over the evaluated meshes of ``collection`` (or the scene): exact
    rasterisation up to ``EXACT_MAX_TRIANGLES``, :class:`HybridMeshDepth` above."""
    objs = geometry_objects(context.scene, collection)
    verts, tris = evaluated_triangles(context.evaluated_depsgraph_get(), objs)
    if len(tris) == 0:
        scope = f"collection {collection.name!r}" if collection is not None else "the scene"
        raise DepthError(f"{where}: {scope} has no visible mesh geometry to measure depth on")
    if len(tris) > EXACT_MAX_TRIANGLES:
        return HybridMeshDepth(verts, tris)
    from ..core.depth_sources import MeshDepth

    return MeshDepth(verts, tris)


class RayCastDepth(DepthSource):
    """Exact per-pixel z-depth by ``scene.ray_cast`` (one ray per working pixel; slow reference)."""

    dense = True
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
        return DepthView(depth.reshape(camera.height, camera.width), camera, dense=True)


__all__ = ["geometry_objects", "evaluated_triangles", "mesh_depth", "RayCastDepth", "bpy"]
