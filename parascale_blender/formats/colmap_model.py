"""COLMAP sparse models, text and binary, parsed into plain arrays (no conventions applied).

Text: ``cameras.txt`` (``ID MODEL W H PARAMS...``), ``images.txt`` (two lines per image:
``ID QW QX QY QZ TX TY TZ CAMERA_ID NAME`` then ``X Y POINT3D_ID`` triples, -1 = no point),
``points3D.txt`` (``ID X Y Z R G B ERROR (IMAGE_ID POINT2D_IDX)...``). Binary: the same records,
little-endian, as written by COLMAP (``cameras.bin``, ``images.bin``, ``points3D.bin``).
``(QW, QX, QY, QZ), (TX, TY, TZ)`` is the world-to-camera pose (OpenCV camera axes).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import FormatError
from .textio import parse_floats, parse_int, read_bytes, read_text, short

# name: (binary model id, number of params, layout of the pinhole part or None if not perspective-pinhole)
MODELS: dict[str, tuple[int, int, str | None]] = {
    "SIMPLE_PINHOLE": (0, 3, "f"),
    "PINHOLE": (1, 4, "fxfy"),
    "SIMPLE_RADIAL": (2, 4, "f"),
    "RADIAL": (3, 5, "f"),
    "OPENCV": (4, 8, "fxfy"),
    "OPENCV_FISHEYE": (5, 8, None),
    "FULL_OPENCV": (6, 12, "fxfy"),
    "FOV": (7, 5, None),
    "SIMPLE_RADIAL_FISHEYE": (8, 4, None),
    "RADIAL_FISHEYE": (9, 5, None),
    "THIN_PRISM_FISHEYE": (10, 12, None),
    "RAD_TAN_THIN_PRISM_FISHEYE": (11, 16, None),
    "SIMPLE_DIVISION": (12, 4, None),
    "DIVISION": (13, 5, None),
    "SIMPLE_FISHEYE": (14, 3, None),
    "FISHEYE": (15, 4, None),
    "EUCM": (16, 6, None),
    "EQUIRECTANGULAR": (17, 2, None),
}
MODEL_BY_ID = {v[0]: k for k, v in MODELS.items()}


@dataclass
class RawCamera:
    model: str
    width: int
    height: int
    params: np.ndarray
    where: tuple  # (file, line or None, field) for error messages


@dataclass
class RawImage:
    image_id: int
    qvec: np.ndarray  # w, x, y, z (world-to-camera)
    tvec: np.ndarray
    camera_id: int
    name: str
    point3d_ids: np.ndarray  # int64, -1 = no 3D point
    where: tuple


@dataclass
class RawModel:
    cameras: dict[int, RawCamera] = field(default_factory=dict)
    images: list[RawImage] = field(default_factory=list)
    point_ids: np.ndarray | None = None
    xyz: np.ndarray | None = None
    rgb: np.ndarray | None = None


def _data_lines(path: Path):
    """(line number, tokens) for each non-comment line; commas are refused with a clear message."""
    for k, line in enumerate(read_text(path).splitlines(), start=1):
        s = line.strip()
        if s.startswith("#"):
            continue
        yield k, line


def _no_commas(path, k: int, line: str) -> None:
    if "," in line:
        raise FormatError(
            path,
            "comma-separated values: this is not COLMAP's space-separated text model "
            "(it looks like a COLMAP-like export such as kapture's); re-export it with COLMAP",
            k,
        )


def read_cameras_text(path: Path) -> dict[int, RawCamera]:
    cams: dict[int, RawCamera] = {}
    for k, line in _data_lines(path):
        if not line.strip():
            continue
        _no_commas(path, k, line)
        tok = line.split()
        if len(tok) < 4:
            raise FormatError(path, f"expected CAMERA_ID MODEL WIDTH HEIGHT PARAMS..., got {len(tok)} fields", k)
        cid = parse_int(tok[0], path, k, "CAMERA_ID")
        model = tok[1]
        if model not in MODELS:
            raise FormatError(path, f"unknown camera model {short(model)}; known: {', '.join(MODELS)}", k, "MODEL")
        w, h = parse_int(tok[2], path, k, "WIDTH"), parse_int(tok[3], path, k, "HEIGHT")
        nparams = MODELS[model][1]
        if len(tok) - 4 != nparams:
            raise FormatError(path, f"{model} takes {nparams} parameters, got {len(tok) - 4}", k, "PARAMS")
        params = parse_floats(tok[4:], path, k, [f"PARAMS[{i}]" for i in range(nparams)])
        if cid in cams:
            raise FormatError(path, f"camera {cid} defined twice", k, "CAMERA_ID")
        cams[cid] = RawCamera(model, w, h, params, (path, k, None))
    return cams


def read_images_text(path: Path) -> list[RawImage]:
    lines = read_text(path).splitlines()
    images: list[RawImage] = []
    k = 0
    while k < len(lines):
        line = lines[k]
        k += 1
        if not line.strip() or line.strip().startswith("#"):
            continue
        _no_commas(path, k, line)
        tok = line.split(maxsplit=9)
        if len(tok) < 10:
            raise FormatError(path, f"expected IMAGE_ID QW QX QY QZ TX TY TZ CAMERA_ID NAME, got {len(tok)} fields", k)
        iid = parse_int(tok[0], path, k, "IMAGE_ID")
        pose = parse_floats(tok[1:8], path, k, ["QW", "QX", "QY", "QZ", "TX", "TY", "TZ"])
        cid = parse_int(tok[8], path, k, "CAMERA_ID")
        name = tok[9].strip()
        where = (path, k, None)
        pts_line = lines[k] if k < len(lines) else ""
        k += 1
        _no_commas(path, k, pts_line)
        ptok = pts_line.split()
        if len(ptok) % 3:
            raise FormatError(path, f"expected (X, Y, POINT3D_ID) triples, got {len(ptok)} numbers", k, "POINTS2D")
        ids_tok = ptok[2::3]
        try:
            ids = np.array(ids_tok, dtype=np.int64)
        except (ValueError, OverflowError):
            for i, t in enumerate(ids_tok):
                parse_int(t, path, k, f"POINT3D_ID[{i}]")
            raise
        parse_floats(ptok[0::3] + ptok[1::3], path, k, None)  # the 2D coordinates must be numbers
        images.append(RawImage(iid, pose[:4], pose[4:], cid, name, ids, where))
    return images


def read_points_text(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ids, xyz, rgb = [], [], []
    for k, line in _data_lines(path):
        if not line.strip():
            continue
        _no_commas(path, k, line)
        tok = line.split()
        if len(tok) < 8 or (len(tok) - 8) % 2:
            raise FormatError(path, "expected POINT3D_ID X Y Z R G B ERROR then (IMAGE_ID POINT2D_IDX) pairs", k)
        ids.append(parse_int(tok[0], path, k, "POINT3D_ID"))
        xyz.append(parse_floats(tok[1:4], path, k, ["X", "Y", "Z"]))
        c = [parse_int(t, path, k, n) for t, n in zip(tok[4:7], "RGB")]
        if min(c) < 0 or max(c) > 255:
            raise FormatError(path, f"colour must be 0..255, got {c}", k, "RGB")
        rgb.append(c)
        parse_floats(tok[7:], path, k, ["ERROR"] + [f"TRACK[{i}]" for i in range(len(tok) - 8)])
    return (
        np.array(ids, dtype=np.int64),
        np.array(xyz, dtype=np.float64).reshape(-1, 3),
        np.array(rgb, dtype=np.uint8).reshape(-1, 3),
    )


class _Cursor:
    """Little-endian reader over bytes that turns truncation into a FormatError."""

    def __init__(self, path: Path):
        self.path, self.data, self.pos = path, read_bytes(path), 0

    def take(self, fmt: str, field: str):
        size = struct.calcsize("<" + fmt)
        if self.pos + size > len(self.data):
            raise FormatError(self.path, f"file ends at byte {len(self.data)} while reading {field}", field=field)
        out = struct.unpack_from("<" + fmt, self.data, self.pos)
        self.pos += size
        return out

    def array(self, dtype: np.dtype, count: int, field: str) -> np.ndarray:
        size = dtype.itemsize * count
        if count < 0 or self.pos + size > len(self.data):
            raise FormatError(
                self.path, f"{count} records need {size} bytes but only {len(self.data) - self.pos} remain", field=field
            )
        out = np.frombuffer(self.data, dtype=dtype, count=count, offset=self.pos)
        self.pos += size
        return out

    def cstring(self, field: str) -> str:
        end = self.data.find(b"\0", self.pos)
        if end < 0:
            raise FormatError(self.path, "unterminated string", field=field)
        raw = self.data[self.pos : end]
        self.pos = end + 1
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            raise FormatError(self.path, f"name is not UTF-8: {raw[:40]!r}", field=field) from None

    def done(self) -> None:
        if self.pos != len(self.data):
            raise FormatError(self.path, f"{len(self.data) - self.pos} unexpected bytes after the last record")


def read_cameras_binary(path: Path) -> dict[int, RawCamera]:
    c = _Cursor(path)
    (n,) = c.take("Q", "num_cameras")
    cams: dict[int, RawCamera] = {}
    for i in range(n):
        f = f"cameras[{i}]"
        cid, mid, w, h = c.take("iiQQ", f)
        if mid not in MODEL_BY_ID:
            raise FormatError(path, f"unknown camera model id {mid}", field=f + ".model_id")
        model = MODEL_BY_ID[mid]
        params = c.array(np.dtype("<f8"), MODELS[model][1], f + ".params").astype(np.float64)
        if w > 2**31 or h > 2**31:
            raise FormatError(path, f"implausible image size {w}x{h}", field=f)
        cams[cid] = RawCamera(model, int(w), int(h), params, (path, None, f))
        if len(cams) != i + 1:
            raise FormatError(path, f"camera {cid} defined twice", field=f)
    c.done()
    return cams


POINT2D = np.dtype([("x", "<f8"), ("y", "<f8"), ("id", "<i8")])


def read_images_binary(path: Path) -> list[RawImage]:
    c = _Cursor(path)
    (n,) = c.take("Q", "num_images")
    images = []
    for i in range(n):
        f = f"images[{i}]"
        vals = c.take("I7dI", f)
        name = c.cstring(f + ".name")
        (npts,) = c.take("Q", f + ".num_points2D")
        pts = c.array(POINT2D, npts, f + ".points2D")
        q, t = np.array(vals[1:5]), np.array(vals[5:8])
        images.append(RawImage(int(vals[0]), q, t, int(vals[8]), name, pts["id"].astype(np.int64), (path, None, f)))
    c.done()
    return images


def read_points_binary(path: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    c = _Cursor(path)
    (n,) = c.take("Q", "num_points3D")
    if n > len(c.data) // 51:
        raise FormatError(path, f"{n} points cannot fit in {len(c.data)} bytes", field="num_points3D")
    ids, xyz, rgb = np.empty(n, np.int64), [], []
    for i in range(n):
        f = f"points3D[{i}]"
        vals = c.take("Q3d3BdQ", f)
        ids[i] = vals[0] if vals[0] < 2**63 else -1
        xyz.append(vals[1:4])
        rgb.append(vals[4:7])
        c.array(np.dtype("<i4"), 2 * vals[8], f + ".track")
    c.done()
    return ids[:n], np.array(xyz, dtype=np.float64).reshape(-1, 3), np.array(rgb, dtype=np.uint8).reshape(-1, 3)


def find_model(path: Path) -> tuple[Path, str]:
    """The folder holding the model and its encoding ('binary' preferred, as COLMAP does)."""
    path = Path(path)
    if path.is_file():
        path = path.parent
    if not path.is_dir():
        raise FormatError(path, "COLMAP model folder not found")
    for folder in (path, path / "sparse" / "0", path / "sparse", path / "0"):
        for enc, ext in (("binary", "bin"), ("text", "txt")):
            if (folder / f"cameras.{ext}").is_file() and (folder / f"images.{ext}").is_file():
                return folder, enc
    raise FormatError(path, "no COLMAP model here (expected cameras and images .bin or .txt, also under sparse/0)")


def read_raw_model(path: Path, encoding: str = "auto") -> tuple[RawModel, Path, str]:
    folder, found = find_model(path)
    enc = found if encoding == "auto" else encoding
    if enc not in ("text", "binary"):
        raise FormatError(path, f"unknown encoding {encoding!r}; use 'auto', 'text' or 'binary'")
    ext = "bin" if enc == "binary" else "txt"
    model = RawModel()
    if enc == "binary":
        model.cameras = read_cameras_binary(folder / "cameras.bin")
        model.images = read_images_binary(folder / "images.bin")
        if (folder / "points3D.bin").is_file():
            model.point_ids, model.xyz, model.rgb = read_points_binary(folder / "points3D.bin")
    else:
        model.images = read_images_text(folder / "images.txt")
        model.cameras = read_cameras_text(folder / "cameras.txt")
        if (folder / "points3D.txt").is_file():
            model.point_ids, model.xyz, model.rgb = read_points_text(folder / "points3D.txt")
    if not (folder / f"cameras.{ext}").is_file():
        raise FormatError(folder, f"cameras.{ext} missing")
    return model, folder, enc
