"""Model limits from configs alone (no weights): Wan's native size from the folder's explicit
``native_size``, never from the scheduler's shift (diffusers' converter writes flow_shift 3.0 for
every Wan 2.1 I2V checkpoint, 480P and 720P alike)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from bridge_server.backends.model_limits import NATIVE_FILE, model_limits, write_native_size

PUBLISHED = Path(__file__).resolve().parents[1] / "fixtures" / "published"


@pytest.fixture
def wan(tmp_path):
    return Path(shutil.copytree(PUBLISHED / "wan2.1-i2v-14b-480p-diffusers", tmp_path / "wan"))


def test_the_720p_folder_is_recognised_from_its_stated_size_not_the_shift(wan):
    sched = json.loads((wan / "scheduler" / "scheduler_config.json").read_text())
    assert sched["flow_shift"] == 3.0  # what the converter writes for 480P and 720P
    limits = model_limits(wan)
    assert (limits.native_width, limits.native_height) == (832, 480) and "480P" in limits.source
    write_native_size(wan, 1280, 720)
    limits = model_limits(wan)
    assert (limits.native_width, limits.native_height, limits.native_pixels) == (1280, 720, 921600)
    assert NATIVE_FILE in limits.source
    # the shift alone changes nothing: a 5.0 shift with no stated size stays 480P
    (wan / NATIVE_FILE).unlink()
    (wan / "scheduler" / "scheduler_config.json").write_text(json.dumps(sched | {"flow_shift": 5.0}))
    assert model_limits(wan).native_width == 832


def test_a_malformed_native_size_is_refused_naming_the_file(wan):
    (wan / NATIVE_FILE).write_text(json.dumps({"native_size": [1280]}))
    with pytest.raises(ValueError, match=rf"{NATIVE_FILE}: native_size must be \[width, height\]"):
        model_limits(wan)


def test_the_frame_cap_is_checked_from_configs_alone(wan, monkeypatch):
    """``check_job`` (run at submission) reads configs only: a folder with no weight file at all gets
    the same answer as the real model would."""
    from bridge_server.backends import get_backend
    from bridge_server.backends.base import JobFailed
    from bridge_server.backends.weights import ENV

    root = wan.parent / "weights"
    (root / "diffusers-i2v").mkdir(parents=True)
    shutil.move(str(wan), root / "diffusers-i2v" / "configs-only")
    monkeypatch.setenv(ENV, str(root))
    backend = get_backend("diffusers-i2v")
    params = backend.Params.model_construct(**(backend.Params.model_construct().__dict__ | {"model": "configs-only"}))
    assert not list(root.rglob("*.safetensors"))
    backend.check_job(params, {"frames": 81, "width": 1920, "height": 1080})
    with pytest.raises(JobFailed, match=r"82 frames; this model generates at most 81 \(Wan 2.1 I2V 480P"):
        backend.check_job(params, {"frames": 82, "width": 832, "height": 480})


def test_sampling_defaults_are_each_familys_upstream_values(wan):
    """Unset steps / guidance / negative prompt take what each release's own inference code uses:
    Wan2.1 generate.py (i2v: 40 steps, guide 5.0, shared_config's negative prompt), CogVideoX's
    pipeline (50, 6, none), VideoX-Fun's Control-Camera example (50, 6.0, Wan's negative prompt)."""
    from bridge_server.backends.diffusers_i2v import I2VParams, with_sampling_defaults
    from bridge_server.backends.wan_fun_camera import CameraParams

    cog = model_limits(Path(shutil.copytree(PUBLISHED / "cogvideox-5b-i2v", wan.parent / "cog")))
    limits = model_limits(wan)
    logs: list[str] = []
    got = with_sampling_defaults(
        I2VParams.model_construct(steps=None, guidance_scale=None, negative_prompt=None), limits, logs.append
    )
    assert (got.steps, got.guidance_scale) == (40, 5.0) and got.negative_prompt.startswith("色调艳丽，过曝，静态")
    assert got.negative_prompt.endswith("背景人很多，倒着走") and "Wan2.1" in logs[0]
    got = with_sampling_defaults(I2VParams.model_construct(steps=None, guidance_scale=None, negative_prompt=None), cog)
    assert (got.steps, got.guidance_scale, got.negative_prompt) == (50, 6.0, "")
    got = with_sampling_defaults(
        CameraParams.model_construct(steps=None, guidance_scale=None, negative_prompt=None), limits
    )
    assert (got.steps, got.guidance_scale) == (50, 6.0) and got.negative_prompt.startswith("色调艳丽")
    mine = I2VParams.model_construct(steps=7, guidance_scale=1.0, negative_prompt="")
    assert with_sampling_defaults(mine, limits) == mine  # what the job sets stays
