"""Collision cap: how far a camera step may travel before it reaches the target geometry.

The depth a rescale measures Π on only looks ahead; a step may go sideways, backwards or out of
view. :func:`path_clearance` renders a narrow probe view along the step's direction from the step's
start (any direction, in or out of the camera's view) and reads the distance to the geometry within
``PROBE_CONE_DEG`` of the path. :func:`collision_alpha` turns that into the largest step scale that
closes at most ``APPROACH_LIMIT`` of that distance. Only pose-driven (``geometric``) sources can be
probed: meshes and point clouds; a depth map or a subject distance has no geometry off its view.
:class:`PathGuard` gives the same answers along a move without probing the steps that cannot reach
the geometry: a source's :meth:`~.depth.DepthSource.clearance_bound` (a lower bound on any distance a
view from that centre can read) shows it, and it stays valid, less the distance moved, from one pose
to the next.

Poses are OpenCV camera-to-world; steps are in world units and axes.
"""

from __future__ import annotations

import numpy as np

from .camera import Camera, make_c2w
from .depth import CLEARANCE_SHARE, DepthSource

APPROACH_LIMIT = 0.5  # a step may close at most this fraction of the distance to the geometry on its path
PROBE_PIXELS = 9  # probe view: 9 x 9 pixels ...
PROBE_DEG_PER_PIXEL = 1.0  # ... of 1° each (a 9° cone around the path)
PROBE_CONE_DEG = 1.5  # the central 3 x 3 pixels are "on the path": within ±1.5° of it


def _probe_camera() -> Camera:
    half = PROBE_PIXELS / 2.0
    f = half / np.tan(np.radians(PROBE_DEG_PER_PIXEL * half))
    return Camera(f, f, half, half, PROBE_PIXELS, PROBE_PIXELS)


PROBE = _probe_camera()


def path_clearance(source: DepthSource, centre: np.ndarray, direction: np.ndarray) -> float:
    """Distance along unit ``direction`` (world) from ``centre`` to the first geometry of ``source``
    within ``PROBE_CONE_DEG`` of the path (inf when there is none, or the source cannot be probed)."""
    if not source.geometric:
        return float("inf")
    z = np.asarray(direction, dtype=np.float64)
    z = z / np.linalg.norm(z)
    helper = np.eye(3)[int(np.argmin(np.abs(z)))]
    x = np.cross(helper, z)
    x /= np.linalg.norm(x)
    R = np.stack([x, np.cross(z, x), z], axis=1)
    depth = source.view(make_c2w(R, np.asarray(centre, dtype=np.float64)), PROBE, index=None).depth
    c = PROBE_PIXELS // 2
    core = depth[c - 1 : c + 2, c - 1 : c + 2]
    hit = np.isfinite(core) & (core > 0)
    return float(core[hit].min()) if hit.any() else float("inf")


def collision_alpha(source: DepthSource, c2w: np.ndarray, step: np.ndarray) -> float:
    """The largest scale of ``step`` (in camera axes of ``c2w``) that closes at most ``APPROACH_LIMIT``
    of the distance to the geometry on its path (inf when nothing is there)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    world = c2w[:3, :3] @ np.asarray(step, dtype=np.float64)
    length = float(np.linalg.norm(world))
    if not length > 0:
        return float("inf")
    return APPROACH_LIMIT * path_clearance(source, c2w[:3, 3], world / length) / length


class PathGuard:
    """:func:`collision_alpha` along a move: :meth:`limit` answers as it does wherever the step could be
    capped, and inf (no cap: the same decision) where a clearance bound shows that a step of the asked
    scale ends at least 1/``APPROACH_LIMIT`` of its length before the nearest geometry. ``probes``:
    how many steps needed the probe view."""

    def __init__(self, source: DepthSource):
        self.source = source
        self.probes = 0
        self._centre: np.ndarray | None = None
        self._bound = 0.0

    def limit(self, c2w: np.ndarray, step: np.ndarray, alpha: float) -> float:
        """The collision limit on ``alpha`` (see :func:`collision_alpha`), or inf when ``alpha`` is below it."""
        if not self.source.geometric:
            return float("inf")
        c2w = np.asarray(c2w, dtype=np.float64)
        centre = c2w[:3, 3]
        reach = alpha * float(np.linalg.norm(step)) / APPROACH_LIMIT  # the clearance a step of alpha needs
        if self._centre is not None and self._bound - float(np.linalg.norm(centre - self._centre)) > reach:
            return float("inf")
        self._centre, self._bound = centre.copy(), CLEARANCE_SHARE * self.source.clearance_bound(centre)
        if self._bound > reach:
            return float("inf")
        self.probes += 1
        return collision_alpha(self.source, c2w, step)
