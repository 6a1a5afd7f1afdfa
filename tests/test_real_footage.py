"""The real-footage figure on a real RealEstate10K clip: the product's Π (its own track and SfM points)
against the motion the video shows (OpenCV DIS optical flow, rotation removed with the pose file's
rotations), and the split of that error into engine, track and reference depth."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("pycolmap")
pytest.importorskip("av")

from parascale_tools.bench.real_footage import measure_clip  # noqa: E402

pytestmark = pytest.mark.slow  # ~35 s: a pycolmap track of 13 frames and DIS over them

CLIP = "0bf152ef84195293_svdxt"
FRAMES = 13
# Measured on these 13 frames (self-calibrated, the tracker's default): PCE 0.036-0.047 in three runs
# (pycolmap's solve is not reproducible run to run; 0.068 over all 25 frames, 0.049 with the pose
# file's intrinsics). The ruler's own noise on this clip is about 0.06
# (the rotation-only control reads 0.5 px where the steps move 7-11 px), so the bound is the measured
# figure plus one ruler floor.
BOUND = 0.10


@pytest.fixture(scope="module")
def measured(shared_data):
    folder = shared_data / "video" / "re10k_25f"
    motion, (split,) = measure_clip(CLIP, ("self-calibrated",), max_frames=FRAMES, folder=folder)
    return motion, split


def test_product_figure_on_real_footage(measured, record_property):
    motion, s = measured
    record_property("pce_real_footage", s.total)
    print(f"{CLIP}: PCE {s.total:.3f} (engine {s.engine:.1e}, track {s.track:.3f}, depth {s.depth:.3f})")
    assert len(motion.pi) == len(s.pi_product) == FRAMES
    for pi in (motion.pi, s.pi_product, s.pi_posefile):
        assert np.isfinite(pi[1:]).all() and (pi[1:] > 0).all()
    assert np.isfinite(s.total) and s.total <= BOUND
    # The ruler itself: DIS at full and half resolution agree, and a step with no translation reads
    # little of it (measured 0.024 and 0.063).
    assert motion.levels <= 0.1 and motion.floor_share <= 0.1


def test_split_adds_up(measured):
    """Per step |ln(a/v)| lies between ||ln(a/c)| - |ln(c/v)|| and |ln(a/c)| + |ln(c/v)|, so over
    the same steps the figure lies between |track - depth| and track + depth; the engine is exact."""
    _, s = measured
    assert s.engine <= 1e-6
    assert abs(s.track - s.depth) - 1e-12 <= s.total <= s.track + s.depth + 1e-12
    assert 0 < s.track < 0.1 and 0 < s.depth < BOUND
