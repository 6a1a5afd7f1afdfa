"""Printing results: JSON-safe conversion (NaN/inf as null, numpy to lists) and the Π table."""

from __future__ import annotations

import math
import sys

import numpy as np


def fmt(v: float) -> str:
    return "—" if v is None or not math.isfinite(v) else f"{v:.6g}"


def jsonable(obj):
    if isinstance(obj, dict):
        return {k: jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return jsonable(obj.tolist())
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def print_pi_table(res, out=sys.stdout) -> None:
    """The per-frame Π table an artist reads: Π_ref, Π_target(step), α, Π_realized."""
    out.write(f"{'frame':>7} {'Π_ref':>12} {'Π_target':>12} {'α':>12} {'Π_realized':>12}\n")
    for i, f in enumerate(res.trajectory.frames):
        out.write(
            f"{int(f):>7} {fmt(res.pi_ref[i]):>12} {fmt(res.pi_target[i]):>12} "
            f"{fmt(res.alpha[i]):>12} {fmt(res.pi_realized[i]):>12}\n"
        )
    lo, hi = res.scale_range
    out.write(f"mode {res.mode}: PCE {fmt(res.pce)}, α range {fmt(lo)} … {fmt(hi)}\n")
    for w in res.warnings:
        out.write(f"warning: {w}\n")
