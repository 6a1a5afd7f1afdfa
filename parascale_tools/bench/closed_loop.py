"""Closed-loop transfer benchmark: does the rescaled move *look* like the reference move?

For each pairing (reference scene at one scale → target scene at a scale ≥ 10⁴ away) and each
reference track (real RealEstate10K tracks and synthetic truck/dolly/orbit/crane/handheld):

1. rescale the track into the target scene in every mode (exact analytic depth on both sides);
2. render the reference clip along the reference track and the output clip along the rescaled
   track with the server's ``warp`` renderer (conditioning frame ray-traced, then splatted);
3. measure the realized parallax of BOTH clips with the same estimator (OpenCV DIS optical flow,
   minus the flow the known rotation causes, mean magnitude over pixels that are not
   disocclusion fills), so estimator bias cancels;
4. PCE_measured = mean_t |ln(Π_out,t / Π_ref,t)|; plus RotErr / TransErr / CamMC of the output
   against the reference (relative normalisation);
5. PCE_oracle: the same, with Π the exact translational image motion of each step from the depth
   ray-traced at the clip's resolution (:func:`oracle_parallax`: every pixel's world point projected
   by both poses, rotation removed, sky moving zero), free of optical-flow error.

``rows(quick)`` returns benchmark rows; :func:`run` returns the full per-case records.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from bridge_server.flow_parallax import measured_parallax
from parascale_blender.core.camera import Camera, Trajectory
from parascale_blender.core.metrics import pce
from parascale_blender.core.rescale import MODES, RescaleOptions, rescale

from ..synthetic import MOVES, camera_move
from . import raytrace

# (reference scene, scale) -> (target scene, scale); every pair spans >= 4 orders of magnitude.
PAIRINGS = [
    (("room", 0.01), ("landscape", 100.0)),
    (("landscape", 100.0), ("wall", 0.01)),
    (("street", 100.0), ("room", 0.01)),
    (("wall", 1.0), ("street", 1e4)),
]
TARGET_FLOW_PX = 4.0  # reference tracks are scaled (a similarity) to move ~this many pixels per frame
# Targets whose output clips are re-tracked with pycolmap (harmonic mode): scenes with depth
# relief. A plane (wall) or a distant landscape under sky gives SfM too little parallax to solve.
RETRACK_TARGETS = ("room", "street")


def real_tracks(shared_data: Path | None, limit: int) -> dict[str, np.ndarray]:
    """RealEstate10K tracks made relative to frame 0 and normalised to a 0.5-unit path (similarity only)."""
    from parascale_blender.formats.registry import read_trajectory
    from parascale_tools.reference import bundled_reference_path

    files = [bundled_reference_path()]
    if shared_data is not None and (shared_data / "re10k").is_dir():
        files += sorted(p for p in (shared_data / "re10k").glob("*.txt") if p.name not in files[0].name)
    out = {}
    for f in files[:limit]:
        tr = read_trajectory(f, width=640, height=360).relative_to_first()
        c2w = tr.c2w.copy()
        c2w[:, :3, 3] *= 0.5 / max(tr.path_length(), 1e-12)
        out[f"re10k:{f.stem[-16:]}"] = c2w
    return out


def _track(c2w: np.ndarray, cam: Camera, fps: float = 8.0) -> Trajectory:
    n = len(c2w)
    return Trajectory(np.arange(n), c2w, [cam.fx, cam.fy, cam.cx, cam.cy], cam.width, cam.height, fps=fps)


def render_clip(
    scene: raytrace.RectScene, traj: Trajectory, renderer: str = "warp", supersample: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """Frames (N, H, W, 3) uint8 and covered masks (N, H, W) along ``traj``.

    ``warp``: the server's preview renderer (frame 0 ray-traced, then its point cloud splatted;
    disocclusions are filled and marked uncovered). ``raytrace``: every frame traced exactly.
    Rendered at ``supersample`` times the resolution and area-averaged down, so image motion is
    resolved below a pixel (a nearest-pixel splat alone quantises motion to whole pixels).
    """
    import cv2

    cam = traj.camera(0)
    big = cam.scaled_to(cam.width * supersample, cam.height * supersample)
    if renderer == "raytrace":
        frames = [
            cv2.resize(scene.trace(c, big)[0], (cam.width, cam.height), interpolation=cv2.INTER_AREA) for c in traj.c2w
        ]
        return np.stack(frames), np.ones((len(frames), cam.height, cam.width), dtype=bool)
    import torch

    from bridge_server.render import fill_holes, splat, to_uint8, unproject_image

    image, depth = scene.trace(traj.c2w[0], big)
    cloud = unproject_image(image, depth, traj.c2w[0], big, sky=True)
    frames, covered = [], []
    with torch.no_grad():
        for i in range(len(traj)):
            rgb, zbuf = splat(cloud, traj.c2w[i], big)
            hit = torch.isfinite(zbuf).cpu().numpy().astype(np.uint8)
            covered.append(cv2.resize(hit, (cam.width, cam.height), interpolation=cv2.INTER_AREA) == 1)
            img = to_uint8(fill_holes(rgb, zbuf))
            frames.append(cv2.resize(img, (cam.width, cam.height), interpolation=cv2.INTER_AREA))
    return np.stack(frames), np.stack(covered)


def oracle_parallax(scene: raytrace.RectScene, traj: Trajectory) -> np.ndarray:
    """Per step: mean translational image motion (normalised units) over every pixel of frame t-1,
    from traced depth: each pixel's world point seen from pose t-1 and from pose t with pose t-1's
    rotation (rotation removed), projected; sky (no hit) and points the step passes move zero."""
    out = np.full(len(traj), np.nan)
    for t in range(1, len(traj)):
        cam = traj.camera(t - 1)
        _, depth = scene.trace(traj.c2w[t - 1], cam)
        x, y = cam.pixel_rays()
        hit = np.isfinite(depth)
        z = np.where(hit, depth, 1.0)
        R0, c0, c1 = traj.c2w[t - 1, :3, :3], traj.c2w[t - 1, :3, 3], traj.c2w[t, :3, 3]
        world = np.stack([x * z, y * z, z], -1) @ R0.T + c0
        local = (world - c1) @ R0  # into camera t's position with camera t-1's axes
        ahead = hit & (local[..., 2] > 0)
        zz = np.where(ahead, local[..., 2], 1.0)
        du = np.where(ahead, local[..., 0] / zz - x, 0.0)
        dv = np.where(ahead, local[..., 1] / zz - y, 0.0)
        out[t] = float(np.mean(np.hypot(du, dv)))
    return out


@dataclass
class Case:
    pairing: str
    track: str
    mode: str
    pce_measured: float
    pce_model: float
    rot_err_deg: float
    trans_err: float
    cam_mc: float
    alpha_median: float
    pi_ref_measured: list
    pi_out_measured: list
    pce_oracle: float = float("nan")  # exact image motion from traced depth (no flow error)
    pce_colmap: float | None = None  # output clip re-tracked with pycolmap: Π from its reconstruction
    colmap_error: str | None = None  # why the re-track gave no reconstruction


def short_reason(exc: Exception) -> str:
    """The tracker's reason without the temporary clip path: ``"too little parallax"``."""
    text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    parts = [p.strip() for p in text.split(": ")]
    return (parts[1] if len(parts) > 1 and parts[0].endswith(".mp4") else parts[0])[:80]


def colmap_pce(frames: np.ndarray, traj: Trajectory, pi_ref: np.ndarray, folder: Path) -> float:
    """Second, independent measurement: track the output clip with pycolmap (known intrinsics) and
    compare the harmonic Π of its reconstruction (poses + sparse points, scale-free) with Π_ref."""
    from bridge_server.tracking.pipeline import TrackOptions, track_video
    from bridge_server.video import Mp4Writer
    from parascale_tools.tracking.evaluate import track_parallax

    folder.mkdir(parents=True, exist_ok=True)
    clip = folder / "output.mp4"
    with Mp4Writer(clip, frames.shape[2], frames.shape[1], traj.fps, crf=12) as w:
        for f in frames:
            w.write(f)
    cam = traj.camera(0)
    track = track_video(clip, TrackOptions(intrinsics=(cam.fx, cam.fy, cam.cx, cam.cy), max_side=None))
    if track.metadata.get("tripod"):  # SfM saw no parallax; the rotation-only track has no depth to measure
        raise ValueError(f"too little parallax (tracked as a tripod shot: {track.metadata['tripod']})")
    return pce(track_parallax(track), pi_ref, strict=False)


def run(
    quick: bool = True,
    shared_data: Path | None = None,
    log=print,
    renderer: str = "raytrace",
    retrack: bool = False,
) -> list[Case]:
    """All closed-loop cases; with ``retrack``, harmonic outputs into :data:`RETRACK_TARGETS` are
    also re-tracked with pycolmap (the second, independent measurement)."""
    import tempfile

    from parascale_blender.core.metrics import cam_mc, rot_err, trans_err

    size = (192, 112) if quick else (384, 224)
    n = 10 if quick else 16
    pairings = PAIRINGS[:2] if quick else PAIRINGS
    tracks = {k: camera_move(k, n, seed=i) for i, k in enumerate(MOVES[:2] if quick else MOVES)}
    if quick:  # the quick guard also covers a forward move with a pan and a move that stops
        tracks.update({k: camera_move(k, n, seed=7) for k in ("push_pan", "accelerate")})
    tracks.update({k: v[:n] for k, v in real_tracks(shared_data, 1 if quick else 8).items()})
    f = 0.9 * size[0]
    cam = Camera(f, f, size[0] / 2, size[1] / 2, *size)
    cases: list[Case] = []
    for (rs, rscale), (ts, tscale) in pairings:
        ref_scene = raytrace.SCENES[rs](rscale)
        tgt_scene = raytrace.SCENES[ts](tscale)
        label = f"{rs}@{rscale:g} -> {ts}@{tscale:g}"
        for tname, c2w in tracks.items():
            ref_c2w = c2w.copy()
            ref_c2w[:, :3, 3] *= rscale
            probe = rescale(_track(ref_c2w, cam), ref_scene, ref_scene, np.eye(4), cam, RescaleOptions(mode="none"))
            ref_c2w[:, :3, 3] *= TARGET_FLOW_PX / cam.fx / np.nanmedian(probe.pi_ref[1:])
            ref = _track(ref_c2w, cam)
            frames, cov = render_clip(ref_scene, ref, renderer)
            pi_ref_meas = measured_parallax(frames, cov, ref)
            pi_ref_oracle = oracle_parallax(ref_scene, ref)
            for mode in MODES:
                opts = RescaleOptions(mode=mode, allow_sky=True, working_size=96 if quick else 160)
                res = rescale(ref, ref_scene, tgt_scene, np.eye(4), cam, opts)
                out = res.trajectory
                oframes, ocov = render_clip(tgt_scene, out, renderer)
                pi_out = measured_parallax(oframes, ocov, out)
                case = Case(
                    pairing=label,
                    track=tname,
                    mode=mode,
                    pce_measured=pce(pi_out, pi_ref_meas, strict=False),
                    pce_model=res.pce,
                    rot_err_deg=float(np.degrees(rot_err(out.c2w, ref.c2w))),
                    trans_err=float(trans_err(out.c2w, ref.c2w)),
                    cam_mc=float(cam_mc(out.c2w, ref.c2w)),
                    alpha_median=float(np.nanmedian(res.alpha[1:])),
                    pi_ref_measured=pi_ref_meas.tolist(),
                    pi_out_measured=pi_out.tolist(),
                    pce_oracle=pce(oracle_parallax(tgt_scene, out), pi_ref_oracle, strict=False),
                )
                if retrack and mode == "harmonic" and ts in RETRACK_TARGETS:
                    with tempfile.TemporaryDirectory() as tmp:
                        try:
                            case.pce_colmap = colmap_pce(oframes, out, res.pi_ref, Path(tmp))
                        except Exception as exc:  # a failed re-track is a result, not a crash
                            case.pce_colmap, case.colmap_error = float("nan"), short_reason(exc)
                            if log:
                                log(f"  pycolmap re-track failed: {exc}")
                cases.append(case)
            if log:
                by = {c.mode: c.pce_measured for c in cases[-len(MODES) :]}
                log(f"  {label:<32} {tname:<24} " + " ".join(f"{m}={v:.3f}" for m, v in by.items()))
    return cases


def summarize(cases: list[Case]) -> dict[str, dict]:
    """Per mode: mean/median/p90 measured PCE, RotErr, TransErr, CamMC over all cases."""
    out = {}
    for mode in MODES:
        cs = [c for c in cases if c.mode == mode and np.isfinite(c.pce_measured)]
        if not cs:
            continue
        p = np.array([c.pce_measured for c in cs])
        o = np.array([c.pce_oracle for c in cs])
        out[mode] = {
            "cases": len(cs),
            "oracle_mean": float(np.nanmean(o)),
            "oracle_max": float(np.nanmax(o)),
            "pce_mean": float(p.mean()),
            "pce_median": float(np.median(p)),
            "pce_p90": float(np.quantile(p, 0.9)),
            "rot_err_deg": float(np.mean([c.rot_err_deg for c in cs])),
            "trans_err": float(np.mean([c.trans_err for c in cs])),
            "cam_mc": float(np.mean([c.cam_mc for c in cs])),
        }
    return out


def motion_class(track: str) -> str:
    """The case's motion class: the synthetic move's name, or ``re10k`` for real tracks."""
    return track.split(":")[0]


def by_class(cases: list[Case], mode: str) -> dict[str, dict]:
    """Per motion class, for one mode: oracle PCE mean and max, optical-flow PCE mean."""
    out = {}
    for cls in sorted({motion_class(c.track) for c in cases}):
        cs = [c for c in cases if c.mode == mode and motion_class(c.track) == cls]
        o = np.array([c.pce_oracle for c in cs])
        f = np.array([c.pce_measured for c in cs])
        out[cls] = {"cases": len(cs), "oracle_mean": float(np.nanmean(o)), "oracle_max": float(np.nanmax(o)),
                    "flow_mean": float(np.nanmean(f))}  # fmt: skip
    return out


def default_shared_data() -> Path | None:
    """``../shared/data`` beside the checkout, when present (more real tracks for the benchmark)."""
    shared = Path(__file__).resolve().parents[3] / "shared" / "data"
    return shared if shared.is_dir() else None


def rows_from_cases(cases: list[Case], seconds: float) -> list[dict]:
    summ = summarize(cases)
    base = summ["none"]["pce_mean"]
    out = []
    for mode, s in summ.items():
        obase = summ["none"]["oracle_mean"]
        out.append(
            {
                "group": "closed_loop",
                "name": f"PCE oracle (exact image motion, traced depth), mode {mode}",
                "value": s["oracle_mean"],
                "unit": "PCE",
                "baseline": obase,
                "ratio": obase / s["oracle_mean"] if s["oracle_mean"] > 0 else float("inf"),
                "note": f"{s['cases']} cases, max {s['oracle_max']:.3f}; ratio = none/mode",
            }
        )
        out.append(
            {
                "group": "closed_loop",
                "name": f"PCE measured by optical flow, mode {mode}",
                "value": s["pce_mean"],
                "unit": "PCE",
                "baseline": base,
                "ratio": base / s["pce_mean"] if s["pce_mean"] > 0 else float("inf"),
                "note": f"{s['cases']} cases, median {s['pce_median']:.3f}, p90 {s['pce_p90']:.3f}; ratio = none/mode",
            }
        )
    default = RescaleOptions().mode
    classes = by_class(cases, default)
    worst = max(classes, key=lambda k: classes[k]["oracle_mean"])
    out.append(
        {
            "group": "closed_loop",
            "name": f"PCE oracle, worst motion class, mode {default} (default)",
            "value": classes[worst]["oracle_mean"],
            "unit": "PCE",
            "note": f"class {worst}; per class: "
            + ", ".join(f"{k} {v['oracle_mean']:.3f}" for k, v in classes.items()),
        }
    )
    out.append(
        {
            "group": "closed_loop",
            "name": "closed loop wall time",
            "value": seconds,
            "unit": "s",
            "note": f"{len(cases)} cases",
        }
    )
    return out


def rows(quick: bool = True) -> list[dict]:
    t0 = time.perf_counter()
    cases = run(quick=quick, shared_data=default_shared_data(), log=None)
    return rows_from_cases(cases, time.perf_counter() - t0)
