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
    """Nearest z per pixel centre over triangles (M,3) indexing camera-space vertices (N,3).

    Culling is per vertex (an outcode per frustum plane; a triangle is out when all three vertices
    are outside the same plane), so its cost follows the vertices; the pixel test and the depth are
    per-triangle plane equations in screen space (edge functions and 1/z), evaluated per candidate."""
    W, H = camera.width, camera.height
    if len(triangles) == 0 or len(cam_vertices) == 0:
        return np.full((H, W), np.nan)
    v = np.asarray(cam_vertices, dtype=np.float64)
    finite = np.isfinite(v.sum(1))
    all_finite = bool(finite.all())
    extent = max(float(np.abs(v if all_finite else v[finite]).max(initial=0.0)), 1e-300)
    vz = v[:, 2]
    front = vz[finite & (vz > 0)]
    near = min(NEAR * extent, 0.5 * float(front.min())) if front.size else NEAR * extent
    near = max(near, 1e-12 * extent)  # float64 keeps 1/z well-conditioned down to here
    vx, vy = v[:, 0], v[:, 1]
    xl, xr = -camera.cx / camera.fx, (W - camera.cx) / camera.fx
    yt, yb = -camera.cy / camera.fy, (H - camera.cy) / camera.fy
    with np.errstate(invalid="ignore"):
        code = (
            (vz < near).astype(np.uint8)
            | ((vx < xl * vz).astype(np.uint8) << 1)
            | ((vx > xr * vz).astype(np.uint8) << 2)
            | ((vy < yt * vz).astype(np.uint8) << 3)
            | ((vy > yb * vz).astype(np.uint8) << 4)
        )
    tc = code[triangles]
    out = (tc[:, 0] & tc[:, 1] & tc[:, 2]) != 0
    if not all_finite:  # a triangle with a non-finite vertex is dropped
        out |= (~finite)[triangles].any(1)
    keep = triangles[~out]
    if len(keep) == 0:
        return np.full((H, W), np.nan)
    P = v[keep]  # (K, 3, 3)
    if (tc[~out] & 1).any():  # some vertex behind the near plane: clip those triangles
        P = clip_near(P, near)
    return _raster(P, camera)


def _raster(P: np.ndarray, camera: Camera) -> np.ndarray:
    """Z-buffer of camera-space triangles (K,3,3) in front of the near plane, at the pixel centres."""
    W, H = camera.width, camera.height
    w = 1.0 / P[:, :, 2]  # (K, 3) inverse depth, linear in screen space
    u = P[:, :, 0] * w * camera.fx + camera.cx
    vv = P[:, :, 1] * w * camera.fy + camera.cy
    # Pixel-centre bounding box, clipped to the image in float (no int overflow).
    c0 = np.clip(np.ceil(u.min(1) - 0.5), 0, W)
    c1 = np.clip(np.floor(u.max(1) - 0.5), -1, W - 1)
    r0 = np.clip(np.ceil(vv.min(1) - 0.5), 0, H)
    r1 = np.clip(np.floor(vv.max(1) - 0.5), -1, H - 1)
    ncol, nrow = c1 - c0 + 1, r1 - r0 + 1
    u0, u1, u2 = u[:, 0], u[:, 1], u[:, 2]
    v0, v1, v2 = vv[:, 0], vv[:, 1], vv[:, 2]
    area = (u1 - u0) * (v2 - v0) - (u2 - u0) * (v1 - v0)
    ok = (ncol > 0) & (nrow > 0) & (np.abs(area) > 1e-12)
    if not ok.any():
        return np.full((H, W), np.nan)
    if not ok.all():
        u0, u1, u2, v0, v1, v2, w, area = (a[ok] for a in (u0, u1, u2, v0, v1, v2, w, area))
        c0, r0, ncol, nrow = c0[ok], r0[ok], ncol[ok], nrow[ok]
    # Barycentric weights as planes in (px, py): l_i = A_i·px + B_i·py + C_i (edge function / area),
    # and the inverse depth w = Σ l_i·w_i likewise; one (9, K) table gathered per candidate.
    inv_a = 1.0 / area
    A0, B0 = (v1 - v2) * inv_a, (u2 - u1) * inv_a
    C0 = (u1 * v2 - u2 * v1) * inv_a
    A1, B1 = (v2 - v0) * inv_a, (u0 - u2) * inv_a
    C1 = (u2 * v0 - u0 * v2) * inv_a
    w0, w1, w2 = w[:, 0], w[:, 1], w[:, 2]
    Aw = A0 * (w0 - w2) + A1 * (w1 - w2)
    Bw = B0 * (w0 - w2) + B1 * (w1 - w2)
    Cw = C0 * (w0 - w2) + C1 * (w1 - w2) + w2
    c0i, r0i = c0.astype(np.int64), r0.astype(np.int64)
    ncol, nrow = ncol.astype(np.int64), nrow.astype(np.int64)
    count = ncol * nrow
    total = int(count.sum())
    if total > MAX_CANDIDATES:
        raise MemoryError(f"triangle rasterisation would test {total} pixel candidates; lower the working size")
    table = np.stack([A0, B0, C0, A1, B1, C1, Aw, Bw, Cw])  # (9, K): rows stay contiguous when gathered
    if total == len(count):  # every triangle covers at most one pixel centre's box: no expansion
        owner = np.arange(len(count))
        col, row = c0i, r0i
    else:
        owner = np.repeat(np.arange(len(count)), count)
        k = np.arange(total) - np.repeat(np.cumsum(count) - count, count)
        nc = ncol[owner]
        col = c0i[owner] + k % nc
        row = r0i[owner] + k // nc
    t = np.take(table[:6], owner, axis=1)  # the edge planes for every candidate ...
    px, py = col + 0.5, row + 0.5
    l0 = t[0] * px + t[1] * py + t[2]
    l1 = t[3] * px + t[4] * py + t[5]
    eps = -1e-9
    inside = (l0 >= eps) & (l1 >= eps) & (1.0 - l0 - l1 >= eps)
    sel = np.flatnonzero(inside)
    t = np.take(table[6:], owner[sel], axis=1)  # ... the depth plane for the covered ones
    inv = t[0] * px[sel] + t[1] * py[sel] + t[2]
    buf = np.zeros(H * W)  # the largest inverse depth (the nearest surface) per pixel; 0: none
    np.maximum.at(buf, row[sel] * W + col[sel], inv)
    with np.errstate(divide="ignore"):
        out = np.where(buf > 0, 1.0 / buf, np.nan)
    return out.reshape(H, W)
