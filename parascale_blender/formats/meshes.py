"""Point-cloud and mesh files: .ply (ascii, binary little/big endian) and .obj, numpy only.

A :class:`Mesh` holds vertices (N, 3) float64, triangles (M, 3) int64 (empty for point clouds)
and optional vertex colours (N, 3) uint8. Polygons are triangulated as fans (v0, vi, vi+1).
Every malformed input raises :class:`FormatError` naming file, line (text) and field.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import FormatError
from .textio import read_bytes

PLY_TYPES = {
    "char": "i1", "int8": "i1", "uchar": "u1", "uint8": "u1", "short": "i2", "int16": "i2",
    "ushort": "u2", "uint16": "u2", "int": "i4", "int32": "i4", "uint": "u4", "uint32": "u4",
    "float": "f4", "float32": "f4", "double": "f8", "float64": "f8",
}  # fmt: skip
COLOUR_NAMES = (("red", "green", "blue"), ("r", "g", "b"), ("diffuse_red", "diffuse_green", "diffuse_blue"))
FACE_LISTS = ("vertex_indices", "vertex_index")


@dataclass
class Mesh:
    """Vertices (N,3) float64, triangles (M,3) int64 indices into them, colours (N,3) uint8 or None."""

    vertices: np.ndarray
    triangles: np.ndarray
    colors: np.ndarray | None = None

    @property
    def is_point_cloud(self) -> bool:
        return len(self.triangles) == 0


def fan_triangles(polygons: list[list[int]]) -> np.ndarray:
    """Triangulate polygons (lists of >= 3 vertex indices) as fans; (M, 3) int64."""
    tris = [(p[0], p[i], p[i + 1]) for p in polygons for i in range(1, len(p) - 1)]
    return np.array(tris, dtype=np.int64).reshape(-1, 3)


def _check_indices(tris: np.ndarray, n: int, path, field: str) -> np.ndarray:
    if len(tris) and (tris.min() < 0 or tris.max() >= n):
        bad = int(np.argmax((tris < 0).any(1) | (tris >= n).any(1)))
        raise FormatError(
            path, f"triangle {bad} uses vertex {tris[bad].tolist()} but there are {n} vertices", None, field
        )
    return tris


# ------------------------------------------------------------------ PLY


@dataclass
class _Element:
    name: str
    count: int
    props: list[tuple[str, str, str | None]]  # (name, value type, list-count type or None)
    line: int


def _ply_header(data: bytes, path) -> tuple[str, list[_Element], int]:
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        raise FormatError(path, "not a PLY file (expected 'ply' ... 'end_header')", 1, "header")
    body_start = data.find(b"\n", end) + 1
    if body_start == 0:
        body_start = len(data)
    lines = data[:end].decode("latin-1").replace("\r", "").split("\n")
    fmt, elements = None, []
    for no, line in enumerate(lines[1:], start=2):
        tok = line.split()
        if not tok or tok[0] in ("comment", "obj_info"):
            continue
        if tok[0] == "format" and len(tok) >= 2:
            fmt = tok[1]
            if fmt not in ("ascii", "binary_little_endian", "binary_big_endian"):
                raise FormatError(path, f"unknown PLY format {fmt!r}", no, "format")
        elif tok[0] == "element" and len(tok) == 3 and tok[2].isdecimal():
            if len(tok[2]) > 18:
                raise FormatError(path, f"element {tok[1][:30]!r} claims a {len(tok[2])}-digit count", no, "element")
            elements.append(_Element(tok[1], int(tok[2]), [], no))
        elif tok[0] == "property" and elements and len(tok) == 3 and tok[1] in PLY_TYPES:
            elements[-1].props.append((tok[2], PLY_TYPES[tok[1]], None))
        elif (
            tok[0] == "property" and elements and len(tok) == 5 and tok[1] == "list"
            and tok[2] in PLY_TYPES and tok[3] in PLY_TYPES
        ):  # fmt: skip
            elements[-1].props.append((tok[4], PLY_TYPES[tok[3]], PLY_TYPES[tok[2]]))
        else:
            raise FormatError(path, f"cannot parse header line {line.strip()[:60]!r}", no, "header")
    if fmt is None:
        raise FormatError(path, "header has no 'format' line", 1, "format")
    return fmt, elements, body_start


def _vertex_columns(el: _Element, table: dict[str, np.ndarray], path) -> tuple[np.ndarray, np.ndarray | None]:
    for axis in "xyz":
        if axis not in table:
            raise FormatError(path, f"vertex element lacks property {axis!r}", el.line, axis)
    xyz = np.stack([table[a] for a in "xyz"], 1).astype(np.float64)
    colors = None
    for names in COLOUR_NAMES:
        if all(n in table for n in names):
            c = np.stack([table[n] for n in names], 1).astype(np.float64)
            declared = {p[0]: p[1] for p in el.props}
            if declared[names[0]].startswith("f"):  # float colours are 0..1
                c = np.round(np.clip(c, 0, 1) * 255)
            colors = np.clip(c, 0, 255).astype(np.uint8)
            break
    return xyz, colors


def _read_ply_binary(data: bytes, pos: int, elements: list[_Element], order: str, path) -> tuple[dict, int]:
    tables = {}
    for el in elements:
        if all(p[2] is None for p in el.props):  # fixed-size rows: one structured read
            dt = np.dtype([(f"f{i}", order + p[1]) for i, p in enumerate(el.props)])
            need = dt.itemsize * el.count
            if pos + need > len(data):
                raise FormatError(path, f"element {el.name!r}: file ends before its {el.count} rows", None, el.name)
            rows = np.frombuffer(data, dtype=dt, count=el.count, offset=pos)
            tables[el.name] = {p[0]: rows[f"f{i}"] for i, p in enumerate(el.props)}
            pos += need
            continue
        tables[el.name], pos = _read_ply_binary_lists(data, pos, el, order, path)
    return tables, pos


def _read_ply_binary_lists(data: bytes, pos: int, el: _Element, order: str, path) -> tuple[dict, int]:
    """Rows with list properties; fast path when every list has the same length as the first."""
    sizes = [np.dtype(p[2] or p[1]).itemsize for p in el.props]
    if el.count == 0:
        return {p[0]: [] for p in el.props}, pos
    # guess uniform lengths from the first row, then verify all counts
    dt_fields, off = [], pos
    for i, (name, vt, ct) in enumerate(el.props):
        if ct is None:
            dt_fields.append((f"f{i}", order + vt))
            off += sizes[i]
        else:
            if off + sizes[i] > len(data):
                raise FormatError(path, f"element {el.name!r}: file ends inside row 0", None, name)
            k = int(np.frombuffer(data, dtype=order + ct, count=1, offset=off)[0])
            dt_fields += [(f"n{i}", order + ct), (f"f{i}", order + vt, (k,))]
            off += sizes[i] + k * np.dtype(vt).itemsize
    dt = np.dtype(dt_fields)
    if pos + dt.itemsize * el.count <= len(data):
        rows = np.frombuffer(data, dtype=dt, count=el.count, offset=pos)
        counts_ok = all(
            np.all(rows[f"n{i}"] == rows.dtype[f"f{i}"].shape[0]) for i, p in enumerate(el.props) if p[2] is not None
        )
        if counts_ok:
            return {p[0]: rows[f"f{i}"] for i, p in enumerate(el.props)}, pos + dt.itemsize * el.count
    out: dict[str, list] = {p[0]: [] for p in el.props}  # mixed polygon sizes: row by row
    for r in range(el.count):
        for name, vt, ct in el.props:
            try:
                if ct is None:
                    out[name].append(np.frombuffer(data, dtype=order + vt, count=1, offset=pos)[0])
                    pos += np.dtype(vt).itemsize
                else:
                    k = int(np.frombuffer(data, dtype=order + ct, count=1, offset=pos)[0])
                    pos += np.dtype(ct).itemsize
                    out[name].append(np.frombuffer(data, dtype=order + vt, count=k, offset=pos))
                    pos += k * np.dtype(vt).itemsize
            except ValueError:
                raise FormatError(path, f"element {el.name!r}: file ends inside row {r}", None, name) from None
    return out, pos


def _read_ply_ascii(text: str, elements: list[_Element], header_lines: int, path) -> dict:
    lines = text.split("\n")
    tables, li = {}, 0
    for el in elements:
        rows = []
        while len(rows) < el.count:
            if li >= len(lines):
                raise FormatError(path, f"element {el.name!r}: file ends after {len(rows)} of {el.count} rows")
            tok = lines[li].split()
            li += 1
            if tok:
                rows.append((li + header_lines, tok))
        tables[el.name] = _parse_ascii_rows(el, rows, path)
    return tables


def _parse_ascii_rows(el: _Element, rows: list, path) -> dict:
    if all(p[2] is None for p in el.props):
        n = len(el.props)
        for no, tok in rows:
            if len(tok) != n:
                raise FormatError(path, f"{el.name} row has {len(tok)} values, expected {n}", no, el.name)
        try:
            arr = np.array([t for _, t in rows], dtype=np.float64).reshape(-1, n)
        except ValueError:
            no, tok = next((no, t) for no, t in rows if not all(_is_number(x) for x in t))
            raise FormatError(path, f"expected numbers, got {' '.join(tok)[:60]!r}", no, el.name) from None
        return {p[0]: arr[:, i] for i, p in enumerate(el.props)}
    out: dict[str, list] = {p[0]: [] for p in el.props}
    for no, tok in rows:
        i = 0
        try:
            for name, _vt, ct in el.props:
                if ct is None:
                    out[name].append(float(tok[i]))
                    i += 1
                else:
                    k = int(tok[i])
                    if k < 0 or i + 1 + k > len(tok):
                        raise ValueError
                    out[name].append([int(v) for v in tok[i + 1 : i + 1 + k]])
                    i += 1 + k
        except (ValueError, IndexError):
            raise FormatError(path, f"cannot parse {el.name} row {' '.join(tok)[:60]!r}", no, el.name) from None
    return out


def _is_number(s: str) -> bool:
    try:
        float(s)
        return True
    except ValueError:
        return False


def read_ply(path: str | os.PathLike) -> Mesh:
    """A PLY file: vertices (+ colours), and faces triangulated if there is a face element."""
    data = read_bytes(path)
    fmt, elements, body = _ply_header(data, path)
    names = [e.name for e in elements]
    if "vertex" not in names:
        raise FormatError(path, "no 'vertex' element", 1, "vertex")
    if fmt == "ascii":
        header_lines = data[:body].count(b"\n")
        tables = _read_ply_ascii(data[body:].decode("latin-1"), elements, header_lines, path)
    else:
        tables, _ = _read_ply_binary(data, body, elements, "<" if fmt == "binary_little_endian" else ">", path)
    vel = elements[names.index("vertex")]
    xyz, colors = _vertex_columns(vel, tables["vertex"], path)
    tris = np.zeros((0, 3), dtype=np.int64)
    if "face" in names:
        fel = elements[names.index("face")]
        key = next((p[0] for p in fel.props if p[0] in FACE_LISTS and p[2] is not None), None)
        if key is None:
            raise FormatError(path, "face element has no vertex_indices list", fel.line, "face")
        faces = tables["face"][key]
        if not isinstance(faces, np.ndarray) and len(faces) and len({len(f) for f in faces}) == 1:
            faces = np.array(faces, dtype=np.int64)  # ascii, all polygons of one size
        if isinstance(faces, np.ndarray) and faces.ndim == 2 and faces.shape[1] >= 3:
            f = faces.astype(np.int64)
            tris = np.stack([f[:, [0, i, i + 1]] for i in range(1, f.shape[1] - 1)], 1).reshape(-1, 3)
        elif len(faces):
            bad = next((i for i, f in enumerate(faces) if len(f) < 3), None)
            if bad is not None:
                raise FormatError(path, f"face {bad} has fewer than 3 vertices", None, key)
            tris = fan_triangles([list(map(int, f)) for f in faces])
        tris = _check_indices(tris, len(xyz), path, key)
    return Mesh(xyz, tris, colors)


def write_ply(
    path: str | os.PathLike,
    vertices: np.ndarray,
    triangles: np.ndarray | None = None,
    colors: np.ndarray | None = None,
    binary: bool = True,
) -> None:
    """Write vertices (float32, + uchar colours) and triangles as PLY (binary little endian or ascii)."""
    v = np.asarray(vertices, dtype=np.float32).reshape(-1, 3)
    t = np.zeros((0, 3), np.int32) if triangles is None else np.asarray(triangles, dtype=np.int32).reshape(-1, 3)
    head = ["ply", f"format {'binary_little_endian' if binary else 'ascii'} 1.0", f"element vertex {len(v)}"]
    head += [f"property float {a}" for a in "xyz"]
    if colors is not None:
        head += [f"property uchar {c}" for c in ("red", "green", "blue")]
    if len(t):
        head += [f"element face {len(t)}", "property list uchar int vertex_indices"]
    head.append("end_header")
    fields = [("x", "<f4"), ("y", "<f4"), ("z", "<f4")] + ([("c", "u1", (3,))] if colors is not None else [])
    vrows = np.zeros(len(v), dtype=fields)
    vrows["x"], vrows["y"], vrows["z"] = v.T
    if colors is not None:
        vrows["c"] = np.asarray(colors, dtype=np.uint8).reshape(-1, 3)
    frows = np.zeros(len(t), dtype=[("n", "u1"), ("i", "<i4", (3,))])
    frows["n"], frows["i"] = 3, t
    with open(path, "wb") as fh:
        fh.write(("\n".join(head) + "\n").encode())
        if binary:
            fh.write(vrows.tobytes() + frows.tobytes())
        else:
            cols = [v] + ([np.asarray(colors).reshape(-1, 3)] if colors is not None else [])
            for row in zip(*cols):
                fh.write((" ".join(f"{x:.9g}" for part in row for x in part) + "\n").encode())
            for tri in t:
                fh.write(f"3 {tri[0]} {tri[1]} {tri[2]}\n".encode())


# ------------------------------------------------------------------ OBJ

_OBJ_IGNORED = {"vt", "vn", "vp", "g", "o", "s", "usemtl", "mtllib", "l", "p", "cstype", "deg", "curv", "surf"}


def read_obj(path: str | os.PathLike) -> Mesh:
    """Wavefront OBJ: ``v x y z [w] [r g b]`` and ``f`` polygons (``i``, ``i/t``, ``i//n``, negative = relative)."""
    data = read_bytes(path)
    verts, cols, polys = [], [], []
    for no, raw in enumerate(data.decode("latin-1").split("\n"), start=1):
        tok = raw.split("#", 1)[0].split()
        if not tok:
            continue
        key = tok[0]
        if key == "v":
            if len(tok) not in (4, 5, 7):
                raise FormatError(
                    path, f"vertex needs 3 coordinates (optionally w or r g b), got {len(tok) - 1}", no, "v"
                )
            try:
                vals = [float(x) for x in tok[1:]]
            except ValueError:
                raise FormatError(path, f"expected numbers, got {' '.join(tok[1:])[:60]!r}", no, "v") from None
            verts.append(vals[:3])
            cols.append(vals[3:6] if len(vals) == 6 else None)
        elif key == "f":
            if len(tok) < 4:
                raise FormatError(path, f"face needs at least 3 vertices, got {len(tok) - 1}", no, "f")
            idx = []
            for t in tok[1:]:
                head = t.split("/", 1)[0]
                if not re.fullmatch(r"-?\d{1,18}", head) or int(head) == 0:  # (Python refuses int() of 4,301 digits)
                    raise FormatError(path, f"bad vertex reference {t[:30]!r}", no, "f")
                i = int(head)
                i = i - 1 if i > 0 else len(verts) + i
                if not 0 <= i < len(verts):
                    raise FormatError(path, f"vertex {head} does not exist yet ({len(verts)} defined)", no, "f")
                idx.append(i)
            polys.append(idx)
        elif key not in _OBJ_IGNORED:
            continue  # unknown statements are tolerated, as OBJ readers commonly do
    if not verts:
        raise FormatError(path, "no vertices ('v' lines)", None, "v")
    xyz = np.array(verts, dtype=np.float64)
    colors = None
    if all(c is not None for c in cols):
        colors = np.clip(np.round(np.array(cols) * 255), 0, 255).astype(np.uint8)
    return Mesh(xyz, fan_triangles(polys), colors)


def write_obj(path: str | os.PathLike, vertices: np.ndarray, triangles: np.ndarray) -> None:
    """Write vertices and 0-based triangles as OBJ (1-based ``f`` lines)."""
    v = np.asarray(vertices, dtype=np.float64).reshape(-1, 3)
    t = np.asarray(triangles, dtype=np.int64).reshape(-1, 3) + 1
    lines = [f"v {a:.9g} {b:.9g} {c:.9g}" for a, b, c in v] + [f"f {a} {b} {c}" for a, b, c in t]
    Path(path).write_text("\n".join(lines) + "\n")


def read_mesh(path: str | os.PathLike) -> Mesh:
    """By extension: .ply or .obj."""
    ext = Path(path).suffix.lower()
    if ext == ".ply":
        return read_ply(path)
    if ext == ".obj":
        return read_obj(path)
    raise FormatError(path, f"unknown mesh extension {ext!r}; expected .ply or .obj")
