"""The ``parascale`` command line: info, convert, rescale, metrics, export-rays, export-tracks, track,
bench, demo, convert-wan-fun.

Every subcommand prints a human table by default and machine-readable JSON with ``--json``.
User errors (bad files, bad options) print one line naming the file/frame/field and exit 2;
they never print a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

import numpy as np

from parascale_blender import __version__
from parascale_blender.core.rescale import MODES, RescaleOptions

from .output import ProgressBar, fmt, jsonable, print_pi_table


class CliError(Exception):
    """A user-facing error: printed as one line, exit status 2."""


def _read(path: str, fmt: str | None = None, repair: bool = False, **opts):
    from parascale_blender.formats.registry import read_trajectory

    return read_trajectory(path, fmt, repair_rotations=repair, **opts)


def trajectory_summary(traj) -> dict:
    """What a track holds: frames, fps, intrinsics, path length, rotation range."""
    from parascale_blender.core.rotation import rotation_angle

    rel = traj.relative_to_first().c2w
    rot = np.degrees(rotation_angle(rel[:, :3, :3]))
    fx, fy, cx, cy = traj.intrinsics[0]
    return {
        "frames": len(traj),
        "first_frame": int(traj.frames[0]),
        "last_frame": int(traj.frames[-1]),
        "fps": traj.fps,
        "size": [traj.width, traj.height],
        "intrinsics": {"fx": fx, "fy": fy, "cx": cx, "cy": cy},
        "hfov_deg": float(np.degrees(traj.camera(0).hfov)),
        "path_length": traj.path_length(),
        "max_distance_from_start": float(np.linalg.norm(rel[:, :3, 3], axis=1).max()),
        "max_rotation_from_start_deg": float(rot.max()),
        "points": 0 if traj.points is None else len(traj.points.xyz),
        "source": traj.metadata.get("source"),
    }


def cmd_info(args) -> int:
    traj = _read(args.file, args.format, args.repair_rotations)
    info = trajectory_summary(traj)
    if args.json:
        print(json.dumps(jsonable(info), indent=2))
        return 0
    width = max(len(k) for k in info)
    print(f"{args.file}")
    for k, v in info.items():
        if isinstance(v, dict):
            v = ", ".join(f"{kk}={fmt(vv)}" for kk, vv in v.items())
        elif isinstance(v, float):
            v = fmt(v)
        print(f"  {k:<{width}}  {v}")
    return 0


def cmd_convert(args) -> int:
    from parascale_blender.formats.registry import write_trajectory

    traj = _read(args.input, args.format, args.repair_rotations)
    out = write_trajectory(traj, args.output, args.to)
    if args.json:
        print(json.dumps({"input": args.input, "output": str(out or args.output), "frames": len(traj)}))
    else:
        print(f"wrote {len(traj)} frames to {out or args.output}")
    return 0


def _parse_floats(text: str, n: tuple[int, ...], what: str) -> list[float]:
    try:
        vals = [float(v) for v in text.replace(" ", "").split(",")]
    except ValueError:
        raise CliError(f"{what}: expected comma-separated numbers, got {text!r}") from None
    if len(vals) not in n:
        raise CliError(f"{what}: expected {' or '.join(map(str, n))} numbers, got {len(vals)}")
    if not all(math.isfinite(v) for v in vals):
        raise CliError(f"{what}: numbers must be finite, got {text!r}")
    return vals


def load_start_pose(spec: str | None, convention: str = "opencv") -> np.ndarray:
    """A 4x4 start pose from a JSON file: a bare matrix, {"c2w": M}, or a ParaScale track's first frame."""
    from parascale_blender.core.camera import opencv_from_blender

    if not spec:
        return np.eye(4)
    path = Path(spec)
    try:
        data = json.loads(path.read_text())
    except OSError as exc:
        raise CliError(f"{spec}: cannot read the target start pose ({exc.strerror})") from None
    except json.JSONDecodeError as exc:
        raise CliError(f"{spec}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    if isinstance(data, dict) and "frames" in data:
        frames = data["frames"]
        data = frames[0].get("c2w") if frames and isinstance(frames[0], dict) else None
    elif isinstance(data, dict):
        data = data.get("c2w")
    try:
        M = np.array(data, dtype=np.float64)
    except (TypeError, ValueError):
        M = np.zeros(0)
    if M.shape == (3, 4):
        M = np.vstack([M, [0, 0, 0, 1]])
    if M.shape != (4, 4) or not np.isfinite(M).all():
        raise CliError(f"{spec}: field 'c2w': expected a finite 4x4 (or 3x4) camera-to-world matrix")
    return opencv_from_blender(M) if convention == "blender" else M


def cmd_rescale(args) -> int:
    from parascale_blender.core.camera import Camera
    from parascale_blender.core.rescale import rescale
    from parascale_blender.formats.depth_spec import parse_depth_spec
    from parascale_blender.formats.registry import write_trajectory

    ref = _read(args.reference, args.format, args.repair_rotations)
    ref_depth = parse_depth_spec(args.reference_depth, trajectory=ref, cloud_sky=args.cloud_sky)
    tgt_depth = parse_depth_spec(args.target_depth, cloud_sky=args.cloud_sky)
    start = load_start_pose(args.target_start, args.start_convention)
    tcam = None
    if args.target_intrinsics:
        fx, fy, cx, cy, w, h = _parse_floats(args.target_intrinsics, (6,), "--target-intrinsics")
        tcam = Camera(fx, fy, cx, cy, int(w), int(h))
    bar = ProgressBar("rescale", enabled=sys.stderr.isatty() and not args.json)
    opts = RescaleOptions(
        mode=args.mode,
        working_size=args.working_size,
        allow_sky=args.allow_sky,
        fov_match=args.fov_match,
        smooth=args.smooth,
        clamp_ratio=args.clamp_ratio,
        progress=bar.steps,
    )
    try:
        res = rescale(ref, ref_depth, tgt_depth, start, tcam, opts)
    finally:
        bar.close()
    res.trajectory.metadata.update({"source": f"parascale rescale {Path(args.reference).name}"})
    write_trajectory(res.trajectory, args.output, "parascale")
    summary = {
        "output": args.output,
        "mode": res.mode,
        "frames": len(res.trajectory),
        "solver_residual": res.solver_residual,
        "checks": res.checks,
        "alpha_range": list(res.scale_range),
        "interpolated_frames": res.interpolated_frames,
        "zero_step_frames": res.zero_step_frames,
        "capped_frames": res.capped_frames,
        "unreachable_frames": res.unreachable_frames,
        "warnings": res.warnings,
        "info": res.info,
        "per_frame": [
            {"frame": int(f), "pi_ref": a, "pi_target": b, "alpha": c}
            for f, a, b, c in zip(res.trajectory.frames, res.pi_ref, res.pi_target, res.alpha)
        ],
    }
    if args.json:
        print(json.dumps(jsonable(summary), indent=2))
        return 0
    print_pi_table(res)
    for note in res.info:
        print(note)
    print(f"wrote {args.output}")
    return 0


def cmd_metrics(args) -> int:
    from parascale_blender.core.metrics import summary

    est = _read(args.estimate, None, args.repair_rotations)
    ref = _read(args.reference, None, args.repair_rotations)
    pi_ref, pi_real = est.extras.get("pi_ref"), est.extras.get("pi_realized")
    result = summary(est, ref, pi_ref=pi_ref, pi_realized=pi_real)
    if args.json:
        print(json.dumps(jsonable(result), indent=2))
        return 0
    for key, value in _flatten(result):
        if isinstance(value, list):
            continue  # matrices: see --json
        print(f"  {key:<28} {fmt(value) if isinstance(value, float) else value}")
    return 0


def _flatten(d: dict, prefix: str = ""):
    for k, v in d.items():
        if isinstance(v, dict):
            yield from _flatten(v, f"{prefix}{k}.")
        else:
            yield f"{prefix}{k}", v


def cmd_track(args) -> int:
    try:
        from parascale_tools.tracking.track_cli import track_main
    except ImportError as exc:
        raise CliError(
            f"tracking needs the server extras (pycolmap, av): pip install 'parascale[track]' ({exc})"
        ) from None
    return track_main(args.rest)


def cmd_convert_wan_fun(args) -> int:
    try:
        from bridge_server.backends.wan_fun import convert_videox_fun
    except ImportError as exc:
        raise CliError(
            f"converting weights needs the diffusion extras: pip install 'parascale[diffusion]' ({exc})"
        ) from None
    out = convert_videox_fun(Path(args.source), Path(args.output), Path(args.encoders) if args.encoders else None)
    if args.json:
        print(json.dumps({"output": str(out)}))
    return 0


def cmd_export_rays(args) -> int:
    from parascale_blender.core.plucker import plucker_maps, plucker_metadata
    from parascale_blender.formats.arrays import check_suffix, write_array

    check_suffix(args.output)
    traj = _read(args.track, args.format, args.repair_rotations)
    maps = plucker_maps(traj, args.width, args.height, layout=args.layout)
    out = write_array(args.output, maps, "plucker", plucker_metadata(traj, args.layout))
    if args.json:
        print(json.dumps({"output": str(out), "shape": list(maps.shape), "layout": args.layout}))
    else:
        print(f"wrote Plücker rays {'x'.join(map(str, maps.shape))} ({args.layout}) to {out}")
    return 0


def cmd_export_tracks(args) -> int:
    from parascale_blender.core.pixel_tracks import grid_queries, pixel_tracks, tracks_metadata
    from parascale_blender.formats.arrays import check_suffix, write_array
    from parascale_blender.formats.depth_spec import parse_depth_spec

    check_suffix(args.output)
    traj = _read(args.track, args.format, args.repair_rotations)
    source = parse_depth_spec(args.target_depth, trajectory=traj)
    tracks = pixel_tracks(traj, source, step=args.step, sparse=args.tracks, seed=args.seed)
    grid = None if args.tracks else grid_queries(traj.width, traj.height, args.step)[1]
    meta = tracks_metadata(traj, tracks.shape, grid, None if args.tracks else args.step)
    out = write_array(args.output, tracks, "tracks", meta)
    if args.plot:
        from .track_plot import depth_shading, draw_tracks

        draw_tracks(tracks, depth_shading(source.view(traj.c2w[0], traj.camera(0), 0).depth), args.plot)
    visible = float(tracks[..., 2].mean()) if tracks.size else 0.0
    if args.json:
        print(json.dumps({"output": str(out), "shape": list(tracks.shape), "grid": grid, "visible": visible}))
    else:
        print(f"wrote {tracks.shape[1]} pixel tracks over {tracks.shape[0]} frames to {out} ({visible:.0%} visible)")
    return 0


def cmd_bench(args) -> int:
    from parascale_tools.bench.run import main as bench_main

    return bench_main(args.rest)


def cmd_demo(args) -> int:
    from parascale_tools.demo import main as demo_main

    return demo_main(args.rest)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="parascale", description=__doc__.splitlines()[0])
    p.add_argument("--version", action="version", version=f"parascale {__version__}")
    sub = p.add_subparsers(dest="command", required=True)

    def common(sp, fmt=True):
        if fmt:
            sp.add_argument("--format", help="input format (default: detect from name and content)")
        sp.add_argument("--repair-rotations", action="store_true", help="project bad rotations onto SO(3) by SVD")
        sp.add_argument("--json", action="store_true", help="print machine-readable JSON")

    sp = sub.add_parser("info", help="what a camera file holds")
    sp.add_argument("file")
    common(sp)
    sp.set_defaults(func=cmd_info)

    sp = sub.add_parser("convert", help="convert between camera formats")
    sp.add_argument("input")
    sp.add_argument("output")
    sp.add_argument("--to", help="output format (default: from the output's extension)")
    common(sp)
    sp.set_defaults(func=cmd_convert)

    sp = sub.add_parser("rescale", help="transfer a camera move preserving parallax")
    sp.add_argument("reference", help="reference camera track (any supported format)")
    sp.add_argument("--reference-depth", required=True, help="number, depth-map folder, points, mesh, COLMAP, track")
    sp.add_argument("--target-depth", required=True, help="number, points (.npy/.ply), mesh (.ply/.obj)")
    sp.add_argument("--target-start", help="JSON with the target's start c2w (default: identity)")
    sp.add_argument("--start-convention", choices=["opencv", "blender"], default="opencv")
    sp.add_argument("--target-intrinsics", help="fx,fy,cx,cy,width,height of the target camera")
    sp.add_argument("--mode", default=RescaleOptions.mode, choices=MODES)
    sp.add_argument("--working-size", type=int, default=160, help="longest side of the depth working image")
    sp.add_argument(
        "--allow-sky",
        action=argparse.BooleanOptionalAction,
        default=RescaleOptions.allow_sky,
        help="sky (a mesh's misses, a depth map's empty values) counts as not moving, 1/Z = 0 (default); "
        "--no-allow-sky: left out",
    )
    sp.add_argument(
        "--cloud-sky",
        action="store_true",
        help="a point cloud's uncovered pixels are sky (default: unknown, left out of Π)",
    )
    sp.add_argument("--fov-match", choices=["angular", "frame"], default="angular")
    sp.add_argument("--smooth", type=int, default=0, help="running median of α over ±N steps (0: off)")
    sp.add_argument("--clamp-ratio", type=float, help="limit α to median·[1/r, r]")
    sp.add_argument("-o", "--output", required=True, help="output ParaScale trajectory JSON")
    common(sp)
    sp.set_defaults(func=cmd_rescale)

    sp = sub.add_parser("metrics", help="PCE, RotErr, TransErr, CamMC, ATE, RPE of a track against a reference")
    sp.add_argument("estimate")
    sp.add_argument("reference")
    common(sp, fmt=False)
    sp.set_defaults(func=cmd_metrics)

    sp = sub.add_parser("export-rays", help="Plücker ray maps (CameraCtrl convention) of a track as .npy/.safetensors")
    sp.add_argument("track")
    sp.add_argument("--width", type=int, help="map width in pixels (default: the track's)")
    sp.add_argument("--height", type=int, help="map height in pixels (default: the track's)")
    sp.add_argument(
        "--layout",
        choices=["fchw", "cfhw"],
        default="fchw",
        help="fchw: (frames, 6, H, W) as CameraCtrl; cfhw: (6, frames, H, W) as Wan-Fun Control-Camera's adapter",
    )
    sp.add_argument("-o", "--output", required=True, help="output .npy or .safetensors")
    common(sp)
    sp.set_defaults(func=cmd_export_rays)

    sp = sub.add_parser("export-tracks", help="pixel trajectories of frame 0 over a target depth, with visibility")
    sp.add_argument("track", help="the (rescaled) camera track")
    sp.add_argument("--target-depth", required=True, help="number, points (.npy/.ply), mesh (.ply/.obj), depth maps")
    sp.add_argument("--step", type=int, default=8, help="grid step in pixels (1: every pixel)")
    sp.add_argument("--tracks", type=int, help="N random pixels with depth instead of a grid")
    sp.add_argument("--seed", type=int, default=0, help="random seed of --tracks")
    sp.add_argument("--plot", help="also draw the tracks over frame 0's depth into this PNG")
    sp.add_argument("-o", "--output", required=True, help="output .npy or .safetensors: (frames, N, [x, y, visible])")
    common(sp)
    sp.set_defaults(func=cmd_export_tracks)

    sp = sub.add_parser(
        "convert-wan-fun",
        help="Wan-Fun Control-Camera as released (VideoX-Fun layout) -> a wan-fun-camera weights folder",
    )
    sp.add_argument(
        "source", help="the downloaded folder (config.json, diffusion_pytorch_model.safetensors, Wan2.1_VAE.pth)"
    )
    sp.add_argument("output", help="new folder, e.g. $PARASCALE_WEIGHTS/wan-fun-camera/default")
    sp.add_argument("--encoders", help="a diffusers Wan 2.1 I2V folder to take the text and image encoders from")
    sp.add_argument("--json", action="store_true", help="print machine-readable JSON")
    sp.set_defaults(func=cmd_convert_wan_fun)

    for name, func, text in (
        ("track", cmd_track, "reference video -> camera track with depth (needs pycolmap)"),
        ("bench", cmd_bench, "benchmarks: prints a table, writes JSON"),
        ("demo", cmd_demo, "the whole product on embedded defaults"),
    ):
        sp = sub.add_parser(name, help=text, add_help=False)
        sp.add_argument("rest", nargs=argparse.REMAINDER)
        sp.set_defaults(func=func)
    return p


DELEGATED = {"track": cmd_track, "bench": cmd_bench, "demo": cmd_demo}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv and argv[0] in DELEGATED:  # these parse their own options
        args = argparse.Namespace(command=argv[0], rest=argv[1:], func=DELEGATED[argv[0]])
    else:
        args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (CliError, ValueError, OSError) as exc:  # FormatError, DepthError, RescaleError are ValueErrors
        print(f"parascale {args.command}: error: {exc}", file=sys.stderr)
        return 2
