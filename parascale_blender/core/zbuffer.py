"""Per-pixel visible depth from 3D points: a splatting z-buffer and a view-dependent level of detail.

Conventions: poses are OpenCV camera-to-world (x right, y down, z forward); ``camera`` is the
*working* :class:`~.camera.Camera`; results are (H, W) z-depth with NaN for empty pixels.

Splat rule (the same for brute force and level of detail): a point at pixel position (u, v) and
depth z with world radius r has a footprint half-width ``h = f * r / z`` pixels per axis (capped at
``max_splat``) and covers the pixels whose centres lie in ``(u - h, u + h]`` on both axes: pixel
centres are sampled as a mesh rasteriser samples them, so a pole thinner than a pixel covers the
fraction of pixels its width spans, not a whole pixel per row. A dimensionless point (r = 0: a
floater, or a cloud given radius 0) covers at least the pixel it falls in (h >= 0.5). Visibility
is per pixel (never
nearest-per-coarse-cell): a pixel's depth is the harmonic mean of its samples within
``FRONT_TOLERANCE`` (10%) of the nearest one — the front surface, averaged over the pixel rather
than its nearest corner (plain minimum, tolerance 0, reads slanted surfaces ~1% near at 160 px).

:class:`PointHierarchy` is built once per cloud: points sorted along a Morton curve so that every
voxel of every level is a contiguous run. A view walks it top-down, culls nodes outside the
frustum and replaces each node whose voxel projects to at most ``lod_pixels`` pixels by one
representative, so the cost follows the number of working pixels instead of the number of points:
the depth of its points' mean over their bounding box. The box snaps to a voxel face its points
come near when the neighbour voxel beyond holds points (neighbours tile along the geometry), and
grows by the point radius towards occupied neighbours or on surfaces (nodes with several occupied
neighbours), not at the sides of a thin structure (its points' box already spans it). Tubes — nodes
whose points lie along a line with a round cross-section (a pole, a branch), and the smaller nodes
inside them near their axis — are clipped by the cylinder of the tube's RMS radius around its axis,
tested at each pixel centre: a branch seen diagonally covers its width, not its box.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from .camera import Camera

MORTON_BITS = 21  # bits per axis: 63-bit codes
AUTO_NEIGHBOURS = 16  # points per voxel at which local spacing is measured (radius="auto")
FRONT_TOLERANCE = 0.1  # pixel depth: harmonic mean of the samples within 10% of the nearest one
LOD_PIXELS = 1.5  # default: voxels projecting to <= 1.5 px are drawn as one point (~0.5% from brute force)
SNAP = 2.0  # a node's box reaching within 2 point radii of a voxel face shared with an occupied
# neighbour voxel is snapped to the face (the geometry continues there)
TUBE_RATIO = 0.12  # a node is a tube (a pole, a branch) when its middle covariance eigenvalue is below
TUBE_MIN_POINTS = 4  # 0.12x the largest, it holds at least 4 points and its cross-section is round:
TUBE_ROUND = 0.02  # smallest eigenvalue above 0.02x the middle one (a surface patch is flat: ~0)
TUBE_TRUST = 16  # a node with fewer points inside a tube is a piece of it (when its points lie as
TUBE_SAME = 1.5  # close to the tube's axis as 1.5x the tube's radius)
SURFACE_NEIGHBOURS = 3  # a node with >= 3 occupied face neighbours (or >= 6 face and edge
SURFACE_EDGES = 6  # neighbours: a surface stepping diagonally) is part of a surface: its box grows
# by the point radius on every face (random samples leave gaps at its edges)
SPLAT_MARGIN = 1.5  # auto radius = SPLAT_MARGIN * spacing / 2: margin so oblique and perspective views leave no holes
FLOATER_LEVELS = 5  # auto radius: a point whose neighbourhood is 2^5 coarser than the cloud's median
# is isolated (a floater): it splats as one pixel instead of over the gap to the nearest surface


def to_camera(xyz: np.ndarray, c2w: np.ndarray) -> np.ndarray:
    """World points (N,3) → OpenCV camera coordinates (N,3) for camera-to-world ``c2w``."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return (np.asarray(xyz, dtype=np.float64) - c2w[:3, 3]) @ c2w[:3, :3]


def rasterise(
    cam_xyz: np.ndarray,
    camera: Camera,
    radius: float | np.ndarray = 0.0,
    max_splat: float = 16.0,
    front_tolerance: float | None = None,
) -> np.ndarray:
    """Visible z per pixel of camera-space points (N,3) splatted with world ``radius`` (see module doc)."""
    z = cam_xyz[:, 2]
    front = z > 0
    if not front.all():
        cam_xyz, z = cam_xyz[front], z[front]
        radius = radius[front] if np.ndim(radius) else radius
    inv = 1.0 / z
    u = cam_xyz[:, 0] * (camera.fx * inv) + camera.cx
    v = cam_xyz[:, 1] * (camera.fy * inv) + camera.cy
    rinv = np.broadcast_to(radius * inv, z.shape)
    point = np.broadcast_to(np.asarray(radius) <= 0, z.shape)
    return splat(u, v, z, camera.fx * rinv, camera.fy * rinv, point, camera, max_splat, front_tolerance)


def splat(
    u: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    hx: np.ndarray,
    hy: np.ndarray,
    point: np.ndarray,
    camera: Camera,
    max_splat: float = 16.0,
    front_tolerance: float | None = None,
    ellipse: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Visible z per pixel of footprints centred at pixel position (u, v) with half-widths (hx, hy)
    pixels and depth ``z`` (all (N,)): each covers the pixel centres in ``(u - hx, u + hx]`` x
    ``(v - hy, v + hy]``; a dimensionless ``point`` (radius 0) covers at least the pixel it falls in.
    ``ellipse`` (rows (K,), (K,5): u0, v0, a, b, c): those footprints cover only the centres with
    a du² + 2b du dv + c dv² <= 1 (du = centre u - u0, dv = centre v - v0)."""
    if front_tolerance is None:
        front_tolerance = FRONT_TOLERANCE
    W, H = camera.width, camera.height
    hx = np.minimum(np.where(point, np.maximum(hx, 0.5), hx), max_splat)
    hy = np.minimum(np.where(point, np.maximum(hy, 0.5), hy), max_splat)
    if ellipse is None or not len(ellipse[0]):
        pix, val = _cover(u, v, z, hx, hy, W, H)
    else:
        rows, e = ellipse
        rest = np.ones(len(z), dtype=bool)
        rest[rows] = False
        pix, val = _cover(u[rest], v[rest], z[rest], hx[rest], hy[rest], W, H)
        tp, tv = _cover(u[rows], v[rows], z[rows], hx[rows], hy[rows], W, H, e)
        pix, val = np.concatenate([pix, tp]), np.concatenate([val, tv])
    return front_layer(pix, val, H * W, front_tolerance).reshape(H, W)


def _cover(u, v, z, hx, hy, W: int, H: int, ellipse: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(flat pixel index, z) of every pixel centre each footprint covers (see :func:`splat`)."""
    # First/last covered pixel per axis, clipped to the image in float (no int overflow).
    c0 = np.clip(np.floor(u - hx - 0.5) + 1, 0, W)
    c1 = np.clip(np.floor(u + hx - 0.5), -1, W - 1)
    r0 = np.clip(np.floor(v - hy - 0.5) + 1, 0, H)
    r1 = np.clip(np.floor(v + hy - 0.5), -1, H - 1)
    ncol = c1 - c0
    nrow = r1 - r0
    hit = (ncol >= 0) & (nrow >= 0)
    pix, val = [], []
    # Footprints of at most 2x2 pixels (nearly all, with level of detail): up to four corner writes;
    # larger ones (and ellipses) are expanded pixel by pixel below.
    small = hit & (ncol <= 1) & (nrow <= 1) if ellipse is None else np.zeros_like(hit)
    if small.any():
        cs0, cs1 = c0[small].astype(np.int64), c1[small].astype(np.int64)
        rs0, rs1 = r0[small].astype(np.int64) * W, r1[small].astype(np.int64) * W
        zs = z[small]
        wide, tall = cs1 > cs0, rs1 > rs0
        both = wide & tall
        pix = [rs0 + cs0, rs0[wide] + cs1[wide], rs1[tall] + cs0[tall], rs1[both] + cs1[both]]
        val = [zs, zs[wide], zs[tall], zs[both]]
    multi = hit & ~small
    if multi.any():
        c0, r0, zm = c0[multi].astype(np.int64), r0[multi].astype(np.int64), z[multi]
        ncol, nrow = ncol[multi].astype(np.int64) + 1, nrow[multi].astype(np.int64) + 1
        count = ncol * nrow
        owner = np.repeat(np.arange(len(count)), count)
        k = np.arange(int(count.sum())) - np.repeat(np.cumsum(count) - count, count)
        nc = ncol[owner]
        row, col = r0[owner] + k // nc, c0[owner] + k % nc
        inside = slice(None) if ellipse is None else _in_ellipse(col + 0.5, row + 0.5, ellipse[multi][owner])
        pix.append((row * W + col)[inside])
        val.append(zm[owner][inside])
    if not pix:
        return np.zeros(0, dtype=np.int64), np.zeros(0)
    return np.concatenate(pix), np.concatenate(val)


def _in_ellipse(pu: np.ndarray, pv: np.ndarray, e: np.ndarray) -> np.ndarray:
    """Whether pixel centres (pu, pv) lie in ellipses ``e`` (N,5: u0, v0, a, b, c)."""
    du, dv = pu - e[:, 0], pv - e[:, 1]
    return e[:, 2] * du * du + 2 * e[:, 3] * du * dv + e[:, 4] * dv * dv <= 1.0


def front_layer(index: np.ndarray, z: np.ndarray, size: int, tolerance: float = FRONT_TOLERANCE) -> np.ndarray:
    """Depth per cell (``size``,) from samples ``z`` landing in cells ``index``: the harmonic mean of
    the samples within ``tolerance`` of the cell's nearest one (the front layer); NaN samples are
    ignored, cells without a sample are NaN. ``tolerance`` 0 keeps the nearest sample."""
    buf = np.full(size, np.nan)
    np.fmin.at(buf, index, z)
    if tolerance > 0:
        near = z <= buf[index] * (1.0 + tolerance)  # False for NaN samples
        n = np.bincount(index[near], minlength=size)
        s = np.bincount(index[near], weights=1.0 / z[near], minlength=size)
        np.divide(n, s, out=buf, where=n > 0)
    return buf


def zbuffer(
    xyz: np.ndarray,
    c2w: np.ndarray,
    camera: Camera,
    radius: float | np.ndarray = 0.0,
    max_splat: float = 16.0,
    front_tolerance: float | None = None,
) -> np.ndarray:
    """Brute force: project every world point (N,3) and keep the nearest depth per working pixel.

    Non-finite points are ignored. This is the reference the level of detail is tested against.
    """
    cam = to_camera(xyz, c2w)
    ok = np.isfinite(cam).all(axis=1)
    if not ok.all():
        cam = cam[ok]
        radius = np.asarray(radius)[ok] if np.ndim(radius) else radius
    return rasterise(cam, camera, radius, max_splat, front_tolerance)


def fill_pinholes(depth: np.ndarray, min_fraction: float = 0.75) -> np.ndarray:
    """Fill empty pixels whose 8-neighbourhood (within the image) is at least ``min_fraction``
    covered, with the neighbours' median depth (one pass). Random clouds leave such pinholes inside
    surfaces where their samples happen to be sparse; real gaps and sky are larger and stay empty."""
    hole = np.isnan(depth)
    if not hole.any() or hole.all():
        return depth
    H, W = depth.shape
    pad = np.pad(depth, 1, constant_values=np.inf)  # inf marks "outside the image"
    shifts = [(dy, dx) for dy in (0, 1, 2) for dx in (0, 1, 2) if (dy, dx) != (1, 1)]
    # Whole-image neighbour counts first (cheap), then the median only where a pinhole is filled.
    n_valid = sum(np.isfinite(pad[dy : dy + H, dx : dx + W]).astype(np.int8) for dy, dx in shifts)
    n_inside = sum((~np.isinf(pad[dy : dy + H, dx : dx + W])).astype(np.int8) for dy, dx in shifts)
    r, c = np.nonzero(hole & (n_valid > 0) & (n_valid >= min_fraction * n_inside))
    out = depth.copy()
    if len(r):
        nb = np.stack([pad[r + dy, c + dx] for dy, dx in shifts], 1)
        out[r, c] = np.nanmedian(np.where(np.isfinite(nb), nb, np.nan), axis=1)
    return out


# --------------------------------------------------------------------------- hierarchy


def _spread_bits(q: np.ndarray) -> np.ndarray:
    """Insert two zero bits between the low 21 bits of each uint64 (Morton interleaving)."""
    x = q.astype(np.uint64) & np.uint64(0x1FFFFF)
    for shift, mask in ((32, 0x1F00000000FFFF), (16, 0x1F0000FF0000FF), (8, 0x100F00F00F00F00F),
                        (4, 0x10C30C30C30C30C3), (2, 0x1249249249249249)):  # fmt: skip
        x = (x | (x << np.uint64(shift))) & np.uint64(mask)
    return x


def morton_codes(q: np.ndarray) -> np.ndarray:
    """Morton (Z-order) codes of integer grid coordinates (N,3), 21 bits per axis."""
    return _spread_bits(q[:, 0]) | (_spread_bits(q[:, 1]) << np.uint64(1)) | (_spread_bits(q[:, 2]) << np.uint64(2))


def _run_starts(keys: np.ndarray) -> np.ndarray:
    """Start index of every run of equal values in a sorted array."""
    return np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]])


class PointHierarchy:
    """Morton-ordered voxel hierarchy over a point cloud for fast per-view z-buffering.

    ``radius``: world splat radius per point — a number, an (N,) array, or ``"auto"`` (half the
    local sample spacing, estimated from how many points share a voxel, so dense clouds from depth
    maps or meshes render without holes). Non-finite rows are dropped.
    """

    def __init__(self, xyz: np.ndarray, radius: float | np.ndarray | str = "auto"):
        xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
        finite = np.isfinite(xyz).all(axis=1)
        if not isinstance(radius, str):
            radius = np.broadcast_to(np.asarray(radius, dtype=np.float64), (len(xyz),))[finite]
        xyz = xyz[finite]
        self.size = len(xyz)
        if self.size == 0:
            self.points = xyz
            self.radius = np.zeros(0)
            self.levels: list[dict] = []
            return
        lo = xyz.min(axis=0)
        extent = float((xyz.max(axis=0) - lo).max())
        cell = max(extent, 1e-300) / (2**MORTON_BITS - 1)
        q = np.minimum(((xyz - lo) / cell).astype(np.int64), 2**MORTON_BITS - 1)
        codes = morton_codes(q)
        order = np.argsort(codes, kind="stable")
        codes, q, self.points = codes[order], q[order], xyz[order]
        self.lo, self.cell = lo, cell
        runs = self._runs(codes)
        if isinstance(radius, str):
            if radius != "auto":
                raise ValueError(f"radius must be a number, an array or 'auto', got {radius!r}")
            self.radius = self._auto_radius(runs)
        else:
            self.radius = np.asarray(radius, dtype=np.float64)[order]
        self.levels = self._build_levels(runs, q, codes)

    def _runs(self, codes: np.ndarray) -> list[np.ndarray]:
        """Run starts (voxels) of every level k = 0..MORTON_BITS, voxel size cell * 2**k."""
        return [_run_starts(codes >> np.uint64(3 * k)) for k in range(MORTON_BITS + 1)]

    def _auto_radius(self, runs: list[np.ndarray]) -> np.ndarray:
        """Half the local spacing: at the finest level where a point's voxel holds >= AUTO_NEIGHBOURS
        points, spacing ≈ voxel size / sqrt(count) (surface sampling). Isolated points (that level
        ``FLOATER_LEVELS`` above the cloud's median) get radius 0: one pixel, whatever their distance."""
        n = self.size
        spacing = np.full(n, np.nan)
        level = np.full(n, MORTON_BITS + 1)
        for k, starts in enumerate(runs):
            if len(starts) == n:
                continue
            counts = np.diff(np.r_[starts, n])
            per_point = np.repeat(counts, counts)
            new = np.isnan(spacing) & (per_point >= AUTO_NEIGHBOURS)
            spacing[new] = self.cell * 2**k / np.sqrt(per_point[new])
            level[new] = k
            if not np.isnan(spacing).any():
                break
        if np.isnan(spacing).all():  # fewer points than AUTO_NEIGHBOURS
            spacing[:] = self.cell * 2**MORTON_BITS / np.sqrt(max(n, 1))
        spacing[np.isnan(spacing)] = np.nanmax(spacing)
        radius = SPLAT_MARGIN * 0.5 * spacing
        if n >= 4 * AUTO_NEIGHBOURS:
            radius[level > np.median(level) + FLOATER_LEVELS] = 0.0
        return radius

    def _build_levels(self, runs: list[np.ndarray], q: np.ndarray, codes: np.ndarray) -> list[dict]:
        """Levels from the leaf (nodes average >= 2 points) up to a top with <= 64 nodes. Each node
        keeps the bounding box of its points (from its children's boxes above the leaf): its footprint
        follows the geometry inside the voxel (a pole, a branch), not the voxel."""
        n = self.size
        leaf = next((k for k, s in enumerate(runs) if len(s) <= n / 2), MORTON_BITS)
        top = next((k for k in range(leaf, MORTON_BITS + 1) if len(runs[k]) <= 64), MORTON_BITS)
        levels = []
        csum = np.vstack([np.zeros(3), np.cumsum(self.points, axis=0)])
        rsum = np.r_[0.0, np.cumsum(self.radius)]
        lo, hi = self.points, self.points
        centred = self.points - csum[-1] / n
        pairs = ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))
        msum = np.vstack([np.zeros(6), np.cumsum(np.stack([centred[:, i] * centred[:, j] for i, j in pairs], 1), 0)])
        covs = []
        for k in range(leaf, top + 1):
            start = runs[k]
            end = np.r_[start[1:], n]
            count = end - start
            size = self.cell * 2**k
            centre = self.lo + ((q[start] >> k) + 0.5) * size
            mean = (csum[end] - csum[start]) / count[:, None]
            rmean = (rsum[end] - rsum[start]) / count
            rmax = np.maximum.reduceat(self.radius, start)
            level = {
                "size": size,
                "start": start,
                "end": end,
                "centre": [np.ascontiguousarray(c) for c in centre.T],
                "bound": size * np.sqrt(3) / 2 + rmax,
                "mean": mean,
                "radius": rmean,
            }
            below = start
            if levels:
                below = levels[-1]["start"]
                level["child_lo"] = np.searchsorted(below, start)
                level["child_hi"] = np.searchsorted(below, end)
                below = level["child_lo"]
            lo, hi = np.minimum.reduceat(lo, below, axis=0), np.maximum.reduceat(hi, below, axis=0)
            qk, keys = q[start] >> k, codes[start] >> np.uint64(3 * k)
            faces = _occupied(qk, keys, MORTON_BITS - k, FACES)
            surface = faces.sum(1) >= SURFACE_NEIGHBOURS
            few = np.flatnonzero(~surface)
            surface[few] = faces[few].sum(1) + _occupied(qk[few], keys, MORTON_BITS - k, EDGES).sum(1) >= SURFACE_EDGES
            level["_box"] = (lo, hi, faces[:, :3], faces[:, 3:], surface)
            cov = (msum[end] - msum[start]) / count[:, None] - _outer6(mean - csum[-1] / n)
            level["tube"], level["tube_axis"], level["tube_radius"] = _tubes(cov, count)
            level["tube_centre"] = mean.copy()
            level["piece"] = np.zeros(len(start), dtype=bool)  # a tube's axis and radius from its parent
            levels.append(level)
            covs.append(cov)
        # Boxes. A face the points come within SNAP radii of, with an occupied neighbour voxel beyond
        # it, continues into the neighbour: snap to it (footprints tile along the geometry). Elsewhere
        # the box grows by its points' radius (within the voxel: a sparse node's points leave gaps)
        # where the neighbour is occupied or the node is part of a surface; not at the sides of a
        # thin structure (a pole, a branch), which the points' box already spans.
        for lv in levels:
            lo, hi, below_n, above_n, surface = lv.pop("_box")
            r = lv["radius"][:, None]
            vlo, vhi = np.stack(lv["centre"], 1) - lv["size"] / 2, np.stack(lv["centre"], 1) + lv["size"] / 2
            near_lo, near_hi = lo - vlo < SNAP * r, vhi - hi < SNAP * r
            side = np.where(surface[:, None], r, 0.0)
            glo, ghi = np.where(below_n, r, side), np.where(above_n, r, side)
            blo = np.where(near_lo & below_n, np.minimum(lo, vlo), np.maximum(lo - glo, vlo))
            bhi = np.where(near_hi & above_n, np.maximum(hi, vhi), np.minimum(hi + ghi, vhi))
            lv["box_centre"], lv["box_half"] = (blo + bhi) / 2, (bhi - blo) / 2
        # A node with too few points to tell its shape, inside a tube and near its axis, is a piece of
        # the tube: it takes the tube's axis and radius (estimated from more points).
        for child, parent, cov in zip(levels[-2::-1], levels[:0:-1], covs[-2::-1]):
            up = np.repeat(np.arange(len(parent["start"])), parent["child_hi"] - parent["child_lo"])
            count = child["end"] - child["start"]
            cand = np.flatnonzero(parent["tube"][up] & (~child["tube"] | (count < TUBE_TRUST)))
            axis, origin, radius = (parent[k][up[cand]] for k in ("tube_axis", "tube_centre", "tube_radius"))
            d = child["mean"][cand] - origin
            along = np.einsum("ij,ij->i", d, axis)
            c = cov[cand]
            # mean squared distance of the child's points from the parent's axis
            eCe = (c[:, 0] * axis[:, 0] ** 2 + c[:, 1] * axis[:, 1] ** 2 + c[:, 2] * axis[:, 2] ** 2
                   + 2 * (c[:, 3] * axis[:, 0] * axis[:, 1] + c[:, 4] * axis[:, 0] * axis[:, 2]
                          + c[:, 5] * axis[:, 1] * axis[:, 2]))  # fmt: skip
            r2 = c[:, 0] + c[:, 1] + c[:, 2] - eCe + np.einsum("ij,ij->i", d, d) - along**2
            same = r2 <= (TUBE_SAME * radius) ** 2
            cand, axis, origin, radius, along = cand[same], axis[same], origin[same], radius[same], along[same]
            child["tube"][cand] = True
            child["piece"][cand] = True
            child["tube_axis"][cand], child["tube_radius"][cand] = axis, radius
            child["tube_centre"][cand] = origin + along[:, None] * axis
        for lv in levels:
            # A tube's footprint: its box grown by the tube's radius (within its voxel: few points on a
            # ring span less than the tube), clipped by the cylinder of that radius around its axis.
            t = lv["tube"]
            w = lv["tube_radius"][t][:, None]
            g = w * lv.pop("piece")[t][:, None]
            vc = np.stack(lv["centre"], 1)[t]
            c, h = lv["box_centre"][t], lv["box_half"][t]
            blo, bhi = np.maximum(c - h - g, vc - lv["size"] / 2), np.minimum(c + h + g, vc + lv["size"] / 2)
            lv["box_centre"][t], lv["box_half"][t] = (blo + bhi) / 2, (bhi - blo) / 2
            e = lv["tube_axis"][t]
            along = 3 * lv["size"]  # longer than the voxel: the box clips the length
            lv["tube_index"] = np.flatnonzero(t)
            lv["pack"] = np.hstack([lv.pop("box_centre"), lv.pop("box_half"), lv["mean"], lv["radius"][:, None]])
            lv["tube_cov"] = (along**2 - w**2) * _outer6(e) + w**2 * np.array([1.0, 1, 1, 0, 0, 0])
        return levels

    def select(self, c2w: np.ndarray, camera: Camera, lod_pixels: float = LOD_PIXELS) -> Splats:
        """The footprints that stand for the cloud in this view: nodes projecting to at most
        ``lod_pixels`` (their points' bounding box) and the points of the nodes nearer than that."""
        if self.size == 0:
            e, i = np.zeros((0, 3)), np.zeros(0, dtype=np.int64)
            return Splats(e, np.zeros(0), e, np.zeros(0), np.zeros(0, dtype=bool), i, e, np.zeros((0, 6)))
        c2w = np.asarray(c2w, dtype=np.float64)
        R = c2w[:3, :3]
        off = c2w[:3, 3] @ R  # camera coords = world @ R - off
        f = max(camera.fx, camera.fy)
        # Side planes of the frustum: unit normals pointing out of it, in camera coordinates.
        xl, xr = -camera.cx / camera.fx, (camera.width - camera.cx) / camera.fx
        yt, yb = -camera.cy / camera.fy, (camera.height - camera.cy) / camera.fy
        planes = np.array([[-1.0, 0, xl], [1.0, 0, -xr], [0, -1.0, yt], [0, 1.0, -yb]])
        planes /= np.linalg.norm(planes, axis=1, keepdims=True)
        packs, tubes, means, covs = [], [], [], []
        count = 0
        top = self.levels[-1]
        nodes = np.arange(len(top["start"]))
        full = np.zeros(len(nodes), dtype=bool)  # node known to lie entirely inside the side planes
        raw = np.zeros(0, dtype=np.int64)
        for li in range(len(self.levels) - 1, -1, -1):
            lv = self.levels[li]
            cen = lv["centre"]
            X, Y, Z = cen[0][nodes], cen[1][nodes], cen[2][nodes]
            z = X * R[0, 2] + Y * R[1, 2] + Z * R[2, 2] - off[2]
            b = lv["bound"][nodes]
            keep = z + b > 0
            part = np.flatnonzero(~full & keep)
            if len(part):
                Xp, Yp, Zp, zp, bp = X[part], Y[part], Z[part], z[part], b[part]
                x = Xp * R[0, 0] + Yp * R[1, 0] + Zp * R[2, 0] - off[0]
                y = Xp * R[0, 1] + Yp * R[1, 1] + Zp * R[2, 1] - off[1]
                dmax = np.full(len(part), -np.inf)
                for n in planes:
                    dmax = np.maximum(dmax, n[0] * x + n[1] * y + n[2] * zp)
                keep[part] = dmax < bp
                full[part] = (dmax <= -bp) & (zp - bp > 0)
            fine = keep & (z - b > 0) & (f * lv["size"] <= lod_pixels * z)
            if li == 0:  # a leaf tube is drawn as a tube at any size (its points would be round splats)
                fine |= keep & (z - b > 0) & lv["tube"][nodes]
            done = nodes[fine]
            packs.append(lv["pack"][done])
            if len(lv["tube_index"]):
                tube = np.flatnonzero(lv["tube"][done])
                tubes.append(tube + count)
                means.append(lv["tube_centre"][done[tube]])
                covs.append(lv["tube_cov"][np.searchsorted(lv["tube_index"], done[tube])])
            count += len(done)
            rest = keep & ~fine
            nodes, full = nodes[rest], full[rest]
            if li == 0:
                raw = _expand_ranges(lv["start"][nodes], lv["end"][nodes])
            else:
                lo, hi = lv["child_lo"][nodes], lv["child_hi"][nodes]
                full = np.repeat(full, hi - lo)
                nodes = _expand_ranges(lo, hi)
        # one transform for all nodes: box centre, half-extents (along the camera axes), mean's depth
        pack = np.concatenate(packs) if packs else np.zeros((0, 10))
        T = np.zeros((10, 7))
        T[0:3, 0:3], T[3:6, 3:6], T[6:9, 6] = R, np.abs(R), R[:, 2]
        cam = pack @ T
        cam[:, 0:3] -= off
        cam[:, 6] -= off[2]
        centre, half, depth = cam[:, 0:3], cam[:, 3:6], cam[:, 6]
        point = pack[:, 9] <= 0
        radius = np.zeros(len(pack))
        if len(raw):
            pts = self.points[raw] @ R - off
            centre, depth = np.concatenate([centre, pts]), np.concatenate([depth, pts[:, 2]])
            half = np.concatenate([half, np.zeros((len(raw), 3))])
            radius = np.concatenate([radius, self.radius[raw]])
            point = np.concatenate([point, self.radius[raw] <= 0])
        tube = np.concatenate(tubes) if tubes else np.zeros(0, dtype=np.int64)
        mean = np.concatenate(means) @ R - off if means else np.zeros((0, 3))
        cov = _rotate_cov(np.concatenate(covs), R) if covs else np.zeros((0, 6))
        return Splats(centre, depth, half, radius, point, tube, mean, cov)

    def view(
        self, c2w: np.ndarray, camera: Camera, lod_pixels: float = LOD_PIXELS, max_splat: float = 16.0
    ) -> np.ndarray:
        """(H, W) nearest z-depth per working pixel (NaN where empty) using the level of detail."""
        return self.select(c2w, camera, lod_pixels).rasterise(camera, max_splat)


class Splats(NamedTuple):
    """Footprints in camera space: ``centre`` (M,3) of each box, the ``depth`` (M,) it reports (its
    points' mean), ``half`` (M,3) the box's half-extents along the camera axes, and the world
    ``radius`` (M,) grown around it; ``point`` (M,): dimensionless (radius 0) points, which cover at
    least the pixel they fall in. Tubes (a pole, a branch: see :func:`_tubes`): ``tube`` (K,)
    the rows that are tubes, ``mean`` (K,3) and ``cov`` (K,6: xx, yy, zz, xy, xz, yz) their
    ellipsoids in camera space (a cylinder of the tube's radius, longer than the box), which clip
    their boxes (pixel centres outside the ellipsoid's projection are not covered)."""

    centre: np.ndarray
    depth: np.ndarray
    half: np.ndarray
    radius: np.ndarray
    point: np.ndarray
    tube: np.ndarray
    mean: np.ndarray
    cov: np.ndarray

    def rasterise(self, camera: Camera, max_splat: float = 16.0) -> np.ndarray:
        """(H, W) visible z: each box projected (its extent along the view ray included), grown by
        the radius, covering the pixel centres inside it (see :func:`splat`)."""
        c, z, h, r, pt = self.centre, self.depth, self.half, self.radius, self.point
        ell = None
        if len(self.tube):  # projected ellipse of each tube: J C J^T, J the projection's Jacobian at its mean
            m, cov = self.mean, self.cov
            iz = 1.0 / np.maximum(m[:, 2], 1e-300)
            mx, my = m[:, 0] * iz, m[:, 1] * iz
            xx, yy, zz, xy, xz, yz = cov.T
            suu = camera.fx**2 * iz**2 * (xx - 2 * mx * xz + mx * mx * zz) + 1e-6
            svv = camera.fy**2 * iz**2 * (yy - 2 * my * yz + my * my * zz) + 1e-6
            suv = camera.fx * camera.fy * iz**2 * (xy - mx * yz - my * xz + mx * my * zz)
            det = suu * svv - suv * suv
            ell = (
                self.tube,
                np.stack([mx * camera.fx + camera.cx, my * camera.fy + camera.cy, svv / det, -suv / det, suu / det], 1),
            )
        front = (c[:, 2] > 0) & (z > 0)
        if not front.all():
            c, z, h, r, pt = (a[front] for a in (c, z, h, r, pt))
            if ell is not None:
                keep = front[ell[0]]
                ell = (np.cumsum(front)[ell[0][keep]] - 1, ell[1][keep])
        inv = 1.0 / c[:, 2]
        x, y = c[:, 0] * inv, c[:, 1] * inv
        u, v = x * camera.fx + camera.cx, y * camera.fy + camera.cy
        hx = camera.fx * inv * (np.hypot(h[:, 0], x * h[:, 2]) + r)
        hy = camera.fy * inv * (np.hypot(h[:, 1], y * h[:, 2]) + r)
        return splat(u, v, z, hx, hy, pt, camera, max_splat, ellipse=ell)


def _rotate_cov(cov: np.ndarray, R: np.ndarray) -> np.ndarray:
    """Covariances (M,6: xx, yy, zz, xy, xz, yz) in world → camera coordinates (R^T C R)."""
    c = np.empty((len(cov), 3, 3))
    for (i, j), col in zip(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)), cov.T):
        c[:, i, j] = c[:, j, i] = col
    c = R.T @ c @ R
    return np.stack([c[:, 0, 0], c[:, 1, 1], c[:, 2, 2], c[:, 0, 1], c[:, 0, 2], c[:, 1, 2]], 1)


def _occupied(qk: np.ndarray, keys: np.ndarray, bits: int, offsets: np.ndarray) -> np.ndarray:
    """(M, K) bool: whether the voxel at integer coordinates ``qk`` (M,3) + each of ``offsets`` (K,3)
    holds points, on a grid of 2**bits per axis whose occupied voxels have sorted Morton ``keys``."""
    out = np.zeros((len(qk), len(offsets)), dtype=bool)
    for j, off in enumerate(offsets):
        qn = qk + off
        ok = ((qn >= 0) & (qn < 2**bits)).all(axis=1)
        kn = morton_codes(np.clip(qn, 0, 2**bits - 1))
        idx = np.minimum(np.searchsorted(keys, kn), len(keys) - 1)
        out[:, j] = ok & (keys[idx] == kn)
    return out


FACES = np.vstack([-np.eye(3, dtype=np.int64), np.eye(3, dtype=np.int64)])  # below x, y, z; above x, y, z
EDGES = np.array([o for o in np.ndindex(3, 3, 3) if np.count_nonzero(np.array(o) - 1) == 2]) - 1


def _outer6(x: np.ndarray) -> np.ndarray:
    """Outer products of vectors (M,3) as (M,6): xx, yy, zz, xy, xz, yz."""
    return np.stack([x[:, i] * x[:, j] for i, j in ((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2))], 1)


def _tubes(cov: np.ndarray, count: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(tube (M,) bool, axis (M,3) unit, radius (M,)) of nodes with covariance ``cov`` (M,6) of
    ``count`` points: a tube's points lie along a line (middle eigenvalue below TUBE_RATIO x the
    largest); its radius is the RMS distance of its points from the line (a ring's radius). Axis and
    radius are zero for nodes too small to be tubes."""
    tube, axis, radius = np.zeros(len(cov), dtype=bool), np.zeros((len(cov), 3)), np.zeros(len(cov))
    big = np.flatnonzero(count >= TUBE_MIN_POINTS)
    c = np.empty((len(big), 3, 3))
    for (i, j), col in zip(((0, 0), (1, 1), (2, 2), (0, 1), (0, 2), (1, 2)), cov[big].T):
        c[:, i, j] = c[:, j, i] = col
    lam, vec = np.linalg.eigh(c)
    lam = np.maximum(lam, 0.0)
    tube[big] = (lam[:, 1] < TUBE_RATIO * lam[:, 2]) & (lam[:, 0] > TUBE_ROUND * lam[:, 1])
    axis[big], radius[big] = vec[:, :, 2], np.sqrt(lam[:, 0] + lam[:, 1])
    return tube, axis, radius


def _expand_ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` for all i, vectorised."""
    count = hi - lo
    total = int(count.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(total)
