"""Parallax numbers: how much a camera step moves the image, from what the camera sees.

For a step ``d`` (camera translation from frame t-1 to t, in camera t-1's OpenCV axes) and
the depth seen from pose t-1, with normalised image coordinates ``x, y`` and inverse depth
``w = 1/Z`` per counted pixel:

* ``harmonic``   Π = ||d|| · mean(w)                       (default; the unbiased form)
* ``flow``       Π = mean(||(x·d_z − d_x, y·d_z − d_y)|| · w)  (mean translational optical flow,
  in normalised image units; a dolly and a truck differ)
* ``arithmetic`` Π = ||d|| / mean(Z)                        (the original paper's form, biased by
  Jensen's inequality: it is never larger than ``harmonic``)
* ``exact``      Π = mean(||(x·d_z − d_x, y·d_z − d_y)|| · w / (1 − w·d_z))  (the exact mean
  translational image motion: each point's projection before and after the step, rotation
  removed; sky pixels, w = 0, count as zero motion; pixels the step passes are left out)

``harmonic``, ``flow`` and ``arithmetic`` are homogeneous of degree one in ``d``: Π(α·d) = α·Π(d),
so the rescale factor has the closed form α = Π_ref / Π_target(d). ``exact`` is not (forward steps
grow the motion faster than α, backward ones slower, towards a bound): :meth:`ParallaxProbe.solve_alpha`
finds α by a bracketed search. For a sideways step (d_z = 0) ``exact`` equals ``flow``, and for a fronto-parallel
truck it equals ``harmonic``. Π is dimensionless (normalised image units per step), which makes it
invariant to the scene's scale: the gauge the rescale keeps.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .depth import DepthView

MEASURES = ("harmonic", "flow", "arithmetic", "exact")
REACHABLE_SHARE = 0.95  # a backward step whose bounded motion cannot reach Π stops at this share of the bound


@dataclass
class ParallaxProbe:
    """The per-pixel samples of one view, ready to evaluate Π for any step cheaply."""

    x: np.ndarray
    y: np.ndarray
    inv_z: np.ndarray
    _memo: tuple | None = field(default=None, init=False, repr=False, compare=False)  # the last step's terms

    @classmethod
    def from_view(cls, view: DepthView, allow_sky: bool = False) -> ParallaxProbe:
        x, y, w = view.samples(allow_sky)
        return cls(x, y, w)

    def warped(self, base_c2w: np.ndarray, c2w: np.ndarray, bounds: tuple[float, float, float, float]) -> ParallaxProbe:
        """These samples (seen from OpenCV pose ``base_c2w``) as seen from ``c2w``: each pixel's world
        point re-projected (sky directions only rotated), kept where it lands in front of the camera
        and inside ``bounds`` (x_left, x_right, y_top, y_bottom in normalised image units)."""
        b, c = np.asarray(base_c2w, dtype=np.float64), np.asarray(c2w, dtype=np.float64)
        M = c[:3, :3].T @ b[:3, :3]
        m = c[:3, :3].T @ (b[:3, 3] - c[:3, 3])
        w = self.inv_z
        qx = M[0, 0] * self.x + M[0, 1] * self.y + M[0, 2] + m[0] * w  # (x, y, 1) / w moved, times w
        qy = M[1, 0] * self.x + M[1, 1] * self.y + M[1, 2] + m[1] * w
        qz = M[2, 0] * self.x + M[2, 1] * self.y + M[2, 2] + m[2] * w
        front = qz > 0
        iz = np.divide(1.0, qz, out=np.zeros_like(qz), where=front)
        x, y = qx * iz, qy * iz
        xl, xr, yt, yb = bounds
        keep = front & (x >= xl) & (x < xr) & (y >= yt) & (y < yb)
        return ParallaxProbe(x[keep], y[keep], w[keep] * iz[keep])

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
            return float(np.mean(self._motion_terms(d)[0]))
        if measure == "arithmetic":
            seen = self.inv_z > 0
            if not seen.any():
                return 0.0
            return float(np.linalg.norm(d) / np.mean(1.0 / self.inv_z[seen]))
        if measure == "exact":
            return _exact_mean(*self._motion_terms(d), 1.0)[0]
        raise ValueError(f"unknown parallax measure {measure!r}; expected one of {MEASURES}")

    def gradient(self, step: np.ndarray, measure: str = "harmonic", scale: float = 1.0) -> np.ndarray:
        """∂Π/∂step (3,) at ``scale`` × ``step`` under ``measure`` (zeros where Π is not differentiable: a
        zero step, pixels on the step's line), for re-measuring a step that differs by float rounding only.
        The per-pixel terms of ``step`` are shared with :meth:`parallax` and :meth:`solve_alpha`."""
        d = np.asarray(step, dtype=np.float64)
        n = float(np.linalg.norm(d))
        if self.empty or not n > 0 or not scale > 0:
            return np.zeros(3)
        if measure == "harmonic":
            return d / n * float(self.inv_z.mean())
        if measure == "arithmetic":
            seen = self.inv_z > 0
            return d / n / float(np.mean(1.0 / self.inv_z[seen])) if seen.any() else np.zeros(3)
        if measure not in ("flow", "exact"):
            raise ValueError(f"unknown parallax measure {measure!r}; expected one of {MEASURES}")
        self._motion_terms(d)
        u, v, m = self._memo[2]  # of the unscaled step: the directions u/m, v/m do not change with the scale
        x, y, w = self.x, self.y, self.inv_z
        if measure == "flow":
            q, extra = w, 0.0
        else:  # exact: each pixel's motion is m·q with q = w / (1 − w·s_z), pixels passed left out
            den = 1.0 - scale * self._memo[1][1]
            ahead = den > 0
            if not ahead.all():
                x, y, w, u, v, m, den = (a[ahead] for a in (x, y, w, u, v, m, den))
            q = w / den
            extra = scale * m * q * q
        with np.errstate(invalid="ignore", divide="ignore"):
            cu, cv = np.where(m > 0, u / m, 0.0), np.where(m > 0, v / m, 0.0)
        total = self.inv_z.size
        gz = np.sum((cu * x + cv * y) * q + extra) / total
        return np.array([-np.sum(cu * q) / total, -np.sum(cv * q) / total, gz])

    def _motion_terms(self, d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Per pixel: first-order motion a = ||(x·d_z − d_x, y·d_z − d_y)||·w and b = w·d_z, so that
        the exact motion of the step α·d is α·a / (1 − α·b)."""
        key = (float(d[0]), float(d[1]), float(d[2]))
        if self._memo is not None and self._memo[0] == key:  # Π, the bound and the α search share a step
            return self._memo[1]
        u, v = self.x * d[2] - d[0], self.y * d[2] - d[1]
        m = np.hypot(u, v)
        terms = (m * self.inv_z, self.inv_z * d[2])
        self._memo = (key, terms, (u, v, m))
        return terms

    def pole_alpha(self, step: np.ndarray) -> float:
        """The scale of ``step`` at which the camera plane reaches the nearest visible depth ahead
        (inf for a step that does not move forward): exact Π grows without bound towards it."""
        b = float(self.inv_z.max(initial=0.0)) * float(np.asarray(step, dtype=np.float64)[2])
        return 1.0 / b if b > 0 else float("inf")

    def motion_bound(self, step: np.ndarray) -> float:
        """Supremum over α of exact Π(α·``step``): finite only for a backward step (every seen pixel
        recedes), where each pixel's motion tends to a/|b|; inf otherwise."""
        a, b = self._motion_terms(np.asarray(step, dtype=np.float64))
        if (b[a > 0] >= 0).any():
            return float("inf")
        back = b < 0
        return float(np.sum(a[back] / -b[back]) / a.size)

    def solve_alpha(self, step: np.ndarray, target: float, rtol: float = 1e-12) -> tuple[float, bool, int, float]:
        """α ≥ 0 with exact Π(α·step) = ``target``. Exact Π is increasing in α: towards +inf at
        :meth:`pole_alpha` (forward steps), linearly (sideways), or towards :meth:`motion_bound`
        (backward steps). A bracket is grown geometrically (never past the pole), then closed by Newton
        steps (bisection when a step leaves the bracket). Returns (α, unreachable, iterations, the
        exact Π of α·``step``); ``unreachable`` when a backward step's bounded motion cannot reach
        ``target``: α is then finite, where Π reaches ``REACHABLE_SHARE`` of the bound."""
        d = np.asarray(step, dtype=np.float64)
        if self.empty or not (target > 0):
            return float("nan"), False, 0, float("nan")
        a, b = self._motion_terms(d)
        unreachable = False
        bound = self.motion_bound(d)
        if target >= REACHABLE_SHARE * bound:
            target, unreachable = REACHABLE_SHARE * bound, True
        pole = self.pole_alpha(d)
        lo, hi, it = 0.0, min(1.0, 0.5 * pole), 0
        f_hi, g = _exact_mean(a, b, hi)
        while f_hi < target:  # grow the bracket, halving the gap to the pole at most
            it += 1
            if it > 2000 or hi > 1e300:  # no motion at all along this step (a = 0 wherever it counts)
                return hi, True, it, f_hi
            lo, hi = hi, min(hi * 4.0, 0.5 * (hi + pole))
            f_hi, g = _exact_mean(a, b, hi)
        x, f = hi, f_hi
        for _ in range(100):
            it += 1
            if abs(f - target) <= rtol * target:
                break
            if f < target:
                lo = x
            else:
                hi = x
            nxt = x - (f - target) / g if g > 0 else -1.0
            x = nxt if lo < nxt < hi else 0.5 * (lo + hi)
            f, g = _exact_mean(a, b, x)
        return x, unreachable, it, f


def _exact_mean(a: np.ndarray, b: np.ndarray, alpha: float) -> tuple[float, float]:
    """Exact mean motion Σ α·a/(1 − α·b) / N over the pixels still ahead, and its derivative in α."""
    den = 1.0 - alpha * b
    n = a.size
    if den.min(initial=1.0) <= 0:  # pixels the step passes (or reaches) are not seen after it
        ahead = den > 0
        a, den = a[ahead], den[ahead]
    q = a / den
    return float(alpha * q.sum() / n), float(np.sum(q / den) / n)


def parallax_number(step: np.ndarray, view: DepthView, measure: str = "harmonic", allow_sky: bool = False) -> float:
    """Π of one step seen in one view (see the module docstring for the measures)."""
    return ParallaxProbe.from_view(view, allow_sky).parallax(step, measure)


def gauge_scale(depth: np.ndarray, model_depth: float) -> float:
    """Factor ``s`` that carries a shot's camera translation into a model's training gauge, keeping Π.

    A model trained on camera paths of its own units (e.g. RealEstate10K's SLAM units) saw scenes
    at a typical harmonic-mean depth ``model_depth`` in those units. The harmonic Π of a step ``d``
    is ``||d|| · E[1/Z]``; scaling every translation by ``s = model_depth · E[1/Z]`` (mean over the
    valid pixels of ``depth``, the z-depth seen from the conditioning view) gives the same Π in a
    world of depth ``model_depth``: the conditioning sees the parallax the artist set. ``s · d`` is
    the same for the same shot at any scale (depth and trajectory scaled together). NaN when
    ``depth`` has no valid (finite, positive) pixel.
    """
    if not (np.isfinite(model_depth) and model_depth > 0):
        raise ValueError(f"gauge_scale: model_depth must be a positive number, got {model_depth}")
    z = np.asarray(depth, dtype=np.float64)
    valid = np.isfinite(z) & (z > 0)
    if not valid.any():
        return float("nan")
    return float(model_depth * np.mean(1.0 / z[valid]))
