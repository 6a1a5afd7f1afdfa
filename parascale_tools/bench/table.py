"""Bench rows: timing (median of repeats) and the plain-text table."""

from __future__ import annotations

import time


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
