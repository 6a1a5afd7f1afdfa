"""The ``parascale`` command line, run as a real subprocess (console script entry point)."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

from parascale_blender.formats.registry import read_trajectory


def parascale(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "parascale_tools", *map(str, args)], capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_info_json_on_real_re10k(shared_data):
    out = parascale("info", shared_data / "re10k" / "0bf152ef84195293.txt", "--json")
    info = json.loads(out.stdout)
    assert info["frames"] == 16
    assert info["path_length"] > 0


def test_convert_chain_round_trips(shared_data, tmp_path):
    src = shared_data / "re10k" / "0c11dbe781b1c11c.txt"
    parascale("convert", src, tmp_path / "a.json")
    parascale("convert", tmp_path / "a.json", tmp_path / "b.json", "--to", "parascale")
    a, b = read_trajectory(tmp_path / "a.json"), read_trajectory(tmp_path / "b.json")
    np.testing.assert_allclose(a.c2w, b.c2w, atol=1e-12)
    np.testing.assert_allclose(a.c2w, read_trajectory(src).c2w, atol=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "/no/such/file.txt"], "file.txt"),
        (["info", "CAMI2V/orbit_left.txt"], "determinant -1"),
        (["rescale", "RE10K", "--reference-depth", "2", "--target-depth", "-3", "-o", "OUT"], "-3"),
        (
            [
                "rescale",
                "RE10K",
                "--reference-depth",
                "2",
                "--target-depth",
                "2",
                "--target-intrinsics",
                "1,2",
                "-o",
                "OUT",
            ],
            "--target-intrinsics",
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, shared_data, tmp_path):
    args = [
        a.replace("CAMI2V", str(shared_data / "trajectories" / "cami2v"))
        .replace("RE10K", str(shared_data / "re10k" / "0bf152ef84195293.txt"))
        .replace("OUT", str(tmp_path / "o.json"))
        for a in args
    ]
    proc = parascale(*args, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_rescale_constant_depths_closed_form(shared_data, tmp_path):
    src = shared_data / "re10k" / "0bf152ef84195293.txt"
    out = tmp_path / "shot.json"
    proc = parascale("rescale", src, "--reference-depth", "2.5", "--target-depth", "0.025", "-o", out, "--json")
    summary = json.loads(proc.stdout)
    np.testing.assert_allclose(summary["alpha_range"], [0.01, 0.01], rtol=1e-9)
    shot, ref = read_trajectory(out), read_trajectory(src).relative_to_first()
    np.testing.assert_allclose(shot.centres, 0.01 * ref.centres, atol=1e-12)
    np.testing.assert_allclose(shot.c2w[:, :3, :3], ref.c2w[:, :3, :3], atol=1e-12)
    np.testing.assert_allclose(shot.extras["alpha"][1:], 0.01, rtol=1e-9)


def test_rescale_onto_a_mesh_writes_pi_table(shared_data, tmp_path):
    from parascale_blender.formats.meshes import write_ply
    from parascale_tools.scenes import desk_scene

    scene = desk_scene()
    mesh = tmp_path / "desk.ply"
    write_ply(mesh, scene.vertices, scene.triangles)
    start = tmp_path / "start.json"
    start.write_text(json.dumps({"c2w": scene.start_c2w_blender.tolist()}))
    out = tmp_path / "shot.json"
    proc = parascale(
        "rescale", shared_data / "re10k" / "0bf152ef84195293.txt", "--reference-depth", "2.5",
        "--target-depth", mesh, "--target-start", start, "--start-convention", "blender", "-o", out,
    )  # fmt: skip
    assert "Π_ref" in proc.stdout and "PCE" in proc.stdout
    shot = read_trajectory(out)
    assert np.isfinite(shot.extras["pi_target"][1:]).all()
    # the default (exact) mode reaches the reference's image motion on every step it did not cap
    free = ~np.isin(shot.frames, shot.metadata.get("capped_frames", []))
    free[0] = False
    assert free.sum() > len(shot) // 2
    np.testing.assert_allclose(shot.extras["pi_realized"][free], shot.extras["pi_ref"][free], rtol=1e-9)


def test_metrics_of_a_track_against_itself_are_zero(shared_data):
    src = shared_data / "re10k" / "0f47577ab3441480.txt"
    result = json.loads(parascale("metrics", src, src, "--json").stdout)
    assert result["rot_err"] == pytest.approx(0.0, abs=1e-6)
    assert result["trans_err_relative"] == pytest.approx(0.0, abs=1e-9)
