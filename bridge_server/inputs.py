"""Decoders of single uploads: trajectory JSON, conditioning image, depth map, video (probe).

Everything is read from bytes or the stored upload file (uploaded names never become paths),
nothing is unpickled, and every problem raises :class:`InputError` naming the upload, the frame
and the field. Formats are recognised by their magic bytes (``client.wire``), not by their names.
Depth maps go through the add-on's decoder (``formats.depthmaps``), so a file means the same depth
on both sides.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

from parascale_blender.client import wire
from parascale_blender.core.camera import Trajectory
from parascale_blender.formats.depthmaps import FAR_SENTINEL, clean_depth, decode_depth_values, depth_format
from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.parascale_json import trajectory_from_dict

from .config import Limits

ASPECT_TOLERANCE = 0.02
MAX_VIDEO_SIDE = 8192


class InputError(Exception):
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
        raise InputError(f"trajectory: invalid JSON: {str(e)[:200]}") from None
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
    if isinstance(fps, int | float) and not isinstance(fps, bool) and not limits.min_fps <= fps <= limits.max_fps:
        problems.append(f"trajectory: field 'fps': must be in [{limits.min_fps:g}, {limits.max_fps:g}], got {fps}")
    if problems:
        raise InputError(problems)
    try:
        traj = trajectory_from_dict(doc, "trajectory")
    except (ValueError, OverflowError, RecursionError) as e:  # FormatError included
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


JPEG_SOF = frozenset({0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF})


def image_suffix(head: bytes) -> str:
    """``.png`` or ``.jpg`` from an image upload's first bytes ``head``."""
    suffix = wire.sniff_suffix(bytes(head[:1024]))
    if suffix not in wire.IMAGE_SUFFIXES:
        raise InputError("image: not a PNG or JPEG file (checked by its first bytes)")
    return suffix


def image_size(data: bytes) -> tuple[int, int]:
    """(width, height) of PNG or JPEG bytes (or a memory map) read from the header alone (nothing decoded)."""
    suffix = image_suffix(data)
    if suffix == ".png":
        if len(data) < 24 or data[12:16] != b"IHDR":
            raise InputError("image: PNG without its IHDR header (truncated or corrupt)")
        pos = 8
        while pos + 8 <= len(data):  # every chunk fits in the file (a forged length makes libpng crawl)
            n = int.from_bytes(data[pos : pos + 4], "big")
            if pos + 12 + n > len(data):
                raise InputError(f"image: PNG chunk at byte {pos} claims {n} bytes, past the end of the file")
            if data[pos + 4 : pos + 8] == b"IEND":
                break
            pos += 12 + n
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if suffix == ".jpg":
        i = 2
        while i + 4 <= len(data):
            if data[i] != 0xFF:
                raise InputError(f"image: JPEG marker expected at byte {i} (corrupt header)")
            marker = data[i + 1]
            if marker == 0xFF:  # fill byte
                i += 1
                continue
            if marker in (0x01, *range(0xD0, 0xD9)):  # markers without a length
                i += 2
                continue
            if marker == 0xD9 or marker == 0xDA:
                break
            length = int.from_bytes(data[i + 2 : i + 4], "big")
            if marker in JPEG_SOF:
                if i + 9 > len(data) or length < 8:
                    break
                return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
            if length < 2:
                raise InputError(f"image: JPEG segment of length {length} at byte {i} (corrupt header)")
            i += 2 + length
        raise InputError("image: JPEG without a frame header before its image data (truncated or corrupt)")
    raise InputError("image: not a PNG or JPEG file (checked by its first bytes)")


def decode_image(data: bytes, limits: Limits) -> np.ndarray:
    """PNG or JPEG bytes (or a memory map) → (H, W, 3) uint8 RGB. The size is checked from the
    header before decoding."""
    w, h = image_size(data)
    if max(w, h) > limits.max_side:
        raise InputError(f"image: {w}x{h} (from its header) is larger than the limit of {limits.max_side} px a side")
    if min(w, h) < 1:
        raise InputError(f"image: {w}x{h} (from its header) has no pixels")
    try:
        img = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error as e:
        raise InputError(f"image: the PNG/JPEG data could not be decoded ({str(e).strip()[:200]})") from None
    if img is None:
        raise InputError("image: the PNG/JPEG data could not be decoded (truncated or corrupt?)")
    if img.shape[:2] != (h, w):
        raise InputError(f"image: decodes to {img.shape[1]}x{img.shape[0]}, its header says {w}x{h}")
    return np.ascontiguousarray(img[..., ::-1])


def decode_depth(data: bytes, scale: float | None, limits: Limits, path: Path | None = None) -> np.ndarray:
    """.npy, 16-bit PNG or OpenEXR bytes → (H, W) z-depth in world units; NaN = empty.

    Decoded by ``formats.depthmaps`` (the add-on's decoder): depth = stored value × ``scale``
    (world units per stored value; None = the format's default, ``DEFAULT_PNG_SCALE`` for PNG).
    Zero, NaN, +inf and background sentinels (>= ``FAR_SENTINEL``: Blender's 1e10) mean "no depth"
    (sky); negative depths, and depths beyond ``max_abs_coordinate`` short of a sentinel, are an error.
    ``data`` may be a memory map of ``path``, the stored file (a library decoder reads it there).
    """
    if depth_format(data) not in wire.DEPTH_SUFFIXES:
        raise InputError("depth: not a .npy, 16-bit PNG or OpenEXR file (checked by its first bytes)")
    try:
        depth = decode_depth_values(data, "depth", scale, max_side=limits.max_side, path=path)
    except FormatError as e:
        raise InputError(str(e)) from None
    neg = np.isfinite(depth) & (depth < 0)
    if neg.any():
        r, c = np.argwhere(neg)[0]
        raise InputError(f"depth: {int(neg.sum())} negative values (first at row {r}, column {c}: {depth[r, c]:g})")
    if (np.isfinite(depth) & (depth > limits.max_abs_coordinate) & (depth < FAR_SENTINEL)).any():
        raise InputError(f"depth: values beyond {limits.max_abs_coordinate:g} world units (wrong depth_scale?)")
    depth = clean_depth(depth)
    if not np.isfinite(depth).any():
        raise InputError(
            f"depth: none of its {depth.size} pixels holds a depth (all zero, NaN or infinite): "
            "wrong channel or an empty render?"
        )
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


def video_suffix(data: bytes) -> str:
    """The suffix a video upload is stored under, chosen from its first bytes."""
    suffix = wire.sniff_suffix(data)
    if suffix not in wire.VIDEO_SUFFIXES:
        raise InputError(
            "video: not a recognised video file (MP4/MOV, Matroska/WebM, AVI, MPEG-PS/TS; checked by its first bytes)"
        )
    return suffix


def probe_video(path: Path) -> tuple[int, int, int, float]:
    """(frame count or 0 when the container does not say, width, height, fps) of a video upload.

    Opens the stored file with PyAV (which reads only what it needs) and decodes the
    first frame, so a truncated or foreign file is refused at submission rather than in the job.
    """
    import av

    try:
        with av.open(str(path), "r") as container:
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
    except (av.error.FFmpegError, ValueError, OSError, StopIteration) as e:
        raise InputError(f"video: cannot be decoded ({e})") from None
    if not (2 <= w <= MAX_VIDEO_SIDE and 2 <= h <= MAX_VIDEO_SIDE):
        raise InputError(f"video: {w}x{h} is outside 2..{MAX_VIDEO_SIDE} px a side")
    if not 0 < fps <= 1000:
        fps = 24.0
    return frames, w, h, fps
