"""ParaScale trajectory JSON, version 1 (the format of ``docs/architecture.md``).

Poses are camera-to-world 4x4 with OpenCV camera axes, intrinsics ``[fx, fy, cx, cy]`` in pixels.
Per-frame numeric keys other than ``frame``/``c2w``/``intrinsics`` round-trip through
``Trajectory.extras`` (NaN is written as ``null`` and read back as NaN). ``points`` is optional.
The JSON Schema is ``parascale_blender/schema/trajectory.schema.json``.
"""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np

from ..core.camera import SparsePoints, Trajectory
from .errors import FormatError
from .textio import finish, is_number, load_json, number_matrix, quiet_numerics

FORMAT_NAME = "parascale-trajectory"
VERSION = 1
CONVENTION = {"pose": "camera_to_world", "axes": "opencv", "intrinsics": "pixels"}
FRAME_KEYS = ("frame", "c2w", "intrinsics")
TOP_KEYS = ("format", "version", "convention", "fps", "width", "height", "frames", "points", "metadata")


def _jsonable(value):
    """numpy and NaN-bearing values → plain JSON values (NaN/inf → null)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return _jsonable(value.tolist())
    if isinstance(value, np.generic):
        return _jsonable(value.item())
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if value is None or isinstance(value, str | int | bool):
        return value
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    raise ValueError(f"metadata value {value!r} of type {type(value).__name__} is not JSON-serialisable")


def trajectory_to_dict(traj: Trajectory) -> dict:
    """The version-1 document for ``traj`` (plain Python types, NaN → None)."""
    for name, arr in traj.extras.items():
        if name in FRAME_KEYS:
            raise ValueError(f"extras key {name!r} collides with a reserved per-frame key")
        if np.shape(arr) != (len(traj),):
            raise ValueError(f"extras[{name!r}] has shape {np.shape(arr)}, expected ({len(traj)},)")
    extras = {k: _jsonable(np.asarray(v, dtype=np.float64)) for k, v in traj.extras.items()}
    frames = []
    for i in range(len(traj)):
        entry = {
            "frame": int(traj.frames[i]),
            "c2w": traj.c2w[i].tolist(),
            "intrinsics": traj.intrinsics[i].tolist(),
        }
        for k, v in extras.items():
            entry[k] = v[i]
        frames.append(entry)
    doc = {
        "format": FORMAT_NAME,
        "version": VERSION,
        "convention": dict(CONVENTION),
        "fps": float(traj.fps),
        "width": int(traj.width),
        "height": int(traj.height),
        "frames": frames,
    }
    if traj.points is not None:
        pts = {"xyz": np.asarray(traj.points.xyz, dtype=np.float64).reshape(-1, 3).tolist()}
        if traj.points.rgb is not None:
            pts["rgb"] = np.asarray(traj.points.rgb).astype(np.int64).reshape(-1, 3).tolist()
        if traj.points.visibility is not None:
            pts["visibility"] = [np.asarray(v, dtype=np.int64).reshape(-1).tolist() for v in traj.points.visibility]
        doc["points"] = pts
    doc["metadata"] = _jsonable(dict(traj.metadata))
    return doc


def dumps(traj: Trajectory) -> str:
    """The JSON text: header keys indented, one line per frame."""
    doc = trajectory_to_dict(traj)
    compact = {"separators": (", ", ": "), "allow_nan": False}
    lines = []
    for key, value in doc.items():
        if key == "frames":
            body = ",\n    ".join(json.dumps(f, **compact) for f in value)
            lines.append(f'  "frames": [\n    {body}\n  ]')
        else:
            lines.append(f"  {json.dumps(key)}: {json.dumps(value, **compact)}")
    return "{\n" + ",\n".join(lines) + "\n}\n"


def write_parascale_json(traj: Trajectory, path: str | os.PathLike) -> None:
    """Write ``traj`` as ParaScale trajectory JSON version 1."""
    Path(path).write_text(dumps(traj), encoding="utf-8")


def _positive_int(doc: dict, key: str, path) -> int:
    v = doc.get(key)
    if not (is_number(v) and float(v).is_integer() and v >= 1):
        raise FormatError(path, f"expected a positive integer, got {json.dumps(v)[:40]}", field=key)
    return int(v)


def trajectory_from_dict(doc, path: str | os.PathLike = "<json>", repair_rotations: bool = False) -> Trajectory:
    """Validate a parsed version-1 document and build the :class:`Trajectory` (FormatError on any defect)."""
    if not isinstance(doc, dict):
        raise FormatError(path, "expected a JSON object at the top level")
    if doc.get("format") != FORMAT_NAME:
        raise FormatError(
            path, f"expected {json.dumps(FORMAT_NAME)}, got {json.dumps(doc.get('format'))[:60]}", field="format"
        )
    version = doc.get("version")
    if not (is_number(version) and version == VERSION):
        raise FormatError(
            path, f"unsupported version {json.dumps(version)[:20]} (this reader knows {VERSION})", field="version"
        )
    unknown = sorted(set(doc) - set(TOP_KEYS))
    if unknown:
        raise FormatError(path, f"unknown key; allowed keys are {', '.join(TOP_KEYS)}", field=unknown[0])
    if "convention" in doc and doc["convention"] != CONVENTION:
        raise FormatError(path, f"expected {json.dumps(CONVENTION)}", field="convention")
    fps = doc.get("fps", 24.0)
    if not (is_number(fps) and math.isfinite(fps) and fps > 0):
        raise FormatError(path, "expected a positive number", field="fps")
    width, height = _positive_int(doc, "width", path), _positive_int(doc, "height", path)
    frames_doc = doc.get("frames")
    if not isinstance(frames_doc, list) or not frames_doc:
        raise FormatError(path, "expected a non-empty list of frames", field="frames")
    n = len(frames_doc)
    frames = np.empty(n, dtype=np.int64)
    c2w = np.empty((n, 4, 4))
    K = np.empty((n, 4))
    extras: dict[str, np.ndarray] = {}
    for i, f in enumerate(frames_doc):
        where = f"frames[{i}]"
        if not isinstance(f, dict):
            raise FormatError(path, "expected an object", field=where)
        for key in FRAME_KEYS:
            if key not in f:
                raise FormatError(path, "missing", field=f"{where}.{key}")
        num = f["frame"]
        if not (is_number(num) and math.isfinite(num) and float(num).is_integer() and abs(num) < 2**53):
            raise FormatError(path, f"expected an integer, got {json.dumps(num)[:40]}", field=f"{where}.frame")
        frames[i] = int(num)
        c2w[i] = number_matrix(f["c2w"], 4, 4, path, f"{where}.c2w", "4x4 numbers")
        if np.abs(c2w[i, 3] - [0.0, 0.0, 0.0, 1.0]).max() > 1e-9:
            raise FormatError(path, "last row must be [0, 0, 0, 1]", field=f"{where}.c2w")
        K[i] = number_matrix([f["intrinsics"]], 1, 4, path, f"{where}.intrinsics", "[fx, fy, cx, cy] numbers")[0]
        for key, v in f.items():
            if key in FRAME_KEYS:
                continue
            if not (v is None or is_number(v)):
                raise FormatError(path, f"expected a number or null, got {json.dumps(v)[:40]}", field=f"{where}.{key}")
            arr = extras.setdefault(key, np.full(n, np.nan))
            arr[i] = np.nan if v is None else float(v)
    points = None
    if doc.get("points") is not None:
        points = _points_from_doc(doc["points"], n, path)
    metadata = doc.get("metadata", {})
    if not isinstance(metadata, dict):
        raise FormatError(path, "expected an object", field="metadata")
    traj = Trajectory(frames, c2w, K, width, height, fps=float(fps), points=points, extras=extras, metadata=metadata)
    return finish(traj, path, repair_rotations)


def _points_from_doc(p, n_frames: int, path) -> SparsePoints:
    if not isinstance(p, dict):
        raise FormatError(path, "expected an object with xyz (and optional rgb, visibility)", field="points")
    unknown = sorted(set(p) - {"xyz", "rgb", "visibility"})
    if unknown:
        raise FormatError(path, "unknown key; allowed are xyz, rgb, visibility", field=f"points.{unknown[0]}")
    xyz = number_matrix(p.get("xyz"), None, 3, path, "points.xyz", "a list of [x, y, z] numbers")
    if not np.isfinite(xyz).all():
        raise FormatError(path, "point coordinates must be finite", field="points.xyz")
    m = len(xyz)
    rgb = None
    if p.get("rgb") is not None:
        rgb_f = number_matrix(p["rgb"], m, 3, path, "points.rgb", f"{m} [r, g, b] integers 0..255 (one per point)")
        if not (np.all(rgb_f == np.round(rgb_f)) and rgb_f.min(initial=0) >= 0 and rgb_f.max(initial=0) <= 255):
            raise FormatError(path, "colours must be integers 0..255", field="points.rgb")
        rgb = rgb_f.astype(np.uint8)
    vis = None
    if p.get("visibility") is not None:
        v = p["visibility"]
        if not isinstance(v, list) or len(v) != n_frames:
            raise FormatError(path, f"expected one index list per frame ({n_frames})", field="points.visibility")
        vis = []
        for i, idx in enumerate(v):
            field = f"points.visibility[{i}]"
            if not (isinstance(idx, list) and all(is_number(x) and float(x).is_integer() for x in idx)):
                raise FormatError(path, "expected a list of integer point indices", field=field)
            if any(not 0 <= x < m for x in idx):
                raise FormatError(path, f"point index out of range 0..{m - 1}", field=field)
            vis.append(np.array([int(x) for x in idx], dtype=np.int64))
    return SparsePoints(xyz=xyz, rgb=rgb, visibility=vis)


@quiet_numerics
def read_parascale_json(path: str | os.PathLike, *, repair_rotations: bool = False) -> Trajectory:
    """Read and validate a ParaScale trajectory JSON file."""
    return trajectory_from_dict(load_json(path), path, repair_rotations)
