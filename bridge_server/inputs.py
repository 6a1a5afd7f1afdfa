"""Decoding and validating a job's uploads: trajectory JSON, conditioning image, depth map, video.

Everything is read from bytes (uploaded names never become paths), nothing is unpickled
(``np.load(allow_pickle=False)``), and every problem raises :class:`InputError` naming the upload,
the frame and the field. Formats are recognised by their magic bytes, not by their names.
"""

from __future__ import annotations

import io
import json
import os

import numpy as np

from parascale_blender.core.camera import Trajectory
from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.parascale_json import trajectory_from_dict

from .config import Limits

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")
import cv2  # noqa: E402  (the EXR switch must be set before OpenCV loads)

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NPY_MAGIC = b"\x93NUMPY"
EXR_MAGIC = b"\x76\x2f\x31\x01"
JPEG_MAGIC = b"\xff\xd8\xff"
ASPECT_TOLERANCE = 0.02
MAX_VIDEO_SIDE = 8192
ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"wide", b"free", b"skip")


class InputError(ValueError):
    """A request input is unusable; ``problems`` lists one readable line per defect."""

    def __init__(self, problems: list[str] | str):
        self.problems = [problems] if isinstance(problems, str) else list(problems)
        super().__init__("; ".join(self.problems))


def parse_trajectory(data: bytes, limits: Limits) -> Trajectory:
    """ParaScale trajectory JSON bytes → validated :class:`Trajectory` within ``limits``.

    The document is read by ``parascale_blender.formats.parascale_json`` (the one reader of the
    format); the server's limits (frame count, size, fps, coordinate magnitude) are checked first.
    """
    try:
        doc = json.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise InputError(f"trajectory: not UTF-8 text ({e.reason} at byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise InputError(f"trajectory: invalid JSON at line {e.lineno} column {e.colno}: {e.msg}") from None
    except (ValueError, RecursionError) as e:
        raise InputError(f"trajectory: invalid JSON: {e}") from None
    if not isinstance(doc, dict):
        raise InputError("trajectory: the top level must be a JSON object")
    problems = []
    frames = doc.get("frames")
    if not isinstance(frames, list) or not 1 <= len(frames) <= limits.max_frames:
        n = len(frames) if isinstance(frames, list) else "no"
        problems.append(f"trajectory: field 'frames': must list 1 to {limits.max_frames} frames, got {n}")
    for key in ("width", "height"):
        v = doc.get(key)
        if isinstance(v, int | float) and not isinstance(v, bool) and not 2 <= v <= limits.max_side:
            problems.append(f"trajectory: field '{key}': must be in [2, {limits.max_side}], got {v}")
    fps = doc.get("fps")
    if isinstance(fps, int | float) and not isinstance(fps, bool) and fps > limits.max_fps:
        problems.append(f"trajectory: field 'fps': at most {limits.max_fps:g}, got {fps}")
    if problems:
        raise InputError(problems)
    try:
        traj = trajectory_from_dict(doc, "trajectory")
    except (FormatError, ValueError) as e:
        raise InputError(str(e)) from None
    big = np.abs(traj.c2w).max(axis=(1, 2)) > limits.max_abs_coordinate
    if big.any():
        raise InputError(
            f"trajectory: frame {traj.frames[np.argmax(big)]}: field 'c2w': entries beyond "
            f"±{limits.max_abs_coordinate:g} world units"
        )
    big = np.abs(traj.intrinsics).max(axis=1) > 1e3 * limits.max_side
    if big.any():
        raise InputError(f"trajectory: frame {traj.frames[np.argmax(big)]}: field 'intrinsics': absurdly large")
    return traj


def decode_image(data: bytes, limits: Limits) -> np.ndarray:
    """PNG or JPEG bytes → (H, W, 3) uint8 RGB."""
    if not (data.startswith(PNG_MAGIC) or data.startswith(JPEG_MAGIC)):
        raise InputError("image: not a PNG or JPEG file (checked by its first bytes)")
    img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if img is None:
        raise InputError("image: the PNG/JPEG data could not be decoded (truncated or corrupt?)")
    h, w = img.shape[:2]
    if max(h, w) > limits.max_side:
        raise InputError(f"image: {w}x{h} is larger than the limit of {limits.max_side} px a side")
    return np.ascontiguousarray(img[..., ::-1])


def _npy_depth(data: bytes, limits: Limits) -> np.ndarray:
    f = io.BytesIO(data)
    try:
        version = np.lib.format.read_magic(f)
        read_header = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
        if version not in read_header:
            raise ValueError(f"unsupported .npy version {version}")
        shape, _, dtype = read_header[version](f)
    except Exception as e:  # numpy raises ValueError/OSError/SyntaxError on malformed headers
        raise InputError(f"depth: malformed .npy header ({e})") from None
    if dtype.kind not in "fiu" or len(shape) not in (2, 3) or (len(shape) == 3 and shape[2] != 1):
        raise InputError(f"depth: .npy must hold a numeric (H, W) array, got dtype {dtype} shape {shape}")
    if max(shape[:2]) > limits.max_side or min(shape[:2]) < 1:
        raise InputError(f"depth: .npy shape {shape} outside 1..{limits.max_side} px a side")
    f.seek(0)
    try:
        arr = np.load(f, allow_pickle=False)
    except Exception as e:
        raise InputError(f"depth: unreadable .npy data ({e})") from None
    return arr.reshape(shape[:2]).astype(np.float64)


def decode_depth(data: bytes, scale: float, limits: Limits) -> np.ndarray:
    """.npy, 16-bit PNG or OpenEXR bytes → (H, W) z-depth = stored value × ``scale``; NaN = empty.

    Zero, NaN and +inf mean "no depth" (sky); negative or absurdly large depths are an error.
    """
    if data.startswith(NPY_MAGIC):
        raw = _npy_depth(data, limits)
    elif data.startswith(PNG_MAGIC) or data.startswith(EXR_MAGIC):
        kind = "PNG" if data.startswith(PNG_MAGIC) else "EXR"
        raw = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED | cv2.IMREAD_ANYDEPTH)
        if raw is None:
            raise InputError(f"depth: the {kind} data could not be decoded")
        if raw.ndim == 3:
            raw = raw[..., 0] if kind == "EXR" else None
        if raw is None or (kind == "PNG" and raw.dtype != np.uint16):
            raise InputError("depth: a PNG depth map must be single-channel 16-bit")
        if max(raw.shape) > limits.max_side:
            raise InputError(f"depth: {raw.shape[1]}x{raw.shape[0]} exceeds {limits.max_side} px a side")
        raw = raw.astype(np.float64)
    else:
        raise InputError("depth: not a .npy, 16-bit PNG or OpenEXR file (checked by its first bytes)")
    depth = raw * scale
    neg = np.isfinite(depth) & (depth < 0)
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise InputError(f"depth: {int(neg.sum())} negative values (first at row {r}, column {c}: {depth[r, c]:g})")
    if (np.isfinite(depth) & (depth > limits.max_abs_coordinate)).any():
        raise InputError(f"depth: values beyond {limits.max_abs_coordinate:g} world units (wrong depth_scale?)")
    depth[~np.isfinite(depth) | (depth <= 0)] = np.nan
    return depth


def match_sizes(traj: Trajectory, image: np.ndarray, depth: np.ndarray) -> np.ndarray:
    """Check that image, depth and trajectory share an aspect ratio; depth resized to the image (nearest)."""
    h, w = image.shape[:2]
    aspects = {"trajectory": traj.width / traj.height, "image": w / h, "depth": depth.shape[1] / depth.shape[0]}
    ref = aspects["image"]
    bad = [f"{k} {v:.4f}" for k, v in aspects.items() if abs(v / ref - 1) > ASPECT_TOLERANCE]
    if bad:
        sizes = f"trajectory {traj.width}x{traj.height}, image {w}x{h}, depth {depth.shape[1]}x{depth.shape[0]}"
        raise InputError(f"aspect ratios differ ({sizes}): the image must be the first camera's full view")
    if depth.shape != (h, w):
        depth = cv2.resize(depth, (w, h), interpolation=cv2.INTER_NEAREST)
    return depth


def video_file_name(data: bytes) -> str:
    """The fixed name a video upload is stored under, its extension chosen from the first bytes."""
    if data[4:8] in ISO_BOXES:
        return "video.mp4" if data[4:8] == b"ftyp" and data[8:12] != b"qt  " else "video.mov"
    if data.startswith(b"\x1a\x45\xdf\xa3"):
        return "video.mkv"
    if data.startswith(b"RIFF") and data[8:12] == b"AVI ":
        return "video.avi"
    if data.startswith(b"\x00\x00\x01\xba"):
        return "video.mpg"
    if len(data) > 376 and data[0] == data[188] == 0x47:
        return "video.ts"
    raise InputError(
        "video: not a recognised video file (MP4/MOV, Matroska/WebM, AVI, MPEG-PS/TS; checked by its first bytes)"
    )


def probe_video(data: bytes) -> tuple[int, int, int, float]:
    """(frame count or 0 when the container does not say, width, height, fps) of a video upload.

    Opens the bytes with PyAV (no file, no path) and decodes the first frame, so a truncated or
    foreign file is refused at submission rather than in the job.
    """
    import av

    try:
        with av.open(io.BytesIO(data), "r") as container:
            if not container.streams.video:
                raise InputError("video: the file has no video stream")
            stream = container.streams.video[0]
            w, h = int(stream.codec_context.width), int(stream.codec_context.height)
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 24.0
            frames = int(stream.frames or 0)
            if not frames and stream.duration and stream.time_base:
                frames = round(float(stream.duration * stream.time_base) * fps)
            next(container.decode(stream), None)
    except InputError:
        raise
    except (av.error.FFmpegError, ValueError, OSError, StopIteration) as e:
        raise InputError(f"video: cannot be decoded ({e})") from None
    if not (2 <= w <= MAX_VIDEO_SIDE and 2 <= h <= MAX_VIDEO_SIDE):
        raise InputError(f"video: {w}x{h} is outside 2..{MAX_VIDEO_SIDE} px a side")
    if not 0 < fps <= 1000:
        fps = 24.0
    return frames, w, h, fps
