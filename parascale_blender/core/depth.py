"""What a camera sees: the depth-source contract and the per-pixel :class:`DepthView`.

A depth source answers "which depth does the camera see at each pixel from pose P" at a
*working* resolution (default longest side 160 px, ~160x90 for 16:9). Depth is **z-depth**
along the optical axis (OpenCV camera, +z forward), in the source's world units. Empty pixels
are NaN, and each view says which of them are **sky** (known to see nothing: counted as 1/Z = 0,
not moving, when the caller allows sky) and which are **unknown** (left out of every average):

* a mesh (and a ray tracer): a pixel whose ray misses every triangle is sky;
* a depth map: its empty values are sky (the map covers the frame; ``formats.depthmaps`` states
  each format's empty values: NaN, inf, 0, Blender's 1e10 background);
* a point cloud: unknown by default (outside the captured frustum, behind disocclusions, between
  samples), sky only when the user says so (``PointCloudDepth(sky=True)``), and even then never
  outside the frustum of the plate it came from;
* SfM points: unknown, always.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np

from .camera import Camera

DEFAULT_WORKING_SIZE = 160
FAR_SENTINEL = 1e9  # depths at or beyond this are background (Blender writes 1e10 for empty Z-pass pixels)


def clean_depth(depth: np.ndarray) -> np.ndarray:
    """float64 copy with NaN (empty) for non-finite, non-positive and background-sentinel values."""
    d = np.array(depth, dtype=np.float64)
    with np.errstate(invalid="ignore"):
        d[~(np.isfinite(d) & (d > 0) & (d < FAR_SENTINEL))] = np.nan
    return d


class DepthError(ValueError):
    """A depth source cannot answer (missing frame, wrong size, nothing visible…)."""


@dataclass
class DepthView:
    """Visible z-depth per working pixel; NaN where the source has nothing.

    ``sky``: which empty pixels are sky (see the module docstring): True (all of them: a mesh, a
    depth map), False (none: unknown, as for SfM points and, by default, point clouds) or an
    (H, W) bool mask (a cloud marked as sky inside the frustum it was captured in). ``extended``:
    pixels the source did not know but filled from around them (a plate's edges), (H, W) bool or None;
    they count in Π but not in :attr:`known_coverage`."""

    depth: np.ndarray
    camera: Camera
    sky: bool | np.ndarray
    extended: np.ndarray | None = None

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.depth) & (self.depth > 0)

    @property
    def sky_mask(self) -> np.ndarray:
        """Empty pixels that are known to be sky."""
        return ~self.valid & np.asarray(self.sky, dtype=bool)

    @property
    def coverage(self) -> float:
        """Fraction of pixels with a depth."""
        return float(self.valid.mean()) if self.depth.size else 0.0

    @property
    def known_coverage(self) -> float:
        """Fraction of pixels whose motion is known: a depth, or sky (not extended from around them)."""
        known = self.valid | self.sky_mask
        if self.extended is not None:
            known &= ~self.extended
        return float(known.mean()) if self.depth.size else 0.0

    def samples(self, allow_sky: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, inv_z) over the pixels that count: valid ones, plus sky (inv_z = 0) if allowed.

        ``x, y`` are normalised image coordinates of the pixel centres. Unknown pixels never count;
        a view with no valid pixel at all has no depth (nothing is returned), it is not all sky.
        """
        x, y = _flat_rays(self.camera)
        d = np.asarray(self.depth, dtype=np.float64).reshape(-1)
        with np.errstate(invalid="ignore"):
            valid = np.isfinite(d) & (d > 0)
        if allow_sky and valid.any() and np.any(self.sky):
            sky = np.asarray(self.sky, dtype=bool)
            use = valid | (sky.reshape(-1) if sky.ndim else sky)
            inv = np.zeros(d.shape)
            np.divide(1.0, d, out=inv, where=valid)
            return x[use], y[use], inv[use]
        return x[valid], y[valid], 1.0 / d[valid]


@functools.lru_cache(maxsize=32)
def _flat_rays(camera: Camera) -> tuple[np.ndarray, np.ndarray]:
    """``camera.pixel_rays()`` flattened, cached per camera (read-only)."""
    x, y = camera.pixel_rays()
    x, y = x.reshape(-1), y.reshape(-1)
    x.flags.writeable = y.flags.writeable = False
    return x, y


class DepthSource:
    """Base class. Subclasses implement :meth:`view`.

    ``view(c2w, camera, index)``: ``c2w`` is the OpenCV camera-to-world pose, ``camera`` the
    *working* camera (intrinsics already scaled to the working resolution), ``index`` the
    positional frame index within the reference track for per-frame sources (maps, SfM
    visibility); pose-driven sources ignore it.
    """

    per_frame: bool = False
    geometric: bool = False  # the depth follows the pose (a mesh, a cloud): collisions can be tested
    kind: str = "depth"  # what it is, for the report: geometry, point cloud, depth maps, SfM points, subject distance
    description: str = "depth"
    cache_key: tuple | None = None  # what the depth is (its content), for caches across sources; None: never cached
    pose_free: bool = False  # every view is the same whatever the pose (a subject distance)

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        raise NotImplementedError

    def clearance_bound(self, centre: np.ndarray) -> float:
        """A lower bound on the distance from ``centre`` (world) to anything a view of this source can
        show: no view from ``centre`` reads a z-depth below ``CLEARANCE_SHARE`` times it. 0 when
        unknown (the default); geometric sources answer from their geometry, cheaply, so a collision
        probe can be skipped for steps that cannot reach it (see :mod:`.collision`)."""
        return 0.0


CLEARANCE_SHARE = 0.9  # a view's z-depth of a point >= this share of its distance (cos 25°: splats included)


class ConstantDepth(DepthSource):
    """Every pixel at the same z-depth (a known subject distance)."""

    kind = "subject distance"

    @property
    def pose_free(self) -> bool:  # a subclass that answers per frame is not
        return type(self).view is ConstantDepth.view

    def __init__(self, distance: float):
        if not (np.isfinite(distance) and distance > 0):
            raise DepthError(f"constant depth must be a positive finite distance, got {distance!r}")
        self.distance = float(distance)
        self.description = f"constant {self.distance:g}"
        self.cache_key = ("constant", self.distance)

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        return DepthView(np.full((camera.height, camera.width), self.distance), camera, sky=True)


def depth_from_affine_disparity(
    disparity: np.ndarray, anchor_px: np.ndarray, anchor_depth: np.ndarray
) -> tuple[np.ndarray, float, float]:
    """z-depth from an affine-invariant disparity map (relative monocular models predict
    ``disparity = s / Z + t`` for unknown ``s > 0`` and shift ``t``) and known depths at a few pixels.

    ``anchor_px`` (K, 2) are (x, y) pixel coordinates (origin at the top-left corner, pixel
    centres at +0.5; the nearest pixel is read) and ``anchor_depth`` (K,) their z-depths. ``s`` and
    ``t`` solve ``1/Z_k = (d_k - t) / s`` in least squares (exact for two anchors of different
    disparity). Returns (depth, s, t): depth is ``s / (d - t)``, NaN where that is not positive
    and finite. Raises ``ValueError`` when fewer than two usable anchors are given or they cannot
    fix both unknowns.
    """
    d = np.asarray(disparity, dtype=np.float64)
    px = np.asarray(anchor_px, dtype=np.float64).reshape(-1, 2)
    z = np.asarray(anchor_depth, dtype=np.float64).reshape(-1)
    h, w = d.shape
    ix, iy = np.floor(px[:, 0]).astype(int), np.floor(px[:, 1]).astype(int)
    inside = (ix >= 0) & (ix < w) & (iy >= 0) & (iy < h)
    if not inside.all():
        raise ValueError(f"anchors {np.flatnonzero(~inside).tolist()} lie outside the {w}x{h} image")
    dk = d[iy, ix]
    use = np.isfinite(dk) & np.isfinite(z) & (z > 0)
    if use.sum() < 2 or np.ptp(dk[use]) <= 1e-12 * max(1.0, np.abs(dk[use]).max()):
        raise ValueError("need at least two anchors with positive depth at pixels of different disparity")
    # d_k = s * (1 / Z_k) + t: a line through the anchors' (1/Z, d) points.
    A = np.stack([1.0 / z[use], np.ones(use.sum())], axis=1)
    (s, t), *_ = np.linalg.lstsq(A, dk[use], rcond=None)
    if not s > 0:
        raise ValueError(
            f"anchors give a non-positive disparity scale ({s:.3g}): nearer anchors must have larger disparity"
        )
    with np.errstate(divide="ignore", invalid="ignore"):
        depth = s / (d - t)
    depth[~(np.isfinite(depth) & (depth > 0))] = np.nan
    return depth, float(s), float(t)
