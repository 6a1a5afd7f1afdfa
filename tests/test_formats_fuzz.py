"""Fuzz every reader with >= 1000 malformed inputs each: only FormatError may escape."""

from __future__ import annotations

import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_formats_helpers import mutations, random_trajectory

from parascale_blender.formats.colmap import read_colmap
from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.motionctrl import read_motionctrl, write_motionctrl
from parascale_blender.formats.nerf import read_nerf, write_nerf
from parascale_blender.formats.nuke_chan import read_chan, write_chan
from parascale_blender.formats.parascale_json import read_parascale_json, write_parascale_json
from parascale_blender.formats.re10k import read_re10k, write_re10k, write_wanfun
from parascale_blender.formats.registry import read_trajectory

FUZZ = settings(max_examples=1000, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
# /dev/shm when present: opening files on the disk-backed /tmp dominated the run time
WORK = Path(tempfile.mkdtemp(prefix="parascale_fuzz_", dir="/dev/shm" if Path("/dev/shm").is_dir() else None))
TRAJ = random_trajectory(11, 3, square=True, centred=True, points=True, extras=True)


def _valid(writer, name: str, **kw) -> bytes:
    path = WORK / ("valid_" + name)
    writer(TRAJ, path, **kw)
    return path.read_bytes()


def _only_format_errors(reader, data: bytes, name: str, **kw) -> None:
    path = WORK / name
    path.write_bytes(data)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # overflow in huge numbers is fine if reported
        try:
            t = reader(path, **kw)
        except FormatError as e:
            assert str(e)  # the message renders
            return
    assert len(t) >= 1 and np.isfinite(t.c2w).all()  # whatever was accepted is a valid track


CASES = {
    "parascale": (read_parascale_json, _valid(write_parascale_json, "t.json"), "t.json"),
    "re10k": (read_re10k, _valid(write_re10k, "r.txt"), "r.txt"),
    "wanfun": (read_re10k, _valid(write_wanfun, "w.txt"), "w.txt"),
    "motionctrl": (read_motionctrl, _valid(write_motionctrl, "m.json"), "m.json"),
    "nerf": (read_nerf, _valid(write_nerf, "transforms.json"), "transforms.json"),
    "chan": (read_chan, _valid(write_chan, "c.chan"), "c.chan"),
}


def _fuzz_test(fmt: str):
    reader, valid, name = CASES[fmt]

    @FUZZ
    @given(data=mutations(valid))
    def test(data):
        _only_format_errors(reader, data, name)

    test.__name__ = f"test_fuzz_{fmt}"
    return test


test_fuzz_parascale = _fuzz_test("parascale")
test_fuzz_re10k = _fuzz_test("re10k")
test_fuzz_wanfun = _fuzz_test("wanfun")
test_fuzz_motionctrl = _fuzz_test("motionctrl")
test_fuzz_nerf = _fuzz_test("nerf")
test_fuzz_chan = _fuzz_test("chan")

COLMAP_TEXT = {
    "cameras.txt": b"# c\n1 PINHOLE 640 480 500 501 320 240\n2 SIMPLE_RADIAL 640 480 400 321 239 0.01\n",
    "images.txt": b"# i\n1 1 0 0 0 0.1 0.2 0.3 1 f001.jpg\n10 20 1 30 40 -1 50 60 2\n"
    b"2 0.9 0.1 0 0 1 0 0 2 f002.jpg\n11 21 1 31 41 2\n",
    "points3D.txt": b"1 0 0 5 255 0 0 0.5 1 0 2 0\n2 1 1 6 0 255 0 0.5 1 2 2 1\n",
}


def _colmap_binary() -> dict[str, bytes]:
    pycolmap = pytest.importorskip("pycolmap")
    src, out = WORK / "ctxt", WORK / "cbin"
    src.mkdir(exist_ok=True)
    out.mkdir(exist_ok=True)
    for k, v in COLMAP_TEXT.items():
        (src / k).write_bytes(v)
    rec = pycolmap.Reconstruction(str(src))
    rec.write_binary(str(out))
    return {k: (out / k).read_bytes() for k in ("cameras.bin", "images.bin", "points3D.bin")}


_STRATEGIES: dict[bytes, st.SearchStrategy[bytes]] = {}


def _mutated(data, valid: bytes) -> bytes:
    if valid not in _STRATEGIES:
        _STRATEGIES[valid] = mutations(valid)
    return data.draw(_STRATEGIES[valid])


def _fuzz_colmap(files: dict[str, bytes], data, folder: str):
    d = WORK / folder
    if not d.is_dir():
        d.mkdir()
        for k, v in files.items():
            (d / k).write_bytes(v)
    victim = data.draw(st.sampled_from(sorted(files)))
    (d / victim).write_bytes(_mutated(data, files[victim]))
    try:
        t = read_colmap(d)
    except FormatError as e:
        assert str(e)
    else:
        assert np.isfinite(t.c2w).all()
    finally:
        (d / victim).write_bytes(files[victim])


def test_colmap_fuzz_inputs_are_valid_to_start_with():
    d = WORK / "ok"
    d.mkdir(exist_ok=True)
    for k, v in COLMAP_TEXT.items():
        (d / k).write_bytes(v)
    t = read_colmap(d)
    assert len(t) == 2 and [v.tolist() for v in t.points.visibility] == [[0, 1], [0, 1]]
    for reader, valid, name in CASES.values():
        (WORK / name).write_bytes(valid)
        reader(WORK / name)


@FUZZ
@given(data=st.data())
def test_fuzz_colmap_text(data):
    _fuzz_colmap(COLMAP_TEXT, data, "fz_text")


@FUZZ
@given(data=st.data())
def test_fuzz_colmap_binary(data):
    if not hasattr(test_fuzz_colmap_binary, "files"):
        test_fuzz_colmap_binary.files = _colmap_binary()
    _fuzz_colmap(test_fuzz_colmap_binary.files, data, "fz_bin")


@FUZZ
@given(st.sampled_from(sorted(CASES)), st.sampled_from([".json", ".txt", ".chan", ".dat", ""]), st.data())
def test_fuzz_registry_detection(fmt, ext, data):
    """Any content under any name: detection and reading only ever raise FormatError."""
    content = _mutated(data, CASES[fmt][1])
    path = WORK / f"reg{ext}"
    path.write_bytes(content)
    try:
        read_trajectory(path)
    except FormatError:
        pass


def teardown_module():
    shutil.rmtree(WORK, ignore_errors=True)
