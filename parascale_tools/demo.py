"""``parascale demo``: the product end to end on embedded defaults (no weights, GPU or network).

Stage 1 (engine, always): the bundled real RealEstate10K track, with its depth given as a subject
distance, is rescaled onto the built-in desk scene (metres, objects a few cm tall) in every mode;
the Π table and the modes' PCE are printed and written to ``demo/``.
Stage 2 (Blender, when the bpy module is installed): ``parascale_tools.demo_blender`` builds the
scene in real Blender, runs the add-on's operators, starts the bridge server, generates the clip
and inserts it in the Video Sequencer.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from parascale_blender.core.metrics import pce

from .output import jsonable, print_pi_table
from .reference import REFERENCE_FILE, REFERENCE_SUBJECT_DISTANCE, bundled_reference_path


def engine_demo(out_dir: Path, scene_name: str = "desk", working_size: int = 160, quiet: bool = False) -> dict:
    """Rescale the bundled reference onto a built-in scene in every mode; returns the headline numbers."""
    from parascale_blender.core.camera import Camera, opencv_from_blender
    from parascale_blender.core.depth import ConstantDepth
    from parascale_blender.core.depth_sources import MeshDepth
    from parascale_blender.core.rescale import MODES, RescaleOptions, rescale
    from parascale_blender.formats.registry import read_trajectory, write_trajectory
    from parascale_tools.scenes import SCENES

    ref = read_trajectory(bundled_reference_path(), width=640, height=360, fps=30.0)
    scene = SCENES[scene_name]()
    target_depth = MeshDepth(scene.vertices, scene.triangles)
    start = opencv_from_blender(scene.start_c2w_blender)
    cam = Camera(ref.intrinsics[0, 0], ref.intrinsics[0, 1], ref.width / 2, ref.height / 2, ref.width, ref.height)
    results = {}
    for mode in MODES:
        t0 = time.perf_counter()
        res = rescale(
            ref,
            ConstantDepth(REFERENCE_SUBJECT_DISTANCE),
            target_depth,
            start,
            cam,
            RescaleOptions(mode=mode, working_size=working_size),
        )
        results[mode] = (res, time.perf_counter() - t0)
    out_dir.mkdir(parents=True, exist_ok=True)
    default = RescaleOptions().mode
    best, _ = results[default]
    write_trajectory(best.trajectory, out_dir / f"rescaled_{default}.json", "parascale")
    if not quiet:
        print(
            f"reference: {REFERENCE_FILE} ({len(ref)} frames, RealEstate10K, CC BY 4.0), "
            f"depth = subject distance {REFERENCE_SUBJECT_DISTANCE} units"
        )
        print(f"target:    built-in '{scene.name}' scene ({scene.description})\n")
        print_pi_table(best)
        print()
    # The common yardstick: every mode's output measured by the exact image motion it causes
    # (sky counted as not moving, as the eye sees it), from the written poses.
    from parascale_blender.core.rescale import RescaleOptions, step_parallax

    yardstick = RescaleOptions(mode="exact", allow_sky=True, working_size=working_size)
    summary = {}
    pi_ref = step_parallax(ref.c2w, ConstantDepth(REFERENCE_SUBJECT_DISTANCE), ref.camera(0), yardstick)
    for mode, (res, secs) in results.items():
        out = res.trajectory
        pi_out = step_parallax(out.c2w, target_depth, out.camera(0), yardstick)
        lo, hi = res.scale_range
        summary[mode] = {
            "pce_image_motion": pce(pi_out, pi_ref, strict=False),
            "alpha_min": lo,
            "alpha_max": hi,
            "seconds": secs,
        }
    if not quiet:
        print(f"{'mode':<11} {'PCE (image motion)':>19} {'α min':>10} {'α max':>10} {'seconds':>8}")
        for mode, s in summary.items():
            print(
                f"{mode:<11} {s['pce_image_motion']:>19.4f} {s['alpha_min']:>10.4g} {s['alpha_max']:>10.4g} "
                f"{s['seconds']:>8.3f}"
            )
    report = {"reference": REFERENCE_FILE, "scene": scene.name, "modes": summary}
    (out_dir / "engine_summary.json").write_text(json.dumps(jsonable(report), indent=2))
    return report


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="parascale demo", description=__doc__.splitlines()[0])
    p.add_argument("-o", "--output", default="demo", help="output folder (default: ./demo)")
    p.add_argument("--scene", default="desk", choices=["desk", "canyon"])
    p.add_argument("--engine-only", action="store_true", help="skip the Blender and server stages")
    p.add_argument("--quick", action="store_true", help="reduced sizes (what the tests run)")
    args = p.parse_args(argv)
    out = Path(args.output).resolve()
    report = engine_demo(out, args.scene, working_size=64 if args.quick else 160)
    if not args.engine_only:
        from importlib.util import find_spec

        if find_spec("bpy") is None:
            print("\nbpy is not installed: Blender stage skipped (./scripts/dev demo installs it).", file=sys.stderr)
        elif find_spec("parascale_tools.demo_blender") is not None:
            from parascale_tools.demo_blender import blender_demo

            report["blender"] = blender_demo(out, quick=args.quick)
    print_headline(report, out)
    return 0


def print_headline(report: dict, out: Path) -> None:
    """Where everything is, and the numbers that matter."""
    modes = report["modes"]
    print("\n== ParaScale demo: headline ==")
    print(
        f"engine  image-motion PCE: exact {modes['exact']['pce_image_motion']:.2g}, harmonic "
        f"{modes['harmonic']['pce_image_motion']:.3f}, uncalibrated {modes['none']['pce_image_motion']:.3f} "
        f"(scene '{report['scene']}')"
    )
    for name, shot in report.get("blender", {}).items():
        lo, hi = shot["alpha_range"]
        print(f"shot    {name}: α {lo:.3g}–{hi:.3g}, PCE measured on the generated clip {shot['pce_measured']:.3f}")
        print(f"        as the panel shows it: {shot['panel_line']}")
        print(f"        clip {shot['clip']}")
    print(f"outputs in {out}")
    for f in sorted(out.iterdir()):
        if not f.name.startswith("_"):
            print(f"        {f.name}")
