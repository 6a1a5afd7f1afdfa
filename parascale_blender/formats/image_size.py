"""Size limits for decoded rasters (depth maps), checked from the file's header before any pixel
is decoded, so a small file that claims a huge image is refused at once.

A compressed PNG or EXR of 1 MB can claim 16384x16384 pixels; decoding it to float64 took 6.6 GB.
The defaults bound a depth map at 64 Mpx (8192x8192, every 8K format) and 16384 px a side: at most
about 2 GB while its float64 copies are cleaned and resampled. Callers pass their own ``max_side``
(the server passes its configured limit) or None to lift both limits.

A file may also hold many channels or parts besides the depth: :data:`MAX_DECODED_BYTES` bounds
what a decoder would decompress (channels x pixels x sample size, from the header), so a small
EXR claiming thousands of channels is refused before a byte of it is inflated. 1 GiB holds a 4K
DCI (4096x2160) render with 30 float channels (what counts is up to the decoder: the depth part,
or every part for a decoder that reads whole files; see :mod:`.image_backends`).

What a decoder holds at once is bounded apart from that: :data:`MAX_CHANNELS` channels in a part,
:data:`MAX_BLOCK_BYTES` in one decompressed block (a ZIP chunk is 16 scanlines of every channel: a
138 KB file of 16 x 4096 px x 500 zero channels is one 65 MB block, and took a server to 3.35 GB),
and :data:`MAX_WHOLE_FILE_BYTES` for the one path that reads every pixel of a file at once.
"""

from __future__ import annotations

import os

from .errors import FormatError

MAX_SIDE = 16384  # default largest width or height, pixels
MAX_PIXELS = 1 << 26  # default largest width x height while any limit is on (64 Mpx)
MAX_DECODED_BYTES = 1 << 30  # default most bytes a decoder may decompress for one depth map (1 GiB)
MAX_CHANNELS = 1024  # default most channels in one EXR part (Blender's many-pass multilayer: ~100)
MAX_BLOCK_BYTES = 32 << 20  # default most bytes in one decompressed block: 16 lines x 8192 px x 64 float channels
MAX_WHOLE_FILE_BYTES = 256 << 20  # default most bytes when a decoder keeps every pixel of the file at once


def check_image_size(
    width: int, height: int, source: str | os.PathLike, max_side: int | None = MAX_SIDE, field: str | None = None
) -> None:
    """Raise :class:`FormatError` naming ``source`` unless 1 <= width, height <= ``max_side`` and
    width x height <= :data:`MAX_PIXELS`; ``max_side=None`` checks only that the image is not empty."""
    if min(width, height) < 1:
        raise FormatError(source, f"{width}x{height} (from its header) has no pixels", field=field)
    if max_side is None:
        return
    if max(width, height) > max_side:
        raise FormatError(source, f"{width}x{height} (from its header) is outside 1..{max_side} px a side", field=field)
    if width * height > MAX_PIXELS:
        msg = f"{width}x{height} = {width * height} px (from its header) is more than the limit of {MAX_PIXELS} px"
        raise FormatError(source, msg, field=field)


def check_decoded_bytes(
    nbytes: int, what: str, source: str | os.PathLike, max_side: int | None = MAX_SIDE, field: str | None = None
) -> None:
    """Raise :class:`FormatError` naming ``source`` when decoding would decompress more than
    :data:`MAX_DECODED_BYTES` (``what`` says what, e.g. "3 parts, 41 channels"); None lifts it."""
    if max_side is not None and nbytes > MAX_DECODED_BYTES:
        msg = f"decoding it means decompressing {nbytes} bytes ({what}, from its header),"
        msg += f" more than the limit of {MAX_DECODED_BYTES} bytes"
        raise FormatError(source, msg, field=field)


def check_blocks(
    channels: int, block_bytes: int, source: str | os.PathLike, max_side: int | None = MAX_SIDE, field: str = "channels"
) -> None:
    """Raise :class:`FormatError` naming ``source`` and ``field`` when a part has more than
    :data:`MAX_CHANNELS` channels or one decompressed block would exceed :data:`MAX_BLOCK_BYTES`
    (both from the header); ``max_side=None`` lifts them."""
    if max_side is None:
        return
    if channels > MAX_CHANNELS:
        msg = f"{channels} channels in one part (from its header), more than the limit of {MAX_CHANNELS}"
        raise FormatError(source, msg + "; save the Depth pass alone", field=field)
    if block_bytes > MAX_BLOCK_BYTES:
        msg = f"one block decompresses to {block_bytes} bytes ({channels} channels, from its header),"
        msg += f" more than the limit of {MAX_BLOCK_BYTES} bytes; save the Depth pass alone"
        raise FormatError(source, msg, field=field)
