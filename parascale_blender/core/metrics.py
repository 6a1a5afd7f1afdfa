"""Trajectory and parallax metrics: PCE, RotErr, TransErr, CamMC, ATE, RPE.

Conventions:

* A track is a :class:`~.camera.Trajectory` or an (N,4,4) array of camera-to-world poses with
  OpenCV camera axes. ``est`` is the track under test (generated, re-estimated, rescaled),
  ``gt`` the reference; both must have the same number of frames, paired by index
  (:func:`match_frames` pairs two Trajectories by frame number first).
* RotErr / TransErr / CamMC follow the camera-control literature: both tracks are first made
  relative to their frame 0 (``c2w_0^-1 c2w_j``), then summed over frames. Angles are radians.
  ``"relative"`` normalisation divides each track by its own largest camera-centre distance from
  frame 0; ``"absolute"`` multiplies each by its metric scale (``est_scale``, ``gt_scale``) and
  divides both by the ground truth's largest distance; ``"none"`` uses raw units.
  A track whose centres never leave frame 0 is left unscaled (its translations are all zero).
* ATE aligns the estimated camera centres onto the reference ones (Umeyama, ``sim3`` / ``se3``
  / ``none``) and reports centre distances in ``gt`` units. When the centre cross-covariance is
  rank-deficient (a pure dolly: collinear centres; a tripod shot: static centres) the rotation
  about the unresolved axes is taken from the camera orientations, so the result stays defined.
* RPE compares relative motions over ``delta`` frames: ``E = (Q_i^-1 Q_j)^-1 (P_i^-1 P_j)``.
* Per-step parallax arrays have length N with index t the step t-1 → t; index 0 is NaN.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .camera import Trajectory, invert_rigid, relative_to_first
from .rotation import nearest_rotation, rotation_defects

TrackLike = Trajectory | np.ndarray
NORMALISATIONS = ("relative", "absolute", "none")
ALIGNMENTS = ("sim3", "se3", "none")
_RANK_TOL = 1e-9


# ----------------------------------------------------------------------------- inputs
def poses_of(track: TrackLike, name: str = "track") -> tuple[np.ndarray, np.ndarray]:
    """(c2w (N,4,4) float64, frame numbers (N,)) of a Trajectory or c2w array; ValueError if malformed."""
    if isinstance(track, Trajectory):
        c2w, frames = track.c2w, track.frames
    else:
        c2w = np.asarray(track, dtype=np.float64)
        if c2w.ndim != 3 or c2w.shape[1:] != (4, 4):
            raise ValueError(f"{name}: expected camera-to-world poses of shape (N, 4, 4), got {c2w.shape}")
        frames = np.arange(len(c2w))
    if len(c2w) == 0:
        raise ValueError(f"{name}: the track has no frames")
    bad = ~np.isfinite(c2w).all(axis=(1, 2))
    if bad.any():
        raise ValueError(f"{name}: frame {frames[np.argmax(bad)]}: pose has non-finite values")
    defects = rotation_defects(c2w[:, :3, :3])
    if defects:
        i, why = defects[0]
        raise ValueError(f"{name}: frame {frames[i]}: rotation {why}")
    return c2w, frames


def _pair(est: TrackLike, gt: TrackLike) -> tuple[np.ndarray, np.ndarray]:
    P, _ = poses_of(est, "est")
    Q, _ = poses_of(gt, "gt")
    if len(P) != len(Q):
        raise ValueError(f"est has {len(P)} frames but gt has {len(Q)}; pair them first (match_frames)")
    return P, Q


def match_frames(est: Trajectory, gt: Trajectory) -> tuple[Trajectory, Trajectory]:
    """Both tracks restricted to their common frame numbers (unchanged when already equal)."""
    if len(est) == len(gt) and np.array_equal(est.frames, gt.frames):
        return est, gt
    common, ie, ig = np.intersect1d(est.frames, gt.frames, return_indices=True)
    if len(common) < 2:
        if len(est) == len(gt):
            return est, gt  # different numbering (e.g. 0- vs 1-based) but same length: pair by index
        raise ValueError(
            f"est ({len(est)} frames, {est.frames[0]}..{est.frames[-1]}) and gt ({len(gt)} frames, "
            f"{gt.frames[0]}..{gt.frames[-1]}) share fewer than 2 frame numbers"
        )
    sub = {"extras": {}, "points": None}
    return (
        est.replace(frames=common, c2w=est.c2w[ie], intrinsics=est.intrinsics[ie], **sub),
        gt.replace(frames=common, c2w=gt.c2w[ig], intrinsics=gt.intrinsics[ig], **sub),
    )


# ----------------------------------------------------------------------------- PCE
def pce_per_step(pi_realized: np.ndarray, pi_ref: np.ndarray) -> np.ndarray:
    """|ln(Π_realized,t / Π_ref,t)| per step; NaN where either value is missing, non-finite or <= 0."""
    a = np.asarray(pi_realized, dtype=np.float64).reshape(-1)
    b = np.asarray(pi_ref, dtype=np.float64).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"pi_realized has {a.size} steps but pi_ref has {b.size}")
    ok = np.isfinite(a) & np.isfinite(b) & (a > 0) & (b > 0)
    out = np.full(a.shape, np.nan)
    out[ok] = np.abs(np.log(a[ok]) - np.log(b[ok]))
    return out


def pce(pi_realized: np.ndarray, pi_ref: np.ndarray, strict: bool = True) -> float:
    """Parallax Consistency Error: mean over usable steps of |ln(Π_realized / Π_ref)| (scale-symmetric).

    With no usable step: ValueError when ``strict``, else NaN.
    """
    per = pce_per_step(pi_realized, pi_ref)
    usable = np.isfinite(per)
    if not usable.any():
        if not strict:
            return float("nan")
        raise ValueError(f"PCE: none of the {per.size} steps has a finite, positive Π in both arrays")
    return float(per[usable].mean())


# ----------------------------------------------------------------------------- RotErr / TransErr / CamMC
def geodesic_angle(R: np.ndarray) -> np.ndarray:
    """Rotation angle in radians of (…,3,3) rotations: atan2(sin, cos), accurate near 0 and π alike.

    Equals the literature's ``arccos((tr R - 1) / 2)`` but keeps precision for tiny angles
    (arccos of 1 - ε loses half the digits: 1e-8 rad of noise on identical poses).
    """
    R = np.asarray(R, dtype=np.float64)
    cos = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    w = np.stack([R[..., 2, 1] - R[..., 1, 2], R[..., 0, 2] - R[..., 2, 0], R[..., 1, 0] - R[..., 0, 1]], axis=-1)
    return np.arctan2(np.linalg.norm(w, axis=-1) / 2.0, cos)


def max_centre_distance(c2w: np.ndarray) -> float:
    """Largest camera-centre distance from frame 0."""
    return float(np.linalg.norm(c2w[:, :3, 3] - c2w[0, :3, 3], axis=1).max())


def _safe_div(x: np.ndarray, d: float) -> np.ndarray:
    return x / d if d > 0 else x


def normalised_relative_pair(
    est: TrackLike, gt: TrackLike, normalisation: str = "relative", est_scale: float = 1.0, gt_scale: float = 1.0
) -> tuple[np.ndarray, np.ndarray]:
    """Both tracks relative to frame 0 with translations normalised as the module docstring says."""
    if normalisation not in NORMALISATIONS:
        raise ValueError(f"normalisation must be one of {NORMALISATIONS}, got {normalisation!r}")
    for nm, s in (("est_scale", est_scale), ("gt_scale", gt_scale)):
        if not (np.isfinite(s) and s > 0):
            raise ValueError(f"{nm} must be positive and finite, got {s}")
    P, Q = _pair(est, gt)
    P, Q = relative_to_first(P), relative_to_first(Q)
    if normalisation == "relative":
        P[:, :3, 3] = _safe_div(P[:, :3, 3], max_centre_distance(P))
        Q[:, :3, 3] = _safe_div(Q[:, :3, 3], max_centre_distance(Q))
    elif normalisation == "absolute":
        extent = max_centre_distance(Q) * gt_scale
        P[:, :3, 3] = _safe_div(P[:, :3, 3] * est_scale, extent)
        Q[:, :3, 3] = _safe_div(Q[:, :3, 3] * gt_scale, extent)
    return P, Q


def rot_err_per_frame(est: TrackLike, gt: TrackLike) -> np.ndarray:
    """Geodesic angle (radians) between the frame-0-relative rotations of est and gt, per frame."""
    P, Q = _pair(est, gt)
    P, Q = relative_to_first(P), relative_to_first(Q)
    return geodesic_angle(np.swapaxes(P[:, :3, :3], 1, 2) @ Q[:, :3, :3])


def rot_err(est: TrackLike, gt: TrackLike) -> float:
    """RotErr: sum over frames of the geodesic rotation error in radians (poses relative to frame 0)."""
    return float(rot_err_per_frame(est, gt).sum())


def trans_err(
    est: TrackLike, gt: TrackLike, normalisation: str = "relative", est_scale: float = 1.0, gt_scale: float = 1.0
) -> float:
    """TransErr: sum over frames of ||t_est - t_gt|| of the normalised frame-0-relative c2w translations."""
    P, Q = normalised_relative_pair(est, gt, normalisation, est_scale, gt_scale)
    return float(np.linalg.norm(P[:, :3, 3] - Q[:, :3, 3], axis=1).sum())


def cam_mc(
    est: TrackLike, gt: TrackLike, normalisation: str = "relative", est_scale: float = 1.0, gt_scale: float = 1.0
) -> float:
    """CamMC: sum over frames of the Frobenius norm of the difference of the normalised relative [R|t] (3x4)."""
    P, Q = normalised_relative_pair(est, gt, normalisation, est_scale, gt_scale)
    return float(np.linalg.norm((P - Q)[:, :3, :], axis=(1, 2)).sum())


# ----------------------------------------------------------------------------- alignment
@dataclass
class Alignment:
    """A similarity ``x -> scale * rotation @ x + translation`` taking est's world onto gt's.

    ``method`` says how the rotation was found: ``umeyama`` (centres span a plane or more),
    ``collinear`` (centres on a line: twist about it from the orientations), ``orientation``
    (a static or uncorrelated track: rotation from the orientations only) or ``none``.
    """

    rotation: np.ndarray = field(default_factory=lambda: np.eye(3))
    translation: np.ndarray = field(default_factory=lambda: np.zeros(3))
    scale: float = 1.0
    method: str = "none"

    def apply(self, c2w: np.ndarray) -> np.ndarray:
        """The (N,4,4) camera-to-world poses mapped by this similarity (rotations stay rotations)."""
        out = np.array(c2w, dtype=np.float64, copy=True)
        out[:, :3, :3] = self.rotation @ out[:, :3, :3]
        out[:, :3, 3] = self.scale * out[:, :3, 3] @ self.rotation.T + self.translation
        return out

    def as_dict(self) -> dict:
        return {
            "rotation": self.rotation.tolist(),
            "translation": self.translation.tolist(),
            "scale": float(self.scale),
            "method": self.method,
        }


def _axis_rotation(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Smallest rotation taking unit vector a onto unit vector b (a half-turn when opposite)."""
    v, c = np.cross(a, b), float(a @ b)
    if c < -1 + 1e-12:
        p = np.eye(3)[np.argmin(np.abs(a))]
        axis = np.cross(a, p) / np.linalg.norm(np.cross(a, p))
        return 2.0 * np.outer(axis, axis) - np.eye(3)
    K = np.array([[0, -v[2], v[1]], [v[2], 0, -v[0]], [-v[1], v[0], 0]])
    return np.eye(3) + K + K @ K / (1.0 + c)


def _twist_closest(R_a: np.ndarray, u: np.ndarray, R_o: np.ndarray) -> np.ndarray:
    """Among rotations ``Rot_u(θ) R_a`` (all map the same vector onto u) the one closest to R_o (chordal)."""
    N = R_a @ R_o.T
    K = np.array([[0, -u[2], u[1]], [u[2], 0, -u[0]], [-u[1], u[0], 0]])
    theta = np.arctan2(np.trace(N @ K), np.trace(N) - u @ N @ u)
    c, s = np.cos(theta), np.sin(theta)
    return (c * np.eye(3) + s * K + (1 - c) * np.outer(u, u)) @ R_a


def align_tracks(est: TrackLike, gt: TrackLike, mode: str = "sim3") -> Alignment:
    """Least-squares similarity (``sim3``), rigid motion (``se3``) or identity (``none``) taking est's
    camera centres onto gt's (Umeyama 1991), defined also for collinear or static centres.

    ``est`` maps onto ``gt``; with a static track the scale is undetermined and kept at 1."""
    if mode not in ALIGNMENTS:
        raise ValueError(f"align must be one of {ALIGNMENTS}, got {mode!r}")
    P, Q = _pair(est, gt)
    if mode == "none":
        return Alignment()
    x, y = P[:, :3, 3], Q[:, :3, 3]
    mx, my = x.mean(0), y.mean(0)
    xc, yc = x - mx, y - my
    sx, sy = np.sqrt((xc**2).sum(1).mean()), np.sqrt((yc**2).sum(1).mean())
    static = [s <= _RANK_TOL * max(np.linalg.norm(m), s) or s == 0 for s, m in ((sx, mx), (sy, my))]
    sigma = yc.T @ xc / len(x)
    U, D, Vt = np.linalg.svd(sigma)
    rank = 0 if any(static) else int(np.count_nonzero(D / (sx * sy) > _RANK_TOL))
    # Chordal mean of the orientation differences gt_i est_i^T: resolves what the centres cannot.
    R_o = nearest_rotation(np.einsum("nij,nkj->ik", Q[:, :3, :3], P[:, :3, :3]))
    if rank >= 2:
        S = np.diag([1.0, 1.0, np.sign(np.linalg.det(U) * np.linalg.det(Vt))])
        R, method = U @ S @ Vt, "umeyama"
    elif rank == 1:
        u, v = U[:, 0], Vt[0]
        R, method = _twist_closest(_axis_rotation(v, u), u, R_o), "collinear"
    else:
        R, method = R_o, "orientation"
    scale = 1.0
    if mode == "sim3" and not any(static):
        # Least-squares scale for this rotation (Umeyama's tr(DS)/σx² when rank >= 2); never negative.
        # A static track leaves the scale undetermined (least squares would collapse it): kept at 1.
        scale = max(float(np.einsum("ij,ij->", yc, xc @ R.T)) / (sx**2 * len(x)), 0.0)
    return Alignment(rotation=R, translation=my - scale * R @ mx, scale=scale, method=method)


# ----------------------------------------------------------------------------- ATE / RPE
def _stats(e: np.ndarray) -> dict[str, float]:
    return {
        "rmse": float(np.sqrt(np.mean(e**2))),
        "mean": float(e.mean()),
        "median": float(np.median(e)),
        "max": float(e.max()),
    }


@dataclass
class AteResult:
    """Absolute trajectory error: per-frame centre distances after alignment, in gt units."""

    errors: np.ndarray
    alignment: Alignment
    rmse: float
    mean: float
    median: float
    max: float

    def as_dict(self) -> dict:
        return {**_stats(self.errors), "alignment": self.alignment.as_dict()}


def ate(est: TrackLike, gt: TrackLike, align: str = "sim3") -> AteResult:
    """ATE of the camera centres after ``align`` (``sim3`` | ``se3`` | ``none``)."""
    al = align_tracks(est, gt, align)
    P, Q = _pair(est, gt)
    e = np.linalg.norm(al.apply(P)[:, :3, 3] - Q[:, :3, 3], axis=1)
    return AteResult(errors=e, alignment=al, **_stats(e))


@dataclass
class RpeResult:
    """Relative pose error over ``delta``-frame pairs: translation (gt units) and rotation (radians)."""

    delta: int
    trans_errors: np.ndarray
    rot_errors: np.ndarray
    alignment: Alignment

    @property
    def trans_rmse(self) -> float:
        return float(np.sqrt(np.mean(self.trans_errors**2)))

    @property
    def trans_mean(self) -> float:
        return float(self.trans_errors.mean())

    @property
    def rot_rmse(self) -> float:
        return float(np.sqrt(np.mean(self.rot_errors**2)))

    @property
    def rot_mean(self) -> float:
        return float(self.rot_errors.mean())

    def as_dict(self) -> dict:
        return {
            "delta": self.delta,
            "pairs": int(self.trans_errors.size),
            "trans_rmse": self.trans_rmse,
            "trans_mean": self.trans_mean,
            "rot_rmse": self.rot_rmse,
            "rot_mean": self.rot_mean,
            "scale": float(self.alignment.scale),
        }


def rpe(est: TrackLike, gt: TrackLike, delta: int = 1, align: str = "none") -> RpeResult:
    """RPE over every overlapping frame pair (i, i+delta), i = 0..N-1-delta.

    ``align="sim3"`` first brings est to gt's scale (a rigid alignment alone does not change RPE)."""
    P, Q = _pair(est, gt)
    if not (isinstance(delta, int | np.integer) and 1 <= delta < len(P)):
        raise ValueError(f"RPE delta must be an integer in [1, {len(P) - 1}] for {len(P)} frames, got {delta!r}")
    al = align_tracks(est, gt, align)
    P = al.apply(P)
    rel_p = invert_rigid(P[:-delta]) @ P[delta:]
    rel_q = invert_rigid(Q[:-delta]) @ Q[delta:]
    E = invert_rigid(rel_q) @ rel_p
    return RpeResult(
        delta=int(delta),
        trans_errors=np.linalg.norm(E[:, :3, 3], axis=1),
        rot_errors=geodesic_angle(E[:, :3, :3]),
        alignment=al,
    )


# ----------------------------------------------------------------------------- summary
def summary(
    est: TrackLike,
    gt: TrackLike,
    pi_ref: np.ndarray | None = None,
    pi_realized: np.ndarray | None = None,
    est_scale: float = 1.0,
    gt_scale: float = 1.0,
    delta: int = 1,
) -> dict:
    """All metrics as a JSON-able dict (the ``parascale metrics`` report).

    Trajectories are paired by frame number (:func:`match_frames`). ``*_absolute`` assume both
    tracks in metric units times ``est_scale`` / ``gt_scale``. PCE is included when both Π arrays
    are given (per frame, index 0 NaN), with the number of usable steps (``pce`` is None when none is).
    """
    if isinstance(est, Trajectory) and isinstance(gt, Trajectory):
        est, gt = match_frames(est, gt)
    P, _ = _pair(est, gt)
    out: dict = {"frames": len(P)}
    if pi_ref is not None and pi_realized is not None:
        per = pce_per_step(pi_realized, pi_ref)
        usable = np.isfinite(per)
        out["pce"] = float(per[usable].mean()) if usable.any() else None  # None: no usable step
        out["pce_steps"] = int(usable.sum())
    rot = rot_err_per_frame(est, gt)
    out["rot_err"] = float(rot.sum())
    out["rot_err_deg"] = float(np.degrees(rot.sum()))
    for norm in ("relative", "absolute"):
        out[f"trans_err_{norm}"] = trans_err(est, gt, norm, est_scale, gt_scale)
        out[f"cam_mc_{norm}"] = cam_mc(est, gt, norm, est_scale, gt_scale)
    out["ate_sim3"] = ate(est, gt, "sim3").as_dict()
    out["ate_se3"] = ate(est, gt, "se3").as_dict()
    if len(P) > delta:
        out["rpe"] = rpe(est, gt, delta).as_dict()
        out["rpe_sim3"] = rpe(est, gt, delta, align="sim3").as_dict()
    return out
