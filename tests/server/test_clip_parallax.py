"""The closed loop on the real server: a generated clip's reported Π and PCE (the job status's
``parallax``) against an oracle that the server never sees — the exact translational image motion of
each step from depth ray-traced along the trajectory (``closed_loop.oracle_parallax``) — and wrong
clips (a trajectory scaled 2x, frames shuffled) that must show a large PCE."""

from __future__ import annotations

import numpy as np
import pytest
from server_helpers import npy_bytes, png_bytes, wait_finished

from parascale_blender.client import wire
from parascale_blender.core.camera import Camera, Trajectory
from parascale_blender.core.metrics import pce
from parascale_blender.formats.parascale_json import dumps
from parascale_tools.bench import raytrace
from parascale_tools.bench.closed_loop import oracle_parallax
from parascale_tools.synthetic import camera_move

W, H, N = 256, 160, 8
CAM = Camera(0.9 * W, 0.9 * W, W / 2, H / 2, W, H)
SCENE = raytrace.room(1.0)


def _track(c2w: np.ndarray) -> Trajectory:
    return Trajectory(np.arange(1001, 1001 + len(c2w)), c2w, [CAM.fx, CAM.fy, CAM.cx, CAM.cy], W, H, fps=24)


def _run(server, http, traj: Trajectory, pi_ref: np.ndarray | None) -> dict:
    """Submit a warp job for ``traj`` (``pi_ref`` as Rescale keys it, in the exact measure) and
    return its ``parallax`` report, the values as arrays (NaN for null)."""
    image, depth = SCENE.trace(traj.c2w[0], CAM)
    if pi_ref is not None:
        traj = traj.replace(extras={"pi_ref": pi_ref}, metadata={"mode": "exact", "allow_sky": True})
    files = {
        "trajectory": ("t.json", dumps(traj).encode()),
        "image": ("i.png", png_bytes(image)),
        "depth": ("d.npy", npy_bytes(np.where(np.isfinite(depth), depth, np.nan).astype(np.float32))),
    }
    r = http.post(server.url + "/v1/jobs", files=files, data={"backend": "warp"})
    assert r.status_code in (200, 201, 202), r.text
    st = wait_finished(http, server.url, r.json()["id"], timeout=180)
    assert st["state"] == wire.DONE, st
    rep = st[wire.PARALLAX]
    assert rep is not None and rep.get(wire.PARALLAX_ERROR) is None, rep
    for k in (wire.PI_REALIZED, wire.PI_TARGET, wire.PI_REFERENCE):
        if rep[k] is not None:
            rep[k] = np.array([np.nan if v is None else v for v in rep[k]])
    return rep


@pytest.mark.parametrize("move", ["truck", "push_pan"])
def test_reported_parallax_matches_the_oracle(server, http, move):
    traj = _track(camera_move(move, N, seed=3))
    oracle = oracle_parallax(SCENE, traj)  # exact image motion of every pixel: no optical flow in it
    rep = _run(server, http, traj, oracle)
    assert rep[wire.PI_FRAMES] == list(range(1001, 1001 + N))
    assert rep[wire.PCE_AGAINST] == "reference" and rep[wire.PCE_LABEL] == "PCE vs reference, flow/flow"
    realized = rep[wire.PI_REALIZED]
    assert np.isnan(realized[0]) and np.isfinite(realized[1:]).all()
    # The clip's flow-measured Π is the true image motion up to DIS's error (~2-5% here) ...
    assert pce(realized, oracle) < 0.08
    np.testing.assert_allclose(realized[1:], oracle[1:], rtol=0.15)
    # ... and flow against flow (the reference carried into flow measure) that error cancels.
    assert rep[wire.PCE] < 0.03
    assert rep[wire.PCE] == pytest.approx(pce(realized, rep[wire.PI_REFERENCE]), rel=1e-9)


def test_a_clip_moving_twice_as_far_gets_a_large_pce(server, http):
    c2w = camera_move("truck", N, seed=3)
    oracle = oracle_parallax(SCENE, _track(c2w))
    wrong = c2w.copy()
    wrong[:, :3, 3] *= 2.0  # the clip moves twice as far as the reference said
    rep = _run(server, http, _track(wrong), oracle)
    assert rep[wire.PCE] == pytest.approx(np.log(2.0), abs=0.1)


def test_a_clip_with_shuffled_frames_gets_a_large_pce(server, http):
    c2w = camera_move("accelerate", N, seed=3)
    oracle = oracle_parallax(SCENE, _track(c2w))
    order = np.array([0, 3, 1, 6, 2, 7, 4, 5])
    rep = _run(server, http, _track(c2w[order]), oracle)
    assert rep[wire.PCE] > 0.3


def test_without_a_reference_the_clip_is_compared_with_its_warp_render(server, http):
    traj = _track(camera_move("truck", N, seed=3))
    rep = _run(server, http, traj, None)
    assert rep[wire.PCE_AGAINST] == "target" and rep[wire.PI_REFERENCE] is None
    assert rep[wire.PCE] < 0.03
    assert pce(rep[wire.PI_TARGET], oracle_parallax(SCENE, traj)) < 0.08
