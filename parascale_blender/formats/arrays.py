"""Dense per-pixel exports (Plücker ray maps, pixel trajectories) as ``.npy`` or ``.safetensors``.

``.npy`` holds the one array (NumPy's format, no pickle). ``.safetensors`` holds it under a tensor
name with string metadata (``__metadata__``: convention, layout, ``metres_per_unit``), written here
by a small writer (8-byte little-endian header length, JSON header, raw little-endian data) so the
extension needs nothing beyond NumPy; tests read it back with the ``safetensors`` library.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

SUFFIXES = (".npy", ".safetensors")
_DTYPES = {"float32": "F32", "float64": "F64", "int32": "I32", "int64": "I64", "uint8": "U8", "bool": "BOOL"}


def write_safetensors(path: str | os.PathLike, tensors: dict[str, np.ndarray], metadata: dict | None = None) -> Path:
    """Write ``tensors`` (name → array) as a safetensors file; ``metadata`` values become strings."""
    header: dict = {}
    if metadata:
        header["__metadata__"] = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in metadata.items()}
    blobs, offset = [], 0
    for name, arr in tensors.items():
        arr = np.ascontiguousarray(arr)
        if arr.dtype.name not in _DTYPES:
            raise ValueError(f"tensor {name!r}: dtype {arr.dtype} cannot be written to safetensors here")
        data = arr.astype(arr.dtype.newbyteorder("<"), copy=False).tobytes()
        span = [offset, offset + len(data)]
        header[name] = {"dtype": _DTYPES[arr.dtype.name], "shape": list(arr.shape), "data_offsets": span}
        blobs.append(data)
        offset += len(data)
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (-len(text) % 8)  # the data starts 8-byte aligned
    path = Path(path)
    with open(path, "wb") as f:
        f.write(len(text).to_bytes(8, "little"))
        f.write(text)
        for b in blobs:
            f.write(b)
    return path


def check_suffix(path: str | os.PathLike) -> str:
    """The lower-case suffix of ``path`` if it is one this module writes, else a ValueError naming it."""
    suffix = Path(path).suffix.lower()
    if suffix not in SUFFIXES:
        raise ValueError(f"{path}: write .npy or .safetensors (got {suffix or 'no extension'!r})")
    return suffix


def write_array(path: str | os.PathLike, array: np.ndarray, name: str, metadata: dict | None = None) -> Path:
    """``array`` to ``path`` by extension: ``.npy`` (array only) or ``.safetensors`` (``name`` + ``metadata``)."""
    path = Path(path)
    if check_suffix(path) == ".npy":
        np.save(path, np.asarray(array), allow_pickle=False)
        return path
    return write_safetensors(path, {name: np.asarray(array)}, metadata)
