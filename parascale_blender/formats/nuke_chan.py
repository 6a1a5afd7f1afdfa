"""Nuke ``.chan`` camera channels: one line per frame ``frame tx ty tz rx ry rz [vfov]``.

Translations are the camera position in a Y-up world; rotations are Euler angles in **degrees**
applied in Nuke's rotation order (default ``ZXY``: roll first, then tilt, then pan, i.e.
``R = Ry @ Rx @ Rz`` on column vectors; see :func:`core.rotation.euler_to_matrix`). The camera
looks down -Z with +Y up (OpenGL), so ``c2w_cv = [R | t] @ diag(1, -1, -1, 1)``. The world is
kept as it is (Y up); ``metadata['world_up']`` records that. The optional 8th column is the
vertical field of view in degrees; without it the focal length comes from the options
(default: Nuke's default camera, 50 mm lens on a 24.576 mm horizontal aperture). Pixels are
square and the principal point is the image centre.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np

from ..core.camera import FLIP_YZ, Trajectory, make_c2w
from ..core.rotation import euler_to_matrix, matrix_to_euler
from .errors import FormatError
from .textio import finish, parse_floats, quiet_numerics, read_text

ORDERS = ("XYZ", "XZY", "YXZ", "YZX", "ZXY", "ZYX")
NAMES = ["frame", "tx", "ty", "tz", "rx", "ry", "rz", "vfov"]
NUKE_FOCAL_MM, NUKE_HAPERTURE_MM = 50.0, 24.576


@quiet_numerics
def read_chan(
    path: str | os.PathLike,
    *,
    width: int = 1920,
    height: int = 1080,
    rotation_order: str = "ZXY",
    vfov_deg: float | None = None,
    fps: float = 24.0,
    repair_rotations: bool = False,
) -> Trajectory:
    """Read a .chan file. ``vfov_deg`` overrides a missing vfov column; the image size is an option."""
    order = rotation_order.upper()
    if order not in ORDERS:
        raise FormatError(path, f"unknown rotation order {rotation_order!r}; known: {', '.join(ORDERS)}")
    rows, ncol = [], None
    for k, line in enumerate(read_text(path).splitlines(), start=1):
        tokens = line.split()
        if not tokens or tokens[0].startswith("#"):
            continue
        if len(tokens) not in (7, 8):
            raise FormatError(path, f"expected 7 or 8 columns (frame tx ty tz rx ry rz [vfov]), got {len(tokens)}", k)
        if ncol is not None and len(tokens) != ncol:
            raise FormatError(path, f"expected {ncol} columns like the first line, got {len(tokens)}", k)
        ncol = len(tokens)
        vals = parse_floats(tokens, path, k, NAMES)
        bad = ~np.isfinite(vals)
        if bad.any():
            j = int(np.argmax(bad))
            raise FormatError(path, f"non-finite value {tokens[j]!r}", k, NAMES[j])
        if not (vals[0].is_integer() and abs(vals[0]) < 2**53):
            raise FormatError(path, f"expected an integer frame number, got {tokens[0]!r}", k, "frame")
        if ncol == 8 and not 0 < vals[7] < 180:
            raise FormatError(path, f"vertical field of view must be in (0, 180) degrees, got {tokens[7]}", k, "vfov")
        rows.append(vals)
    if not rows:
        raise FormatError(path, "no frame lines")
    a = np.array(rows)
    R = euler_to_matrix(np.radians(a[:, 4:7]), order)
    c2w = make_c2w(R, a[:, 1:4]) @ FLIP_YZ
    meta: dict = {"source_format": "nuke_chan", "world_up": "+Y", "rotation_order": order}
    if ncol == 8:
        fy = 0.5 * height / np.tan(np.radians(a[:, 7]) / 2)
    elif vfov_deg is not None:
        fy = np.full(len(a), 0.5 * height / math.tan(math.radians(vfov_deg) / 2))
    else:
        fy = np.full(len(a), width * NUKE_FOCAL_MM / NUKE_HAPERTURE_MM)
        meta["intrinsics"] = "assumed (Nuke default camera: 50 mm lens, 24.576 mm aperture)"
    K = np.stack([fy, fy, np.full(len(a), width / 2.0), np.full(len(a), height / 2.0)], 1)
    traj = Trajectory(a[:, 0].astype(np.int64), c2w, K, width, height, fps=fps, metadata=meta)
    return finish(traj, path, repair_rotations)


def write_chan(traj: Trajectory, path: str | os.PathLike, *, rotation_order: str = "ZXY") -> None:
    """Write ``frame tx ty tz rx ry rz vfov`` (degrees). The vfov comes from fy and the image height;
    a non-square pixel or off-centre principal point cannot be represented and is dropped."""
    order = rotation_order.upper()
    if order not in ORDERS:
        raise ValueError(f"unknown rotation order {rotation_order!r}; known: {', '.join(ORDERS)}")
    gl = traj.c2w @ FLIP_YZ
    rot = np.degrees(matrix_to_euler(gl[:, :3, :3], order))
    vfov = np.degrees(2 * np.arctan(0.5 * traj.height / traj.intrinsics[:, 1]))
    lines = []
    for i in range(len(traj)):
        vals = [*gl[i, :3, 3], *rot[i], vfov[i]]
        lines.append(f"{int(traj.frames[i])} " + " ".join(repr(float(v)) for v in vals))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
