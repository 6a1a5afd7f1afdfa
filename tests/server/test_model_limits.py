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
