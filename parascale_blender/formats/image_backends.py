"""Which library decodes EXR and PNG pixels for the depth reader: the one place it is chosen.

* EXR: the built-in codec (:mod:`.exr`) for the scanline NONE, ZIPS and ZIP parts it reads (what
  Blender writes by default: one block in memory at a time, one channel kept), else OpenImageIO
  (bundled with Blender 4.2+ and 5.0: the add-on), then the ``OpenEXR`` package (the ``server``
  extra: the server and the CLI; the depth channel alone of a single-part file, every part of a
  multi-part one), then the built-in codec.
* PNG: OpenImageIO, then OpenCV (``cv2``: the server and the CLI), then the built-in codec
  (:mod:`.png16`).

The first importable one decodes; the import is tried at each call, so a module made importable
later (the add-on exposes Blender's bundled site-packages when it registers) is used from then on.
The extension ships none of them: every import here is optional.

Whatever decodes, our own header reader runs first (:func:`.exr.exr_layout`, :func:`.png16.png_header`)
and picks the depth channel, and the size (:func:`.image_size.check_image_size`) and the bytes the
backend would decompress (:func:`.image_size.check_decoded_bytes`: the depth part's channels for
OpenImageIO, the built-in codec and ``OpenEXR`` on a single-part file, every part for ``OpenEXR`` on
a multi-part file, which it reads whole), the channels and the bytes of one decompressed block
(:func:`.image_size.check_blocks`) and, for a whole-file read, :data:`.image_size.MAX_WHOLE_FILE_BYTES`
are checked from it before a pixel is decoded; a PNG's chunk lengths and CRCs are checked before a library
sees it (a corrupt length made OpenCV spin for 5 s on a 300-byte file). The decoded size is
checked against the header, and a library's error becomes a :class:`FormatError` naming the file.
"""

from __future__ import annotations

import importlib
import io
import os
import tempfile
from collections.abc import Callable
from types import ModuleType

import numpy as np

from .errors import FormatError
from .exr import (
    LINES_PER_CHUNK,
    PIXEL_DTYPES,
    ExrLayout,
    ExrPart,
    decode_part_channel,
    exr_layout,
    half_background_to_inf,
    pick_depth_channel,
)
from .image_size import MAX_SIDE, MAX_WHOLE_FILE_BYTES, check_blocks, check_decoded_bytes, check_image_size
from .png16 import PngInfo, png_chunks, png_header
from .png16 import decode_png as decode_png_builtin

EXR_BACKENDS = ("oiio", "openexr", "builtin")
PNG_BACKENDS = ("oiio", "cv2", "builtin")
_MODULES = {"oiio": "OpenImageIO", "openexr": "OpenEXR", "cv2": "cv2"}


def _module(backend: str) -> ModuleType | None:
    if backend == "builtin":
        return None
    try:
        return importlib.import_module(_MODULES[backend])
    except ImportError:
        return None


def available(backend: str) -> bool:
    """Whether ``backend`` (one of :data:`EXR_BACKENDS` or :data:`PNG_BACKENDS`) can decode here."""
    return backend == "builtin" or _module(backend) is not None


def exr_backend() -> str:
    """The EXR backend used now: the first available of :data:`EXR_BACKENDS`."""
    return next(b for b in EXR_BACKENDS if available(b))


def png_backend() -> str:
    """The PNG backend used now: the first available of :data:`PNG_BACKENDS`."""
    return next(b for b in PNG_BACKENDS if available(b))


def _library_call(source, what: str, call: Callable[[], np.ndarray]) -> np.ndarray:
    try:
        return call()
    except FormatError:
        raise
    except Exception as e:  # noqa: BLE001 - a library's own exception types, whatever they are
        raise FormatError(source, f"{what} could not decode it ({str(e).strip()[:200]})", field="pixels") from None


def _with_path(data: bytes, path, suffix: str, read: Callable[[str], np.ndarray]) -> np.ndarray:
    """``read(file)`` on ``path``, or on a temporary copy of ``data`` when there is no path."""
    if path is not None:
        return read(os.fspath(path))
    fd, tmp = tempfile.mkstemp(suffix=suffix, prefix="parascale-depth-")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        return read(tmp)
    finally:
        os.unlink(tmp)


def _oiio_channel(oiio, file: str, subimage: int, channel: str | int) -> np.ndarray:
    """One channel (by name, or by index) of an OpenImageIO subimage, in its stored type."""
    config = oiio.ImageSpec()
    config.attribute("oiio:UnassociatedAlpha", 1)  # PNG alpha must not premultiply the depth
    inp = oiio.ImageInput.open(file, config)
    if inp is None:
        raise RuntimeError(oiio.geterror())
    try:
        if not inp.seek_subimage(subimage, 0):
            raise RuntimeError(inp.geterror() or f"no subimage {subimage}")
        names = list(inp.spec().channelnames)
        ch = channel if isinstance(channel, int) else names.index(channel)
        a = inp.read_image(subimage, 0, ch, ch + 1, oiio.TypeUnknown)
        if a is None:
            raise RuntimeError(inp.geterror())
        return np.asarray(a).reshape(a.shape[0], a.shape[1])
    finally:
        inp.close()


def _checked(a: np.ndarray, width: int, height: int, source, who: str) -> np.ndarray:
    if a.shape[:2] != (height, width):
        msg = f"{who} decoded {a.shape[1]}x{a.shape[0]} pixels, its header says {width}x{height}"
        raise FormatError(source, msg, field="pixels")
    return a


def decode_exr(
    data: bytes,
    source: str | os.PathLike,
    channel: str | None = None,
    max_side: int | None = MAX_SIDE,
    path: str | os.PathLike | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """The depth channel of OpenEXR bytes (any part, codec, scanline or tiled) as (H, W) float64.

    ``channel`` names it (default: :func:`.exr.pick_depth_channel`); ``path`` is the file the bytes
    came from (OpenImageIO reads files); ``backend`` forces one of :data:`EXR_BACKENDS`.
    """
    layout = exr_layout(data, source)
    part, name = pick_depth_channel(layout.parts, channel, source)
    check_image_size(part.width, part.height, source, max_side, field="dataWindow")
    if part.kind.startswith("deep"):
        raise FormatError(source, f"part {part.index} is deep (several samples per pixel); flatten it", field="type")
    backend = backend or ("builtin" if builtin_reads(part) else exr_backend())
    whole = backend == "openexr" and layout.multipart
    parts = layout.parts if whole else [part]
    nbytes, nch = sum(p.decoded_bytes for p in parts), sum(len(p.channels) for p in parts)
    check_decoded_bytes(nbytes, f"{len(parts)} part(s), {nch} channels", source, max_side, field="channels")
    for p in parts:
        check_blocks(len(p.channels), p.block_bytes, source, max_side, field="channels")
    if whole and max_side is not None and nbytes > MAX_WHOLE_FILE_BYTES:
        msg = f"{_MODULES[backend]} reads every part of a multi-part file: {nbytes} bytes, more than the limit of"
        msg += f" {MAX_WHOLE_FILE_BYTES}; save the Depth pass alone, or as scanline ZIP"
        raise FormatError(source, msg, field="parts")
    if backend == "builtin":
        return half_background_to_inf(decode_part_channel(data, source, layout, part, name), part, name)
    mod = _module(backend)
    if mod is None:
        raise ValueError(f"EXR backend {backend!r} is not importable here")
    read = _exr_readers[backend]
    a = _library_call(source, _MODULES[backend], lambda: read(mod, data, path, layout, part, name))
    a = _checked(a, part.width, part.height, source, _MODULES[backend]).astype(np.float64)
    return half_background_to_inf(a, part, name)


def builtin_reads(part: ExrPart) -> bool:
    """Whether the built-in codec reads ``part`` (scanline, NONE / ZIPS / ZIP)."""
    return part.kind == "scanlineimage" and part.compression in LINES_PER_CHUNK


def _exr_oiio(oiio, data, path, layout: ExrLayout, part: ExrPart, name: str) -> np.ndarray:
    return _with_path(data, path, ".exr", lambda f: _oiio_channel(oiio, f, part.index, name))


def _exr_openexr(openexr, data, path, layout: ExrLayout, part: ExrPart, name: str) -> np.ndarray:
    if not layout.multipart:  # the one channel (the library holds one block of the others at a time)
        raw = _with_path(data, path, ".exr", lambda f: openexr.InputFile(f).channel(name))
        dtype = PIXEL_DTYPES[dict(part.channels)[name]]
        if len(raw) != part.width * part.height * dtype.itemsize:
            raise RuntimeError(f"{len(raw)} bytes read for channel {name!r}")
        return np.frombuffer(raw, dtype).reshape(part.height, part.width)
    with openexr.File(io.BytesIO(data), separate_channels=True) as f:
        if len(f.parts) != len(layout.parts):
            raise RuntimeError(f"{len(f.parts)} parts read, {len(layout.parts)} in the header")
        return np.array(f.parts[part.index].channels[name].pixels)


_exr_readers = {"oiio": _exr_oiio, "openexr": _exr_openexr}


def decode_png(
    data: bytes,
    source: str | os.PathLike,
    max_side: int | None = MAX_SIDE,
    path: str | os.PathLike | None = None,
    backend: str | None = None,
) -> np.ndarray:
    """The first channel of 8- or 16-bit PNG bytes (grey, grey+alpha, RGB, RGBA) as (H, W) raw
    counts (uint8 or uint16); ``path`` and ``backend`` as for :func:`decode_exr`."""
    info = png_header(data, source)
    check_image_size(info.width, info.height, source, max_side, field="IHDR")
    check_decoded_bytes(info.decoded_bytes, f"{info.channels} channels", source, max_side, field="IHDR")
    backend = backend or png_backend()
    if backend == "builtin":
        return decode_png_builtin(data, source, max_side)
    png_chunks(data, source)  # lengths and CRCs: a library is handed well-formed chunks only
    mod = _module(backend)
    if mod is None:
        raise ValueError(f"PNG backend {backend!r} is not importable here")
    read = _png_oiio if backend == "oiio" else _png_cv2
    a = _library_call(source, _MODULES[backend], lambda: read(mod, data, path, info))
    a = _checked(a, info.width, info.height, source, _MODULES[backend])
    want = np.uint16 if info.bit_depth == 16 else np.uint8
    if a.dtype != want:
        raise FormatError(source, f"{_MODULES[backend]} decoded {a.dtype} samples from a {info.bit_depth}-bit PNG")
    return a


def _png_oiio(oiio, data, path, info: PngInfo) -> np.ndarray:
    return _with_path(data, path, ".png", lambda f: _oiio_channel(oiio, f, 0, 0))


def _png_cv2(cv2, data, path, info: PngInfo) -> np.ndarray:
    a = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_UNCHANGED)
    if a is None:
        raise RuntimeError("truncated or corrupt image data")
    return a if a.ndim == 2 else a[:, :, 2]  # OpenCV orders colour BGR(A) and gives grey+alpha as BGRA: red
