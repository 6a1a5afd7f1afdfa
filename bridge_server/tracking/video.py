"""Decode a video into RGB frames with PyAV.

Frame numbers follow Blender's movie-clip convention: the first decoded frame is frame 1, and
``every=N`` keeps frames 1, 1+N, 1+2N, … (their original numbers are kept).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import TrackingError


@dataclass
class DecodedVideo:
    """Frames (uint8 RGB, H x W x 3, possibly downscaled) and their original frame numbers.

    ``width``/``height`` are the video's own size; ``scale`` = decoded size / video size.
    """

    images: list[np.ndarray]
    frames: np.ndarray
    fps: float
    width: int
    height: int
    scale: float


def decode_video(
    path: str | Path, every: int = 1, max_frames: int | None = None, max_side: int | None = None
) -> DecodedVideo:
    """Decode ``path``, keeping every ``every``-th frame, at most ``max_frames`` of them.

    ``max_side`` downsizes frames whose longest side exceeds it (area filter). Raises
    :class:`TrackingError` naming the file when it is missing or cannot be decoded.
    """
    import av
    import cv2

    path = Path(path)
    if every < 1:
        raise TrackingError(f"--every must be at least 1, got {every}")
    if max_frames is not None and max_frames < 2:
        raise TrackingError(f"--max-frames must be at least 2, got {max_frames}")
    if not path.is_file():
        raise TrackingError(f"{path}: video file not found")
    images: list[np.ndarray] = []
    numbers: list[int] = []
    try:
        with av.open(str(path)) as container:
            if not container.streams.video:
                raise TrackingError(f"{path}: the file has no video stream")
            stream = container.streams.video[0]
            stream.thread_type = "AUTO"
            rate = stream.average_rate or stream.guessed_rate
            fps = float(rate) if rate else 24.0
            width, height = int(stream.codec_context.width), int(stream.codec_context.height)
            scale = 1.0
            if max_side and max(width, height) > max_side:
                scale = max_side / max(width, height)
            size = (max(1, round(width * scale)), max(1, round(height * scale)))
            for index, frame in enumerate(container.decode(stream)):
                if index % every:
                    continue
                rgb = frame.to_ndarray(format="rgb24")
                if rgb.shape[1] != size[0] or rgb.shape[0] != size[1]:
                    rgb = cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)
                images.append(rgb)
                numbers.append(index + 1)
                if max_frames is not None and len(images) >= max_frames:
                    break
    except av.error.FFmpegError as exc:
        raise TrackingError(f"{path}: cannot decode video ({exc})") from None
    if len(images) < 2:
        raise TrackingError(f"{path}: need at least 2 frames to track, decoded {len(images)}")
    scale = images[0].shape[1] / width
    return DecodedVideo(images, np.asarray(numbers, np.int64), fps, width, height, scale)


def write_video(path: str | Path, images: list[np.ndarray], fps: float = 24.0, crf: int = 12) -> None:
    """Encode uint8 RGB frames as H.264 (yuv420p) — for synthetic test clips and benchmarks."""
    import av

    h, w = images[0].shape[:2]
    with av.open(str(path), "w") as container:
        stream = container.add_stream("libx264", rate=round(fps))
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        stream.options = {"crf": str(crf), "preset": "veryfast"}
        for rgb in images:
            for packet in stream.encode(av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
