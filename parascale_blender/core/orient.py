"""Orient a camera solve: which way is up, as Blender's *Floor* / *Set Orientation* tools decide it.

A structure-from-motion solve has an arbitrary world (Blender's puts the first camera at the
origin looking down -Z: "pointing at the floor"). :func:`level` returns the rigid world transform
``W`` (4x4, ``c2w' = W @ c2w``, ``p' = W p``) that makes the world Z up (Blender's convention):

* up from the **floor**: the largest plane of the solve's points (RANSAC) whose normal lies within
  ``FLOOR_MAX_TILT`` of the cameras' up, which lies below the cameras and has (almost) no points
  under it (not a slant through the floor and the tops of boxes); the floor becomes z = 0;
* else up from the **cameras**: the direction most orthogonal to every camera's right axis (they are
  horizontal in footage shot level), regularised towards the mean camera up (OpenCV -y) where the
  right axes leave it open (no pan); the first camera stays at the origin.

The first camera then looks along +Y (yaw only). Poses are c2w with OpenCV camera axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

FLOOR_MAX_TILT = 25.0  # degrees between a floor candidate's normal and the cameras' up
FLOOR_MIN_POINTS = 8
FLOOR_TOLERANCE = 0.015  # inlier distance, as a fraction of the points' median distance to the cameras
FLOOR_BELOW = 0.03  # at most this fraction of the points may lie under a floor (outliers)
METHODS = ("AUTO", "FLOOR", "CAMERAS")
ROLL_PRIOR = 0.01  # weight of the mean camera up against "the right axes are horizontal"


@dataclass
class Orientation:
    """``W`` (4x4 rigid), the up it used (solve world) and from what: ``"floor"`` or ``"cameras"``."""

    W: np.ndarray
    up: np.ndarray
    source: str
    floor_points: int = 0


def up_from_cameras(c2w: np.ndarray) -> np.ndarray:
    """Unit world up for level footage (right axes horizontal), see the module docstring."""
    c2w = np.asarray(c2w, dtype=np.float64)
    right = c2w[:, :3, 0]
    # Level footage keeps every right axis horizontal: the up is the direction most orthogonal to
    # them, pulled towards the mean camera up where the right axes do not span the ground (no pan).
    S = right.T @ right / len(right)
    up = np.linalg.solve(S + ROLL_PRIOR * np.eye(3), -c2w[:, :3, 1].mean(axis=0))
    n = np.linalg.norm(up)
    if not n > 1e-9:
        raise ValueError("orient: the cameras' up directions cancel out; orient the solve by hand")
    return up / n


def floor_plane(points: np.ndarray, up: np.ndarray, centres: np.ndarray, seed: int = 0):
    """(unit normal along ``up``, offset d with n·p = d, inlier count) of the best floor, or None."""
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 3)
    pts = pts[np.isfinite(pts).all(axis=1)]
    if len(pts) < FLOOR_MIN_POINTS:
        return None
    tol = FLOOR_TOLERANCE * float(np.median(np.linalg.norm(pts - centres.mean(axis=0), axis=1)))
    rng = np.random.default_rng(seed)
    tri = rng.integers(0, len(pts), size=(512, 3))
    n = np.cross(pts[tri[:, 1]] - pts[tri[:, 0]], pts[tri[:, 2]] - pts[tri[:, 0]])
    norm = np.linalg.norm(n, axis=1)
    ok = norm > 1e-12
    n = n[ok] / norm[ok, None]
    n *= np.sign(n @ up)[:, None]
    d = np.einsum("ij,ij->i", n, pts[tri[ok, 0]])
    cams = centres @ n.T  # (cameras, candidates): the cameras stand above a floor
    height = pts @ n.T - d  # (points, candidates)
    below = (height < -3 * tol).sum(axis=0)  # a floor is the lowest plane: (almost) nothing under it
    good = (n @ up >= np.cos(np.radians(FLOOR_MAX_TILT))) & (np.min(cams, axis=0) > d + tol)
    good &= below <= FLOOR_BELOW * len(pts)
    if not good.any():
        return None
    count = (np.abs(height[:, good]) < tol).sum(axis=0)
    n, d = n[good], d[good]
    best = int(np.argmax(count))
    inl = pts[np.abs(pts @ n[best] - d[best]) < tol]
    if len(inl) < max(FLOOR_MIN_POINTS, 0.1 * len(pts)):
        return None
    c = inl.mean(axis=0)  # least-squares refit on the inliers
    normal = np.linalg.svd(inl - c)[2][-1]
    normal *= np.sign(normal @ up)
    return normal, float(normal @ c), len(inl)


def level(c2w: np.ndarray, points: np.ndarray | None = None, method: str = "AUTO") -> Orientation:
    """The world transform that levels the solve (see the module docstring); ``method`` is ``AUTO``
    (floor when found, else cameras), ``FLOOR`` (a ValueError when no floor is found) or ``CAMERAS``."""
    if method not in METHODS:
        raise ValueError(f"orient: method must be one of {', '.join(METHODS)}; got {method!r}")
    c2w = np.asarray(c2w, dtype=np.float64)
    up, source, height, count = up_from_cameras(c2w), "cameras", 0.0, 0
    if method != "CAMERAS" and points is not None:
        found = floor_plane(points, up, c2w[:, :3, 3])
        if found is not None:
            up, d, count = found
            source, height = "floor", float(up @ c2w[0, :3, 3]) - d
    if method == "FLOOR" and source != "floor":
        raise ValueError(
            "orient: no floor found in the solve's points (a plane below the cameras, within "
            f"{FLOOR_MAX_TILT:g}° of their up, with at least {FLOOR_MIN_POINTS} points)"
        )
    fwd = c2w[0, :3, 2] - (c2w[0, :3, 2] @ up) * up  # the first camera's heading, made horizontal
    if np.linalg.norm(fwd) < 1e-6:  # looking straight down or up: head along its image-up
        fwd = -c2w[0, :3, 1] - (-c2w[0, :3, 1] @ up) * up
    fwd /= np.linalg.norm(fwd)
    R = np.stack([np.cross(fwd, up), fwd, up])  # rows: the solve's axes that become world x, y, z
    W = np.eye(4)
    W[:3, :3] = R
    W[:3, 3] = -R @ c2w[0, :3, 3] + [0.0, 0.0, height]
    return Orientation(W, up, source, count)
