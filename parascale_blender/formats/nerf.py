"""NeRF / instant-ngp / nerfstudio ``transforms.json``.

``frames[i].transform_matrix`` is camera-to-world with an **OpenGL camera** (x right, y up,
looking down -z); we convert with ``c2w_cv = c2w_gl @ diag(1, -1, -1, 1)``. Intrinsics are
``fl_x, fl_y, cx, cy, w, h`` (pixels) or ``camera_angle_x`` (horizontal FOV, radians, with
optional ``camera_angle_y``), at the top level and/or per frame (per-frame keys win). Missing
``cx, cy`` mean the image centre. Distortion keys (k1, k2, p1, p2, ...) are kept in the metadata.
Frames keep the file's order; frame numbers are the digits of ``file_path`` when they increase,
else the index. A top-level ``metres_per_unit`` (ParaScale's, not a NeRF key: loaders ignore it)
states the positions' unit and round-trips through ``Trajectory.metadata``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..core.camera import FLIP_YZ, METRES_PER_UNIT, Trajectory
from .errors import FormatError
from .textio import finish, frames_from_names, is_number, load_json, number_matrix, quiet_numerics

INTRINSIC_KEYS = ("fl_x", "fl_y", "cx", "cy", "w", "h", "camera_angle_x", "camera_angle_y")
DISTORTION_KEYS = ("k1", "k2", "k3", "k4", "p1", "p2")


def _num(d: dict, key: str, path, where: str):
    v = d.get(key)
    if v is None:
        return None
    if not (is_number(v) and math.isfinite(v)):
        raise FormatError(path, f"expected a finite number, got {json.dumps(v)[:40]}", field=f"{where}{key}")
    return float(v)


@quiet_numerics
def read_nerf(
    path: str | os.PathLike,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float = 24.0,
    repair_rotations: bool = False,
) -> Trajectory:
    """Read a transforms.json; ``width``/``height`` stand in for missing ``w``/``h``."""
    doc = load_json(path)
    if not isinstance(doc, dict):
        raise FormatError(path, "expected a JSON object with a 'frames' list")
    frames_doc = doc.get("frames")
    if not isinstance(frames_doc, list) or not frames_doc:
        raise FormatError(path, "expected a non-empty list of frames", field="frames")
    top = {k: _num(doc, k, path, "") for k in INTRINSIC_KEYS}
    n = len(frames_doc)
    c2w = np.empty((n, 4, 4))
    K = np.empty((n, 4))
    sizes = set()
    names = []
    for i, f in enumerate(frames_doc):
        where = f"frames[{i}]."
        if not isinstance(f, dict):
            raise FormatError(path, "expected an object", field=f"frames[{i}]")
        m = number_matrix(f.get("transform_matrix"), 4, 4, path, where + "transform_matrix", "4x4 numbers")
        if np.abs(m[3] - [0, 0, 0, 1]).max() > 1e-6:
            raise FormatError(path, "last row must be [0, 0, 0, 1]", field=where + "transform_matrix")
        c2w[i] = m @ FLIP_YZ
        p = {k: (_num(f, k, path, where) if k in f else top[k]) for k in INTRINSIC_KEYS}
        w = p["w"] if p["w"] is not None else width
        h = p["h"] if p["h"] is not None else height
        if w is None or h is None:
            raise FormatError(
                path, "image size missing ('w' and 'h'); give the image size (Image size on import)", field=where + "w"
            )
        if not (float(w).is_integer() and float(h).is_integer() and w >= 1 and h >= 1):
            raise FormatError(path, f"image size must be positive integers, got {w}x{h}", field=where + "w")
        sizes.add((int(w), int(h)))
        fx = p["fl_x"]
        if fx is None and p["camera_angle_x"] is not None:
            fx = 0.5 * w / math.tan(0.5 * p["camera_angle_x"]) if p["camera_angle_x"] != 0 else math.inf
        fy = p["fl_y"]
        if fy is None and p["camera_angle_y"] is not None:
            fy = 0.5 * h / math.tan(0.5 * p["camera_angle_y"]) if p["camera_angle_y"] != 0 else math.inf
        if fx is None and fy is None:
            raise FormatError(path, "no focal length (fl_x or camera_angle_x)", field=where + "fl_x")
        fx = fy if fx is None else fx
        fy = fx if fy is None else fy
        cx = w / 2.0 if p["cx"] is None else p["cx"]
        cy = h / 2.0 if p["cy"] is None else p["cy"]
        K[i] = (fx, fy, cx, cy)
        fp = f.get("file_path", "")
        names.append(fp if isinstance(fp, str) else "")
    if len(sizes) > 1:
        raise FormatError(path, f"frames have different image sizes {sorted(sizes)}; one size per track is supported")
    (w, h) = sizes.pop()
    frames = frames_from_names(names)
    if frames is None:
        frames = np.arange(n)
    meta = {"source_format": "nerf"}
    dist = {k: doc[k] for k in DISTORTION_KEYS if is_number(doc.get(k)) and doc[k] != 0}
    if dist:
        meta["distortion"] = dist
    if isinstance(doc.get("camera_model"), str):
        meta["camera_model"] = doc["camera_model"]
    if METRES_PER_UNIT in doc:
        mpu = doc[METRES_PER_UNIT]
        if not (is_number(mpu) and math.isfinite(mpu) and mpu > 0):
            raise FormatError(path, f"expected a positive number, got {json.dumps(mpu)[:40]}", field=METRES_PER_UNIT)
        meta[METRES_PER_UNIT] = float(mpu)
    traj = Trajectory(frames, c2w, K, w, h, fps=fps, metadata=meta)
    return finish(traj, path, repair_rotations)


def write_nerf(
    traj: Trajectory, path: str | os.PathLike, *, image_pattern: str = "images/frame_{frame:05d}.png"
) -> None:
    """Write transforms.json: shared intrinsics at the top level, per-frame ones only where they differ."""
    K = traj.intrinsics
    shared = bool(np.all(K == K[0]))
    doc: dict = {"camera_model": "PINHOLE", "w": traj.width, "h": traj.height}
    if shared:
        doc.update(fl_x=float(K[0, 0]), fl_y=float(K[0, 1]), cx=float(K[0, 2]), cy=float(K[0, 3]))
        doc["camera_angle_x"] = 2.0 * math.atan(traj.width / (2.0 * float(K[0, 0])))  # the original NeRF loader's key
    frames = []
    gl = traj.c2w @ FLIP_YZ
    for i in range(len(traj)):
        f: dict = {"file_path": image_pattern.format(frame=int(traj.frames[i])), "transform_matrix": gl[i].tolist()}
        if not shared:
            f.update(fl_x=float(K[i, 0]), fl_y=float(K[i, 1]), cx=float(K[i, 2]), cy=float(K[i, 3]))
        frames.append(f)
    mpu = traj.metadata.get(METRES_PER_UNIT)
    if isinstance(mpu, int | float) and math.isfinite(mpu) and mpu > 0:
        doc[METRES_PER_UNIT] = float(mpu)  # not a NeRF key (loaders ignore it): the positions' unit
    doc["frames"] = frames
    Path(path).write_text(json.dumps(doc, indent=1, allow_nan=False) + "\n", encoding="utf-8")
