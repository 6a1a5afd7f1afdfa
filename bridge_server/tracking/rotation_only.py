"""Tripod shots: a camera that only rotates (or stands still), tracked from homographies.

When SfM cannot start because every frame pair is a homography (a pan/tilt on a tripod) or the
image does not move at all, the move is still valid: zero translation, the rotation as shot.
Corners are tracked frame to frame with Lucas-Kanade (OpenCV), each step's homography is fitted
by RANSAC and, for a pure rotation, ``H = K R K⁻¹``: ``R = K⁻¹ H K`` projected onto SO(3). An
unknown focal length is the one that makes those matrices most nearly rotations (a 1-D search).
The result is kept only if the rotations also explain distant frame pairs (:func:`wide_residual`):
a camera that moved fails there, and SfM's own failure stands.
Poses are c2w with OpenCV axes, the first frame the identity; ``extras['solve_error_px']`` is each
step's median homography residual.
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import Trajectory, make_c2w
from parascale_blender.core.rotation import nearest_rotation

from .errors import TrackingError
from .video import DecodedVideo

MIN_CORNERS = 30
MAX_WIDE_RESIDUAL = 0.004  # of the image diagonal: a rotation that leaves more over wide pairs is parallax


def _step_homographies(images: list[np.ndarray]) -> tuple[list[np.ndarray], np.ndarray]:
    """Homography (frame t-1 → t, pixels of the decoded images) per step and its median residual."""
    import cv2

    grey = [cv2.cvtColor(im, cv2.COLOR_RGB2GRAY) for im in images]
    Hs, err = [], []
    for a, b in zip(grey[:-1], grey[1:]):
        p0 = cv2.goodFeaturesToTrack(a, maxCorners=600, qualityLevel=0.01, minDistance=6)
        if p0 is None or len(p0) < MIN_CORNERS:
            raise TrackingError("too few corners to track a tripod move (textureless or dark frames)", kind="matches")
        p1, ok, _ = cv2.calcOpticalFlowPyrLK(a, b, p0, None, winSize=(21, 21), maxLevel=3)
        good = ok.ravel() == 1
        if good.sum() < MIN_CORNERS:
            raise TrackingError("corners lost between frames: the clip cuts or moves too fast", kind="matches")
        H, inl = cv2.findHomography(p0[good], p1[good], cv2.RANSAC, 1.0)
        if H is None:
            raise TrackingError("no homography between consecutive frames", kind="matches")
        proj = cv2.perspectiveTransform(p0[good], H)
        Hs.append(H / np.cbrt(np.linalg.det(H)))
        err.append(float(np.median(np.linalg.norm((proj - p1[good]).reshape(-1, 2), axis=1))))
    return Hs, np.array(err)


def _rotations(Hs: list[np.ndarray], K: np.ndarray) -> np.ndarray:
    """``K⁻¹ H K`` per step (not yet projected onto SO(3))."""
    Ki = np.linalg.inv(K)
    return np.array([Ki @ H @ K for H in Hs])


def _focal(Hs: list[np.ndarray], width: int, height: int) -> float:
    """The focal length (pixels) that makes ``K⁻¹ H K`` closest to rotations; a 35 mm-equivalent
    guess when the steps turn too little to tell."""
    guess = float(width)
    if max(np.linalg.norm(H - np.eye(3)) for H in Hs) < 1e-3:
        return guess

    def cost(f: float) -> float:
        K = np.array([[f, 0, width / 2], [0, f, height / 2], [0, 0, 1.0]])
        M = _rotations(Hs, K)
        return float(np.sum((np.swapaxes(M, 1, 2) @ M - np.eye(3)) ** 2))

    grid = np.geomspace(0.25 * width, 6.0 * width, 200)
    f = grid[int(np.argmin([cost(g) for g in grid]))]
    for step in (1.02, 1.005, 1.001):  # refine around the best grid point
        cand = f * step ** np.arange(-12, 13)
        f = cand[int(np.argmin([cost(c) for c in cand]))]
    return float(f)


def wide_residual(images: list[np.ndarray], c2w: np.ndarray, K: np.ndarray, samples: int = 6) -> float:
    """Median pixel residual of the rotation-only model between frame 0 and up to ``samples`` later
    frames (corners tracked directly, forward-backward checked): small for a tripod, large when the
    camera moved (near and far points part ways)."""
    import cv2

    g0 = cv2.cvtColor(images[0], cv2.COLOR_RGB2GRAY)
    p0 = cv2.goodFeaturesToTrack(g0, maxCorners=600, qualityLevel=0.01, minDistance=6)
    worst = 0.0
    if p0 is None:
        return worst
    Ki = np.linalg.inv(K)
    for k in np.unique(np.linspace(1, len(images) - 1, min(samples, len(images) - 1)).round().astype(int)):
        gk = cv2.cvtColor(images[k], cv2.COLOR_RGB2GRAY)
        pk, ok, _ = cv2.calcOpticalFlowPyrLK(g0, gk, p0, None, winSize=(21, 21), maxLevel=3)
        back, ok2, _ = cv2.calcOpticalFlowPyrLK(gk, g0, pk, None, winSize=(21, 21), maxLevel=3)
        good = (ok.ravel() == 1) & (ok2.ravel() == 1) & (np.linalg.norm((back - p0).reshape(-1, 2), axis=1) < 0.5)
        if good.sum() < MIN_CORNERS:
            continue  # the view has turned away from frame 0
        H = K @ c2w[k, :3, :3].T @ Ki  # frame 0 pixels -> frame k pixels under the rotation
        pred = cv2.perspectiveTransform(p0[good], H)
        worst = max(worst, float(np.median(np.linalg.norm((pred - pk[good]).reshape(-1, 2), axis=1))))
    return worst


def track_rotation_only(video: DecodedVideo, intrinsics: tuple | None, source: str, metadata: dict) -> Trajectory:
    """The tripod track of ``video`` (``intrinsics`` in decoded pixels, or None: estimated)."""
    h, w = video.images[0].shape[:2]
    Hs, err = _step_homographies(video.images)
    if intrinsics is not None:
        fx, fy, cx, cy = intrinsics
        f_note = "given"
    else:
        fx = fy = _focal(Hs, w, h)
        cx, cy = w / 2.0, h / 2.0
        f_note = "estimated from the homographies"
    K = np.array([[fx, 0, cx], [0, fy, cy], [0, 0, 1.0]])
    R_step = nearest_rotation(_rotations(Hs, K))  # camera t-1 coordinates -> camera t coordinates
    R = [np.eye(3)]
    for Rs in R_step:
        R.append(R[-1] @ Rs.T)  # c2w_t = c2w_{t-1} · R_stepᵀ
    c2w = make_c2w(np.array(R), np.zeros((len(R), 3)))
    residual = wide_residual(video.images, c2w, K)
    if residual > MAX_WIDE_RESIDUAL * float(np.hypot(w, h)):
        raise TrackingError(
            f"{source}: not a tripod shot either: a pure rotation leaves {residual:.1f} px between distant frames",
            kind="parallax",
        )
    turn = float(np.degrees(np.arccos(np.clip((np.trace(R[-1]) - 1) / 2, -1, 1))))
    meta = {
        "source": source,
        "tracker": "rotation only (tripod): OpenCV homographies",
        "intrinsics": f_note,
        "tripod": "stationary" if turn < 0.05 else "rotation only",
        "interpolated_frames": [],
        **metadata,
    }
    K_video = np.array([fx, fy, cx, cy]) / video.scale
    errors = np.concatenate([[np.nan], err / video.scale])  # the step into frame t, on frame t
    return Trajectory(
        video.frames, c2w, K_video, video.width, video.height, fps=video.fps,
        extras={"solve_error_px": errors}, metadata=meta,
    )  # fmt: skip
