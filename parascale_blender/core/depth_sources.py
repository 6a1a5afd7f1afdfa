"""Depth sources: point clouds, meshes, per-frame depth maps and SfM points (no file I/O: see
``formats.depth_spec`` for sources read from files).

All answer :meth:`DepthSource.view` with per-pixel visible z-depth at the working camera (see
:mod:`.depth`) and say which empty pixels are sky: a mesh's misses and a depth map's empty values
are sky; a point cloud's empty pixels are unknown unless the user marks them as sky (never outside
a plate's frustum); SfM points' are unknown.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np

from .camera import Camera, SparsePoints
from .depth import DepthError, DepthSource, DepthView, clean_depth
from .plate_grid import PlateGrid
from .triangles import rasterise_triangles
from .zbuffer import LOD_PIXELS, PointHierarchy, fill_pinholes, front_layer, to_camera, zbuffer

CLEARANCE_NODES = 20_000  # a cloud's clearance bound reads the finest hierarchy level of at most this many voxels


class PointCloudDepth(DepthSource):
    """A point cloud (N,3), z-buffered per working pixel through a level-of-detail hierarchy.

    ``radius``: world splat radius ("auto": from the local sample spacing, see
    :class:`~.zbuffer.PointHierarchy`); ``lod_pixels``: nodes whose voxel projects to at most this
    many pixels are drawn as one point (0 disables the level of detail: brute force);
    ``fill_holes``: fill pinholes inside surfaces (see :func:`~.zbuffer.fill_pinholes`).
    ``sky``: False (default): pixels the cloud does not cover are unknown (left out of Π); True:
    they are sky, except where ``frustum`` (the OpenCV c2w and :class:`Camera` of the plate the
    cloud was unprojected from) says the ray leaves what that plate saw. ``plate_sky``: the plate's
    own sky (an (h, w) bool mask over the plate's image, any size: where its depth map was empty):
    an uncovered pixel whose ray direction the plate saw as sky is sky, whatever ``sky`` says (sky is
    at infinity: the same direction shows it from anywhere); one the plate saw geometry in is a gap
    or a disocclusion. A plate's remaining unknown pixels (outside its frustum, disocclusions) are
    extended from the known pixels around them (:func:`extend_far`): a plate stands for a whole view,
    and leaving its edges out biases Π the way the camera moves (a truck towards a facade the plate
    cut off would see only the far part of the street). A cloud whose points are the pixel samples of
    ``frustum``'s camera (as unprojected) is drawn from that grid (:class:`~.plate_grid.PlateGrid`):
    thin structures keep their width, grazing surfaces stay closed.
    """

    geometric = True
    kind = "point cloud"

    def __init__(
        self,
        xyz: np.ndarray,
        radius: float | str = "auto",
        lod_pixels: float = LOD_PIXELS,
        sky: bool = False,
        fill_holes: bool = True,
        frustum: tuple[np.ndarray, Camera] | None = None,
        plate_sky: np.ndarray | None = None,
    ):
        xyz = np.asarray(xyz, dtype=np.float64)
        if xyz.ndim != 2 or xyz.shape[1] != 3:
            raise DepthError(f"a point cloud must be an (N, 3) array, got shape {xyz.shape}")
        finite = int(np.isfinite(xyz).all(axis=1).sum())
        if not finite:
            raise DepthError("the point cloud has no finite points")
        self._xyz, self._radius = xyz, radius
        self.lod_pixels = float(lod_pixels)
        self.sky = bool(sky)
        self.fill_holes = fill_holes
        if plate_sky is not None and frustum is None:
            raise DepthError("a plate's sky mask needs the plate's frustum (its pose and camera)")
        self.frustum = frustum
        self.plate_sky = None if plate_sky is None else np.asarray(plate_sky, dtype=bool)
        # A plate's cloud (one point per pixel of its frustum's camera) is drawn by its grid's
        # footprints (:mod:`.plate_grid`); points off the grid (added later) by splats beside it.
        self.grid, self.loose = None, None
        if frustum is not None:
            self.grid, on = PlateGrid.from_points(xyz, *frustum)
            if self.grid is not None and not on.all():
                self.loose = PointHierarchy(xyz[~on], radius)
        kind = "plate cloud" if frustum is not None else "point cloud"
        self.description = f"{kind} ({finite} points{', empty = sky' if sky else ''})"

    @cached_property
    def hierarchy(self) -> PointHierarchy:
        """The level-of-detail hierarchy of all the points, built on first use: a plate's cloud drawn
        from its grid never needs it (building it cost 1.5 s for a 1080p plate)."""
        return PointHierarchy(self._xyz, self._radius)

    def clearance_bound(self, centre: np.ndarray) -> float:
        """Nearest voxel of the finest hierarchy level of at most ``CLEARANCE_NODES`` nodes: every point
        and every level-of-detail representative lies inside its voxel's bounding sphere. A plate's cloud
        (with a frustum) answers 0 (unknown): what its view draws is extended beyond its points."""
        if self.frustum is not None:
            return 0.0
        levels = self.hierarchy.levels
        if not levels:
            return float("inf")
        lv = next((lv for lv in levels if len(lv["start"]) <= CLEARANCE_NODES), levels[-1])
        c = np.asarray(centre, dtype=np.float64)
        cx, cy, cz = lv["centre"]
        d = np.sqrt((cx - c[0]) ** 2 + (cy - c[1]) ** 2 + (cz - c[2]) ** 2) - lv["bound"]
        return max(float(d.min()), 0.0)

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        if self.grid is not None:
            depth = self.grid.view(c2w, camera)
            if self.loose is not None:
                depth = np.fmin(depth, self.loose.view(c2w, camera, self.lod_pixels))
        elif self.lod_pixels > 0:
            depth = self.hierarchy.view(c2w, camera, self.lod_pixels)
        else:
            depth = zbuffer(self.hierarchy.points, c2w, camera, radius=self.hierarchy.radius)
        if self.fill_holes:
            depth = fill_pinholes(depth)
        sky: bool | np.ndarray = self.sky
        if self.frustum is not None and (self.sky or self.plate_sky is not None):
            inside, u, v = _plate_directions(c2w, camera, *self.frustum)
            sky = inside if self.sky else np.zeros_like(inside)
            if self.plate_sky is not None:
                h, w = self.plate_sky.shape
                pw, ph = self.frustum[1].width, self.frustum[1].height
                iu = np.clip((u[inside] * w / pw).astype(np.int64), 0, w - 1)
                iv = np.clip((v[inside] * h / ph).astype(np.int64), 0, h - 1)
                sky[inside] = self.plate_sky[iv, iu]
            known = (np.isfinite(depth) & (depth > 0)) | sky
            depth, sky = extend_far(depth, sky, behind=inside)
            return DepthView(depth, camera, sky=sky, extended=~known)
        return DepthView(depth, camera, sky=sky)


def _plate_directions(c2w: np.ndarray, camera: Camera, plate_c2w: np.ndarray, plate: Camera):
    """(inside (H, W) bool, u, v): where the ray direction of each pixel of ``camera`` at ``c2w`` falls
    in the plate's image (pixel coordinates), and whether it falls inside it (the direction is what
    decides what lies far along the ray)."""
    x, y = camera.pixel_rays()
    d = np.stack([x, y, np.ones_like(x)], axis=-1) @ np.asarray(c2w, dtype=np.float64)[:3, :3].T
    d = d @ np.asarray(plate_c2w, dtype=np.float64)[:3, :3]
    with np.errstate(divide="ignore", invalid="ignore"):
        u = plate.fx * d[..., 0] / d[..., 2] + plate.cx
        v = plate.fy * d[..., 1] / d[..., 2] + plate.cy
    inside = (d[..., 2] > 0) & (u >= 0) & (u < plate.width) & (v >= 0) & (v < plate.height)
    return inside, u, v


def content_hash(*arrays: np.ndarray) -> str:
    """A digest of arrays' shapes, types and bytes (a depth source's :attr:`~.depth.DepthSource.cache_key`)."""
    h = hashlib.blake2b(digest_size=16)
    for a in arrays:
        a = np.ascontiguousarray(a)
        h.update(f"{a.dtype}{a.shape}".encode())
        h.update(a.tobytes())
    return h.hexdigest()


class MeshDepth(DepthSource):
    """A triangle mesh (vertices (N,3), triangles (M,3)), rasterised exactly at the working resolution;
    pixels that miss every triangle are sky."""

    geometric = True
    kind = "geometry"

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray):
        v = np.asarray(vertices, dtype=np.float64)
        t = np.asarray(triangles)
        if v.ndim != 2 or v.shape[1] != 3 or t.ndim != 2 or t.shape[1] != 3:
            raise DepthError(f"a mesh needs vertices (N, 3) and triangles (M, 3), got {v.shape} and {t.shape}")
        if len(t) == 0:
            raise DepthError("the mesh has no triangles")
        t = t.astype(np.int64)
        if t.min() < 0 or t.max() >= len(v):
            raise DepthError(f"triangle indices must lie in 0..{len(v) - 1}, found {t.min()}..{t.max()}")
        self.vertices, self.triangles = v, t
        self.description = f"mesh ({len(t)} triangles)"
        self._reach: np.ndarray | None = None
        self.cache_key = ("mesh", content_hash(v, t))

    def clearance_bound(self, centre: np.ndarray) -> float:
        """min over vertices of (distance − the longest edge of a triangle using it): every point of a
        triangle lies within its longest edge of one of its vertices."""
        if self._reach is None:
            P = self.vertices[self.triangles]
            with np.errstate(invalid="ignore", over="ignore"):
                edge = np.sqrt(np.max([((P[:, i] - P[:, (i + 1) % 3]) ** 2).sum(1) for i in range(3)], axis=0))
            edge[~np.isfinite(edge)] = -np.inf  # a triangle with a non-finite vertex is never drawn
            reach = np.full(len(self.vertices), -np.inf)
            for i in range(3):
                np.maximum.at(reach, self.triangles[:, i], edge)
            self._used = np.flatnonzero(reach > -np.inf)
            self._reach = reach[self._used]
            self._vt = np.ascontiguousarray(self.vertices[self._used].T)
        c = np.asarray(centre, dtype=np.float64)
        x, y, z = self._vt
        d = np.sqrt((x - c[0]) ** 2 + (y - c[1]) ** 2 + (z - c[2]) ** 2) - self._reach
        return max(float(d.min(initial=np.inf)), 0.0)

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        depth = rasterise_triangles(to_camera(self.vertices, c2w), self.triangles, camera)
        return DepthView(depth, camera, sky=True)


EXACT_MAX_TRIANGLES = 200_000  # up to this many, rasterise every triangle exactly (core MeshDepth)
LARGE_EDGE_FACTOR = 4.0  # "large" triangles: longest edge above this multiple of the median


class HybridMeshDepth(DepthSource):
    """Depth of a big mesh at working resolution: exact rasterisation for its few large triangles,
    a level-of-detail point cloud of the small triangles' vertices for the rest, combined by the
    per-pixel minimum. The cost follows the working pixels instead of the triangle count (its
    accuracy against ``scene.ray_cast`` is measured by ``parascale bench --only blender``).
    Pixels neither part covers are sky, as for :class:`MeshDepth`.
    """

    geometric = True
    kind = "geometry"

    def __init__(self, vertices: np.ndarray, triangles: np.ndarray):
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

    def clearance_bound(self, centre: np.ndarray) -> float:
        return min(s.clearance_bound(centre) for s in (self.mesh, self.points) if s is not None)

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        views = [s.view(c2w, camera).depth for s in (self.mesh, self.points) if s is not None]
        depth = views[0] if len(views) == 1 else np.fmin(views[0], views[1])
        return DepthView(depth, camera, sky=True)


def mesh_depth_source(vertices: np.ndarray, triangles: np.ndarray) -> DepthSource:
    """Depth of a triangle mesh: exact :class:`MeshDepth` up to ``EXACT_MAX_TRIANGLES``,
    :class:`HybridMeshDepth` above."""
    if len(triangles) > EXACT_MAX_TRIANGLES:
        return HybridMeshDepth(vertices, triangles)
    return MeshDepth(vertices, triangles)


def resample_depth(depth: np.ndarray, width: int, height: int) -> np.ndarray:
    """(H, W) depth → (height, width) by front-layer pooling over the source pixels whose centres
    fall in each target pixel (:func:`~.zbuffer.front_layer`, as the z-buffer does; NaN only when
    all are NaN); target pixels that receive no source centre (upsampling) take the nearest source
    pixel."""
    d = np.asarray(depth, dtype=np.float64)
    H, W = d.shape
    if (H, W) == (height, width):
        return d.copy()
    col = np.minimum(((np.arange(W) + 0.5) * width / W).astype(np.int64), width - 1)
    row = np.minimum(((np.arange(H) + 0.5) * height / H).astype(np.int64), height - 1)
    target = (row[:, None] * width + col[None, :]).ravel()
    buf = front_layer(target, d.ravel(), height * width)
    hit = np.zeros(height * width, dtype=bool)
    hit[target] = True
    if not hit.all():
        sc = np.minimum(((np.arange(width) + 0.5) * W / width).astype(np.int64), W - 1)
        sr = np.minimum(((np.arange(height) + 0.5) * H / height).astype(np.int64), H - 1)
        nearest = d[sr[:, None], sc[None, :]].ravel()
        buf[~hit] = nearest[~hit]
    return buf.reshape(height, width)


class DepthMapSequence(DepthSource):
    """One depth map per track frame, resampled to the working resolution.

    ``maps``: (H, W) z-depth arrays, or callables returning one (loaded lazily, once per working
    size; ``formats.depth_spec.depth_map_sequence`` builds them from files). ``names`` label the
    maps in errors (e.g. file names). ``camera``: the maps' camera; when given every map must have
    its size, otherwise maps must have the working camera's aspect ratio. A single map serves
    every frame (a still plate). A map's empty pixels are sky (see :mod:`.depth`).
    """

    per_frame = True
    kind = "depth maps"

    def __init__(
        self,
        maps: Sequence[np.ndarray | Callable[[], np.ndarray]],
        camera: Camera | None = None,
        names: Sequence[str] | None = None,
    ):
        self.maps = list(maps)
        if not self.maps:
            raise DepthError("no depth maps given")
        if names is not None and len(names) != len(self.maps):
            raise DepthError(f"{len(names)} names for {len(self.maps)} depth maps")
        self.camera, self.names = camera, list(names) if names is not None else None
        self._cache: dict[tuple[int, int, int], np.ndarray] = {}
        self.description = f"{len(self.maps)} depth maps"

    def _name(self, i: int) -> str:
        return f"frame index {i} ({self.names[i]})" if self.names else f"frame index {i}"

    def _load(self, i: int) -> np.ndarray:
        m = self.maps[i]
        d = clean_depth(m() if callable(m) else m)
        if d.ndim != 2 or d.size == 0:
            raise DepthError(f"depth map for {self._name(i)} must be 2-D, got shape {d.shape}")
        return d

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        if index is None:
            raise DepthError("per-frame depth maps need the frame index")
        n = len(self.maps)
        i = 0 if n == 1 else int(index)
        if not 0 <= i < n:
            raise DepthError(f"no depth map for frame index {index}: {n} maps given")
        key = (i, camera.width, camera.height)
        if key not in self._cache:
            d = self._load(i)
            h, w = d.shape
            if self.camera is not None and (w, h) != (self.camera.width, self.camera.height):
                raise DepthError(
                    f"depth map for {self._name(i)} is {w}x{h} but the maps' camera is "
                    f"{self.camera.width}x{self.camera.height}"
                )
            if abs(w / h - camera.width / camera.height) > 0.02 * camera.width / camera.height + 1.0 / camera.height:
                raise DepthError(
                    f"depth map for {self._name(i)} is {w}x{h}, which does not match the track's aspect "
                    f"ratio ({camera.width}x{camera.height} working size)"
                )
            self._cache[key] = resample_depth(d, camera.width, camera.height)
        return DepthView(self._cache[key].copy(), camera, sky=True)


def extend_far(
    depth: np.ndarray, sky: bool | np.ndarray, behind: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Fill unknown pixels (empty and not sky) from their known 8-neighbours, one ring per pass, with
    the farthest of them (sky counts as infinitely far): an edge extends the surface or the sky it
    touches. ``behind`` (H, W) bool marks the unknown pixels that are disocclusions (a plate saw that
    direction, so the gap opened behind something nearer): each takes the farther of the known pixels
    that close its gap along the row (the background continues behind the near edge; a sideways move
    opens its gaps along rows), not a ring of the near object's. Returns (depth, sky mask); nothing
    changes when no pixel is known."""
    d = np.array(depth, dtype=np.float64)
    sky_m = np.broadcast_to(np.asarray(sky, dtype=bool), d.shape) & ~(np.isfinite(d) & (d > 0))
    inv = np.where(np.isfinite(d) & (d > 0), 1.0 / np.where(d > 0, d, 1.0), np.nan)
    inv[sky_m] = 0.0
    known = np.isfinite(inv)
    if known.all() or not known.any():
        return d, sky_m.copy()
    H, W = inv.shape
    if behind is not None:  # a gap takes the farther of the known pixels that close it along its row
        gaps = behind & ~known
        cols = np.broadcast_to(np.arange(W), (H, W))
        left = np.maximum.accumulate(np.where(known, cols, -1), axis=1)
        right = np.minimum.accumulate(np.where(known, cols, W)[:, ::-1], axis=1)[:, ::-1]
        pad = np.concatenate([inv, np.full((H, 1), np.inf)], axis=1)  # column W: no known pixel on that side
        side = [np.take_along_axis(pad, np.where((i >= 0) & (i < W), i, W), axis=1) for i in (left, right)]
        far = np.fmin(*side)
        fill = gaps & np.isfinite(far)
        inv[fill] = far[fill]
        known |= fill
    shifts = [(dy, dx) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dy, dx) != (0, 0)]
    while not known.all():
        pad = np.pad(inv, 1, constant_values=np.nan)
        ring = np.full_like(inv, np.inf)
        for dy, dx in shifts:
            nb = pad[1 + dy : 1 + dy + H, 1 + dx : 1 + dx + W]
            ring = np.fmin(ring, np.where(np.isnan(nb), np.inf, nb))
        new = ~known & np.isfinite(ring)
        inv[new] = ring[new]
        known |= new
    out_sky = inv == 0.0
    with np.errstate(divide="ignore"):
        out = np.where(out_sky, np.nan, 1.0 / inv)
    return out, out_sky


BRUTE_FILL = 1_000_000  # fill_nearest: up to this many (empty, filled) pixel pairs, compare them all


def fill_nearest(depth: np.ndarray, max_px: float) -> np.ndarray:
    """Empty (NaN) pixels take the depth of the nearest filled pixel within ``max_px`` pixels.

    For sparse samples this weights each sample by the image area it stands for (its Voronoi cell)
    instead of by how many features happened to be found there; beyond ``max_px`` a pixel stays
    unknown (no extrapolation into sky or off the scene). Ties go to the first filled pixel in row-major
    order. Pixel offsets are tried nearest first (ties in row-major order), each empty pixel taking the
    first filled one it meets; pixels with no filled pixel in the square around them are left at once
    (few pairs: all distances compared at once, the same answer).
    """
    filled = np.isfinite(depth)
    if max_px <= 0 or filled.all() or not filled.any():
        return depth
    h, w = depth.shape
    r = int(np.floor(max_px))
    # filled pixels within the (2r+1)² square around each pixel, by a summed-area table
    sat = np.zeros((h + 1, w + 1), dtype=np.int64)
    sat[1:, 1:] = np.cumsum(np.cumsum(filled, axis=0), axis=1)
    y0, y1 = np.clip(np.arange(h) - r, 0, h), np.clip(np.arange(h) + r + 1, 0, h)
    x0, x1 = np.clip(np.arange(w) - r, 0, w), np.clip(np.arange(w) + r + 1, 0, w)
    near = sat[y1][:, x1] - sat[y0][:, x1] - sat[y1][:, x0] + sat[y0][:, x0]
    ey, ex = np.nonzero(~filled & (near > 0))
    out = depth.copy()
    if not len(ey):
        return out
    fy, fx = np.nonzero(filled)
    if len(ey) * len(fy) <= BRUTE_FILL:  # few pairs: every distance at once
        d2 = (ey[:, None] - fy[None, :]) ** 2 + (ex[:, None] - fx[None, :]) ** 2
        j = np.argmin(d2, axis=1)  # the first nearest in row-major order
        ok = d2[np.arange(len(j)), j] <= max_px * max_px
        out[ey[ok], ex[ok]] = depth[fy[j[ok]], fx[j[ok]]]
        return out
    dy, dx = np.mgrid[-r : r + 1, -r : r + 1]
    d2 = (dy * dy + dx * dx).ravel()
    keep = d2 <= max_px * max_px
    order = np.lexsort((dx.ravel()[keep], dy.ravel()[keep], d2[keep]))  # nearest first, then row-major
    offsets = np.stack([dy.ravel()[keep][order], dx.ravel()[keep][order]], axis=1)
    padded = np.full((h + 2 * r, w + 2 * r), np.nan)
    padded[r : r + h, r : r + w] = depth
    for oy, ox in offsets[1:]:  # (0, 0) is the empty pixel itself
        vals = padded[ey + (r + oy), ex + (r + ox)]
        hit = ~np.isnan(vals)
        if hit.any():
            out[ey[hit], ex[hit]] = vals[hit]
            miss = ~hit
            ey, ex = ey[miss], ex[miss]
            if not len(ey):
                break
    return out


class SparsePointsDepth(DepthSource):
    """SfM points: per frame only the points seen in that frame (when visibility is known), z-buffered
    with one pixel each, then each empty pixel within ``fill`` (a fraction of the working image's
    longest side) takes its nearest sample's depth (see :func:`fill_nearest`; 0 disables).
    Sparse: pixels left empty are unknown, never sky."""

    kind = "SfM points"

    def __init__(self, points: SparsePoints, radius: float = 0.0, fill: float = 0.1):
        xyz = np.asarray(points.xyz, dtype=np.float64)
        if xyz.ndim != 2 or xyz.shape[1] != 3 or len(xyz) == 0:
            raise DepthError(f"SfM points must be a non-empty (N, 3) array, got shape {xyz.shape}")
        n = len(xyz)
        for i, vis in enumerate(points.visibility or []):
            vis = np.asarray(vis)
            if vis.size and (vis.min() < 0 or vis.max() >= n or vis.dtype.kind not in "iu"):
                raise DepthError(f"visibility of frame index {i} refers to points outside 0..{n - 1}")
        self.xyz, self.visibility, self.radius, self.fill = xyz, points.visibility, radius, float(fill)
        self.per_frame = points.visibility is not None
        self.description = f"{len(xyz)} SfM points" + (" with visibility" if self.per_frame else "")

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        xyz = self.xyz
        if self.visibility is not None:
            if index is None:
                raise DepthError("SfM points with visibility need the frame index")
            if not 0 <= int(index) < len(self.visibility):
                raise DepthError(f"no visibility for frame index {index}: {len(self.visibility)} frames known")
            xyz = xyz[np.asarray(self.visibility[int(index)], dtype=np.int64)]
        depth = zbuffer(xyz, c2w, camera, radius=self.radius)
        depth = fill_nearest(depth, self.fill * max(camera.width, camera.height))
        return DepthView(depth, camera, sky=False)
