"""Exact z-buffer of triangle meshes at the working resolution, vectorised with numpy.

Conventions as in :mod:`.zbuffer`: camera-space vertices (OpenCV, +z forward), the working
:class:`~.camera.Camera`, (H, W) z-depth with NaN where no triangle covers the pixel centre.
Triangles are clipped against the near plane ``z = near`` (so a floor that passes under the
camera is kept), culled against the side planes, and sampled at pixel centres; depth is
interpolated perspective-correctly (1/z is linear in screen space). Pixel centres on a shared
edge may be written by both triangles, which is harmless under the per-pixel minimum.
"""

from __future__ import annotations

import numpy as np

from .camera import Camera

NEAR = 1e-6  # the near plane: at most NEAR * the largest vertex distance, and at most half the
# nearest vertex in front of the camera (a small subject close to the camera in a huge scene stays)
MAX_CANDIDATES = 50_000_000  # refuse absurd bounding-box totals instead of exhausting memory


def _rotate_rows(P: np.ndarray, first: np.ndarray) -> np.ndarray:
    """Cyclically rotate each triangle's vertices (keeps winding) so vertex ``first`` comes first."""
    idx = (first[:, None] + np.arange(3)) % 3
    return np.take_along_axis(P, idx[:, :, None], axis=1)


def clip_near(P: np.ndarray, near: float) -> np.ndarray:
    """Triangles (M,3,3) in camera space clipped to z >= near; returns (K,3,3)."""
    behind = P[:, :, 2] < near
    nb = behind.sum(1)
    keep = [P[nb == 0]]
    one = P[nb == 1]
    if len(one):  # one vertex behind: a quad remains, split into two triangles
        one = _rotate_rows(one, np.argmax(behind[nb == 1], axis=1))
        A, B, C = one[:, 0], one[:, 1], one[:, 2]
        AB = A + (B - A) * ((near - A[:, 2]) / (B[:, 2] - A[:, 2]))[:, None]
        AC = A + (C - A) * ((near - A[:, 2]) / (C[:, 2] - A[:, 2]))[:, None]
        keep += [np.stack([AB, B, C], 1), np.stack([AB, C, AC], 1)]
    two = P[nb == 2]
    if len(two):  # two behind: the front corner's triangle remains
        two = _rotate_rows(two, np.argmin(behind[nb == 2], axis=1))
        A, B, C = two[:, 0], two[:, 1], two[:, 2]
        AB = A + (B - A) * ((near - A[:, 2]) / (B[:, 2] - A[:, 2]))[:, None]
        AC = A + (C - A) * ((near - A[:, 2]) / (C[:, 2] - A[:, 2]))[:, None]
        keep.append(np.stack([A, AB, AC], 1))
    return np.concatenate(keep)


def rasterise_triangles(cam_vertices: np.ndarray, triangles: np.ndarray, camera: Camera) -> np.ndarray:
    """Nearest z per pixel centre over triangles (M,3) indexing camera-space vertices (N,3)."""
    W, H = camera.width, camera.height
    buf = np.full(H * W, np.inf)
    if len(triangles) == 0 or len(cam_vertices) == 0:
        return np.full((H, W), np.nan)
    v = np.asarray(cam_vertices, dtype=np.float64)
    extent = max(float(np.abs(v).max()), 1e-300)
    front = v[:, 2][v[:, 2] > 0]
    near = min(NEAR * extent, 0.5 * float(front.min())) if front.size else NEAR * extent
    near = max(near, 1e-12 * extent)  # float64 keeps 1/z well-conditioned down to here
    P = v[triangles]  # (M, 3, 3)
    z = P[:, :, 2]
    x, y = P[:, :, 0], P[:, :, 1]
    xl, xr = -camera.cx / camera.fx, (W - camera.cx) / camera.fx
    yt, yb = -camera.cy / camera.fy, (H - camera.cy) / camera.fy
    out = (
        (z < near).all(1)
        | (x < xl * z).all(1)
        | (x > xr * z).all(1)
        | (y < yt * z).all(1)
        | (y > yb * z).all(1)
        | ~np.isfinite(P).all((1, 2))
    )
    P = clip_near(P[~out], near)
    if len(P) == 0:
        return np.full((H, W), np.nan)
    w = 1.0 / P[:, :, 2]  # (K, 3) inverse depth, linear in screen space
    u = P[:, :, 0] * w * camera.fx + camera.cx
    vv = P[:, :, 1] * w * camera.fy + camera.cy
    # Pixel-centre bounding box, clipped to the image in float (no int overflow).
    c0 = np.clip(np.ceil(u.min(1) - 0.5), 0, W)
    c1 = np.clip(np.floor(u.max(1) - 0.5), -1, W - 1)
    r0 = np.clip(np.ceil(vv.min(1) - 0.5), 0, H)
    r1 = np.clip(np.floor(vv.max(1) - 0.5), -1, H - 1)
    ncol, nrow = c1 - c0 + 1, r1 - r0 + 1
    area = (u[:, 1] - u[:, 0]) * (vv[:, 2] - vv[:, 0]) - (u[:, 2] - u[:, 0]) * (vv[:, 1] - vv[:, 0])
    ok = (ncol > 0) & (nrow > 0) & (np.abs(area) > 1e-12)
    if not ok.any():
        return np.full((H, W), np.nan)
    u, vv, w, area = u[ok], vv[ok], w[ok], area[ok]
    c0, r0 = c0[ok].astype(np.int64), r0[ok].astype(np.int64)
    ncol, nrow = ncol[ok].astype(np.int64), nrow[ok].astype(np.int64)
    count = ncol * nrow
    total = int(count.sum())
    if total > MAX_CANDIDATES:
        raise MemoryError(f"triangle rasterisation would test {total} pixel candidates; lower the working size")
    owner = np.repeat(np.arange(len(count)), count)
    k = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
    nc = ncol[owner]
    col = c0[owner] + k % nc
    row = r0[owner] + k // nc
    px, py = col + 0.5, row + 0.5
    uo, vo = u[owner], vv[owner]
    # Barycentric weights of the pixel centre (edge functions / signed area).
    l0 = ((uo[:, 1] - px) * (vo[:, 2] - py) - (uo[:, 2] - px) * (vo[:, 1] - py)) / area[owner]
    l1 = ((uo[:, 2] - px) * (vo[:, 0] - py) - (uo[:, 0] - px) * (vo[:, 2] - py)) / area[owner]
    l2 = 1.0 - l0 - l1
    eps = -1e-9
    inside = (l0 >= eps) & (l1 >= eps) & (l2 >= eps)
    wo = w[owner[inside]]
    inv = l0[inside] * wo[:, 0] + l1[inside] * wo[:, 1] + l2[inside] * wo[:, 2]
    np.minimum.at(buf, row[inside] * W + col[inside], 1.0 / inv)
    buf[np.isinf(buf)] = np.nan
    return buf.reshape(H, W)
