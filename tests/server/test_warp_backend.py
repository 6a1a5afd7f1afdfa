"""The warp backend's contract, called directly: odd sizes crop to even, cancel between frames."""

from __future__ import annotations

import json

import numpy as np
import pytest
from server_helpers import decode_mp4, plane_scene

from bridge_server.backends import GenerationJob, JobCancelled
from bridge_server.backends.warp import WarpBackend, WarpParams
from bridge_server.config import Limits
from bridge_server.inputs import parse_trajectory


def _job(tmp_path, width, height, frames):
    scene = plane_scene(width, height, frames)
    traj = parse_trajectory(json.dumps(scene.doc).encode(), Limits())
    return GenerationJob(traj, scene.image, scene.depth, WarpParams(), tmp_path / "out.mp4")


def test_odd_sizes_are_cropped_to_even_for_yuv420p(tmp_path):
    job = _job(tmp_path, 65, 41, 3)
    progress = []
    WarpBackend().generate(job, lambda f, m: progress.append(f), lambda: False)
    frames, fps, w, h = decode_mp4(job.output.read_bytes())
    assert (len(frames), w, h) == (3, 64, 40)
    assert progress == pytest.approx([0, 1 / 3, 1 / 3, 2 / 3, 2 / 3, 1.0])  # each frame's start and end


@pytest.mark.parametrize(
    ("flag_at", "message"),
    [("frame 3/10", "cancelled before frame 4 of 10"), ("rendering frame 4/10", "cancelled during frame 4 of 10")],
)
def test_cancel_is_checked_between_and_inside_frames_and_leaves_no_file(tmp_path, flag_at, message):
    job = _job(tmp_path, 64, 40, 10)
    flag = []

    def progress(fraction, text):
        if text == flag_at:  # the cancel arrives as frame 3 ends, or as frame 4 starts
            flag.append(1)

    with pytest.raises(JobCancelled, match=message):
        WarpBackend().generate(job, progress, lambda: bool(flag))
    assert not job.output.exists()


def test_params_are_bounded():
    with pytest.raises(ValueError):
        WarpParams(max_footprint=float("nan"))
    with pytest.raises(ValueError):
        WarpParams(crf=52)
    assert np.isclose(WarpParams().depth_tolerance, 0.01)
