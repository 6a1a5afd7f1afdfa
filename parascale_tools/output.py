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
    from parascale_blender.core.rescale import check_lines

    lo, hi = res.scale_range
    out.write(f"mode {res.mode}: solver residual {fmt(res.solver_residual)}, α range {fmt(lo)} … {fmt(hi)}\n")
    for line in check_lines(res.checks):
        out.write(f"check: {line}\n")
    for w in res.warnings:
        out.write(f"warning: {w}\n")


class ProgressBar:
    """Progress on stderr: a ``tqdm`` bar with its rate and time left on a terminal; plain lines
    (one per new message) when stderr is not a terminal. ``bar(fraction, message)``;
    ``bar.steps(done, total)`` for the engine's progress hook (its rate is then in steps/s)."""

    def __init__(self, label: str = "", enabled: bool = True):
        self.label, self.enabled = label, enabled
        self.tty = sys.stderr.isatty()
        self.last = ""
        self._bar = None

    def _tqdm(self, total: float, unit: str):
        if self._bar is None or self._bar.total != total:
            from tqdm import tqdm

            if self._bar is not None:
                self._bar.close()
            fmt = "{l_bar}{bar}| [{elapsed}<{remaining}, {rate_fmt}] {postfix}"
            self._bar = tqdm(total=total, desc=self.label or None, unit=unit, file=sys.stderr, bar_format=fmt)
        return self._bar

    def _show(self, done: float, total: float, unit: str, message: str) -> None:
        if not self.enabled:
            return
        if self.tty:
            bar = self._tqdm(total, unit)
            bar.n = done
            if message != self.last:
                bar.set_postfix_str(message, refresh=False)
            bar.refresh()
        elif message != self.last:
            label = f"{self.label} " if self.label else ""
            sys.stderr.write(f"{label}{done / total if total else 1.0:4.0%} {message}\n")
            sys.stderr.flush()
        self.last = message

    def __call__(self, fraction: float, message: str = "") -> None:
        self._show(round(100 * max(0.0, min(1.0, fraction)), 1), 100, "%", message)

    def steps(self, done: float, total: float) -> None:
        if total:
            self._show(min(max(done, 0), total), total, "step", self.last)
        else:
            self(1.0)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None
