"""What a camera sees: the depth-source contract and the per-pixel :class:`DepthView`.

A depth source answers "which depth does the camera see at each pixel from pose P" at a
*working* resolution (default longest side 160 px, ~160x90 for 16:9). Depth is **z-depth**
along the optical axis (OpenCV camera, +z forward), in the source's world units. Empty pixels
are NaN: for sparse sources (SfM points) they mean "unknown" and are left out of averages;
for dense sources (meshes, depth maps) they may be treated as sky (1/Z = 0) when the caller
allows it explicitly.
"""

from __future__ import annotations

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
    """Visible z-depth per working pixel; NaN where the source has nothing."""

    depth: np.ndarray
    camera: Camera
    dense: bool

    @property
    def valid(self) -> np.ndarray:
        return np.isfinite(self.depth) & (self.depth > 0)

    @property
    def coverage(self) -> float:
        return float(self.valid.mean()) if self.depth.size else 0.0

    def samples(self, allow_sky: bool = False) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(x, y, inv_z) over the pixels that count: valid ones, plus sky (inv_z = 0) if allowed.

        ``x, y`` are normalised image coordinates of the pixel centres. Sky only applies to
        dense sources; a sparse source's empty pixels are unknown, never sky.
        """
        x, y = self.camera.pixel_rays()
        valid = self.valid
        inv = np.zeros_like(self.depth, dtype=np.float64)
        inv[valid] = 1.0 / self.depth[valid]
        use = valid | (allow_sky & self.dense)
        return x[use], y[use], inv[use]


class DepthSource:
    """Base class. Subclasses implement :meth:`view`.

    ``view(c2w, camera, index)``: ``c2w`` is the OpenCV camera-to-world pose, ``camera`` the
    *working* camera (intrinsics already scaled to the working resolution), ``index`` the
    positional frame index within the reference track for per-frame sources (maps, SfM
    visibility); pose-driven sources ignore it.
    """

    dense: bool = True
    per_frame: bool = False
    description: str = "depth"

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        raise NotImplementedError


class ConstantDepth(DepthSource):
    """Every pixel at the same z-depth (a known subject distance)."""

    dense = True

    def __init__(self, distance: float):
        if not (np.isfinite(distance) and distance > 0):
            raise DepthError(f"constant depth must be a positive finite distance, got {distance!r}")
        self.distance = float(distance)
        self.description = f"constant {self.distance:g}"

    def view(self, c2w: np.ndarray, camera: Camera, index: int | None = None) -> DepthView:
        return DepthView(np.full((camera.height, camera.width), self.distance), camera, dense=True)
