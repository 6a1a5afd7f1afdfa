"""Depth-path benchmark: the product's own depth paths, each judged by the oracle on the true geometry.

The closed-loop benchmark hands the engine the oracle's own ray tracer as depth. Here the engine gets
the target's depth the way an artist has it, and only the judge sees the truth:

* ``mesh``   the scene's triangles (:class:`MeshDepth`, what the add-on's scene depth does);
* ``cloud``  area-uniform samples of its surfaces (a scan, a ``.ply``/``.npy`` cloud, Points from Scene);
* ``plate``  the start view traced to a depth map and unprojected into points (*Points from Plate +
  Depth*: a :class:`PointCloudDepth` that knows its plate's frustum), so it holds only what the start
  camera saw;

and the reference's depth as ``geometry`` (traced) or ``sfm``: sparse points sampled on the surfaces the
reference sees, with per-frame visibility, filled as SfM points are (:class:`SparsePointsDepth`).
Each case is rescaled in the product's default options (and, for the clouds, in the explicit
``harmonic`` and ``flow`` modes); its figure is the oracle PCE: the exact translational image motion
of the output on the true target geometry against the reference clip's (:func:`.closed_loop.oracle_parallax`).
A case where the engine fails (a target that sees nothing) counts as a failure, never as NaN.
"""

from __future__ import annotations

import time

import numpy as np

from parascale_blender.core.camera import Camera, SparsePoints
from parascale_blender.core.depth_sources import MeshDepth, PointCloudDepth, SparsePointsDepth
from parascale_blender.core.metrics import pce
from parascale_blender.core.rescale import RescaleError, RescaleOptions, rescale
from parascale_blender.core.zbuffer import to_camera

from ..synthetic import camera_move
from . import raytrace
from .closed_loop import _track, oracle_parallax, scale_to_speed

CAM = Camera(300.0, 300.0, 160.0, 90.0, 320, 180)
TARGETS = ("room", "street", "poles")
PATHS = ("mesh", "cloud", "plate")
MOVES = ("truck", "dolly", "orbit", "crane", "pan_truck", "push_pan")
REFERENCES = (("room", 0.01, "geometry"), ("landscape", 100.0, "geometry"), ("room", 0.01, "sfm"))
SPEED_PX = 4.0
TARGET_MEAN, TARGET_WORST = 0.01, 0.05  # the targets for the default on every path


def poles(scale: float = 1.0, count: int = 40, seed: int = 3) -> raytrace.RectScene:
    """``count`` thin square poles (2–5 cm, 3 units tall) spread 1.5–6 units ahead, on a ground one
    unit below the camera, before a backdrop 12 units away: thin structures in a covered view."""
    rng = np.random.default_rng(seed)
    R = [
        raytrace._rect((-12, 1, -2), (24, 0, 0), (0, 0, 16), (0.45, 0.5, 0.35), 0.2),  # ground (y down)
        raytrace._rect((-12, -8, 12), (24, 0, 0), (0, 9, 0), (0.6, 0.6, 0.7), 0.3),  # backdrop
    ]
    for _ in range(count):
        x, z, w = rng.uniform(-2.5, 2.5), rng.uniform(1.5, 6.0), rng.uniform(0.02, 0.05)
        lo = np.array([x - w / 2, -2.0, z - w / 2])
        faces = (((0, 0, 0), (w, 0, 0)), ((0, 0, w), (w, 0, 0)), ((0, 0, 0), (0, 0, w)), ((w, 0, 0), (0, 0, w)))
        for origin, e1 in faces:
            R.append(raytrace._rect(lo + origin, e1, (0, 3.0, 0), (0.8, 0.4, 0.2), 0.01))
    return raytrace.RectScene("poles", R, scale, sky=False)


SCENES = {**raytrace.SCENES, "poles": poles}


def _rects(scene: raytrace.RectScene):
    s = scene.scale
    return [(r.origin * s, r.e1 * s, r.e2 * s) for r in scene.rects]


def scene_mesh(scene: raytrace.RectScene) -> tuple[np.ndarray, np.ndarray]:
    """The scene's rectangles as triangles (two each)."""
    v = np.concatenate([[o, o + a, o + a + b, o + b] for o, a, b in _rects(scene)])
    base = 4 * np.arange(len(scene.rects))[:, None]
    t = np.concatenate([base + [0, 1, 2], base + [0, 2, 3]])
    return v, t


def scene_cloud(scene: raytrace.RectScene, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniformly by area on the scene's surfaces (a scan of it)."""
    rng = np.random.default_rng(seed)
    rects = _rects(scene)
    area = np.array([np.linalg.norm(np.cross(a, b)) for _, a, b in rects])
    k = rng.choice(len(rects), n, p=area / area.sum())
    o, a, b = (np.stack([r[i] for r in rects])[k] for i in range(3))
    uv = rng.uniform(0, 1, (n, 2))
    return o + uv[:, :1] * a + uv[:, 1:] * b


def plate_source(scene: raytrace.RectScene, c2w: np.ndarray, cam: Camera) -> PointCloudDepth:
    """The plate path: the view from ``c2w`` traced at ``cam``'s size to a depth map, unprojected."""
    depth = scene.trace(c2w, cam)[1]
    return PointCloudDepth(cam.unproject(depth, c2w).xyz, frustum=(c2w, cam), plate_sky=~np.isfinite(depth))


def sfm_source(scene: raytrace.RectScene, c2w: np.ndarray, cam: Camera, per_view: int = 400, seed: int = 0):
    """SfM-like reference depth: points sampled on the surfaces seen from a few of the reference's
    views, each frame's visibility the points it sees (depth-tested against the traced depth)."""
    rng = np.random.default_rng(seed)
    small = cam.working(96)
    pts = []
    for i in sorted({0, len(c2w) // 2, len(c2w) - 1}):
        depth = scene.trace(c2w[i], small)[1]
        xyz = small.unproject(depth, c2w[i]).xyz
        pts.append(xyz[rng.choice(len(xyz), min(per_view, len(xyz)), replace=False)])
    xyz = np.concatenate(pts)
    vis = []
    for c in c2w:
        depth = scene.trace(c, small)[1]
        local = to_camera(xyz, c)
        z = local[:, 2]
        with np.errstate(divide="ignore", invalid="ignore"):
            u = np.floor(small.fx * local[:, 0] / z + small.cx).astype(np.int64)
            v = np.floor(small.fy * local[:, 1] / z + small.cy).astype(np.int64)
        inside = (z > 0) & (u >= 0) & (u < small.width) & (v >= 0) & (v < small.height)
        seen = np.zeros(len(xyz), dtype=bool)
        seen[inside] = np.abs(depth[v[inside], u[inside]] - z[inside]) < 0.02 * z[inside]
        vis.append(np.flatnonzero(seen))
    return SparsePointsDepth(SparsePoints(xyz, None, vis))


def target_source(path: str, scene: raytrace.RectScene, start: np.ndarray, cloud_points: int):
    if path == "mesh":
        return MeshDepth(*scene_mesh(scene))
    if path == "cloud":
        return PointCloudDepth(scene_cloud(scene, cloud_points))
    if path == "plate":
        return plate_source(scene, start, CAM.scaled_to(640, 360))
    raise ValueError(f"unknown depth path {path!r}")


def run_case(ref_scene, ref_c2w, ref_depth_kind, tgt_scene, path, mode="exact", cloud_points=300_000, source=None):
    """One case: the oracle PCE of the output (None when the engine refused), the steps the cap
    shortened, the α range and the seconds the rescale took."""
    ref = _track(ref_c2w, CAM)
    ref_depth = ref_scene if ref_depth_kind == "geometry" else sfm_source(ref_scene, ref_c2w, CAM)
    start = np.eye(4)
    tgt_depth = source if source is not None else target_source(path, tgt_scene, start, cloud_points)
    t0 = time.process_time()
    try:
        res = rescale(ref, ref_depth, tgt_depth, start, CAM, RescaleOptions(mode=mode))
    except RescaleError as exc:
        return {"oracle_pce": None, "error": str(exc)}
    seconds = time.process_time() - t0
    small = CAM.working(160)
    pi_ref = oracle_parallax(ref_scene, _track(ref_c2w, small))
    pi_out = oracle_parallax(tgt_scene, _track(res.trajectory.c2w, small))
    return {
        "oracle_pce": pce(pi_out, pi_ref, strict=False),
        "capped": len(res.capped_frames),
        "alpha_range": list(res.scale_range),
        "seconds": seconds,
        "coverage_min": res.checks["target_known_coverage"]["min"],
    }


def run(quick: bool = True) -> list[dict]:
    """Every case's record (see :func:`run_case`) with its labels; mode ``none`` (the raw copy, on
    the mesh) once per reference move and target, the baseline."""
    frames = 10 if quick else 16
    moves = MOVES[:3] if quick else MOVES
    refs = REFERENCES[:1] + REFERENCES[2:] if quick else REFERENCES
    cloud_points = 200_000 if quick else 1_000_000
    records = []
    for ref_name, ref_scale, ref_kind in refs:
        ref_scene = SCENES[ref_name](ref_scale)
        for move in moves:
            ref_c2w = scale_to_speed(ref_scene, camera_move(move, frames, step=0.05, seed=1), CAM, SPEED_PX)
            for tgt in TARGETS:
                tgt_scene = SCENES[tgt](1.0)
                sources = {p: target_source(p, tgt_scene, np.eye(4), cloud_points) for p in PATHS}
                todo = [(p, "exact") for p in PATHS] + [("mesh", "none")]
                if ref_kind == "geometry":
                    todo += [("cloud", "harmonic"), ("cloud", "flow")]
                for path, mode in todo:
                    rec = run_case(ref_scene, ref_c2w, ref_kind, tgt_scene, path, mode, source=sources[path])
                    rec.update(reference=f"{ref_name} x{ref_scale:g}", ref_kind=ref_kind, move=move, target=tgt,
                               path=path, mode=mode)  # fmt: skip
                    records.append(rec)
    return records


def _stats(cases: list[dict]) -> dict:
    """Mean and worst oracle PCE; a refused case (None) is a failure, and the worst."""
    vals = np.array([c["oracle_pce"] for c in cases if c["oracle_pce"] is not None], dtype=float)
    worst = max(cases, key=lambda c: np.inf if c["oracle_pce"] is None else c["oracle_pce"])
    return {
        "cases": len(cases),
        "failures": sum(c["oracle_pce"] is None for c in cases),
        "mean": float(vals.mean()) if vals.size else float("nan"),
        "worst": float("inf") if worst["oracle_pce"] is None else float(worst["oracle_pce"]),
        "worst_case": f"{worst['reference']} {worst['move']} onto {worst['target']}",
        "capped": int(sum(c.get("capped", 0) for c in cases)),
    }


def summarise(records: list[dict]) -> list[dict]:
    """Rows per (depth path, reference depth, mode): oracle PCE mean (value), the raw copy's mean on the
    same reference moves and targets (baseline), the worst case and failures (note)."""
    out = []
    keys = sorted({(r["path"], r["ref_kind"], r["mode"]) for r in records if r["mode"] != "none"})
    for path, ref_kind, mode in keys:
        cs = [r for r in records if (r["path"], r["ref_kind"], r["mode"]) == (path, ref_kind, mode)]
        st = _stats(cs)
        base = _stats([r for r in records if r["mode"] == "none" and r["ref_kind"] == ref_kind])
        gate = ""
        if mode == "exact":
            ok = st["failures"] == 0 and st["mean"] <= TARGET_MEAN and st["worst"] <= TARGET_WORST
            gate = f"; target mean <= {TARGET_MEAN}, worst <= {TARGET_WORST}: {'PASS' if ok else 'FAIL'}"
        out.append({
            "group": "depth_paths",
            "name": f"oracle PCE, {path} target, {ref_kind} reference, mode {mode}",
            "value": st["mean"],
            "unit": "PCE",
            "baseline": base["mean"],
            "ratio": base["mean"] / st["mean"] if st["mean"] > 0 else float("inf"),
            "note": f"{st['cases']} cases, worst {st['worst']:.3f} ({st['worst_case']}), {st['failures']} failed, "
            f"{st['capped']} steps shortened; baseline: raw copy ({base['failures']} of {base['cases']} failed)" + gate,
        })  # fmt: skip
    return out


def rows(quick: bool = True) -> list[dict]:
    return summarise(run(quick))
