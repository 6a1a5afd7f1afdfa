"""H.264 MP4 writing with PyAV (yuv420p, so width and height must be even; PyAV is imported on first use).

Colour: frames are sRGB; they are converted to Y'CbCr with the BT.709 matrix in limited (MPEG)
range, and the stream is tagged so (primaries, transfer and matrix BT.709): players and
compositing apps then decode the colours written, instead of guessing (an untagged stream
converted with swscale's default BT.601 matrix shifted reds and greens in HD players)."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

BT709 = 1  # the H.264 / ISO 23091-2 code of BT.709 primaries, transfer and matrix
MPEG_RANGE = 1  # FFmpeg's AVCOL_RANGE_MPEG: limited range (16-235)


def fps_fraction(fps: float) -> Fraction:
    """A rational frame rate for the container: 23.976 → 2997/125, 29.97 → 2997/100, 24 → 24."""
    return Fraction(fps).limit_denominator(1001)


class Mp4Writer:
    """Append RGB uint8 frames (H, W, 3) to an H.264 MP4; use as a context manager."""

    def __init__(self, path: Path, width: int, height: int, fps: float, crf: int = 18, preset: str = "veryfast"):
        if width % 2 or height % 2:
            raise ValueError(f"H.264 yuv420p needs even sizes, got {width}x{height}")
        import av

        self._av = av
        self.path = Path(path)
        self.width, self.height = width, height
        self._container = av.open(str(self.path), mode="w")
        self._stream = self._container.add_stream("libx264", rate=fps_fraction(fps))
        self._stream.width, self._stream.height = width, height
        self._stream.pix_fmt = "yuv420p"
        self._stream.options = {"crf": str(int(crf)), "preset": preset}
        cc = self._stream.codec_context
        cc.color_primaries = cc.color_trc = cc.colorspace = BT709
        cc.color_range = MPEG_RANGE
        self.frames = 0

    def write(self, rgb: np.ndarray) -> None:
        if rgb.shape != (self.height, self.width, 3):
            raise ValueError(f"frame {self.frames}: expected {(self.height, self.width, 3)}, got {rgb.shape}")
        frame = self._av.VideoFrame.from_ndarray(np.ascontiguousarray(rgb), format="rgb24")
        frame = frame.reformat(format="yuv420p", dst_colorspace="ITU709", dst_color_range="MPEG")
        for packet in self._stream.encode(frame):
            self._container.mux(packet)
        self.frames += 1

    def close(self) -> None:
        if self._container is None:
            return
        for packet in self._stream.encode():
            self._container.mux(packet)
        self._container.close()
        self._container = None

    def abort(self) -> None:
        """Close without flushing and remove the partial file."""
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None
        self.path.unlink(missing_ok=True)

    def __enter__(self) -> Mp4Writer:
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()
