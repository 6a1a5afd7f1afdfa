"""Frames a camera solve dropped: found, filled inside the solved range, reported outside it.

A solver (Blender's, COLMAP's) may leave frames without a camera. Inside the solved range such a
frame is filled by SE(3) interpolation of its solved neighbours (:meth:`Trajectory.resampled`) and
flagged (``extras['solve_filled']`` = 1, its ``solve_error_px`` NaN); before the first or after the
last solved frame nothing is invented: those frames stay without a pose and are only reported.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .camera import SparsePoints, Trajectory


@dataclass
class SolveGaps:
    """The trajectory on every frame of its solved range, and the dropped frames by kind."""

    trajectory: Trajectory
    filled: list[int] = field(default_factory=list)  # interpolated inside the solved range
    uncovered: list[int] = field(default_factory=list)  # before the first / after the last solved frame

    @property
    def dropped(self) -> list[int]:
        return sorted(self.filled + self.uncovered)


def fill_gaps(traj: Trajectory, tried: np.ndarray) -> SolveGaps:
    """``traj`` (the solved frames) completed over ``tried`` (every frame the solver was given)."""
    tried = np.unique(np.asarray(tried, dtype=np.int64))
    solved = np.isin(tried, traj.frames)
    missing = tried[~solved]
    inside = (missing > traj.frames[0]) & (missing < traj.frames[-1])
    filled, uncovered = missing[inside], missing[~inside]
    extras = {k: np.asarray(v, dtype=np.float64) for k, v in traj.extras.items()}
    extras["solve_filled"] = np.zeros(len(traj))
    if not len(filled):
        return SolveGaps(traj.replace(extras=extras), [], [int(f) for f in uncovered])
    frames = np.union1d(traj.frames, filled)
    at = np.searchsorted(frames, traj.frames)  # where the solved frames sit in the completed track
    out = traj.resampled(frames)
    c2w, K = out.c2w, out.intrinsics
    c2w[at], K[at] = traj.c2w, traj.intrinsics  # solved poses stay exactly as solved
    new_extras = {}
    for k, v in extras.items():
        col = np.full(len(frames), np.nan)
        col[at] = v
        new_extras[k] = col
    new_extras["solve_filled"] = np.where(np.isin(frames, filled), 1.0, 0.0)
    pts = traj.points
    if pts is not None and pts.visibility is not None:  # a filled frame sees what its nearest solved frame saw
        near = np.abs(frames[:, None] - traj.frames[None, :]).argmin(axis=1)
        pts = SparsePoints(pts.xyz, pts.rgb, [pts.visibility[i] for i in near])
    completed = traj.replace(frames=frames, c2w=c2w, intrinsics=K, extras=new_extras, points=pts)
    return SolveGaps(completed, [int(f) for f in filled], [int(f) for f in uncovered])


def frame_ranges(frames: list[int], most: int = 8) -> str:
    """``[3, 4, 5, 9]`` -> ``"3-5, 9"`` (sorted frame numbers; at most ``most`` runs, then an ellipsis)."""
    if not frames:
        return "none"
    parts, start, prev = [], frames[0], frames[0]
    for f in [*frames[1:], None]:
        if f is not None and f - prev == 1:
            prev = f
            continue
        parts.append(str(start) if start == prev else f"{start}-{prev}")
        if f is not None:
            start = prev = f
    return ", ".join(parts[:most]) + (" …" if len(parts) > most else "")
