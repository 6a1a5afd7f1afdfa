"""Z-buffered point splatting and hole filling in torch (CPU or CUDA): the warp preview renderer.

Conventions are the engine's (``parascale_blender.core.camera``): camera-to-world 4x4 poses with
OpenCV axes (x right, y down, z forward), pixel intrinsics ``(fx, fy, cx, cy)`` with the origin at
the top-left corner, so pixel ``(i, j)`` has its centre at ``(i + 0.5, j + 0.5)``.

Geometry is exact: a point ``X`` lands at ``K · R^T (X - C)`` in every frame. Each point covers a
square footprint 1.2x its magnification (source pixel spacing seen from the target camera, at
least 1.2 px, at most ``max_footprint``: by default 64 px, so close-ups leave no gaps) and
competes for the pixels whose centres lie inside it; the nearest depth wins, and among points
of the same surface (depth within ``depth_tolerance``) the one projected nearest to the pixel
centre wins. The pixel's colour is then looked up at sub-pixel precision: its centre is
lifted to 3D at the winner's depth and the source image is sampled bilinearly where that point
projects. Pixels of empty depth become points at infinity (they move with rotation only) and
lose against every finite point.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from parascale_blender.core.camera import Camera

_FAR = 1e30  # depth key added to points at infinity so any finite point wins
_FOOTPRINT_SLACK = 1.2  # footprints 20% wider than the point spacing: no cracks under shear
MAX_FOOTPRINT = 64.0  # largest splat side (px): magnifications up to ~50x leave no gaps


def _go_on() -> None:
    """The default ``check`` of :func:`splat` and :func:`fill_holes`: never stops them."""


@dataclass
class PointCloud:
    """Coloured points from one view. ``w`` = 1 for finite points, 0 for directions (sky)."""

    xyz: torch.Tensor  # (N, 3) world positions, or world directions where w == 0
    w: torch.Tensor  # (N,)
    rgb: torch.Tensor  # (N, 3) float in [0, 1]
    src_depth: torch.Tensor  # (N,) z in the source camera (1 for directions)
    src_focal: float  # sqrt(fx * fy) of the source camera
    src_c2w: torch.Tensor  # (4, 4) the source camera's pose
    src_camera: Camera  # the source camera (describes ``image``)
    image: torch.Tensor  # (1, 3, h, w) float source image, for sub-pixel resampling

    def __len__(self) -> int:
        return int(self.xyz.shape[0])


def unproject_image(
    image: np.ndarray, depth: np.ndarray, c2w: np.ndarray, camera: Camera, sky: bool = True, device: str = "cpu"
) -> PointCloud:
    """Every pixel of ``image`` (H, W, 3 uint8) with its z-depth (H, W) as a world point.

    ``camera`` must describe ``image`` (its width/height). Pixels with non-finite or non-positive
    depth become directions at infinity when ``sky`` is set, and are dropped otherwise.
    """
    h, w = depth.shape
    if (camera.width, camera.height) != (w, h) or image.shape[:2] != (h, w):
        raise ValueError(
            f"image {image.shape[:2]}, depth {depth.shape} and camera {camera.width}x{camera.height} differ"
        )
    pts = camera.unproject(depth, c2w, sky=sky)
    wgt = pts.finite.astype(np.float64)
    rgb = image.reshape(-1, 3)[pts.index].astype(np.float32) / 255.0
    f64 = torch.float64
    return PointCloud(
        xyz=torch.as_tensor(pts.xyz, dtype=f64, device=device),
        w=torch.as_tensor(wgt, dtype=f64, device=device),
        rgb=torch.as_tensor(rgb, device=device),
        src_depth=torch.as_tensor(pts.depth, dtype=f64, device=device),
        src_focal=float(np.sqrt(camera.fx * camera.fy)),
        src_c2w=torch.as_tensor(np.asarray(c2w, dtype=np.float64), dtype=f64, device=device),
        src_camera=camera,
        image=torch.as_tensor(image, device=device).permute(2, 0, 1)[None].float() / 255.0,
    )


def splat(
    cloud: PointCloud,
    c2w: np.ndarray,
    camera: Camera,
    max_footprint: float = MAX_FOOTPRINT,
    depth_tolerance: float = 0.01,
    resample: bool = True,
    check: Callable[[], None] = _go_on,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Render ``cloud`` from ``c2w`` / ``camera``: (rgb (H, W, 3) float, depth key (H, W), inf = empty).

    ``check`` is called between the steps of one frame (a large frame takes seconds); whatever it
    raises (e.g. a cancellation) stops the render.

    The depth key (float32) is the z-depth for finite points and 1e30 for points at infinity.
    With ``resample``, each covered pixel centre is lifted to 3D at its winner's depth and the
    source image is sampled bilinearly where that point projects (sub-pixel exact colours
    instead of the nearest point's); otherwise the winning point's own colour is used.
    """
    dev = cloud.xyz.device
    W, H = camera.width, camera.height
    trash = H * W  # an extra buffer slot that absorbs every rejected write (no boolean indexing)
    T = torch.as_tensor(np.asarray(c2w, dtype=np.float64), device=dev)
    check()
    Xc = (cloud.xyz - cloud.w[:, None] * T[:3, 3]) @ T[:3, :3]
    z64 = Xc[:, 2]
    front = z64 > 1e-9 * torch.clamp(cloud.src_depth, min=1.0)
    zs = torch.where(front, z64, torch.ones_like(z64))
    u = (camera.fx * Xc[:, 0] / zs + camera.cx).float()
    v = (camera.fy * Xc[:, 1] / zs + camera.cy).float()
    check()
    mag = ((np.sqrt(camera.fx * camera.fy) / cloud.src_focal) * cloud.src_depth / zs).float()
    half = 0.5 * torch.clamp(_FOOTPRINT_SLACK * mag, _FOOTPRINT_SLACK, max_footprint)
    u0, v0 = torch.ceil(u - half - 0.5), torch.ceil(v - half - 0.5)
    nu, nv = torch.ceil(u + half - 0.5) - u0, torch.ceil(v + half - 0.5) - v0
    check()
    front &= (u0 + nu > 0) & (u0 < W) & (v0 + nv > 0) & (v0 < H)
    key = (zs + (1.0 - cloud.w) * _FAR).float()
    rgb = torch.zeros(H * W, 3, device=dev)
    if not bool(front.any()):
        return rgb.reshape(H, W, 3), torch.full((H, W), float("inf"), device=dev)
    # One entry per (point, covered pixel), only for points whose footprint meets the image: the
    # work is the covered area, whatever the magnification (no per-offset passes over all points).
    pts = torch.nonzero(front).squeeze(1)
    nu_p, nv_p = nu[pts].long(), nv[pts].long()
    count = nu_p * nv_p
    owner = torch.repeat_interleave(torch.arange(len(pts), device=dev), count)
    k = torch.arange(len(owner), device=dev) - torch.repeat_interleave(torch.cumsum(count, 0) - count, count)
    px = u0[pts][owner] + (k % nu_p[owner]).float()
    py = v0[pts][owner] + torch.div(k, nu_p[owner], rounding_mode="floor").float()
    inside = (px >= 0) & (px < W) & (py >= 0) & (py < H)
    lin = torch.where(inside, (py * W + px).long(), trash)
    dist = (px + 0.5 - u[pts][owner]) ** 2 + (py + 0.5 - v[pts][owner]) ** 2
    pt = pts[owner]
    key = key[pt]
    check()
    zbuf = torch.full((trash + 1,), float("inf"), device=dev).scatter_reduce_(0, lin, key, reduce="amin")
    check()
    dist = torch.where(key <= zbuf[lin] * (1.0 + depth_tolerance), dist, torch.full_like(dist, float("inf")))
    check()
    dbuf = torch.full((trash + 1,), float("inf"), device=dev).scatter_reduce_(0, lin, dist, reduce="amin")
    check()
    big = torch.iinfo(torch.int64).max
    keep = torch.isfinite(dist) & (dist <= dbuf[lin])
    check()
    pt = torch.where(keep, pt, torch.full_like(pt, big))
    check()
    winner = torch.full((trash + 1,), big, dtype=torch.int64, device=dev).scatter_reduce_(0, lin, pt, reduce="amin")
    zbuf, winner = zbuf[:trash], winner[:trash]
    hit = torch.isfinite(zbuf)
    check()
    if resample:
        _resample_source(cloud, rgb, zbuf, T, camera, fallback=winner, check=check)
    else:
        rgb[hit] = cloud.rgb[winner[hit]]
    return rgb.reshape(H, W, 3), zbuf.reshape(H, W)


def _resample_source(
    cloud: PointCloud,
    rgb: torch.Tensor,
    zbuf: torch.Tensor,
    T: torch.Tensor,
    camera: Camera,
    fallback: torch.Tensor,
    check: Callable[[], None] = _go_on,
) -> None:
    """Covered pixels' colours (flat ``rgb``): bilinear samples of the source image where their
    centre, lifted at the z-buffer depth, projects; the winning point's colour (``fallback``
    indices) where that lands outside the source image."""
    lin = torch.nonzero(torch.isfinite(zbuf)).squeeze(1)
    if len(lin) == 0:
        return
    W = camera.width
    far = zbuf[lin] >= _FAR
    z = torch.where(far, torch.ones_like(zbuf[lin]), zbuf[lin]).double()
    x = ((lin % W).double() + 0.5 - camera.cx) / camera.fx * z
    y = ((lin // W).double() + 0.5 - camera.cy) / camera.fy * z
    check()
    d_world = torch.stack([x, y, z], 1) @ T[:3, :3].T
    X = d_world + (~far).double()[:, None] * T[:3, 3]
    check()
    S, sc = cloud.src_c2w, cloud.src_camera
    Xs = (X - (~far).double()[:, None] * S[:3, 3]) @ S[:3, :3]
    zs = Xs[:, 2]
    ok = zs > 0
    u = sc.fx * Xs[:, 0] / zs.clamp(min=1e-12) + sc.cx
    v = sc.fy * Xs[:, 1] / zs.clamp(min=1e-12) + sc.cy
    ok &= (u >= 0) & (u <= sc.width) & (v >= 0) & (v <= sc.height)
    check()
    rgb[lin[~ok]] = cloud.rgb[fallback[lin[~ok]]]
    check()
    grid = torch.stack([2 * u[ok] / sc.width - 1, 2 * v[ok] / sc.height - 1], 1).float()[None, None]
    sampled = F.grid_sample(cloud.image, grid, mode="bilinear", padding_mode="border", align_corners=False)
    rgb[lin[ok]] = sampled[0, :, 0].T


def _local_extreme(x: torch.Tensor, radius: int, sign: float, size: tuple[int, int], cell: int = 4) -> torch.Tensor:
    """Max (sign=1) or min (sign=-1) of ``x`` (H, W) over about a (2r+1)² window.

    Computed on ``cell``-pixel blocks (block extreme, then a separable window of r/cell blocks,
    then back to full size), so the window is r rounded up to whole blocks: cheap and conservative.
    """
    y = F.max_pool2d((sign * x)[None, None], cell, ceil_mode=True)
    r = max(1, -(-radius // cell))
    k = 2 * r + 1
    y = F.max_pool2d(y, (1, k), stride=1, padding=(0, r))
    y = F.max_pool2d(y, (k, 1), stride=1, padding=(r, 0))
    y = y.repeat_interleave(cell, dim=2).repeat_interleave(cell, dim=3)[..., : size[0], : size[1]]
    return sign * y[0, 0]


def _dilate3(m: torch.Tensor) -> torch.Tensor:
    """3x3 binary dilation of a 2D bool mask (separable, by shifted slices)."""
    rows = m.clone()
    rows[1:] |= m[:-1]
    rows[:-1] |= m[1:]
    out = rows.clone()
    out[:, 1:] |= rows[:, :-1]
    out[:, :-1] |= rows[:, 1:]
    return out


def fill_holes(
    rgb: torch.Tensor, zbuf: torch.Tensor, radius: int = 16, max_steps: int = 32, check: Callable[[], None] = _go_on
) -> torch.Tensor:
    """Fill empty pixels (``zbuf`` inf) from the background side; covered pixels are unchanged;
    ``check`` is called between steps (as in :func:`splat`).

    Disocclusions reveal what lies behind, so holes grow inwards one pixel ring per step from
    neighbours on the far side: a neighbour counts when its log-depth is above the middle of the
    local (``radius``) depth range. A step that would fill nothing falls back to the farthest
    neighbour. What is left after ``max_steps`` (e.g. wide areas outside the source view) is
    filled by push-pull.
    """
    valid = torch.isfinite(zbuf)
    if bool(valid.all()) or not bool(valid.any()):
        return rgb
    H, W = zbuf.shape
    dev = rgb.device
    ld = torch.where(valid, torch.log(zbuf.clamp(min=1e-12)), torch.full_like(zbuf, -torch.inf)).float()
    hi = _local_extreme(ld, radius, 1.0, (H, W))
    lo = _local_extreme(torch.where(valid, ld, torch.full_like(ld, torch.inf)), radius, -1.0, (H, W))
    thresh = torch.where(torch.isfinite(hi) & torch.isfinite(lo), 0.5 * (hi + lo), torch.full_like(ld, -torch.inf))
    Wp = W + 2
    ldp = torch.full((H + 2, Wp), -torch.inf, device=dev)
    ldp[1:-1, 1:-1] = ld
    ldp = ldp.reshape(-1)
    colp = torch.zeros((H + 2) * Wp, 3, device=dev)
    colp.view(H + 2, Wp, 3)[1:-1, 1:-1] = rgb
    thp = torch.full(((H + 2) * Wp,), -torch.inf, device=dev)
    thp.view(H + 2, Wp)[1:-1, 1:-1] = thresh
    rows, cols = torch.nonzero(~valid, as_tuple=True)
    holes = (rows + 1) * Wp + cols + 1
    offsets = torch.tensor([-Wp - 1, -Wp, -Wp + 1, -1, 1, Wp - 1, Wp, Wp + 1], device=dev)
    for _ in range(max_steps):
        check()
        near = _dilate3(torch.isfinite(ldp).view(H + 2, Wp)).view(-1)
        front = holes[near[holes]]  # only the ring next to known pixels can be filled this step
        if len(front) == 0:
            break
        nbr = front[:, None] + offsets[None]
        nd = ldp[nbr]
        ok = torch.isfinite(nd)
        good = ok & (nd >= thp[front][:, None])
        if not bool(good.any()):
            good = ok & (nd >= nd.max(dim=1, keepdim=True).values)
        use = good.any(dim=1)
        w = good.float()
        n = w.sum(dim=1).clamp(min=1.0)
        colour = (colp[nbr] * w[..., None]).sum(dim=1) / n[:, None]
        depth = torch.where(good, nd, torch.zeros_like(nd)).sum(dim=1) / n
        colp[front[use]] = colour[use]
        ldp[front[use]] = depth[use]
        holes = holes[~torch.isfinite(ldp[holes])]
        if len(holes) == 0:
            break
    out = colp.view(H + 2, Wp, 3)[1:-1, 1:-1]
    if len(holes):
        check()
        filled = torch.isfinite(ldp.view(H + 2, Wp)[1:-1, 1:-1])
        out = _push_pull(out, filled)
    return torch.where(valid[..., None], rgb, out)


def _push_pull(rgb: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Fill ``~valid`` pixels with the pyramid average of the valid ones (valid pixels kept)."""
    wt = valid.float()[None, None]
    c = (rgb * valid[..., None]).permute(2, 0, 1)[None]
    pyramid = [(c, wt)]
    while min(c.shape[-2:]) > 1:
        c, wt = F.avg_pool2d(c, 2, ceil_mode=True), F.avg_pool2d(wt, 2, ceil_mode=True)
        pyramid.append((c, wt))
    filled = c / wt.clamp(min=1e-12)
    for c, wt in reversed(pyramid[:-1]):
        up = F.interpolate(filled, size=c.shape[-2:], mode="bilinear", align_corners=False)
        filled = torch.where(wt > 0, c / wt.clamp(min=1e-12), up)
    return torch.where(valid[..., None], rgb, filled[0].permute(1, 2, 0))


def to_uint8(rgb: torch.Tensor) -> np.ndarray:
    """(H, W, 3) float in [0, 1] → contiguous uint8 numpy array."""
    return (rgb.clamp(0, 1) * 255.0 + 0.5).to(torch.uint8).cpu().numpy()
