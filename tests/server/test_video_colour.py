"""Result MP4s carry their colour: BT.709 primaries, transfer and matrix, limited range, tagged in
the stream (read back by PyAV/FFmpeg), and the pixels converted with that matrix: pure red's luma
is 16 + 219 x 0.2126 (BT.709's closed form; BT.601's 0.299 would give 81.5)."""

from __future__ import annotations

import av
import numpy as np

from bridge_server.video import Mp4Writer


def test_mp4_is_tagged_and_converted_bt709(tmp_path):
    path = tmp_path / "red.mp4"
    with Mp4Writer(path, 64, 48, 24.0) as w:
        for _ in range(3):
            w.write(np.tile(np.array([255, 0, 0], np.uint8), (48, 64, 1)))
    with av.open(str(path)) as c:
        s = c.streams.video[0]
        cc = s.codec_context
        assert (cc.color_primaries, cc.color_trc, cc.colorspace, cc.color_range) == (1, 1, 1, 1)
        frame = next(c.decode(s))
        y = frame.to_ndarray(format="yuv420p")[:48]  # the luma plane
    assert abs(float(y.mean()) - (16 + 219 * 0.2126)) < 1.5, float(y.mean())
