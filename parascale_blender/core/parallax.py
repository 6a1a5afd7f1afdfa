"""Parallax numbers: how much a camera step moves the image, from what the camera sees.

For a step ``d`` (camera translation from frame t-1 to t, in camera t-1's OpenCV axes) and
the depth seen from pose t-1, with normalised image coordinates ``x, y`` and inverse depth
``w = 1/Z`` per counted pixel:

* ``harmonic``   Π = ||d|| · mean(w)                       (default; the unbiased form)
* ``flow``       Π = mean(||(x·d_z − d_x, y·d_z − d_y)|| · w)  (mean translational optical flow,
  in normalised image units; a dolly and a truck differ)
* ``arithmetic`` Π = ||d|| / mean(Z)                        (the original paper's form, biased by
  Jensen's inequality: it is never larger than ``harmonic``)

All three are homogeneous of degree one in ``d``: Π(α·d) = α·Π(d), so the rescale factor for
a step has the closed form α = Π_ref / Π_target(d). Π is dimensionless (radians per step for
small motions), which makes it invariant to the scene's scale: the gauge the rescale keeps.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .depth import DepthView

MEASURES = ("harmonic", "flow", "arithmetic")


@dataclass
class ParallaxProbe:
    """The per-pixel samples of one view, ready to evaluate Π for any step cheaply."""

    x: np.ndarray
    y: np.ndarray
    inv_z: np.ndarray

    @classmethod
    def from_view(cls, view: DepthView, allow_sky: bool = False) -> ParallaxProbe:
        x, y, w = view.samples(allow_sky)
        return cls(x, y, w)

    @property
    def empty(self) -> bool:
        return self.inv_z.size == 0

    @property
    def mean_inverse_depth(self) -> float:
        return float(self.inv_z.mean()) if self.inv_z.size else float("nan")

    def parallax(self, step: np.ndarray, measure: str = "harmonic") -> float:
        """Π of ``step`` (3,) under ``measure``; NaN when the view has no samples."""
        if self.empty:
            return float("nan")
        d = np.asarray(step, dtype=np.float64)
        if measure == "harmonic":
            return float(np.linalg.norm(d) * self.inv_z.mean())
        if measure == "flow":
            u = self.x * d[2] - d[0]
            v = self.y * d[2] - d[1]
            return float(np.mean(np.hypot(u, v) * self.inv_z))
        if measure == "arithmetic":
            seen = self.inv_z > 0
            if not seen.any():
                return 0.0
            return float(np.linalg.norm(d) / np.mean(1.0 / self.inv_z[seen]))
        raise ValueError(f"unknown parallax measure {measure!r}; expected one of {MEASURES}")


def parallax_number(step: np.ndarray, view: DepthView, measure: str = "harmonic", allow_sky: bool = False) -> float:
    """Π of one step seen in one view (see the module docstring for the measures)."""
    return ParallaxProbe.from_view(view, allow_sky).parallax(step, measure)
