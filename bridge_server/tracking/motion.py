"""A fast pre-check for a static camera: sparse Lucas-Kanade flow from the first frame.

Runs in milliseconds before SfM, so a locked-off clip fails in a second instead of after
feature matching. Moving people or objects do not fool it: the decision uses a low quantile
(10%) of the corner displacements (lost corners count as moving), so a still background that
keeps a tenth of the corners is enough; when the camera moves, nearly every corner moves.
"""

from __future__ import annotations

import numpy as np

STATIC_FRACTION = 0.0025  # background image motion below this fraction of the diagonal = static
BACKGROUND_QUANTILE = 0.1  # a static background holds at least this share of the corners


def max_median_motion(images: list[np.ndarray], samples: int = 8) -> float | None:
    """Largest background displacement (pixels, see module doc) from frame 0 to ``samples`` later frames.

    Returns None when frame 0 has too few corners to decide (no texture).
    """
    import cv2

    grey = [cv2.cvtColor(images[0], cv2.COLOR_RGB2GRAY)]
    corners = cv2.goodFeaturesToTrack(grey[0], maxCorners=400, qualityLevel=0.01, minDistance=7)
    if corners is None or len(corners) < 20:
        return None
    picks = np.unique(np.linspace(1, len(images) - 1, min(samples, len(images) - 1)).round().astype(int))
    worst = 0.0
    for k in picks:
        other = cv2.cvtColor(images[k], cv2.COLOR_RGB2GRAY)
        moved, ok, _ = cv2.calcOpticalFlowPyrLK(grey[0], other, corners, None, winSize=(21, 21), maxLevel=3)
        back, ok2, _ = cv2.calcOpticalFlowPyrLK(other, grey[0], moved, None, winSize=(21, 21), maxLevel=3)
        good = (ok.ravel() == 1) & (ok2.ravel() == 1)
        good &= np.linalg.norm((back - corners).reshape(-1, 2), axis=1) < 0.5
        d = np.where(good, np.linalg.norm((moved - corners).reshape(-1, 2), axis=1), np.inf)
        worst = max(worst, float(np.sort(d)[int(BACKGROUND_QUANTILE * (len(d) - 1))]))
    return worst


def is_static(images: list[np.ndarray]) -> tuple[bool, float | None]:
    """(static?, measured motion in px) for RGB frames of one size."""
    h, w = images[0].shape[:2]
    motion = max_median_motion(images)
    return motion is not None and motion < STATIC_FRACTION * float(np.hypot(w, h)), motion
