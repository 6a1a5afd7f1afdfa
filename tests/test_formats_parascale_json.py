"""ParaScale trajectory JSON: round trip, schema validity, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema_rs
import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from test_formats_helpers import assert_same_track, random_trajectory, trajectories

from parascale_blender.formats.errors import FormatError
from parascale_blender.formats.parascale_json import read_parascale_json, write_parascale_json

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = json.loads((ROOT / "parascale_blender" / "schema" / "trajectory.schema.json").read_text())
VALIDATOR = jsonschema_rs.validator_for(SCHEMA)
FAST = settings(deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))


def test_formaterror_reads_like_a_compiler_message():
    e = FormatError("poses.txt", "expected a number, got 'abc'", line=12, field="r13")
    assert str(e) == "poses.txt:12: field 'r13': expected a number, got 'abc'"
    assert isinstance(e, ValueError) and e.line == 12 and e.field == "r13" and e.file == "poses.txt"
    assert str(FormatError("a.json", "bad")) == "a.json: bad"


@FAST
@given(trajectories(points=True, extras=True))
def test_round_trip_and_schema(tmp_path_factory, traj):
    path = tmp_path_factory.mktemp("j") / "t.json"
    write_parascale_json(traj, path)
    doc = json.loads(path.read_text())
    VALIDATOR.validate(doc)
    back = read_parascale_json(path)
    assert_same_track(traj, back, atol=0)  # floats are written with repr: exact
    assert back.fps == traj.fps
    assert set(back.extras) == set(traj.extras)
    for k, v in traj.extras.items():
        np.testing.assert_array_equal(back.extras[k], v)  # NaN <-> null
    assert back.metadata == json.loads(json.dumps(traj.metadata))
    if traj.points is None:
        assert back.points is None
    else:
        np.testing.assert_array_equal(back.points.xyz, traj.points.xyz)
        np.testing.assert_array_equal(back.points.rgb, traj.points.rgb)
        if traj.points.visibility is None:
            assert back.points.visibility is None
        else:
            for a, b in zip(traj.points.visibility, back.points.visibility, strict=True):
                np.testing.assert_array_equal(a, b)


def test_nan_written_as_null(tmp_path):
    traj = random_trajectory(1, 3, extras=True)
    write_parascale_json(traj, tmp_path / "t.json")
    doc = json.loads((tmp_path / "t.json").read_text())
    assert doc["frames"][0]["pi_ref"] is None and doc["frames"][0]["alpha"] is None
    assert doc["convention"] == {"pose": "camera_to_world", "axes": "opencv", "intrinsics": "pixels"}
    assert "NaN" not in (tmp_path / "t.json").read_text()


def _doc(tmp_path):
    traj = random_trajectory(2, 4, points=True, extras=True)
    write_parascale_json(traj, tmp_path / "ok.json")
    return json.loads((tmp_path / "ok.json").read_text())


@pytest.mark.parametrize(
    "mutate, field, words",
    [
        (lambda d: d["frames"][3].update(c2w=[[1, 0, 0], [0, 1, 0]]), "frames[3].c2w", "4x4"),
        (lambda d: d["frames"][2]["c2w"][1].__setitem__(2, "x"), "frames[2].c2w", "4x4"),
        (lambda d: d["frames"][1]["c2w"].__setitem__(3, [0, 0, 1, 1]), "frames[1].c2w", "last row"),
        (lambda d: d["frames"][0].pop("intrinsics"), "frames[0].intrinsics", "missing"),
        (lambda d: d["frames"][0].update(frame=1.5), "frames[0].frame", "integer"),
        (lambda d: d["frames"][2].update(alpha="big"), "frames[2].alpha", "number or null"),
        (lambda d: d.update(version=2), "version", "unsupported"),
        (lambda d: d.update(format="other"), "format", "parascale-trajectory"),
        (lambda d: d.update(width=0), "width", "positive integer"),
        (lambda d: d.update(fps=-1), "fps", "positive"),
        (lambda d: d.update(frames=[]), "frames", "non-empty"),
        (lambda d: d.update(colour=1), "colour", "unknown key"),
        (lambda d: d["convention"].update(axes="opengl"), "convention", "opencv"),
        (lambda d: d["points"].update(rgb=[[300, 0, 0]] * len(d["points"]["xyz"])), "points.rgb", "0..255"),
        (lambda d: d["points"].update(visibility=[[0]]), "points.visibility", "one index list per frame"),
        (lambda d: d["points"]["visibility"].__setitem__(1, [10**6]), "points.visibility[1]", "out of range"),
    ],
)
def test_errors_name_the_field(tmp_path, mutate, field, words):
    doc = _doc(tmp_path)
    mutate(doc)
    (tmp_path / "bad.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError) as ei:
        read_parascale_json(tmp_path / "bad.json")
    assert ei.value.field == field and words in str(ei.value), str(ei.value)
    # the schema agrees that these documents are invalid, except for checks it cannot express
    if words not in ("last row", "out of range", "one index list per frame"):
        assert not VALIDATOR.is_valid(doc)


def test_reflection_is_reported_and_repairable(tmp_path):
    doc = _doc(tmp_path)
    doc["frames"][1]["c2w"][0] = [-x for x in doc["frames"][1]["c2w"][0][:3]] + [doc["frames"][1]["c2w"][0][3]]
    (tmp_path / "refl.json").write_text(json.dumps(doc))
    with pytest.raises(FormatError, match="determinant -1.000 .*reflection"):
        read_parascale_json(tmp_path / "refl.json")
    fixed = read_parascale_json(tmp_path / "refl.json", repair_rotations=True)
    assert np.allclose(np.linalg.det(fixed.c2w[:, :3, :3]), 1.0)


def test_syntax_error_has_a_line_number(tmp_path):
    (tmp_path / "s.json").write_text('{\n "format": "parascale-trajectory",\n "version": 1,,\n}')
    with pytest.raises(FormatError) as ei:
        read_parascale_json(tmp_path / "s.json")
    assert ei.value.line == 3


def test_missing_file_is_a_format_error(tmp_path):
    with pytest.raises(FormatError, match="nope.json: file not found"):
        read_parascale_json(tmp_path / "nope.json")


@pytest.mark.parametrize("bad", [2**63, -(2**63) - 1, 10**400, 1e300])
def test_visibility_index_beyond_int64_is_a_format_error(tmp_path, bad):
    doc = json.loads(json.dumps(random_trajectory_doc()))
    doc["points"] = {"xyz": [[0, 0, 4]], "visibility": [[0]] * (len(doc["frames"]) - 1) + [[bad]]}
    path = tmp_path / "t.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(FormatError, match=r"points\.visibility\["):
        read_parascale_json(path)


def random_trajectory_doc() -> dict:
    return {
        "format": "parascale-trajectory",
        "version": 1,
        "convention": {"pose": "camera_to_world", "axes": "opencv", "intrinsics": "pixels"},
        "fps": 24,
        "width": 64,
        "height": 40,
        "frames": [
            {"frame": i + 1, "c2w": np.eye(4).tolist(), "intrinsics": [50.0, 50.0, 32.0, 20.0]} for i in range(3)
        ],
    }
