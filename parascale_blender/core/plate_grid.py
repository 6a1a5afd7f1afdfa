"""A plate's cloud as the depth grid it was unprojected from, drawn by grid footprints.

A cloud made from a plate and its depth map (*Points from Plate + Depth*, a plate cloud in the CLI)
holds one point per pixel of the camera it was unprojected with: the point of pixel (i, j) lies on
that pixel's centre ray. Its samples tile the surfaces the plate saw, so seen from another pose each
sample covers the box spanned by half the way to its grid neighbours (the extent of the surface
between the samples, as a mesh through the grid would have it), and pixel centres are sampled as a
mesh rasteriser samples them: a pole a few plate pixels wide covers its width, not a pixel per
sample; a surface seen at a grazing angle stretches without holes. Neighbours whose depths differ by
more than ``DISCONTINUITY`` are not joined: a depth edge is not a surface.

Conventions: OpenCV camera-to-world poses, :class:`~.camera.Camera` pixel centres at +0.5, z-depth.
"""

from __future__ import annotations

import numpy as np

from .camera import Camera
from .zbuffer import splat_extents, to_camera

ON_CENTRE = 0.01  # px: a point this close to a pixel centre of the plate's camera is that pixel's sample
GRID_SHARE = 0.9  # a cloud is a plate grid when at least this share of its points are pixel samples
DISCONTINUITY = 0.1  # grid neighbours whose depths differ by more than 10% are not the same surface
EDGE_YIELD = 1e-6  # across a depth edge one sample yields a pixel centre exactly on the edge (see _edges)
MAX_SPLAT = 16.0  # px: the largest half-width a sample covers (a surface seen edge-on)
LOD_SAMPLE = 0.5  # working px between the samples a view draws, at most (see PlateGrid.view)


class PlateGrid:
    """The grid samples of a cloud: world points ``xyz`` (H, W, 3) (NaN where the plate had none) and
    their depth in the plate ``depth`` (H, W). Make one with :meth:`from_points`."""

    def __init__(self, xyz: np.ndarray, depth: np.ndarray, camera: Camera):
        self.xyz, self.depth, self.camera = xyz, depth, camera
        valid = np.isfinite(depth)
        with np.errstate(invalid="ignore", divide="ignore"):
            ratio = lambda a, b: np.maximum(a, b) / np.minimum(a, b)  # noqa: E731
            self.join_x = valid[:, :-1] & valid[:, 1:] & (ratio(depth[:, :-1], depth[:, 1:]) < 1 + DISCONTINUITY)
            self.join_y = valid[:-1] & valid[1:] & (ratio(depth[:-1], depth[1:]) < 1 + DISCONTINUITY)
        self.valid = valid
        coins = np.random.default_rng(0)  # fixed: the same grid draws the same every time
        self.coin_x, self.coin_y = coins.random(self.join_x.shape) < 0.5, coins.random(self.join_y.shape) < 0.5
        self.points = np.ascontiguousarray(xyz[valid])
        self._levels: dict[int, PlateGrid] = {}  # every step-th sample (see :meth:`level`)

    @classmethod
    def from_points(cls, xyz: np.ndarray, c2w: np.ndarray, camera: Camera) -> tuple[PlateGrid | None, np.ndarray]:
        """(the grid, or None when under ``GRID_SHARE`` of the points are pixel samples of ``camera`` at
        ``c2w``; which points are samples (N,) bool)."""
        xyz = np.asarray(xyz, dtype=np.float64)
        local = to_camera(xyz, c2w)
        z = local[:, 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            u = camera.fx * local[:, 0] / z + camera.cx
            v = camera.fy * local[:, 1] / z + camera.cy
        iu, iv = np.floor(u), np.floor(v)
        on = (
            (z > 0)
            & (np.abs(u - iu - 0.5) < ON_CENTRE)
            & (np.abs(v - iv - 0.5) < ON_CENTRE)
            & (iu >= 0)
            & (iu < camera.width)
            & (iv >= 0)
            & (iv < camera.height)
        )
        if not on.any() or on.mean() < GRID_SHARE:
            return None, on
        H, W = camera.height, camera.width
        grid = np.full((H, W, 3), np.nan)
        depth = np.full((H, W), np.nan)
        r, c = iv[on].astype(np.int64), iu[on].astype(np.int64)
        grid[r, c] = xyz[on]
        depth[r, c] = z[on]
        return cls(grid, depth, camera), on

    def level(self, step: int) -> PlateGrid:
        """Every ``step``-th sample per axis (a power of two), as the grid of a camera with ``step``
        times larger pixels (the level of detail: cached)."""
        if step <= 1:
            return self
        levels = self._levels
        if step not in levels:
            c = self.camera
            cam = Camera(c.fx / step, c.fy / step, 0.5 - (0.5 - c.cx) / step, 0.5 - (0.5 - c.cy) / step,
                         len(range(0, c.width, step)), len(range(0, c.height, step)))  # fmt: skip
            levels[step] = PlateGrid(self.xyz[::step, ::step], self.depth[::step, ::step], cam)
        return levels[step]

    def view(self, c2w: np.ndarray, camera: Camera, front_tolerance: float | None = None) -> np.ndarray:
        """(H, W) z-depth of the grid's surfaces at ``camera`` from ``c2w`` (NaN where none), from the
        level whose samples are ``LOD_SAMPLE`` working pixels apart or less at the plate's own depth
        (a 1080p plate for a 160 px working view: every 4th sample)."""
        step = 1
        while 2 * step * camera.fx / self.camera.fx <= LOD_SAMPLE:
            step *= 2
        return self.level(step)._view(c2w, camera, front_tolerance)

    def _view(self, c2w: np.ndarray, camera: Camera, front_tolerance: float | None = None) -> np.ndarray:
        H, W = self.depth.shape
        q = np.full((H, W, 3), np.nan)
        q[self.valid] = to_camera(self.points, c2w)
        z = q[..., 2]
        with np.errstate(invalid="ignore", divide="ignore"):
            u = camera.fx * q[..., 0] / z + camera.cx
            v = camera.fy * q[..., 1] / z + camera.cy
            one = self.depth / self.camera.fx * camera.fx / z  # a plate pixel at the sample's depth
        u0, u1 = _edges(u, self.join_x, 1, 0.5 * one, self.depth, self.coin_x)
        v0, v1 = _edges(v, self.join_y, 0, 0.5 * one * camera.fy / camera.fx, self.depth, self.coin_y)
        ok = self.valid & (z > 0) & np.isfinite(u0) & np.isfinite(u1) & np.isfinite(v0) & np.isfinite(v1)
        # a sample seen edge-on spans at most MAX_SPLAT px each way
        u, v = u[ok], v[ok]
        lo_u, hi_u = np.maximum(u0[ok], u - MAX_SPLAT), np.minimum(u1[ok], u + MAX_SPLAT)
        lo_v, hi_v = np.maximum(v0[ok], v - MAX_SPLAT), np.minimum(v1[ok], v + MAX_SPLAT)
        depth = splat_extents(lo_u, hi_u, lo_v, hi_v, z[ok], camera, front_tolerance)
        return depth.reshape(camera.height, camera.width)


def _edges(
    coord: np.ndarray, join: np.ndarray, axis: int, half: np.ndarray, depth: np.ndarray, near_yields: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) extent of each sample along one image axis from its grid neighbours along ``axis``:
    the midpoint to each joined neighbour (the same number for both samples: they tile exactly); on a
    side without one, the mirror of the joined side (``half`` (H, W) where neither is joined). Across a
    depth edge one sample of the pair gives way by EDGE_YIELD (relative) and the other grows by it, the
    near one where ``near_yields`` (a fixed coin per pair: any regular pattern aliases with the
    working size): a pixel centre exactly half way between them (a working
    size that divides the plate's) is neither covered twice (the front would win every tie and widen
    near surfaces) nor always given to the far side."""
    a = coord[:, :-1] if axis == 1 else coord[:-1]
    b = coord[:, 1:] if axis == 1 else coord[1:]
    mid = np.where(join, 0.5 * (a + b), np.nan)
    za = depth[:, :-1] if axis == 1 else depth[:-1]
    zb = depth[:, 1:] if axis == 1 else depth[1:]
    with np.errstate(invalid="ignore"):
        nearer = za < zb
    yields = nearer == near_yields  # the first sample of the pair gives way (else the second does)
    first = [(0, 0), (1, 0)] if axis == 1 else [(1, 0), (0, 0)]
    last = [(0, 0), (0, 1)] if axis == 1 else [(0, 1), (0, 0)]
    before = np.pad(mid, first, constant_values=np.nan)  # the midpoint towards the previous sample
    after = np.pad(mid, last, constant_values=np.nan)  # towards the next
    # the factor on a side without a joined neighbour: 1 - EDGE_YIELD where this sample gives way
    k_before = 1.0 + EDGE_YIELD * np.where(np.pad(~yields, first), -1.0, 1.0)
    k_after = 1.0 + EDGE_YIELD * np.where(np.pad(yields, last), -1.0, 1.0)
    with np.errstate(invalid="ignore"):
        lone = np.isnan(before) & np.isnan(after)
        before_step = np.where(np.isnan(before), np.where(lone, -half, coord - after), before - coord)
        after_step = np.where(np.isnan(after), np.where(lone, half, coord - before), after - coord)
        lo = np.where(np.isnan(before), coord + before_step * k_before, before)
        hi = np.where(np.isnan(after), coord + after_step * k_after, after)
    return np.minimum(lo, hi), np.maximum(lo, hi)
