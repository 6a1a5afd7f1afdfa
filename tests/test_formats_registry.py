"""The format registry: detection, dispatch, options, broken fixtures, and conversions between formats."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from test_formats_helpers import assert_same_track, random_trajectory

from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.registry import FORMATS, detect_format, read_trajectory, write_trajectory

FIXTURES = __import__("pathlib").Path(__file__).parent / "fixtures" / "formats"

BROKEN = {
    "re10k_bad_number.txt": (3, "r13", "expected a number, got 'abc'"),
    "re10k_short_line.txt": (3, None, "expected 19 columns like the first frame line, got 18"),
    "chan_missing_column.chan": (2, None, "expected 8 columns like the first line, got 7"),
    "chan_repeated_frame.chan": (None, None, "frame numbers must increase strictly"),
    "motionctrl_short_entry.json": (None, "[1]", "expected 12 numbers"),
    "nerf_no_focal.json": (None, "frames[0].fl_x", "no focal length"),
    "parascale_c2w_3x4.json": (None, "frames[0].c2w", "expected 4x4 numbers"),
    "parascale_version_2.json": (None, "version", "unsupported version 2"),
    "parascale_reflection.json": (None, None, "determinant -1.000 (a reflection"),
    "colmap_unknown_camera": (2, "CAMERA_ID", "uses camera 7, which is not defined"),
    "junk.bin.txt": (1, None, "not UTF-8"),
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_broken_fixtures_fail_clearly(name):
    line, field, words = BROKEN[name]
    with pytest.raises(FormatError) as ei:
        read_trajectory(FIXTURES / name)
    e = ei.value
    assert words in str(e) and e.line == line and e.field == field, str(e)
    assert name in str(e)  # the message names the file


def test_every_fixture_is_covered():
    assert {p.name for p in FIXTURES.iterdir()} == set(BROKEN)


def test_detection(tmp_path, shared_data):
    assert detect_format(shared_data / "re10k" / "0f47577ab3441480.txt") == "re10k"
    assert detect_format(shared_data / "trajectories" / "motionctrl" / "test_camera_L.json") == "motionctrl"
    assert detect_format(shared_data / "colmap" / "kapture_maupertuis") == "colmap"
    assert detect_format(shared_data / "colmap" / "kapture_maupertuis" / "sparse" / "images.txt") == "colmap"
    traj = random_trajectory(0, 4, square=True, centred=True)
    for fmt, name in [("parascale", "a.json"), ("nerf", "b.json"), ("chan", "c.chan"), ("re10k", "d.txt"),
                      ("motionctrl", "e.json")]:  # fmt: skip
        write_trajectory(traj, tmp_path / name, fmt=fmt)
        assert detect_format(tmp_path / name) == fmt
        shutil.copy(tmp_path / name, tmp_path / (name + ".noext"))
        assert detect_format(tmp_path / (name + ".noext")) == fmt  # by content


def test_errors_list_known_formats(tmp_path):
    (tmp_path / "x.json").write_text('{"hello": 1}')
    with pytest.raises(FormatError, match="known formats: parascale"):
        read_trajectory(tmp_path / "x.json")
    with pytest.raises(FormatError, match="unknown format 'fbx'; known formats: parascale"):
        read_trajectory(tmp_path / "x.json", fmt="fbx")
    with pytest.raises(FormatError, match="cannot tell the format from the extension"):
        write_trajectory(random_trajectory(0, 2), tmp_path / "x.abc")
    with pytest.raises(FormatError, match="read-only"):
        write_trajectory(random_trajectory(0, 2), tmp_path / "x", fmt="colmap")
    with pytest.raises(FormatError, match="file not found"):
        read_trajectory(tmp_path / "missing.txt")
    with pytest.raises(FormatError, match="no option 'widht'; its options: width, height"):
        read_trajectory(tmp_path / "x.txt", fmt="re10k", widht=3)


def test_repair_option_through_the_registry(shared_data):
    f = shared_data / "trajectories" / "cami2v" / "orbit_left.txt"
    with pytest.raises(FormatError, match="reflection"):
        read_trajectory(f)
    t = read_trajectory(f, repair_rotations=True)
    assert len(t) == 150 and np.allclose(np.linalg.det(t.c2w[:, :3, :3]), 1)


def test_registry_table():
    for name, spec in FORMATS.items():
        assert spec.name == name and spec.reader is not None and spec.description
    assert FORMATS["colmap"].writer is None


@pytest.mark.parametrize("fmt", [n for n, s in FORMATS.items() if s.writer is not None])
def test_convert_real_track_through_every_writer(tmp_path, shared_data, fmt):
    """A real RE10K track survives each writer + reader (conventions line up across formats)."""
    src = read_trajectory(shared_data / "re10k" / "0c9b371cc6225682.txt", width=1280, height=720)
    src = src.replace(intrinsics=np.tile(src.intrinsics[0, [1, 1, 2, 3]], (len(src), 1)))  # square pixels
    ext = {"parascale": ".json", "nerf": ".json", "motionctrl": ".json", "chan": ".chan"}.get(fmt, ".txt")
    out = tmp_path / f"out{ext}"
    write_trajectory(src, out, fmt=fmt)
    opts = {"fmt": fmt}
    if fmt in ("re10k", "wanfun", "chan", "nerf"):
        opts.update(width=1280, height=720)
    if fmt == "motionctrl":
        fx, fy, cx, cy = src.intrinsics[0]
        opts.update(width=1280, height=720, fx=fx, fy=fy, cx=cx, cy=cy)
    back = read_trajectory(out, **opts)
    ref = src.relative_to_first() if fmt == "motionctrl" else src
    assert_same_track(ref, back, atol=1e-6, frames=False)
