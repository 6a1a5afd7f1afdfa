"""The README's main command, reduced (``--quick``): the whole product end to end in real Blender.

Runs ``python -m parascale_tools demo --quick`` as a new user would (a fresh process, an isolated
Blender user folder), then checks every artefact it promises against independent readers.
"""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("bpy")


@pytest.fixture(scope="module")
def demo(tmp_path_factory):
    out = tmp_path_factory.mktemp("demo")
    proc = subprocess.run(
        [sys.executable, "-m", "parascale_tools", "demo", "--quick", "-o", str(out)],
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return out, proc.stdout


def test_demo_prints_the_pi_table_and_headline(demo):
    _, stdout = demo
    assert "Π_ref" in stdout and "mode exact: solver residual" in stdout and "check: reference depth" in stdout
    assert "realized PCE (optical flow)" in stdout
    assert stdout.count("as the panel shows it: PCE vs reference, flow/flow ") >= 2
    assert "outputs in" in stdout


def test_engine_summary_beats_uncalibrated(demo):
    out, _ = demo
    modes = json.loads((out / "engine_summary.json").read_text())["modes"]
    assert modes["exact"]["pce_image_motion"] < 1e-6  # re-measured from the written poses
    assert modes["exact"]["pce_image_motion"] < modes["harmonic"]["pce_image_motion"]
    assert modes["none"]["pce_image_motion"] > 1.0


def test_clips_strips_and_blend(demo):
    import av

    out, _ = demo
    results = json.loads((out / "demo_results.json").read_text())
    assert len(results) == 2
    for shot in results.values():
        with av.open(shot["clip"]) as box:
            stream = box.streams.video[0]
            frames = [f.to_ndarray(format="rgb24") for f in box.decode(video=0)]
            assert float(stream.average_rate) == pytest.approx(30.0)
        assert len(frames) == shot["strip"]["frames"] == len(shot["pi_ref"])
        assert frames[0].shape[:2] == (180, 320)
        assert np.abs(frames[-1].astype(int) - frames[0]).mean() > 1.0, "the generated clip must move"
        assert shot["pce_keyed"] < 1e-3, shot["pce_keyed"]  # float32 keys only: no parent, no constraint
        assert shot["solver_residual"] < 1e-9
        assert shot["pce_measured"] < 0.35, shot["pce_measured"]
        # The server's closed loop, as the strip carries it and the panel shows it: the warp clip
        # moves as its reference (flow against flow) and the line printed is that value.
        assert shot["pce_panel_label"] == "PCE vs reference, flow/flow"
        assert shot["pce_panel"] < 0.1, shot["pce_panel"]
        assert shot["panel_line"].startswith(f"PCE vs reference, flow/flow {shot['pce_panel']:.3f}: ")
        assert ("good" in shot["panel_line"]) == (shot["pce_panel"] <= 0.07)  # the line says what the number means
        assert "outside the scene's range" not in shot["rescale_report"], shot["rescale_report"]
    starts = sorted(s["strip"]["start"] for s in results.values())
    first = min(results.values(), key=lambda s: s["strip"]["start"])
    assert starts == [1, 1 + len(first["pi_ref"]) + 10]  # shot B follows shot A's move on the timeline
    for name in ("parascale_demo.blend", "pi_curves.png", "report.md", "shot_A.json", "shot_B.json"):
        assert (out / name).stat().st_size > 0
