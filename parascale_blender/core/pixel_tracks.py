"""Pixel trajectories: where the pixels of frame 0 go in every frame, from the target depth and the
(rescaled) camera, with visibility (the input of trajectory-conditioned video models).

Layout: float32 ``(F, N, 3)``: for frame ``f`` and query ``n``, ``x``, ``y`` (pixels of the
trajectory's image, continuous coordinates: pixel ``(i, j)`` covers ``[i, i + 1) x [j, j + 1)``,
its centre is ``(i + 0.5, j + 0.5)``), then visibility (1: seen, 0: occluded, behind the camera or
outside the image). Frame 0 holds the query points themselves. Queries are the pixel centres of a
grid with ``step`` pixels (row-major: N = rows x columns; ``step=1``: every pixel) or ``sparse``
random pixels that have depth. Queries without depth in frame 0 (sky) are NaN with visibility 0.

Each query is lifted to a world point by frame 0's depth (z along the optical axis), projected
into every frame's camera; it is visible where it is in front of the camera, inside the image and
not farther than that frame's depth (relative ``tolerance``) at one of the four pixel centres
around it (so a surface seen at a grazing angle does not hide itself; within a pixel of an
occluder's silhouette either answer can come).
"""

from __future__ import annotations

import numpy as np

from .camera import METRES_PER_UNIT, Trajectory
from .depth import DepthSource


def grid_queries(width: int, height: int, step: int) -> tuple[np.ndarray, tuple[int, int]]:
    """(N, 2) pixel centres every ``step`` pixels (row-major) and the grid's (rows, columns)."""
    if step < 1:
        raise ValueError(f"track grid step must be at least 1 pixel, got {step}")
    xs = np.arange(0, width, step) + 0.5
    ys = np.arange(0, height, step) + 0.5
    x, y = np.meshgrid(xs, ys)
    return np.column_stack([x.ravel(), y.ravel()]), (len(ys), len(xs))


def _depth_at(depth: np.ndarray, xy: np.ndarray) -> np.ndarray:
    """The depth map's value at the pixel containing each point (NaN outside)."""
    h, w = depth.shape
    i = np.floor(xy[:, 0]).astype(np.int64)
    j = np.floor(xy[:, 1]).astype(np.int64)
    inside = (i >= 0) & (i < w) & (j >= 0) & (j < h)
    out = np.full(len(xy), np.nan)
    out[inside] = depth[j[inside], i[inside]]
    return out


def pixel_tracks(
    traj: Trajectory,
    source: DepthSource,
    step: int = 8,
    sparse: int | None = None,
    seed: int = 0,
    tolerance: float = 0.02,
) -> np.ndarray:
    """``(F, N, 3)`` float32 tracks (see the module docstring) of ``traj`` over ``source``'s geometry."""
    W, H = int(traj.width), int(traj.height)
    views = [source.view(traj.c2w[f], traj.camera(f), f).depth for f in range(len(traj))]
    d0 = views[0]
    if d0.shape != (H, W):
        raise ValueError(f"depth of frame 0 is {d0.shape[1]}x{d0.shape[0]}, the camera {W}x{H}")
    if sparse is not None:
        if sparse < 1:
            raise ValueError(f"number of sparse tracks must be at least 1, got {sparse}")
        jj, ii = np.nonzero(np.isfinite(d0) & (d0 > 0))
        if len(ii) == 0:
            raise ValueError("frame 0 sees no depth: no pixel to track")
        pick = np.random.default_rng(seed).choice(len(ii), size=min(sparse, len(ii)), replace=False)
        queries = np.column_stack([ii[pick] + 0.5, jj[pick] + 0.5])
    else:
        queries = grid_queries(W, H, step)[0]
    z0 = _depth_at(d0, queries)
    has = np.isfinite(z0) & (z0 > 0)
    fx, fy, cx, cy = traj.intrinsics[0]
    cam0 = np.column_stack([(queries[:, 0] - cx) / fx, (queries[:, 1] - cy) / fy, np.ones(len(queries))])
    world = (cam0 * z0[:, None]) @ traj.c2w[0, :3, :3].T + traj.c2w[0, :3, 3]
    out = np.full((len(traj), len(queries), 3), np.nan)
    out[..., 2] = 0.0
    for f in range(len(traj)):
        Xc = (world - traj.c2w[f, :3, 3]) @ traj.c2w[f, :3, :3]
        fx, fy, cx, cy = traj.intrinsics[f]
        with np.errstate(divide="ignore", invalid="ignore"):
            xy = np.column_stack([fx * Xc[:, 0] / Xc[:, 2] + cx, fy * Xc[:, 1] / Xc[:, 2] + cy])
        front = has & (Xc[:, 2] > 0)
        inside = front & (xy[:, 0] >= 0) & (xy[:, 0] < W) & (xy[:, 1] >= 0) & (xy[:, 1] < H)
        at = np.where(inside[:, None], xy, -1.0)
        occluded = np.ones(len(xy), dtype=bool)
        for dx in (-0.5, 0.5):  # the four pixel centres around the point: a surface seen at a grazing
            for dy in (-0.5, 0.5):  # angle spans its depth there, an occluder is nearer at all four
                zf = _depth_at(views[f], np.clip(at + [dx, dy], 0.0, [W - 0.5, H - 0.5]))  # edges: clamped
                occluded &= zf < Xc[:, 2] * (1.0 - tolerance)  # NaN (nothing drawn): not occluding
        seen = inside & ~occluded
        out[f, front, :2] = xy[front]
        out[f, :, 2] = seen
    out[0, has, :2] = queries[has]
    return out.astype(np.float32)


def tracks_metadata(traj: Trajectory, shape: tuple, grid: tuple[int, int] | None, step: int | None) -> dict:
    """What a tracks file states about itself (safetensors ``__metadata__``)."""
    meta = {
        "layout": "frames,tracks,(x,y,visible)",
        "pixels": "continuous image coordinates, pixel centres at +0.5, origin top-left",
        "frames": [int(f) for f in traj.frames],
        "size": [int(traj.width), int(traj.height)],
        "shape": list(shape),
    }
    if grid is not None:
        meta.update(grid=list(grid), step=step)
    if METRES_PER_UNIT in traj.metadata:
        meta[METRES_PER_UNIT] = float(traj.metadata[METRES_PER_UNIT])
    return meta
