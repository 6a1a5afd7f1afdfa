"""Movie Clip camera solve -> reference Trajectory (cameras + bundles + per-frame marker visibility).

``reconstruction.cameras[i].matrix`` is camera-to-world in Blender camera axes (-Z forward, +Y up);
the solve's scale is arbitrary, which is fine: Π is gauge-invariant. Clip frame numbers are
mapped to scene frames (``frame_start`` and ``frame_offset``). Intrinsics come from the tracking
camera: focal length and principal point in pixels (principal point origin bottom-left). Each
solved camera's ``average_error`` (pixels) is ``extras['solve_error_px']``; :func:`tried_frames`
are the scene frames the solve covered or dropped.
"""

from __future__ import annotations

import numpy as np

from ..core.camera import SparsePoints, Trajectory, opencv_from_blender


class ClipError(ValueError):
    """The clip cannot serve as a reference (no valid solve, too few cameras...)."""


def scene_frame(clip, clip_frame: np.ndarray) -> np.ndarray:
    return np.asarray(clip_frame) + clip.frame_start - 1 - clip.frame_offset


def tried_frames(clip, count: int = 0) -> np.ndarray:
    """Scene frames of the clip's first ``count`` frames (0: all of them): what a solve could cover."""
    n = clip.frame_duration if count <= 0 else min(count, clip.frame_duration)
    return scene_frame(clip, np.arange(1, n + 1))


def trajectory_from_clip(clip) -> Trajectory:
    """The solved camera of ``clip`` (its active tracking object must be the camera)."""
    tracking = clip.tracking
    rec = tracking.reconstruction
    if not rec.is_valid or len(rec.cameras) == 0:
        raise ClipError(f"clip {clip.name!r}: no valid camera solve; track features and Solve Camera Motion first")
    if len(rec.cameras) < 2:
        raise ClipError(f"clip {clip.name!r}: the solve has a single camera; a move needs at least two")
    clip_frames = np.array([c.frame for c in rec.cameras], dtype=np.int64)
    c2w_bl = np.array([np.array(c.matrix) for c in rec.cameras])
    c2w_bl[:, :3, :3] /= np.linalg.norm(c2w_bl[:, :3, :3], axis=1, keepdims=True)
    W, H = int(clip.size[0]), int(clip.size[1])
    if W <= 0 or H <= 0:
        raise ClipError(f"clip {clip.name!r}: the movie could not be read (size {W}x{H})")
    cam = tracking.camera
    f = float(cam.focal_length_pixels)
    ppx, ppy = (float(v) for v in cam.principal_point_pixels)
    K = np.array([f, f * float(cam.pixel_aspect), ppx, H - ppy])
    # Bundles with the frames each is seen on (non-muted markers).
    tracks = [t for t in tracking.tracks if t.has_bundle]
    xyz = np.array([tuple(t.bundle) for t in tracks], dtype=np.float64).reshape(-1, 3)
    vis = []
    for cf in clip_frames:
        idx = []
        for j, t in enumerate(tracks):
            m = t.markers.find_frame(int(cf))
            if m is not None and not m.mute:
                idx.append(j)
        vis.append(np.array(idx, dtype=np.int64))
    frames = scene_frame(clip, clip_frames)
    return Trajectory(
        frames,
        opencv_from_blender(c2w_bl),
        K,
        W,
        H,
        fps=float(clip.fps) if clip.fps else 24.0,
        points=SparsePoints(xyz, None, vis) if len(xyz) else None,
        extras={"solve_error_px": np.array([c.average_error for c in rec.cameras], dtype=np.float64)},
        metadata={"source": f"movie clip {clip.name}", "solve_error_px": float(rec.average_error)},
    )
