"""MotionCtrl camera poses: a JSON list of N entries of 12 numbers.

Each entry is a flattened 3x4 ``[R|t]`` **world-to-camera** matrix (row-major, OpenCV axes),
relative to the first frame (the first entry is normally the identity). Nested 3x4 or 4x4 lists
are accepted too. The file holds no intrinsics, image size or timing: they come from options,
by default a 256x256 image with ``fx = fy = 0.5 * width`` (a 90 degree field of view, typical of
the RealEstate10K clips MotionCtrl was trained on) and 24 fps; the metadata says so.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from ..core.camera import Trajectory, invert_rigid
from .errors import FormatError
from .textio import finish, is_number, load_json, quiet_numerics


def _entry(value, i: int, path) -> np.ndarray:
    field = f"[{i}]"
    flat = value
    if isinstance(value, list) and value and all(isinstance(r, list) for r in value):
        if len(value) in (3, 4) and all(len(r) == 4 for r in value):
            flat = [x for r in value[:3] for x in r]
    if not (isinstance(flat, list) and len(flat) == 12 and all(is_number(x) for x in flat)):
        raise FormatError(path, "expected 12 numbers (a flattened 3x4 world-to-camera [R|t])", field=field)
    arr = np.array(flat, dtype=np.float64)
    if not np.isfinite(arr).all():
        raise FormatError(path, "non-finite value", field=field)
    return arr


@quiet_numerics
def read_motionctrl(
    path: str | os.PathLike,
    *,
    width: int = 256,
    height: int = 256,
    fx: float | None = None,
    fy: float | None = None,
    cx: float | None = None,
    cy: float | None = None,
    fps: float = 24.0,
    repair_rotations: bool = False,
) -> Trajectory:
    """Read a MotionCtrl RT list; intrinsics and size from the options (see the module docstring)."""
    doc = load_json(path)
    if not isinstance(doc, list) or not doc:
        raise FormatError(path, "expected a non-empty JSON list of 12-number pose entries")
    w2c34 = np.stack([_entry(v, i, path) for i, v in enumerate(doc)]).reshape(-1, 3, 4)
    n = len(w2c34)
    w2c = np.zeros((n, 4, 4))
    w2c[:, :3] = w2c34
    w2c[:, 3, 3] = 1.0
    assumed = fx is None
    fx = 0.5 * width if fx is None else fx
    K = [fx, fx if fy is None else fy, width / 2.0 if cx is None else cx, height / 2.0 if cy is None else cy]
    meta = {"source_format": "motionctrl", "intrinsics": "assumed (90 degree hfov)" if assumed else "given"}
    traj = Trajectory(np.arange(n), invert_rigid(w2c), K, width, height, fps=fps, metadata=meta)
    return finish(traj, path, repair_rotations)


def write_motionctrl(traj: Trajectory, path: str | os.PathLike) -> None:
    """Write the track relative to its first frame as MotionCtrl's N x 12 world-to-camera list."""
    rows = traj.relative_to_first().w2c[:, :3, :].reshape(len(traj), 12)
    body = ",\n".join("  " + json.dumps(r.tolist(), allow_nan=False) for r in rows)
    Path(path).write_text("[\n" + body + "\n]\n", encoding="utf-8")
