"""scripts/gpu_check.py on a machine without a GPU: --help, the meta-device dry run on the
published configs, clean skips of missing config folders and of a missing CUDA device, and the
CPU rehearsal: the same code path as on the GPU (random weights written per component, the real
backends, the text encoders, noise shaping) on shrunk copies of the published configs, rerun in a
work folder a killed run left behind."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("diffusers")

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "scripts" / "gpu_check.py"


def load():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["gpu_check"] = mod  # dataclasses look their module up
    spec.loader.exec_module(mod)
    return mod


def test_help_runs():
    r = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0 and "--configs" in r.stdout and "--dry-run" in r.stdout


def test_dry_run_builds_the_published_models_on_meta(tmp_path, capsys):
    gc = load()
    out = tmp_path / "rows.json"
    assert gc.main(["--dry-run", "--only", "wan2.1-i2v-14b-480p", "cogvideox-5b-i2v", "--json", str(out)]) == 0
    rows = {r["case"]: r for r in json.loads(out.read_text())}
    assert {r["status"] for r in rows.values()} == {"planned"}
    # The measurement on the published configs: Wan2.1-I2V-14B is 46 GB in bf16 with its
    # UMT5-XXL text encoder (5.68e9 parameters), which the check replaces by prompt embeddings.
    assert rows["wan2.1-i2v-14b-480p"]["weights_gb_bf16"] + 2 * 5.68 == pytest.approx(46, abs=1.0)
    # CogVideoX-5B: a 5B transformer plus its VAE.
    assert 5.0 < rows["cogvideox-5b-i2v"]["params_b"] < 6.5
    printed = capsys.readouterr().out
    lines = [json.loads(line[5:]) for line in printed.splitlines() if line.startswith("JSON {")]
    assert [r["case"] for r in lines] == ["wan2.1-i2v-14b-480p", "cogvideox-5b-i2v"]


def test_missing_configs_and_missing_cuda_skip_cleanly(tmp_path, capsys):
    gc = load()
    assert gc.main(["--dry-run", "--configs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = [json.loads(line[5:]) for line in out.splitlines() if line.startswith("JSON {")]
    assert [r["status"] for r in rows] == ["skipped"] * len(gc.CASES)
    assert all(r["note"].startswith("no config folder") for r in rows)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gc.main(["--configs", str(tmp_path)]) == 0
    assert "no CUDA device" in capsys.readouterr().out


def test_depth_anything_config_has_the_published_parameter_count():
    """Depth-Anything-V2-Small is published as 24.8M parameters (its model card's table)."""
    gc = load()
    row = gc.plan(next(c for c in gc.CASES if c.backend == "depth-anything"), gc.ROOT / "tests/fixtures/published")
    assert row.status == "planned" and row.params_b == pytest.approx(0.0248, abs=0.0001)


def test_cpu_rehearsal_runs_every_case_through_the_real_backends(tmp_path, capsys):
    """Every row ok on the shrunk published configs with the job defaults (auto dtype, the text
    encoder, 6 steps): each video decodes (PyAV) at the trajectory's frame count and size, shaping
    pastes at least once per generation at the scheduler's first noise level (sigma 1 for Wan's flow
    schedules), the depth row writes a .npy of the image size. The work folder holds what a killed
    run leaves (a half-converted release, a stale result, a partial model folder): the rerun works."""
    import av

    gc = load()
    work = tmp_path / "work"
    (work / "wan-fun-camera" / "wan2.1-fun-1.3b-control-camera.release").mkdir(parents=True)
    (work / "diffusers-i2v" / "wan2.1-i2v-14b-480p").mkdir(parents=True)
    (work / "diffusers-i2v" / "wan2.1-i2v-14b-480p" / "model_index.json").write_text("{")
    (work / "wan2.1-i2v-14b-480p-cpu.mp4").write_bytes(b"not a video")
    jsonl = tmp_path / "rows.jsonl"
    args = ["--rehearse", "--frames", "5", "--width", "160", "--height", "96", "--workdir", str(work)]
    assert gc.main([*args, "--jsonl", str(jsonl)]) == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == len(gc.CASES) + 1  # one line per case (one CPU variant each) and the warp row
    assert all(r["status"] == "ok" for r in rows), [(r["case"], r["note"]) for r in rows]
    by_case = {r["case"]: r for r in rows}
    for name in ("wan2.1-i2v-14b-480p", "cogvideox-5b-i2v", "wan2.1-fun-1.3b-control-camera"):
        r = by_case[name]
        assert r["dtype"] == "auto" and r["steps"] == 6 and r["text_encoder"] is True
        assert r["shaping_pastes"] >= 1 and len(r["shaping_sigmas"]) == r["shaping_pastes"], r
        assert r["shaping_sigmas"][0] == pytest.approx(1.0, abs=0.01) and r["s_per_step"] > 0
        assert r["peak_rss_gb"] > 0
        with av.open(str(work / f"{name}-cpu.mp4")) as c:
            frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
        w, h = (int(s) for s in r["size"].split("x"))
        assert len(frames) == r["frames"] and frames[0].shape == (h, w, 3), (name, len(frames), frames[0].shape)
    assert by_case["cogvideox-5b-i2v"]["frames"] == 9  # the shrunk config's sample_frames, not --frames
    assert by_case["wan2.1-i2v-14b-480p"]["frames"] == 5
    import numpy as np

    depth = np.load(work / "depth-anything-v2-metric-indoor-small-cpu.npy".replace("-cpu", "-auto"))
    assert depth.shape == (480, 832) and np.isfinite(depth).any()
    assert not (work / "wan-fun-camera" / "wan2.1-fun-1.3b-control-camera.release").exists()
