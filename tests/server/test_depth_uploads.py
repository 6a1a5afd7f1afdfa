"""Depth uploads through the real server mean what they mean in the add-on: the worker decodes an
EXR written by the add-on's writer (channel ``Z``, which OpenCV read as empty) to the array written,
and a 16-bit PNG sent without ``depth_scale`` to OpenCV's counts × ``DEFAULT_PNG_SCALE``, the add-on
reader's default."""

from __future__ import annotations

import json

import cv2
import numpy as np
import pytest
from server_helpers import plane_scene, wait_finished

from bridge_server.backends import get_backend
from bridge_server.config import Limits
from bridge_server.jobs import JobQueue, JobStore
from parascale_blender.formats.depthmaps import DEFAULT_PNG_SCALE, read_depth_map, write_depth_map


def _worker_depth(http, server, depth_name: str, depth_bytes: bytes) -> np.ndarray:
    """Submit a warp job with this depth upload to the real server, wait for it, and return the
    depth the worker loads from the job folder (the same decoder the job ran with)."""
    scene = plane_scene(64, 40, 3)
    files = scene.files()
    files["depth"] = (depth_name, depth_bytes)
    r = http.post(server.url + "/v1/jobs", files=files)
    assert r.status_code == 201, r.text
    job_id = r.json()["id"]
    assert wait_finished(http, server.url, job_id)["state"] == "done"
    store = JobStore(server.jobs_dir)
    request = json.loads(store.path(job_id, "request.json").read_text())
    assert request["depth_scale"] is None  # not sent: the format's default
    job = JobQueue(store, ["cpu"], Limits()).load_job(job_id, get_backend("warp"), request, server.jobs_dir, "cpu")
    return job.depth


def test_exr_written_by_the_add_on_decodes_to_the_array_written(server, http, tmp_path):
    depth = np.random.default_rng(3).uniform(0.5, 40.0, (40, 64))
    depth[7, 9] = np.nan  # no depth (sky)
    write_depth_map(tmp_path / "d.exr", depth)  # FLOAT channel "Z"
    got = _worker_depth(http, server, "d.exr", (tmp_path / "d.exr").read_bytes())
    np.testing.assert_array_equal(got, depth.astype(np.float32).astype(np.float64))


@pytest.mark.parametrize("writer", ["opencv", "add-on"])
def test_png_without_scale_has_the_add_on_default_units(server, http, tmp_path, writer):
    depth = np.random.default_rng(4).uniform(0.5, 60.0, (40, 64))
    path = tmp_path / "d.png"
    if writer == "opencv":
        assert cv2.imwrite(str(path), np.round(depth / DEFAULT_PNG_SCALE).astype(np.uint16))
    else:
        write_depth_map(path, depth)
    counts = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    assert counts.dtype == np.uint16
    got = _worker_depth(http, server, "d.png", path.read_bytes())
    np.testing.assert_array_equal(got, counts * DEFAULT_PNG_SCALE)
    np.testing.assert_array_equal(got, read_depth_map(path))  # the add-on reader, no scale given
