"""RealEstate10K / CameraCtrl pose txt and its Wan-Fun and CamI2V variants.

Layout: line 1 is the clip URL (Wan-Fun: empty; CamI2V: ``https://xxx``), then one line per frame::

    timestamp fx fy cx cy k1 k2 r11 r12 r13 t1 r21 r22 r23 t2 r31 r32 r33 t3

``fx, cx`` are divided by the image width and ``fy, cy`` by the height; the 12 numbers are a
**world-to-camera** 3x4 matrix, row-major, OpenCV camera axes; timestamps are microseconds.
The 18-column variant (CamI2V evaluation files) drops the timestamp and gives pixel intrinsics.

Wan-Fun (VideoX-Fun) reads the normalised intrinsics relative to an *original pose size*
(1280x720 by default) and fits a W x H sample by resizing the original to cover it and cropping
the centre: with ``r = oW/oH``, if ``r > W/H`` then ``fx = fx_n*H*r, fy = fy_n*H``, else
``fx = fx_n*W, fy = fy_n*W/r``; always ``cx = cx_n*W, cy = cy_n*H``. Reader and writer follow that.

Frame numbers are the line index (0-based); timestamps are kept in ``extras['timestamp']``.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from ..core.camera import Trajectory, invert_rigid
from .errors import FormatError
from .textio import finish, parse_floats, quiet_numerics, read_text

COLUMNS = ["timestamp", "fx", "fy", "cx", "cy", "k1", "k2"]
COLUMNS += [f"r{i}{j}" if j < 4 else f"t{i}" for i in (1, 2, 3) for j in (1, 2, 3, 4)]
WANFUN_ORIGINAL = (1280, 720)
VARIANTS = ("auto", "re10k", "wanfun", "cami2v")


def _is_numeric_row(tokens: list[str]) -> bool:
    if len(tokens) not in (18, 19):
        return False
    try:
        [float(t) for t in tokens]
    except ValueError:
        return False
    return True


def parse_rows(path) -> tuple[str | None, np.ndarray, list[int]]:
    """Header line (None if absent), the (N, 18|19) numbers, and each row's 1-based line number."""
    lines = read_text(path).splitlines()
    if not lines:
        raise FormatError(path, "empty file; expected a URL line and one line per frame")
    header: str | None = lines[0].strip()
    start = 1
    if _is_numeric_row(lines[0].split()):
        header, start = None, 0
    rows, numbers = [], []
    ncol = None
    for k in range(start, len(lines)):
        tokens = lines[k].split()
        if not tokens:
            continue
        if ncol is None:
            if len(tokens) not in (18, 19):
                raise FormatError(
                    path,
                    f"expected 19 columns (timestamp fx fy cx cy k1 k2 + a 3x4 world-to-camera matrix) "
                    f"or 18 (the same without timestamp), got {len(tokens)}",
                    k + 1,
                )
            ncol = len(tokens)
        elif len(tokens) != ncol:
            raise FormatError(path, f"expected {ncol} columns like the first frame line, got {len(tokens)}", k + 1)
        names = COLUMNS if ncol == 19 else COLUMNS[1:]
        vals = parse_floats(tokens, path, k + 1, names)
        bad = ~np.isfinite(vals)
        if bad.any():
            j = int(np.argmax(bad))
            raise FormatError(path, f"non-finite value {tokens[j]!r}", k + 1, names[j])
        rows.append(vals)
        numbers.append(k + 1)
    if not rows:
        raise FormatError(path, "no frame lines after the header")
    return header, np.array(rows), numbers


@quiet_numerics
def read_re10k(
    path: str | os.PathLike,
    *,
    width: int | None = None,
    height: int | None = None,
    fps: float | None = None,
    variant: str = "auto",
    original_width: int = WANFUN_ORIGINAL[0],
    original_height: int = WANFUN_ORIGINAL[1],
    pixel_intrinsics: bool | None = None,
    default_height: int = 720,
    repair_rotations: bool = False,
) -> Trajectory:
    """Read a RealEstate10K-layout pose file (any variant) as a :class:`Trajectory`.

    Image size: ``width``/``height`` if given. Otherwise Wan-Fun files use the original pose size
    (1280x720), 18-column pixel files use twice the principal point, and normalised files assume
    square pixels at ``default_height`` (the size is then recorded as inferred in the metadata).
    ``fps``: given, else from the timestamps (microseconds) when they increase, else 24.
    """
    if variant not in VARIANTS:
        raise FormatError(path, f"unknown variant {variant!r}; known: {', '.join(VARIANTS)}")
    header, rows, line_numbers = parse_rows(path)
    n = len(rows)
    has_ts = rows.shape[1] == 19
    ts = rows[:, 0] if has_ts else None
    vals = rows[:, 1:] if has_ts else rows
    intr, dist, w2c34 = vals[:, 0:4], vals[:, 4:6], vals[:, 6:18].reshape(n, 3, 4)
    if variant == "auto":
        if header == "" and has_ts and not np.any(ts):
            variant = "wanfun"
        elif header == "https://xxx" or not has_ts:
            variant = "cami2v"
        else:
            variant = "re10k"
    if pixel_intrinsics is None:
        pixel_intrinsics = not has_ts and float(np.abs(intr[:, 2:]).max()) > 1.0
    meta: dict = {"source_format": "re10k", "variant": variant, "columns": int(rows.shape[1])}
    if header:
        meta["url"] = header
    size_note = "given"
    if pixel_intrinsics:
        if width is None or height is None:
            width = width or int(round(2 * intr[0, 2]))
            height = height or int(round(2 * intr[0, 3]))
            size_note = "inferred from the principal point"
        K = intr.copy()
    elif variant == "wanfun":
        ow, oh = int(original_width), int(original_height)
        if ow <= 0 or oh <= 0:
            raise FormatError(path, f"original pose size must be positive, got {ow}x{oh}")
        if width is None and height is None:
            width, height, size_note = ow, oh, "Wan-Fun original pose size"
        elif width is None or height is None:
            width = width or int(round(height * ow / oh))
            height = height or int(round(width * oh / ow))
        K = wanfun_pixels(intr, width, height, ow, oh)
        meta["original_pose_size"] = [ow, oh]
    else:
        if width is None or height is None:
            fxn, fyn = intr[0, 0], intr[0, 1]
            if not (fxn > 0 and fyn > 0):
                raise FormatError(path, "fx and fy must be positive to infer the image size", line_numbers[0], "fx")
            if width is None and height is None:
                height = int(default_height)
            if width is None:
                width = int(round(height * fyn / fxn))
            else:
                height = int(round(width * fxn / fyn))
            size_note = "inferred (square pixels)"
        K = intr * [width, height, width, height]
    if width is None or height is None or width < 1 or height < 1:
        raise FormatError(
            path,
            f"cannot infer a positive image size (got {width}x{height}); give the image size (Image size on import)",
        )
    meta["image_size"] = size_note
    if np.any(dist):
        meta["distortion_k1_k2"] = dist.tolist()
    extras = {}
    fps_note = "given"
    if has_ts:
        extras["timestamp"] = ts.copy()
    if fps is None:
        fps, fps_note = 24.0, "default"
        if has_ts and n > 1 and np.all(np.diff(ts) > 0):
            est = 1e6 / float(np.median(np.diff(ts)))
            if 0.01 <= est <= 10000:
                fps, fps_note = est, "timestamps"
    meta["fps"] = fps_note
    w2c = np.zeros((n, 4, 4))
    w2c[:, :3, :] = w2c34
    w2c[:, 3, 3] = 1.0
    traj = Trajectory(np.arange(n), invert_rigid(w2c), K, width, height, fps=fps, extras=extras, metadata=meta)
    return finish(traj, path, repair_rotations)


def wanfun_pixels(intr_n: np.ndarray, width: int, height: int, ow: int, oh: int) -> np.ndarray:
    """Wan-Fun normalised intrinsics (relative to the original pose size) → pixels of a W x H sample."""
    r = ow / oh
    K = np.array(intr_n, dtype=np.float64) * [width, height, width, height]
    if r > width / height:
        K[:, 0] = intr_n[:, 0] * height * r
    else:
        K[:, 1] = intr_n[:, 1] * width / r
    return K


def _fmt(x: np.ndarray) -> str:
    return " ".join(repr(float(v)) for v in x)


def _w2c_rows(traj: Trajectory) -> np.ndarray:
    return traj.w2c[:, :3, :].reshape(len(traj), 12)


def write_re10k(
    traj: Trajectory, path: str | os.PathLike, *, url: str | None = None, pixel_intrinsics: bool = False
) -> None:
    """Write RealEstate10K / CameraCtrl txt (normalised intrinsics, timestamps in microseconds).

    Timestamps come from ``extras['timestamp']`` when present, else from frame numbers and fps.
    ``pixel_intrinsics=True`` writes the 18-column variant (pixel intrinsics, no timestamp).
    """
    header = url if url is not None else str(traj.metadata.get("url") or "parascale-export")
    if "\n" in header or header.strip() == "" and not pixel_intrinsics:
        raise ValueError("the RE10K header line must be one non-empty line (an empty one means Wan-Fun)")
    ts = traj.extras.get("timestamp")
    if ts is None or not np.all(np.isfinite(ts)):
        ts = np.round((traj.frames - traj.frames[0]) / traj.fps * 1e6)
    w, h = traj.width, traj.height
    K = traj.intrinsics if pixel_intrinsics else traj.intrinsics / [w, h, w, h]
    lines = [header]
    for i, row in enumerate(_w2c_rows(traj)):
        head = "" if pixel_intrinsics else f"{int(ts[i])} "
        lines.append(head + _fmt(K[i]) + " 0 0 " + _fmt(row))
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_wanfun(
    traj: Trajectory,
    path: str | os.PathLike,
    *,
    original_width: int = WANFUN_ORIGINAL[0],
    original_height: int = WANFUN_ORIGINAL[1],
) -> None:
    """Write a Wan-Fun (VideoX-Fun) pose file: empty first line, timestamps 0, intrinsics normalised
    relative to the original pose size so that Wan-Fun, sampling at ``traj.width x traj.height``,
    recovers ``traj.intrinsics``. Wan-Fun expects 81 frames; other counts are written as they are."""
    w, h = traj.width, traj.height
    r = original_width / original_height
    n = traj.intrinsics / [w, h, w, h]
    if r > w / h:
        n[:, 0] = traj.intrinsics[:, 0] / (h * r)
    else:
        n[:, 1] = traj.intrinsics[:, 1] * r / w
    lines = [""] + ["0 " + _fmt(n[i]) + " 0 0 " + _fmt(row) for i, row in enumerate(_w2c_rows(traj))]
    Path(path).write_text("\n".join(lines) + "\n", encoding="utf-8")
