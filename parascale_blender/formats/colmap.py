"""COLMAP sparse model (text or binary) → :class:`Trajectory` with :class:`SparsePoints`. Read only.

Images are sorted by name (natural order, so ``img2`` precedes ``img10``); frame numbers are the
last run of digits in the names when those increase, else the order (``frame_numbers`` option).
Poses: COLMAP stores world-to-camera ``(q, t)`` with OpenCV axes; we return ``c2w``.
Intrinsics: the pinhole part of SIMPLE_PINHOLE, PINHOLE, SIMPLE_RADIAL, RADIAL, OPENCV and
FULL_OPENCV cameras; distortion coefficients go to ``metadata['distortion']`` (not applied).
Fisheye and other non-perspective models are refused. All images must share one image size.
Points: xyz and rgb sorted by point id; ``visibility[i]`` lists the points observed by image i
(from the images' 2D points, whose POINT3D_ID is not -1).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.camera import SparsePoints, Trajectory, invert_rigid, make_c2w
from ..core.rotation import matrix_from_quat
from .colmap_model import MODELS, RawCamera, read_raw_model
from .errors import FormatError
from .textio import finish, frames_from_names, natural_key, quiet_numerics

DISTORTION_NAMES = {
    "SIMPLE_RADIAL": ["k"],
    "RADIAL": ["k1", "k2"],
    "OPENCV": ["k1", "k2", "p1", "p2"],
    "FULL_OPENCV": ["k1", "k2", "p1", "p2", "k3", "k4", "k5", "k6"],
}


def pinhole(cam: RawCamera) -> tuple[list[float], dict]:
    """(fx, fy, cx, cy) and the distortion coefficients of a COLMAP camera; FormatError if unsupported."""
    layout = MODELS[cam.model][2]
    file, line, field = cam.where
    if layout is None:
        raise FormatError(
            file,
            f"camera model {cam.model} is not a perspective pinhole model; undistort the images first "
            "(colmap image_undistorter) to get a PINHOLE model",
            line,
            field or "MODEL",
        )
    p = cam.params
    K = [p[0], p[0], p[1], p[2]] if layout == "f" else [p[0], p[1], p[2], p[3]]
    rest = p[3:] if layout == "f" else p[4:]
    return [float(v) for v in K], dict(zip(DISTORTION_NAMES.get(cam.model, []), map(float, rest)))


@quiet_numerics
def read_colmap(
    path: str | os.PathLike,
    *,
    fps: float = 24.0,
    frame_numbers: str = "auto",
    encoding: str = "auto",
    repair_rotations: bool = False,
) -> Trajectory:
    """Read a COLMAP model folder (or one of its files). ``frame_numbers``: 'auto', 'name' or 'order'."""
    if frame_numbers not in ("auto", "name", "order"):
        raise FormatError(path, f"frame_numbers must be 'auto', 'name' or 'order', got {frame_numbers!r}")
    model, folder, enc = read_raw_model(Path(path), encoding)
    if not model.images:
        raise FormatError(folder, "the model has no registered images")
    images = sorted(model.images, key=lambda im: natural_key(im.name))
    n = len(images)
    K = np.empty((n, 4))
    sizes: dict[tuple[int, int], str] = {}
    distortion = {}
    for i, im in enumerate(images):
        if im.camera_id not in model.cameras:
            file, line, field = im.where
            raise FormatError(
                file, f"image {im.name!r} uses camera {im.camera_id}, which is not defined", line, field or "CAMERA_ID"
            )
        cam = model.cameras[im.camera_id]
        K[i], dist = pinhole(cam)
        sizes.setdefault((cam.width, cam.height), im.name)
        if dist:
            distortion[str(im.camera_id)] = {"model": cam.model, **dist}
    if len(sizes) > 1:
        desc = ", ".join(f"{w}x{h} (e.g. {name})" for (w, h), name in sizes.items())
        raise FormatError(folder, f"images use cameras of different sizes: {desc}; one image size per track")
    (width, height) = next(iter(sizes))
    q = np.array([im.qvec for im in images])
    t = np.array([im.tvec for im in images])
    qn = np.linalg.norm(q, axis=1)
    bad = ~(np.isfinite(qn) & (qn > 1e-12) & np.isfinite(t).all(axis=1))
    if bad.any():
        file, line, field = images[int(np.argmax(bad))].where
        raise FormatError(file, "pose must be finite with a non-zero quaternion", line, field or "QW")
    w2c = make_c2w(matrix_from_quat(q), t)
    names = [im.name for im in images]
    frames = None if frame_numbers == "order" else frames_from_names(names)
    if frames is None:
        if frame_numbers == "name":
            raise FormatError(folder, "image names do not carry increasing frame numbers; use frame_numbers='order'")
        frames = np.arange(n)
    meta: dict = {
        "source_format": "colmap",
        "encoding": enc,
        "image_names": names,
        "image_ids": [im.image_id for im in images],
        "camera_models": sorted({model.cameras[im.camera_id].model for im in images}),
    }
    if distortion:
        meta["distortion"] = distortion
    points = None
    if model.xyz is not None:
        order = np.argsort(model.point_ids, kind="stable")
        ids = model.point_ids[order]
        if len(ids) > 1 and np.any(np.diff(ids) == 0):
            raise FormatError(folder, f"point id {int(ids[np.argmax(np.diff(ids) == 0)])} appears twice in points3D")
        if not np.isfinite(model.xyz).all():
            raise FormatError(folder, "points3D has non-finite coordinates")
        visibility, dangling = [], 0
        for im in images:
            seen = np.unique(im.point3d_ids[im.point3d_ids >= 0])
            idx = np.searchsorted(ids, seen)
            ok = (idx < len(ids)) & (ids[np.minimum(idx, len(ids) - 1)] == seen) if len(ids) else np.zeros(0, bool)
            dangling += int(len(seen) - ok.sum())
            visibility.append(idx[ok].astype(np.int64))
        if dangling:
            meta["dangling_observations"] = dangling
        meta["point_ids"] = ids.tolist()
        points = SparsePoints(model.xyz[order], model.rgb[order], visibility)
    traj = Trajectory(frames, invert_rigid(w2c), K, width, height, fps=fps, points=points, metadata=meta)
    return finish(traj, folder, repair_rotations)
