"""SfM result → ParaScale :class:`Trajectory` with sparse points and per-frame visibility.

Gauge: the first registered frame is the identity pose and the world unit is the median depth of
the points that frame sees (Π is gauge-invariant, so only relative poses and depths matter).
Unregistered frames get poses interpolated by :meth:`Trajectory.resampled` and the visibility
of the nearest registered frame; they are listed in ``metadata["interpolated_frames"]``. Each
registered frame's mean reprojection error (pixels of the video) is ``extras["solve_error_px"]``
(NaN on interpolated frames).
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import SparsePoints, Trajectory, invert_rigid
from parascale_blender.core.solve_gaps import frame_ranges

from .errors import TrackingError
from .reconstruct import SfmResult
from .video import DecodedVideo

STATIC_BASELINE = 0.005  # camera travel below this fraction of the median scene depth = no move


def to_trajectory(
    sfm: SfmResult, video: DecodedVideo, source: str = "", min_registered: float = 0.5, metadata: dict | None = None
) -> Trajectory:
    """Build the output track; raises :class:`TrackingError` when too few frames registered."""
    n = len(video.frames)
    reg = np.flatnonzero(sfm.registered)
    if len(reg) < max(2, int(np.ceil(min_registered * n))):
        missing = [int(f) for f in video.frames[~sfm.registered]]
        raise TrackingError(
            f"{source}: only {len(reg)} of {n} frames could be placed by the reconstruction "
            f"(unplaced frames {frame_ranges(missing)}); the clip may cut, blur, or move too fast. "
            "Try a smaller --every, or track a shorter range with --max-frames.",
            kind="registration",
        )
    c2w = invert_rigid(sfm.w2c[reg])
    anchor = invert_rigid(c2w[0])
    c2w = anchor @ c2w
    xyz = sfm.xyz @ anchor[:3, :3].T + anchor[:3, 3]
    first_seen = sfm.visibility[reg[0]]
    z = xyz[first_seen, 2] if len(first_seen) else xyz[:, 2]
    z = z[z > 0]
    unit = float(np.median(z)) if len(z) else 1.0
    c2w[:, :3, 3] /= unit
    xyz = xyz / unit

    K = np.asarray(sfm.intrinsics, float) / video.scale
    keys = Trajectory(video.frames[reg], c2w, K, video.width, video.height, fps=video.fps)
    track = keys if len(reg) == n else keys.resampled(video.frames)
    nearest = reg[np.abs(np.arange(n)[:, None] - reg[None, :]).argmin(axis=1)]
    visibility = [sfm.visibility[j] for j in nearest]
    interpolated = [int(f) for f in video.frames[~sfm.registered]]

    travel = float(np.linalg.norm(track.centres - track.centres[0], axis=1).max())
    meta = {
        "source": source,
        "registered_frames": int(len(reg)),
        "interpolated_frames": interpolated,
        "gauge": "first registered frame = identity; unit = median depth of its points",
        "travel_over_depth": travel,
        "mean_reprojection_error_px": sfm.mean_reprojection_error / video.scale,
        "distortion": sfm.extra_params,
        **(metadata or {}),
    }
    if travel < STATIC_BASELINE:
        raise TrackingError(
            f"{source}: static camera: the camera centre moves {travel:.2%} of the scene depth at most; "
            "there is no translation to transfer (Π is zero for this clip).",
            kind="static",
        )
    rgb = sfm.rgb if len(sfm.rgb) == len(xyz) else None
    points = SparsePoints(xyz=xyz, rgb=rgb, visibility=visibility)
    extras = {} if sfm.errors_px is None else {"solve_error_px": np.asarray(sfm.errors_px, float) / video.scale}
    return track.replace(points=points, metadata=meta, extras=extras)
