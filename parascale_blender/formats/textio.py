"""Helpers shared by the readers: safe file access, number parsing, final validation.

Everything here turns bad input into :class:`FormatError` naming file, line and field.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import numpy as np

from ..core.camera import Trajectory
from .errors import FormatError

MAX_BYTES = 1 << 30  # refuse to slurp files above 1 GiB


def read_bytes(path: str | os.PathLike) -> bytes:
    """The file's bytes; a missing or unreadable file is a :class:`FormatError` naming it."""
    p = Path(path)
    try:
        if p.is_dir():
            raise FormatError(p, "is a folder, expected a file")
        size = p.stat().st_size
        if size > MAX_BYTES:
            raise FormatError(p, f"file is {size} bytes, larger than the {MAX_BYTES} bytes allowed")
        return p.read_bytes()
    except FileNotFoundError:
        raise FormatError(p, "file not found") from None
    except OSError as e:
        raise FormatError(p, f"cannot read file: {e.strerror or e}") from None


def read_text(path: str | os.PathLike) -> str:
    """The file decoded as UTF-8 (a BOM is dropped); undecodable bytes are a :class:`FormatError`."""
    data = read_bytes(path)
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data[: e.start].count(b"\n") + 1
        raise FormatError(path, f"not UTF-8 text (byte {e.start}: {data[e.start : e.start + 1]!r})", line) from None
    if "\x00" in text:
        line = text[: text.index("\x00")].count("\n") + 1
        raise FormatError(path, "contains a NUL byte; this is not a text file", line)
    return text


def short(token: str, limit: int = 40) -> str:
    """A token quoted for an error message, cut to ``limit`` characters."""
    return repr(token if len(token) <= limit else token[:limit] + "...")


def parse_float(token: str, path, line: int | None, field: str) -> float:
    try:
        return float(token)
    except (ValueError, TypeError):
        raise FormatError(path, f"expected a number, got {short(str(token))}", line, field) from None


def parse_int(token: str, path, line: int | None, field: str) -> int:
    """An integer that fits in 64 bits (larger ones are refused, never overflow later)."""
    try:
        value = int(token)
    except (ValueError, TypeError):
        raise FormatError(path, f"expected an integer, got {short(str(token))}", line, field) from None
    if not -(2**63) <= value < 2**63:
        raise FormatError(path, f"integer out of range: {short(str(token))}", line, field)
    return value


def parse_floats(tokens: list[str], path, line: int | None, names: list[str] | None = None) -> np.ndarray:
    """Tokens → float64 array; the first bad token is reported with its field name."""
    try:
        return np.array([float(t) for t in tokens], dtype=np.float64)
    except ValueError:
        for i, t in enumerate(tokens):
            field = names[i] if names is not None and i < len(names) else f"column {i + 1}"
            parse_float(t, path, line, field)
        raise  # pragma: no cover - unreachable: some token failed above


def finish(traj: Trajectory, path, repair_rotations: bool = False) -> Trajectory:
    """Run :meth:`Trajectory.validate` and turn its ``ValueError`` into a :class:`FormatError`."""
    source = os.fspath(path)
    try:
        return traj.validate(source=source, repair_rotations=repair_rotations)
    except ValueError as e:
        msg = str(e)
        if msg.startswith(source + ": "):
            msg = msg[len(source) + 2 :]
        raise FormatError(path, msg) from None


def frames_from_names(names: list[str]) -> np.ndarray | None:
    """Frame numbers from the last run of digits in each file name, if unique and increasing."""

    nums = []
    for n in names:
        found = re.findall(r"\d+", Path(n).stem)
        if not found or len(found[-1]) > 15:
            return None
        nums.append(int(found[-1]))
    arr = np.array(nums, dtype=np.int64)
    if len(arr) and np.all(np.diff(arr) > 0):
        return arr
    return None


def natural_key(name: str) -> list:
    """Sort key that orders ``frame_2`` before ``frame_10``."""

    return [(0, int(t), "") if t.isdecimal() else (1, 0, t) for t in re.split(r"(\d+)", name) if t]


def load_json(path: str | os.PathLike):
    """Parse a JSON file; syntax errors become a :class:`FormatError` with the line number."""
    import json

    text = read_text(path)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise FormatError(path, f"invalid JSON: {e.msg} (column {e.colno})", e.lineno) from None
    except (ValueError, RecursionError) as e:
        raise FormatError(path, f"invalid JSON: {e}") from None


def is_number(v) -> bool:
    """A JSON number that a float can hold (bool excluded, although Python counts it as an int; an
    integer beyond ±1e308, which no float holds, is not a number here)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return False
    return not isinstance(v, int) or -(2**1023) < v < 2**1023


def number_matrix(value, rows: int | None, cols: int, path, field: str, what: str | None = None) -> np.ndarray:
    """A JSON list of ``rows`` lists of ``cols`` numbers → float array, else a FormatError on ``field``."""
    what = what or f"{rows if rows is not None else 'N'}x{cols} numbers"
    ok = isinstance(value, list) and (rows is None or len(value) == rows)
    ok = ok and all(isinstance(r, list) and len(r) == cols and all(is_number(x) for x in r) for r in value)
    if not ok:
        raise FormatError(path, f"expected {what}", field=field)
    return np.array(value, dtype=np.float64).reshape(-1, cols)


def quiet_numerics(reader):
    """Run a reader with numpy floating-point warnings off: absurd numbers (1e308) must end in a
    FormatError from validation, not in RuntimeWarnings on the way there."""
    import functools

    @functools.wraps(reader)
    def wrapper(*args, **kwargs):
        with np.errstate(all="ignore"):
            return reader(*args, **kwargs)

    return wrapper
