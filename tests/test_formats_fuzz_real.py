"""Fuzz the file readers with 1,000 mutations per family, seeded from real files (the shared data
set and files written by independent writers: OpenCV, numpy): only FormatError may escape.

Families: depth maps (.npy, 16-bit PNG, EXR from the add-on's writer and from OpenCV, PFM), meshes
(ASCII and binary PLY, OBJ), real trajectories (RealEstate10K, MotionCtrl, CamI2V, VideoX-Fun), and
the server's image header reader (a real JPEG and PNG; only InputError may escape). The hypothesis
fuzz of the writers' own output lives in test_formats_fuzz.py."""

from __future__ import annotations

import io
import os
import re
import tempfile
import time
import zlib
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # OpenCV writes one EXR seed (set before import)
import cv2  # noqa: E402

from bridge_server.config import Limits  # noqa: E402
from bridge_server.inputs import InputError, decode_image  # noqa: E402
from parascale_blender.formats.depthmaps import decode_depth_map, write_depth_map  # noqa: E402
from parascale_blender.formats.errors import FormatError  # noqa: E402
from parascale_blender.formats.meshes import read_obj, read_ply, write_obj, write_ply  # noqa: E402
from parascale_blender.formats.motionctrl import read_motionctrl  # noqa: E402
from parascale_blender.formats.re10k import read_re10k  # noqa: E402
from parascale_blender.formats.registry import read_trajectory  # noqa: E402

N = 1000
SHARED = Path(__file__).resolve().parents[1] / ".." / "shared" / "data"
if not SHARED.is_dir():
    SHARED = Path("/work/shared/data")
WORK = Path(tempfile.mkdtemp(prefix="parascale_fuzz_real_", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
EXTREMES = [b"\xff\xff\xff\x7f", b"\xff\xff\xff\xff", b"\0\0\0\0", b"\0\0\0\x80", b"\x7f\xff\xff\xff"]
TOKENS = [b"999999999", b"-1", b"0", b"1e999", b"nan", b"99999999999999999999999", b"-0"]


def mutate(seed: bytes, rng: np.random.Generator) -> bytes:
    """One malformed variant: byte edits, truncation, extreme 32-bit header values, insertions,
    deletions, a number token replaced, or random bytes."""
    b = bytearray(seed)
    k = rng.integers(7)
    if k == 0:
        for _ in range(rng.integers(1, 4)):
            b[rng.integers(len(b))] = rng.integers(256)
    elif k == 1:
        b = b[: rng.integers(len(b) + 1)]
    elif k == 2:
        p = rng.integers(min(len(b), 128))
        b[p : p + 4] = EXTREMES[rng.integers(len(EXTREMES))]
    elif k == 3:
        p = rng.integers(len(b) + 1)
        b[p:p] = rng.bytes(int(rng.integers(1, 16)))
    elif k == 4:
        p = rng.integers(min(len(b), 200))
        del b[p : p + rng.integers(1, 9)]
    elif k == 5:
        nums = list(re.finditer(rb"\d+", bytes(b[:400])))
        if nums:
            m = nums[rng.integers(len(nums))]
            b = b[: m.start()] + TOKENS[rng.integers(len(TOKENS))] + b[m.end() :]
    else:
        b = bytearray(rng.bytes(int(rng.integers(0, 200))))
    return bytes(b)


def _depth_seeds() -> dict[str, bytes]:
    tum = cv2.imread(str(SHARED / "depth/tum_open3d/TUM_depth.png"), cv2.IMREAD_UNCHANGED)
    assert tum is not None and tum.dtype == np.uint16
    crop = tum[200:224, 300:332]
    depth = np.where(crop > 0, crop * 0.001, np.nan)
    seeds = {"png16 (OpenCV)": cv2.imencode(".png", crop)[1].tobytes()}
    buf = io.BytesIO()
    np.save(buf, depth.astype(np.float32))
    seeds["npy (numpy)"] = buf.getvalue()
    for ext in ("exr", "pfm"):
        write_depth_map(WORK / f"seed.{ext}", depth)
        seeds[f"{ext} (add-on)"] = (WORK / f"seed.{ext}").read_bytes()
    assert cv2.imwrite(str(WORK / "cv.exr"), depth.astype(np.float32))
    seeds["exr (OpenCV)"] = (WORK / "cv.exr").read_bytes()
    return seeds


def _file_families() -> dict[str, tuple[bytes, str, object]]:
    v = np.random.default_rng(1).random((12, 3))
    tris = np.array([[0, 1, 2], [2, 3, 4], [5, 6, 7], [8, 9, 10]])
    write_ply(WORK / "a.ply", v, tris, binary=False)
    write_ply(WORK / "b.ply", v, tris, binary=True)
    write_obj(WORK / "c.obj", v, tris)
    fam = {
        "ply ascii": ((WORK / "a.ply").read_bytes(), ".ply", read_ply),
        "ply binary": ((WORK / "b.ply").read_bytes(), ".ply", read_ply),
        "obj": ((WORK / "c.obj").read_bytes(), ".obj", read_obj),
    }
    real = {
        "re10k (real)": ("re10k/0f47577ab3441480.txt", read_re10k),
        "motionctrl (real)": ("trajectories/motionctrl/test_camera_L.json", read_motionctrl),
        "cami2v (real)": ("trajectories/cami2v/orbit_left.txt", lambda p: read_trajectory(p, repair_rotations=True)),
        "videox-fun (real)": ("trajectories/videox_fun/CW.txt", read_trajectory),
    }
    for name, (rel, reader) in real.items():
        fam[name] = ((SHARED / rel).read_bytes(), Path(rel).suffix, reader)
    return fam


pytestmark = pytest.mark.skipif(not (SHARED / "re10k").is_dir(), reason="shared data set not present")


def _run(name: str, seed: bytes, call, allowed: type[Exception]) -> None:
    call(seed)  # the seed itself reads
    rng = np.random.default_rng(zlib.crc32(name.encode()))  # the same mutations every run
    leaks: list[str] = []
    t0 = time.monotonic()
    for _ in range(N):
        data = mutate(seed, rng)
        try:
            call(data)
        except allowed as e:
            assert str(e)
        except Exception as e:  # noqa: BLE001 - what the test counts
            leaks.append(f"{type(e).__name__}: {str(e)[:120]}")
    print(f"{name}: {N} mutations, {len(leaks)} non-{allowed.__name__}, {time.monotonic() - t0:.2f} s")
    assert leaks == [], f"{name}: {len(leaks)} of {N} leaked, e.g. {leaks[:3]}"


def test_depth_map_readers_raise_only_format_error():
    for name, seed in _depth_seeds().items():
        _run(name, seed, lambda d: decode_depth_map(d, "fuzz"), FormatError)


def test_mesh_and_real_trajectory_readers_raise_only_format_error():
    for name, (seed, ext, reader) in _file_families().items():
        path = WORK / f"m{ext}"

        def call(data, path=path, reader=reader):
            path.write_bytes(data)
            reader(path)

        _run(name, seed, call, FormatError)


def test_server_image_reader_raises_only_input_error():
    jpg = (SHARED / "depth/icl_synthetic_open3d/color/00000.jpg").read_bytes()
    png = cv2.imencode(".png", cv2.imdecode(np.frombuffer(jpg, np.uint8), cv2.IMREAD_COLOR)[:24, :32])[1].tobytes()
    for name, seed in (("jpeg (real)", jpg), ("png (OpenCV)", png)):
        _run(name, seed, lambda d: decode_image(d, Limits(max_side=640)), InputError)


def test_unicode_digits_in_a_ply_header_are_a_format_error(tmp_path):
    path = tmp_path / "m.ply"
    path.write_bytes("ply\nformat ascii 1.0\nelement vertex \u00b22\nproperty float x\nend_header\n".encode())
    with pytest.raises(FormatError):
        read_ply(path)


def test_short_npy_header_asking_for_gibibytes_is_refused_before_allocating():
    header = b"{'descr': '<f4', 'fortran_order': False, 'shape': (200000, 100000), }"
    data = b"\x93NUMPY\x01\x00" + len(header.ljust(118)).to_bytes(2, "little") + header.ljust(117) + b"\n"
    t0 = time.monotonic()
    with pytest.raises(FormatError, match="declares 80000000000 bytes"):
        decode_depth_map(data, "big.npy", max_side=None)  # no size cap: the byte count still refuses it
    assert time.monotonic() - t0 < 1
