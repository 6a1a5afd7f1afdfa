"""Target views reused across steps: one rendered view serves the next few poses, re-projected.

A rescale measures Π of step t from the target's pose t-1, so its views cannot be batched (pose t-1
depends on every α before it). Neighbouring poses see nearly the same thing, though: :class:`ViewReuse`
renders a view every ``every`` poses with a margin of ``MARGIN`` of the working size around the frame,
and answers the poses in between with its samples re-projected into them
(:meth:`~.parallax.ParallaxProbe.warped`: each pixel's world point seen from the new pose; sky
directions rotated), cropped to the frame. What that leaves out: pixels the rendered view did not
see (disocclusions, and motion past the margin: a view is rendered afresh when fewer than
``REFILL`` of the frame's samples remain) and the change of sampling density (first order in the
distance moved over the depth). ``every`` = 1 renders every pose as before, without a margin.
"""

from __future__ import annotations

import math

import numpy as np

from .camera import Camera
from .depth import DepthSource
from .parallax import ParallaxProbe

MARGIN = 0.1  # rendered margin around the frame, a share of the working size's longest side
REFILL = 0.97  # render afresh when a re-projected view keeps fewer than this share of its frame's samples


def frame_bounds(camera: Camera) -> tuple[float, float, float, float]:
    """(x_left, x_right, y_top, y_bottom) of ``camera``'s frame in normalised image units."""
    return (-camera.cx / camera.fx, (camera.width - camera.cx) / camera.fx,
            -camera.cy / camera.fy, (camera.height - camera.cy) / camera.fy)  # fmt: skip


class ViewReuse:
    """Probes of ``source`` per pose (see the module docstring); ``rendered`` counts the views drawn."""

    def __init__(self, source: DepthSource, allow_sky: bool, every: int = 1):
        self.source, self.allow_sky, self.every = source, allow_sky, max(1, int(every))
        self.rendered = 0
        self._base: tuple | None = None  # (c2w, camera, wide probe, frame samples, coverage, sky share, age)

    def probe(self, c2w: np.ndarray, camera: Camera, index: int | None = None):
        """(probe, known coverage, sky share) of the view from ``c2w`` at the working ``camera``; the
        coverage and sky share are the rendered view's frame (they lag by at most ``every`` - 1 poses)."""
        if self.every == 1:
            view = self.source.view(c2w, camera, index=index)
            self.rendered += 1
            return ParallaxProbe.from_view(view, self.allow_sky), view.known_coverage, float(view.sky_mask.mean())
        base = self._base
        bounds = frame_bounds(camera)
        if base is not None and base[1] == camera and base[6] < self.every:
            probe = base[2].warped(base[0], c2w, bounds)
            if probe.inv_z.size >= REFILL * base[3]:
                self._base = (*base[:6], base[6] + 1)
                return probe, base[4], base[5]
        m = math.ceil(MARGIN * max(camera.width, camera.height))
        wide = Camera(camera.fx, camera.fy, camera.cx + m, camera.cy + m, camera.width + 2 * m, camera.height + 2 * m)
        view = self.source.view(c2w, wide, index=index)
        self.rendered += 1
        wide_probe = ParallaxProbe.from_view(view, self.allow_sky)
        probe = wide_probe.warped(c2w, c2w, bounds)
        inner = (slice(m, m + camera.height), slice(m, m + camera.width))
        known = view.valid | view.sky_mask
        if view.extended is not None:
            known &= ~view.extended
        self._base = (c2w, camera, wide_probe, probe.inv_z.size, float(known[inner].mean()),
                      float(view.sky_mask[inner].mean()), 1)  # fmt: skip
        return probe, self._base[4], self._base[5]
