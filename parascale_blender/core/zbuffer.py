"""Per-pixel visible depth from 3D points: a splatting z-buffer and a view-dependent level of detail.

Conventions: poses are OpenCV camera-to-world (x right, y down, z forward); ``camera`` is the
*working* :class:`~.camera.Camera`; results are (H, W) z-depth with NaN for empty pixels.

Splat rule (the same for brute force and level of detail): a point at pixel position (u, v) and
depth z with world radius r has a footprint half-width ``h = max(f * r / z, 0.5)`` pixels per axis
(capped at ``max_splat``) and covers the pixels whose centres lie in ``(u - h, u + h]`` on both
axes; with h = 0.5 that is exactly the pixel it falls in. Visibility is per pixel (never
nearest-per-coarse-cell): a pixel's depth is the harmonic mean of its samples within
``FRONT_TOLERANCE`` (10%) of the nearest one — the front surface, averaged over the pixel rather
than its nearest corner (plain minimum, tolerance 0, reads slanted surfaces ~1% near at 160 px).

:class:`PointHierarchy` is built once per cloud: points sorted along a Morton curve so that every
voxel of every level is a contiguous run. A view walks it top-down, culls nodes outside the
frustum and replaces each node whose voxel projects to at most ``lod_pixels`` pixels by one
representative (the mean of its points, splatted over the voxel), so the cost follows the number of
working pixels instead of the number of points.
"""

from __future__ import annotations

import numpy as np

from .camera import Camera

MORTON_BITS = 21  # bits per axis: 63-bit codes
AUTO_NEIGHBOURS = 16  # points per voxel at which local spacing is measured (radius="auto")
FRONT_TOLERANCE = 0.1  # pixel depth: harmonic mean of the samples within 10% of the nearest one
LOD_PIXELS = 1.5  # default: voxels projecting to <= 1.5 px are drawn as one point (~0.5% from brute force)
NODE_SPLAT = 1.5  # a node splats over 1.5x its voxel: lattice-like clouds leave no holes
SPLAT_MARGIN = 1.5  # auto radius = SPLAT_MARGIN * spacing / 2: margin so oblique and perspective views leave no holes
FLOATER_LEVELS = 5  # auto radius: a point whose neighbourhood is 2^5 coarser than the cloud's median
# is isolated (a floater): it splats as one pixel instead of over the gap to the nearest surface
CENTRE_PLACED = False  # auto radius = SPLAT_MARGIN * spacing / 2: squares of side = spacing tile a surface


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
    rinv = radius * inv
    # A half-width below 0.5 px behaves as 0.5: exactly the pixel the point falls in.
    hx = np.clip(camera.fx * rinv, 0.5, max_splat)
    hy = hx if camera.fx == camera.fy else np.clip(camera.fy * rinv, 0.5, max_splat)
    return splat_boxes(u, v, z, np.broadcast_to(hx, u.shape), np.broadcast_to(hy, u.shape), camera, front_tolerance)


def splat_boxes(
    u: np.ndarray,
    v: np.ndarray,
    z: np.ndarray,
    hx: np.ndarray,
    hy: np.ndarray,
    camera: Camera,
    front_tolerance: float | None = None,
) -> np.ndarray:
    """Visible z per pixel of boxes centred at pixel position (u, v) with half-widths (hx, hy) pixels
    and depth ``z`` (all (N,)): see :func:`splat_extents`."""
    return splat_extents(u - hx, u + hx, v - hy, v + hy, z, camera, front_tolerance)


def splat_extents(
    u0: np.ndarray,
    u1: np.ndarray,
    v0: np.ndarray,
    v1: np.ndarray,
    z: np.ndarray,
    camera: Camera,
    front_tolerance: float | None = None,
) -> np.ndarray:
    """Visible z per pixel of boxes (all (N,)) covering the pixel centres in ``(u0, u1]`` x ``(v0, v1]``
    at depth ``z``: a box narrower than a pixel may cover none (centres are sampled as a mesh
    rasteriser samples them), and boxes sharing an edge value never both cover a centre on it."""
    if front_tolerance is None:
        front_tolerance = FRONT_TOLERANCE
    W, H = camera.width, camera.height
    # First/last covered pixel per axis, clipped to the image in float (no int overflow).
    c0 = np.clip(np.floor(u0 - 0.5) + 1, 0, W)
    c1 = np.clip(np.floor(u1 - 0.5), -1, W - 1)
    r0 = np.clip(np.floor(v0 - 0.5) + 1, 0, H)
    r1 = np.clip(np.floor(v1 - 0.5), -1, H - 1)
    ncol = c1 - c0
    nrow = r1 - r0
    hit = (ncol >= 0) & (nrow >= 0)
    # Footprints of at most 2x2 pixels (nearly all, with level of detail): up to four corner writes;
    # larger ones are expanded pixel by pixel below.
    small = hit & (ncol <= 1) & (nrow <= 1)
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
        pix.append((r0[owner] + k // nc) * W + c0[owner] + k % nc)
        val.append(zm[owner])
    return front_layer(np.concatenate(pix), np.concatenate(val), H * W, front_tolerance).reshape(H, W)


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
        self.levels = self._build_levels(runs, q)

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

    def _build_levels(self, runs: list[np.ndarray], q: np.ndarray) -> list[dict]:
        """Levels from the leaf (nodes average >= 2 points) up to a top with <= 64 nodes."""
        n = self.size
        leaf = next((k for k, s in enumerate(runs) if len(s) <= n / 2), MORTON_BITS)
        top = next((k for k in range(leaf, MORTON_BITS + 1) if len(runs[k]) <= 64), MORTON_BITS)
        levels = []
        csum = np.vstack([np.zeros(3), np.cumsum(self.points, axis=0)])
        rsum = np.r_[0.0, np.cumsum(self.radius)]
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
                "rep_radius": np.maximum(NODE_SPLAT * size / 2, rmean),
            }
            if levels:
                below = levels[-1]["start"]
                level["child_lo"] = np.searchsorted(below, start)
                level["child_hi"] = np.searchsorted(below, end)
            levels.append(level)
        return levels

    def select(self, c2w: np.ndarray, camera: Camera, lod_pixels: float = LOD_PIXELS) -> tuple[np.ndarray, np.ndarray]:
        """Camera-space points (M,3) and radii (M,) that stand for the cloud in this view."""
        if self.size == 0:
            return np.zeros((0, 3)), np.zeros(0)
        c2w = np.asarray(c2w, dtype=np.float64)
        R = c2w[:3, :3]
        off = c2w[:3, 3] @ R  # camera coords = world @ R - off
        f = max(camera.fx, camera.fy)
        # Side planes of the frustum: unit normals pointing out of it, in camera coordinates.
        xl, xr = -camera.cx / camera.fx, (camera.width - camera.cx) / camera.fx
        yt, yb = -camera.cy / camera.fy, (camera.height - camera.cy) / camera.fy
        planes = np.array([[-1.0, 0, xl], [1.0, 0, -xr], [0, -1.0, yt], [0, 1.0, -yb]])
        planes /= np.linalg.norm(planes, axis=1, keepdims=True)
        out_pts, out_rad = [], []
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
            done = nodes[fine]
            out_pts.append(lv["mean"][done] @ R - off)
            out_rad.append(lv["rep_radius"][done])
            rest = keep & ~fine
            nodes, full = nodes[rest], full[rest]
            if li == 0:
                raw = _expand_ranges(lv["start"][nodes], lv["end"][nodes])
            else:
                lo, hi = lv["child_lo"][nodes], lv["child_hi"][nodes]
                full = np.repeat(full, hi - lo)
                nodes = _expand_ranges(lo, hi)
        out_pts.append(self.points[raw] @ R - off)
        out_rad.append(self.radius[raw])
        return np.concatenate(out_pts), np.concatenate(out_rad)

    def view(
        self, c2w: np.ndarray, camera: Camera, lod_pixels: float = LOD_PIXELS, max_splat: float = 16.0
    ) -> np.ndarray:
        """(H, W) nearest z-depth per working pixel (NaN where empty) using the level of detail."""
        pts, rad = self.select(c2w, camera, lod_pixels)
        return rasterise(pts, camera, rad, max_splat)


def _expand_ranges(lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Concatenation of ``arange(lo[i], hi[i])`` for all i, vectorised."""
    count = hi - lo
    total = int(count.sum())
    if total == 0:
        return np.zeros(0, dtype=np.int64)
    return np.repeat(lo - (np.cumsum(count) - count), count) + np.arange(total)
