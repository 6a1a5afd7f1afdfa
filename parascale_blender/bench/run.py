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

SECTIONS = {
    "engine": "parascale_blender.bench.engine_bench",
    "depth": "parascale_blender.bench.depth_bench",
    "blender": "parascale_blender.bench.blender_bench",
    "server": "parascale_blender.bench.server_bench",
    "tracking": "parascale_blender.bench.tracking_bench",
    "gen": "parascale_blender.bench.gen_bench",
    "closed_loop": "parascale_blender.bench.closed_loop",
}


def median_time(fn, repeat: int = 5, warmup: int = 1, clock=time.perf_counter) -> float:
    """Median time of ``fn()`` in seconds over ``repeat`` runs after ``warmup`` runs.

    ``clock=time.process_time`` measures CPU time of this process: for single-threaded work it is
    the per-core cost, and it does not grow when other processes share the machine.
    """
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeat):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    times.sort()
    return times[len(times) // 2]


def _fmt(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.4g}"
    return str(v)


def format_table(rows: list[dict]) -> str:
    cols = ["group", "name", "value", "unit", "baseline", "ratio", "note"]
    cells = [[_fmt(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) if cells else len(c) for i, c in enumerate(cols)]
    line = "  ".join(c.ljust(w) for c, w in zip(cols, widths))
    out = [line, "  ".join("-" * w for w in widths)]
    out += ["  ".join(v.ljust(w) for v, w in zip(row, widths)) for row in cells]
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="parascale bench", description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small sizes, for CI")
    p.add_argument("--only", nargs="*", choices=sorted(SECTIONS), help="run only these sections")
    p.add_argument("-o", "--output", default="bench/results.json", help="JSON output path")
    p.add_argument("--json", action="store_true", help="print JSON instead of the table")
    p.add_argument("--report", action="store_true", help="also write bench/report.md and plots (closed loop)")
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
        cases = run(quick=args.quick, shared_data=default_shared_data(), retrack=not args.quick)
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
