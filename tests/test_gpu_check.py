"""scripts/gpu_check.py on a machine without a GPU: --help, the meta-device dry run on the
published configs, clean skips of missing config folders and of a missing CUDA device."""

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
    assert "wan2.1-i2v-14b-480p" in printed and printed.count("JSON [") == 1


def test_missing_configs_and_missing_cuda_skip_cleanly(tmp_path, capsys):
    gc = load()
    assert gc.main(["--dry-run", "--configs", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    rows = json.loads(out.split("JSON ", 1)[1])
    assert [r["status"] for r in rows] == ["skipped"] * len(gc.CASES)
    assert all(r["note"].startswith("no config folder") for r in rows)
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert gc.main(["--configs", str(tmp_path)]) == 0
    assert "no CUDA device" in capsys.readouterr().out
