"""Π rescaling: move a reference camera's motion into a target scene of another scale.

The reference's relative motion is placed at the target's start pose. Rotation is copied
exactly (R_target,t = R_start · R_ref,0ᵀ · R_ref,t). Each translation step d_t (in camera t-1's
axes) is scaled by α_t = Π_ref,t / Π_target,t(d_t), where Π_target is measured from the
*target's own* pose t-1 in the target scene, so poses are built one step at a time.

Modes: ``exact`` (default), ``harmonic`` (the paper's Π, exact for sideways steps), ``flow`` and
``arithmetic`` give a per-step α under that parallax measure (see :mod:`.parallax`); ``exact``, the
mean translational image motion, solves for α by a bracketed search (a backward step whose bounded
motion cannot reach Π_ref stops at a finite α: ``unreachable_frames``);
``global`` (one α for the whole shot from the mean inverse depths at frame 0) and ``none``
(the raw relative track, α = 1, in reference units).

Collisions: in every mode but ``none``, a step that would reach the target geometry on its path, in
any direction (see :mod:`.collision`), is shortened to close at most half the distance
(``capped_frames``).

Special cases: a rotation-only or stationary reference (a tripod shot; every step zero) is a valid
move: the target keeps its start position exactly and copies the rotation, no depth is read, and
``info`` says so; a zero step stays zero (α reported but irrelevant); a step whose reference view
has no depth gets α interpolated log-linearly from its neighbours (listed in
``interpolated_frames``); a target view that sees no geometry at all is an error naming the frame.

Zoom: ``target_zoom`` (N,) keys the target's focal length per frame as ``target_zoom[t]`` × the
target camera's (e.g. the reference's fx[t]/fx[0], to transfer its zoom); the target's Π of step t
is then measured with its intrinsics at frame t-1 and the track carries the per-frame intrinsics.

Speed (options, off by default): ``view_every`` renders a target view every k poses and re-projects
it between (:mod:`.view_reuse`); ``solve_every`` measures α on every k-th step only and holds it for
the steps between (their Π series are NaN): a coarse preview (the live re-rescale's first pass). The
reference's Π is cached across runs (:func:`reference_parallax`).

Sky: ``allow_sky`` (default on) counts the pixels a source knows to be sky (see :mod:`.depth`) as
1/Z = 0, i.e. as not moving, which is what the eye sees; off, they are left out of Π on both sides
(and a warning says how much was left out). Unknown pixels (a cloud's gaps, SfM) never count.

What the result reports: ``solver_residual`` is the solver's own PCE on the depth it was given (≈0
unless a cap acted); :attr:`RescaleResult.checks` holds what the solver did not write: the target's
known coverage per frame against frame 0's, the shortened and unreachable steps, and what the
reference depth is and what that means for accuracy.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from .camera import Camera, Trajectory, make_c2w
from .collision import APPROACH_LIMIT, PathGuard
from .depth import DEFAULT_WORKING_SIZE, DepthSource
from .metrics import pce
from .parallax import ParallaxProbe
from .rotation import rotation_angle
from .view_reuse import ViewReuse

MODES = ("exact", "harmonic", "flow", "arithmetic", "global", "none")
PER_STEP = ("exact", "harmonic", "flow", "arithmetic")
FOV_MATCH = ("angular", "frame")
# A live preview's two passes (options over the Rescale's own; blender.live, the bench's rescale section
# measures their time and oracle PCE): while dragging, 48 px and α measured every 6th step, held between;
# settled, 80 px and every step.
PREVIEW_COARSE = {"working_size": 48, "view_every": 1, "solve_every": 6}
PREVIEW_REFINED = {"working_size": 80, "view_every": 1, "solve_every": 1}
SKY_WARNING = 0.01  # warn when more than this fraction of a view is sky and sky is not allowed
COVERAGE_DROP = 0.5  # warn when the target's known coverage falls below this share of frame 0's


class RescaleError(ValueError):
    """The rescale cannot be done as asked (the message names the frame and what to change)."""


@dataclass
class RescaleOptions:
    """How to rescale. Defaults are the product's defaults (artist options off)."""

    mode: str = "exact"
    working_size: int = DEFAULT_WORKING_SIZE
    allow_sky: bool = True
    fov_match: str = "angular"
    smooth: int = 0
    clamp_ratio: float | None = None
    progress: Callable[[float, float], None] | None = None
    view_every: int = 1  # render a target view every this many poses, re-projected between (see .view_reuse)
    solve_every: int = 1  # measure α on every k-th step only, holding it between (a coarse preview)
    gradient: bool = False  # record ∂Π/∂step per step (RescaleResult.pi_gradient, for step_parallax's near=)

    def validate(self) -> None:
        if self.mode not in MODES:
            raise RescaleError(f"mode must be one of {', '.join(MODES)}; got {self.mode!r}")
        if self.fov_match not in FOV_MATCH:
            raise RescaleError(f"fov_match must be one of {', '.join(FOV_MATCH)}; got {self.fov_match!r}")
        if not (8 <= self.working_size <= 4096):
            raise RescaleError(f"working_size must be within 8..4096 pixels; got {self.working_size}")
        if self.smooth < 0:
            raise RescaleError(f"smooth must be >= 0 steps; got {self.smooth}")
        if not (1 <= self.solve_every <= 64):
            raise RescaleError(f"solve_every must be within 1..64 steps; got {self.solve_every}")
        if not (1 <= self.view_every <= 64):
            raise RescaleError(f"view_every must be within 1..64 poses; got {self.view_every}")
        if self.clamp_ratio is not None and not self.clamp_ratio >= 1.0:
            raise RescaleError(f"clamp_ratio must be >= 1 (a factor around the median α); got {self.clamp_ratio}")

    @property
    def measure(self) -> str:
        return self.mode if self.mode in PER_STEP else "harmonic"


@dataclass
class RescaleResult:
    """Per-frame arrays (length N, index t = step t-1 → t, index 0 NaN) and the target track.

    ``pi_target`` is the target's Π of the unscaled reference step (for ``exact``, to first order:
    its ``flow`` Π, since exact Π is not proportional to the step); ``pi_realized`` is the Π of the
    step taken, in the mode's measure, on the target depth given; ``coverage`` the target view's
    known coverage (depth or sky) from each pose t-1 (index 0 NaN)."""

    trajectory: Trajectory
    pi_ref: np.ndarray
    pi_target: np.ndarray
    pi_realized: np.ndarray
    alpha: np.ndarray
    mode: str
    interpolated_frames: list[int] = field(default_factory=list)
    zero_step_frames: list[int] = field(default_factory=list)
    capped_frames: list[int] = field(default_factory=list)
    unreachable_frames: list[int] = field(default_factory=list)
    solver_iterations: int = 0
    warnings: list[str] = field(default_factory=list)
    info: list[str] = field(default_factory=list)  # notes that are not warnings (a tripod reference)
    coverage: np.ndarray | None = None
    checks: dict = field(default_factory=dict)
    pi_gradient: np.ndarray | None = None  # (N, 3): ∂Π/∂step at each step taken (see step_parallax's ``near``)

    @property
    def solver_residual(self) -> float:
        """The solver's residual: PCE of the realized Π against the reference's, both measured on the
        depth the solver was given (≈0 unless a step was capped). It says nothing of that depth's
        truth: see :attr:`checks`."""
        return pce(self.pi_realized, self.pi_ref, strict=False)

    @property
    def steps(self) -> np.ndarray:
        """(N, 3) the steps taken, each in camera t-1's axes (index 0 zero)."""
        c2w = self.trajectory.c2w
        d = np.einsum("nji,nj->ni", c2w[:-1, :3, :3], c2w[1:, :3, 3] - c2w[:-1, :3, 3])
        return np.concatenate([np.zeros((1, 3)), d])

    @property
    def scale_range(self) -> tuple[float, float]:
        a = self.alpha[np.isfinite(self.alpha)]
        return (float(a.min()), float(a.max())) if a.size else (float("nan"), float("nan"))


LINEAR_SHARE = 1e-4  # step_parallax(near=...): poses and steps within this share of the step length ...
LINEAR_ANGLE = 1e-6  # ... and rotations within this many radians are re-measured to first order


def step_parallax(
    c2w: np.ndarray,
    target_depth: DepthSource,
    camera: Camera,
    options: RescaleOptions | None = None,
    zoom: np.ndarray | None = None,
    near: RescaleResult | None = None,
) -> np.ndarray:
    """Π of each step of the poses ``c2w`` (N,4,4, OpenCV) in ``options``' measure, seen from pose t-1
    in ``target_depth`` at the working size (index 0 NaN): a keyed move re-measured as :func:`rescale`
    measures the move it builds (``zoom`` as its ``target_zoom``).

    ``near``: the rescale result ``c2w`` keys (its poses, Π and ∂Π/∂step per step). A step whose pose
    t-1 and step both lie within ``LINEAR_SHARE`` of its step length of the result's (rotation within
    ``LINEAR_ANGLE``) is measured to first order from the result's view, Π + ∂Π/∂step · Δstep (the
    view moved by 1e-4 of a step changes Π by ~1e-4 × step / depth, the second order ~1e-8): float32
    keys cost no views. Other steps are measured from their own views."""
    opts = options or RescaleOptions()
    c2w = np.asarray(c2w, dtype=np.float64)
    cams = _zoomed(camera, zoom, len(c2w))
    out = np.full(len(c2w), np.nan)
    views = ViewReuse(target_depth, opts.allow_sky, opts.view_every)
    linear = _linear_steps(c2w, near)
    near_steps = near.steps if linear.any() else None
    for t in range(1, len(c2w)):
        step = c2w[t - 1, :3, :3].T @ (c2w[t, :3, 3] - c2w[t - 1, :3, 3])
        if linear[t]:
            out[t] = near.pi_realized[t] + near.pi_gradient[t] @ (step - near_steps[t])
            if opts.progress:
                opts.progress(t, len(c2w) - 1)
            continue
        work = cams[t - 1].working(opts.working_size)
        probe = views.probe(c2w[t - 1], work)[0]
        out[t] = probe.parallax(step, opts.measure) * _fov_factor(cams[t - 1], opts.fov_match)
        if opts.progress:
            opts.progress(t, len(c2w) - 1)
    return out


def _linear_steps(c2w: np.ndarray, near: RescaleResult | None) -> np.ndarray:
    """(N,) bool: steps of ``c2w`` close enough to ``near``'s to be re-measured to first order."""
    n = len(c2w)
    if near is None or near.pi_gradient is None or len(near.trajectory) != n:
        return np.zeros(n, dtype=bool)
    ref = near.trajectory.c2w
    steps = np.einsum("nji,nj->ni", c2w[:-1, :3, :3], c2w[1:, :3, 3] - c2w[:-1, :3, 3])
    length = np.linalg.norm(near.steps[1:], axis=1)
    tol = LINEAR_SHARE * length
    moved = np.linalg.norm(c2w[:-1, :3, 3] - ref[:-1, :3, 3], axis=1)
    off = np.linalg.norm(steps - near.steps[1:], axis=1)
    turn = rotation_angle(np.einsum("nji,njk->nik", ref[:-1, :3, :3], c2w[:-1, :3, :3]))
    ok = (moved <= tol) & (off <= tol) & (turn <= LINEAR_ANGLE) & np.isfinite(near.pi_realized[1:])
    ok &= np.isfinite(near.pi_gradient[1:]).all(axis=1) & (length > 0)
    return np.concatenate([[False], ok])


def _zoomed(cam: Camera, zoom: np.ndarray | None, n: int) -> list[Camera]:
    """The camera per frame with its focal length times ``zoom[t]`` (principal point kept); all ``cam``
    without a zoom."""
    if zoom is None:
        return [cam] * n
    z = np.asarray(zoom, dtype=np.float64)
    if z.shape != (n,) or not (np.isfinite(z).all() and (z > 0).all()):
        raise RescaleError(f"target_zoom must be {n} finite positive factors, one per frame")
    return [Camera(cam.fx * f, cam.fy * f, cam.cx, cam.cy, cam.width, cam.height) for f in z]


def _fov_factor(cam: Camera, fov_match: str) -> float:
    """Converts angular Π (normalised image units) to the compared unit."""
    return cam.fx / cam.width if fov_match == "frame" else 1.0


def _frame_list(frames: list[int], most: int = 20) -> str:
    """Frame numbers for a warning: the first ``most``, then an ellipsis."""
    return ", ".join(map(str, frames[:most])) + (" …" if len(frames) > most else "")


def _log_interp(alpha: np.ndarray, known: np.ndarray) -> np.ndarray:
    """Fill unknown entries of ``alpha`` (index ≥ 1) by log-linear interpolation, holding at the ends."""
    idx = np.arange(len(alpha))
    k = idx[known]
    out = alpha.copy()
    fill = (~known) & (idx >= 1)
    out[fill] = np.exp(np.interp(idx[fill], k, np.log(alpha[k])))
    return out


def _smooth_log(alpha: np.ndarray, window: int) -> np.ndarray:
    """Running median of log α over ``2*window+1`` steps (index 0 untouched)."""
    a = np.log(alpha[1:])
    n = len(a)
    out = np.array([np.median(a[max(0, i - window) : i + window + 1]) for i in range(n)])
    return np.concatenate([alpha[:1], np.exp(out)])


def zero_steps(traj: Trajectory) -> np.ndarray:
    """(N-1,) bool: steps that do not move the camera (relative to the track's own extent)."""
    step_len = np.linalg.norm(np.diff(traj.centres, axis=0), axis=1)
    scale = max(float(step_len.max(initial=0.0)), float(np.abs(traj.centres).max()), 1e-300)
    return step_len <= 1e-12 * scale


def is_tripod(traj: Trajectory) -> bool:
    """True for a rotation-only or stationary track: no step moves the camera centre."""
    return len(traj) >= 2 and bool(zero_steps(traj).all())


def _tripod(ref, opts, start, R_tgt, tcams) -> RescaleResult:
    """A rotation-only / stationary reference: Π is zero at every scale, so the target holds its start
    position exactly and the rotations are copied; no depth is read (α is undefined: NaN)."""
    n = len(ref)
    c2w = np.broadcast_to(np.eye(4), (n, 4, 4)).copy()
    c2w[:, :3, :3] = R_tgt
    c2w[:, :3, 3] = start[:3, 3]
    zeros = np.concatenate([[np.nan], np.zeros(n - 1)])
    nan = np.full(n, np.nan)
    moved = rotation_angle(np.swapaxes(R_tgt[:1], 1, 2) @ R_tgt).max()
    what = "stationary" if moved < 1e-6 else f"rotation-only (up to {np.degrees(moved):.3g}°)"
    info = f"tripod reference: {what}, so the target keeps its start position and copies the rotation"
    metadata = {"tripod": True, "reference_depth": "none (tripod)", "target_depth": "none (tripod)", "checks": {}}
    return _result(ref, tcams, opts, c2w, zeros, zeros.copy(), zeros.copy(), nan, metadata,
                   zero_step_frames=[int(f) for f in ref.frames[1:]], info=[info])  # fmt: skip


def _result(ref, tcams, opts, c2w, pi_ref, pi_tgt, pi_real, alpha, metadata: dict, **fields) -> RescaleResult:
    """The target track (the target camera's intrinsics per frame, the per-step series as extras) and its result."""
    traj = Trajectory(
        frames=ref.frames,
        c2w=c2w,
        intrinsics=np.array([[c.fx, c.fy, c.cx, c.cy] for c in tcams]),
        width=tcams[0].width,
        height=tcams[0].height,
        fps=ref.fps,
        extras={"pi_ref": pi_ref, "pi_target": pi_tgt, "alpha": alpha, "pi_realized": pi_real},
        metadata={
            "mode": opts.mode,
            "measure": opts.measure,
            "interpolated_frames": fields.get("interpolated_frames", []),
            "capped_frames": fields.get("capped_frames", []),
            "unreachable_frames": fields.get("unreachable_frames", []),
            **metadata,
        },
    )
    result = RescaleResult(traj, pi_ref, pi_tgt, pi_real, alpha, opts.mode, checks=metadata["checks"], **fields)
    traj.metadata["solver_residual"] = result.solver_residual
    return result


def check_lines(checks: dict) -> list[str]:
    """The checks of a result as short lines for a report (CLI, Blender)."""
    if not checks:
        return []
    cov = checks["target_known_coverage"]
    lines = [
        f"target depth known over {cov['first']:.0%} of the first view, {cov['min']:.0%} at the least"
        + (f" (below half at {len(checks['coverage_drop_frames'])} frames)" if checks["coverage_drop_frames"] else ""),
        f"{len(checks['collision_shortened_frames'])} steps shortened before a collision, "
        f"{len(checks['unreachable_frames'])} unreachable",
        f"reference depth: {checks['reference_depth']['accuracy']}",
    ]
    if "target_vs_geometry" in checks:
        g = checks["target_vs_geometry"]
        lines.append(f"PCE of the move measured on {g['geometry']}: {g['pce']:.3g}")
    return lines


def reference_depth_note(source: DepthSource) -> dict:
    """What the reference depth is and what that means for the transfer's accuracy (the largest
    error source on real footage: the engine and the track are far more accurate)."""
    kind = source.kind
    note = {
        "geometry": "scene geometry: Π is as exact as the geometry",
        "depth maps": "per-frame depth maps: Π is as exact as the maps (an estimated map's relative error "
        "passes into Π one to one)",
        "point cloud": "a point cloud: Π is measured where it has points, its gaps are left out",
        "SfM points": f"SfM points filled {getattr(source, 'fill', 0.0):.0%} of the image around each: Π follows "
        "what was tracked (textured surfaces: an untextured or blurred near surface has no points), measured "
        "0.05-0.3 PCE from the footage's own motion on real clips",
        "subject distance": "a single subject distance: exact only for a subject at that distance filling the "
        "frame; a deep scene's error grows with its depth range",
    }.get(kind, kind)
    return {"kind": kind, "description": source.description, "accuracy": note}


REFERENCE_CACHE = 8  # reference Π series kept across re-runs (the most recent first)
_reference_cache: list[tuple[tuple, tuple, DepthSource | None]] = []


def reference_parallax(ref: Trajectory, reference_depth: DepthSource, opts: RescaleOptions):
    """(Π per step (index 0 NaN), the first view's mean inverse depth, the largest sky share of a view) of
    the reference's own steps seen in ``reference_depth`` at ``opts``' working size and measure. They do
    not depend on the target, so they are cached across re-runs (a live re-rescale, a Rescale pressed
    again): the key is the source's class and :attr:`~.depth.DepthSource.cache_key` (its content; without
    one, the source object itself, kept alive by the entry), the track's poses and intrinsics, and the
    options that change Π."""
    track = hashlib.blake2b(np.ascontiguousarray(ref.c2w).tobytes(), digest_size=16)
    track.update(np.ascontiguousarray(ref.intrinsics, dtype=np.float64).tobytes())
    track.update(f"{ref.width}x{ref.height}".encode())
    content = reference_depth.cache_key if reference_depth.cache_key is not None else ("object", id(reference_depth))
    key = (
        type(reference_depth),
        content,
        track.hexdigest(),
        opts.working_size,
        opts.measure,
        opts.fov_match,
        opts.allow_sky,
    )  # fmt: skip  (the class: a subclass may answer otherwise)
    for k, value, _ in _reference_cache:
        if k == key:
            return value[0].copy(), value[1], value[2]
    n = len(ref)
    steps = ref.steps_in_camera()
    pi_ref = np.full(n, np.nan)
    ref_inv0 = np.nan
    sky = 0.0
    same: tuple | None = None  # a pose-free source (a subject distance): one view per working camera
    for t in range(1, n):
        work = ref.camera(t - 1).working(opts.working_size)
        if reference_depth.pose_free and same is not None and same[0] == work:
            view, probe = same[1:]
        else:
            view = reference_depth.view(ref.c2w[t - 1], work, index=t - 1)
            probe = ParallaxProbe.from_view(view, allow_sky=opts.allow_sky)
            same = (work, view, probe)
        if not opts.allow_sky:
            sky = max(sky, float(view.sky_mask.mean()))
        if not probe.empty and np.isnan(ref_inv0):
            ref_inv0 = probe.mean_inverse_depth * _fov_factor(ref.camera(t - 1), opts.fov_match)
        pi_ref[t] = probe.parallax(steps[t - 1], opts.measure) * _fov_factor(ref.camera(t - 1), opts.fov_match)
    keep = reference_depth if reference_depth.cache_key is None else None  # an id stays unique while alive
    _reference_cache.insert(0, (key, (pi_ref.copy(), ref_inv0, sky), keep))
    del _reference_cache[REFERENCE_CACHE:]
    return pi_ref, ref_inv0, sky


def rescale(
    reference: Trajectory,
    reference_depth: DepthSource | None,
    target_depth: DepthSource | None,
    target_start_c2w: np.ndarray,
    target_camera: Camera | None = None,
    options: RescaleOptions | None = None,
    target_zoom: np.ndarray | None = None,
) -> RescaleResult:
    """Rescale ``reference``'s motion into the target scene; see the module docstring."""
    opts = options or RescaleOptions()
    opts.validate()
    ref = reference.validate("reference")
    n = len(ref)
    if n < 2:
        raise RescaleError("reference: the track has a single frame, so there is no camera move to transfer")
    start = np.asarray(target_start_c2w, dtype=np.float64)
    if start.shape != (4, 4) or not np.isfinite(start).all():
        raise RescaleError("target start pose must be a finite 4x4 camera-to-world matrix")
    tcam = target_camera or ref.camera(0)
    tcam.validate("target camera")
    tcams = _zoomed(tcam, target_zoom, n)  # the target's intrinsics per frame
    measure = opts.measure

    steps = ref.steps_in_camera()
    R_rel = np.swapaxes(ref.c2w[0, :3, :3], 0, 1) @ ref.c2w[:, :3, :3]
    R_tgt = start[:3, :3] @ R_rel
    zero = np.concatenate([[False], zero_steps(ref)])
    if zero[1:].all():
        return _tripod(ref, opts, start, R_tgt, tcams)
    if reference_depth is None or target_depth is None:
        raise RescaleError("the reference moves, so both a reference and a target depth are needed")

    # Reference Π per step: independent of the target, measured once (and cached across re-runs).
    pi_ref, ref_inv0, ref_sky = reference_parallax(ref, reference_depth, opts)
    sky_dropped = {"reference": ref_sky, "target": 0.0}  # the largest fraction of a view's sky left out
    missing_ref = np.concatenate([[False], ~np.isfinite(pi_ref[1:]) & ~zero[1:]])
    if missing_ref[1:].all():
        raise RescaleError(
            "reference: no frame has reference depth, so Π cannot be read; give a reference depth "
            "(a known distance, depth maps, points or a mesh)"
        )

    warnings: list[str] = []

    def integrate(alpha_fixed: np.ndarray | None, total_passes: int, pass_no: int):
        """Build target poses step by step; measure α where ``alpha_fixed`` is NaN (or None)."""
        c2w = np.empty((n, 4, 4))
        c2w[0] = make_c2w(R_tgt[0], start[:3, 3])
        alpha = np.full(n, np.nan)
        pi_tgt = np.full(n, np.nan)
        pi_real = np.full(n, np.nan)
        unusable = np.zeros(n, dtype=bool)
        capped = np.zeros(n, dtype=bool)
        unreachable = np.zeros(n, dtype=bool)
        coverage = np.full(n, np.nan)
        gradient = np.full((n, 3), np.nan)
        iterations = 0
        global_alpha = None
        guard = PathGuard(target_depth)
        views = ViewReuse(target_depth, opts.allow_sky, 1 if target_depth.per_frame else opts.view_every)
        for t in range(1, n):
            prev = c2w[t - 1]
            if opts.solve_every > 1 and (t - 1) % opts.solve_every and np.isfinite(alpha[t - 1]):
                # a coarse preview: α held from the last measured step (no view; its Π series stay NaN)
                a = alpha[t - 1] if alpha_fixed is None or not np.isfinite(alpha_fixed[t]) else alpha_fixed[t]
                if opts.mode != "none" and a > 0 and a > (limit := guard.limit(prev, steps[t - 1], a)):
                    a, capped[t] = limit, True
                alpha[t] = a
                c2w[t] = make_c2w(R_tgt[t], prev[:3, 3] + prev[:3, :3] @ (steps[t - 1] * a))
                continue
            tfac = _fov_factor(tcams[t - 1], opts.fov_match)
            probe, coverage[t], sky_share = views.probe(prev, tcams[t - 1].working(opts.working_size))
            if not opts.allow_sky:
                sky_dropped["target"] = max(sky_dropped["target"], sky_share)
            if probe.empty and opts.mode != "none":
                raise RescaleError(
                    f"target: frame {ref.frames[t - 1]} sees no depth from the target camera (no pixel has a "
                    "depth); aim the camera at the scene"
                )
            # exact Π is not homogeneous: the target's Π of the reference step is reported (and
            # checked for usability) to first order, where Π(α·d) = α·Π(d) holds
            pi_tgt[t] = probe.parallax(steps[t - 1], "flow" if measure == "exact" else measure) * tfac
            realized = None
            if alpha_fixed is not None and np.isfinite(alpha_fixed[t]):
                a = alpha_fixed[t]
            elif opts.mode == "none":
                a = 1.0
            elif opts.mode == "global":
                if global_alpha is None:
                    tinv = probe.mean_inverse_depth * tfac
                    if not tinv > 0:
                        raise RescaleError(f"target: frame {ref.frames[0]} sees only sky; cannot set a global scale")
                    global_alpha = ref_inv0 / tinv
                a = global_alpha
            elif zero[t] or missing_ref[t] or not pi_tgt[t] > 0:
                unusable[t] = not zero[t]
                a = alpha[t - 1] if t > 1 and np.isfinite(alpha[t - 1]) else np.nan
            elif measure == "exact":
                a, unreachable[t], its, realized = probe.solve_alpha(steps[t - 1], pi_ref[t] / tfac)
                iterations += its
            else:
                a = pi_ref[t] / pi_tgt[t]
            if opts.mode != "none" and np.isfinite(a) and a > 0:
                limit = guard.limit(prev, steps[t - 1], a)
                if a > limit:
                    a, capped[t], realized = limit, True, None
            alpha[t] = a
            step = steps[t - 1] * (a if np.isfinite(a) else 0.0)
            # Realized Π: measured from the final pose t-1 for the step actually taken.
            if measure != "exact":
                pi_real[t] = a * pi_tgt[t]
            else:
                pi_real[t] = (realized if realized is not None else probe.parallax(step, measure)) * tfac
            if opts.gradient:
                gradient[t] = probe.gradient(steps[t - 1], measure, a if np.isfinite(a) else 0.0) * tfac
            c2w[t] = make_c2w(R_tgt[t], prev[:3, 3] + prev[:3, :3] @ step)
            if opts.progress:
                opts.progress(pass_no - 1 + t / n, total_passes)
        return c2w, alpha, pi_tgt, pi_real, unusable, capped, unreachable, coverage, iterations, gradient

    per_step = opts.mode in PER_STEP
    passes = 2 if per_step else 1
    c2w, alpha, pi_tgt, pi_real, unusable, capped, unreachable, coverage, iterations, gradient = integrate(
        None, passes, 1
    )
    interpolated = []
    if per_step:
        known = np.isfinite(alpha) & ~unusable & ~zero
        known[0] = False
        fill = unusable | zero
        fill[0] = False
        if not known.any():
            raise RescaleError("no step could be measured on both sides; check the depth sources")
        filled = _log_interp(np.where(known, alpha, np.nan), known)
        if opts.smooth:
            filled = _smooth_log(filled, opts.smooth)
        if opts.clamp_ratio:
            med = np.median(filled[1:])
            filled[1:] = np.clip(filled[1:], med / opts.clamp_ratio, med * opts.clamp_ratio)
        adjust = bool(opts.smooth) or opts.clamp_ratio is not None
        fixed = np.where(fill | adjust, filled, np.nan)
        fixed[0] = np.nan
        if fill.any() or adjust:  # second pass: fixed α where filled/adjusted, re-measured elsewhere
            c2w, alpha, pi_tgt, pi_real, _, capped, unreachable, coverage, its2, gradient = integrate(fixed, passes, 2)
            iterations += its2
        interpolated = [int(f) for f in ref.frames[unusable]]
        if interpolated:
            warnings.append(
                f"{len(interpolated)} steps had no usable depth; α interpolated at frames {_frame_list(interpolated)}"
            )

    for side, frac in sky_dropped.items():
        if frac > SKY_WARNING:
            warnings.append(
                f"{side}: up to {frac:.0%} of a view saw nothing (sky) and was left out of Π; allow sky (the "
                "default) to count it as not moving, which is what the eye sees"
            )
    capped_frames = [int(f) for f in ref.frames[capped]]
    if capped_frames:
        warnings.append(
            f"{len(capped_frames)} steps were shortened to close at most {APPROACH_LIMIT:.0%} of the distance to the "
            "target geometry on their path (they would have collided) at frames " + _frame_list(capped_frames)
        )
    unreachable_frames = [int(f) for f in ref.frames[unreachable]]
    if unreachable_frames:
        warnings.append(
            f"{len(unreachable_frames)} backward steps cannot reach the reference's image motion (moving back, the "
            "target's motion is bounded by its depth; the scene is too shallow behind its content) and stop short "
            "at frames " + _frame_list(unreachable_frames)
        )
    checks = _checks(ref, reference_depth, coverage, capped_frames, unreachable_frames, warnings)
    if opts.progress:
        opts.progress(passes, passes)
    metadata = {
        "fov_match": opts.fov_match,
        "allow_sky": opts.allow_sky,
        "working_size": opts.working_size,
        "reference_depth": reference_depth.description,
        "target_depth": target_depth.description,
        "checks": checks,
    }
    return _result(
        ref, tcams, opts, c2w, pi_ref, pi_tgt, pi_real, alpha, metadata,
        interpolated_frames=interpolated,
        zero_step_frames=[int(f) for f in ref.frames[zero]],
        capped_frames=capped_frames,
        unreachable_frames=unreachable_frames,
        solver_iterations=iterations,
        warnings=warnings,
        coverage=coverage,
        pi_gradient=gradient if opts.gradient else None,
    )  # fmt: skip


def _checks(ref, reference_depth, coverage, capped_frames, unreachable_frames, warnings) -> dict:
    """The result's checks the solver did not write (see the module docstring); adds a warning when the
    target's known coverage falls well below frame 0's."""
    cov = coverage[1:]
    first = float(cov[0]) if len(cov) else float("nan")
    low = np.flatnonzero(cov < COVERAGE_DROP * first) + 1
    low_frames = [int(f) for f in ref.frames[low]]
    if low_frames:
        warnings.append(
            f"target: the depth covers less than {COVERAGE_DROP:.0%} of what it covered at the first frame "
            f"({first:.0%} known) at {len(low_frames)} frames (down to {float(np.nanmin(cov)):.0%}): "
            + _frame_list(low_frames)
            + "; Π there rests on what is left (the camera sees past the captured points)"
        )
    return {
        "target_known_coverage": {"first": first, "min": float(np.nanmin(cov)) if len(cov) else float("nan")},
        "coverage_drop_frames": low_frames,
        "collision_shortened_frames": list(capped_frames),
        "unreachable_frames": list(unreachable_frames),
        "reference_depth": reference_depth_note(reference_depth),
    }
