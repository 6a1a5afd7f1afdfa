"""``parascale bench``: every benchmark row in one table, with ratios against same-run baselines.

A row is a dict: ``group``, ``name``, ``value``, ``unit``, and optionally ``baseline`` (the
comparison value measured in the same run), ``ratio`` (value / baseline, or the speed-up for
rates) and ``note``. Sections are modules with a ``rows(quick: bool) -> list[dict]`` function;
a section whose dependencies are missing (bpy, torch, pycolmap) is reported as skipped.
Timings are the median of repeated runs (see :func:`median_time`).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
import traceback
from pathlib import Path

from .table import format_table

SECTIONS = {
    "engine": "parascale_tools.bench.engine_bench",
    "depth": "parascale_tools.bench.depth_bench",
    "blender": "parascale_tools.bench.blender_bench",
    "server": "parascale_tools.bench.server_bench",
    "farm": "parascale_tools.bench.farm_bench",
    "tracking": "parascale_tools.bench.tracking_bench",
    "gen": "parascale_tools.bench.gen_bench",
    "closed_loop": "parascale_tools.bench.closed_loop",
    "depth_paths": "parascale_tools.bench.depth_paths",
    "real_footage": "parascale_tools.bench.real_footage",
    "rescale": "parascale_tools.bench.rescale_bench",
}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="parascale bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for CI")
    p.add_argument("--only", nargs="*", choices=sorted(SECTIONS), help="run only these sections")
    p.add_argument("-o", "--output", default="bench/results.json", help="JSON output path")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument(
        "--report", action="store_true", help="also write bench/report.md, closed_loop_cases.json, the plot (full loop)"
    )
    args = p.parse_args(argv)
    sections = args.only or list(SECTIONS)
    if args.report:  # the report runs the closed loop itself, with its per-case records
        sections = [s for s in sections if s != "closed_loop"]
    rows: list[dict] = []
    status: dict[str, str] = {}
    failed = False
    for section in sections:
        try:
            mod = importlib.import_module(SECTIONS[section])
        except ModuleNotFoundError as exc:
            status[section] = f"skipped ({exc.name} not available)"
            continue
        fn = getattr(mod, "rows", None) or next(
            (getattr(mod, n) for n in dir(mod) if n.endswith("_rows") and callable(getattr(mod, n))), None
        )
        if fn is None:
            status[section] = "skipped (no rows())"
            continue
        t0 = time.perf_counter()
        try:
            section_rows = fn(quick=args.quick)
        except ModuleNotFoundError as exc:
            status[section] = f"skipped ({exc.name} not available)"
            continue
        except Exception:  # a benchmark failure must be loud, and not hide the other sections
            traceback.print_exc()
            status[section] = "FAILED"
            failed = True
            continue
        for r in section_rows:
            r.setdefault("group", section)
        rows += section_rows
        status[section] = f"ok ({time.perf_counter() - t0:.1f} s)"
    result = {
        "quick": args.quick,
        "machine": {"python": sys.version.split()[0], "platform": platform.platform(), "cpus": _cpus()},
        "sections": status,
        "rows": rows,
    }
    if args.report:
        from .closed_loop import default_shared_data, rows_from_cases, run
        from .report import write_report

        t0 = time.perf_counter()
        cases = run(quick=args.quick, shared_data=default_shared_data(), workers=1 if args.quick else _cpus())
        rows += rows_from_cases(cases, time.perf_counter() - t0)
        status["closed_loop"] = f"ok ({time.perf_counter() - t0:.1f} s)"
        print(f"wrote {write_report(cases, rows, Path(args.output).parent, args.quick)}")
    out = Path(args.output)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2, default=float))
    if args.json:
        print(json.dumps(result, indent=2, default=float))
    else:
        print(format_table(rows))
        print()
        for k, v in status.items():
            print(f"{k:<12} {v}")
        print(f"\nwrote {out}")
    return 1 if failed else 0


def _cpus() -> int:
    import os

    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
