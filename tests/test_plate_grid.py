"""A plate's cloud drawn from its pixel grid (``core.plate_grid``), judged by a ray tracer on the true
geometry (``parascale_tools.bench.raytrace``: ray/rectangle intersections, no z-buffer): thin poles
keep their width, a pixel centre on a depth edge is not always given to the near side, disocclusions
take the background, grazing surfaces stay closed."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.camera import Camera
from parascale_blender.core.depth_sources import PointCloudDepth
from parascale_blender.core.plate_grid import PlateGrid
from parascale_blender.core.zbuffer import PointHierarchy
from parascale_tools.bench.depth_paths import poles
from parascale_tools.bench.raytrace import street

PLATE = Camera(600.0, 600.0, 320.0, 180.0, 640, 360)
WORK = Camera(150.0, 150.0, 80.0, 45.0, 160, 90)  # a quarter of the plate
HALF = Camera(300.0, 300.0, 160.0, 90.0, 320, 180)  # half the plate: its centres lie on plate pixel edges


def _plate(scene, cam=PLATE, c2w=None):
    c2w = np.eye(4) if c2w is None else c2w
    depth = scene.trace(c2w, cam)[1]
    return PointCloudDepth(cam.unproject(depth, c2w).xyz, frustum=(c2w, cam), plate_sky=~np.isfinite(depth))


def _moved(dx=0.0, dy=0.0, dz=0.0):
    c2w = np.eye(4)
    c2w[:3, 3] = dx, dy, dz
    return c2w


def test_the_cloud_is_recognised_as_its_plates_grid():
    scene = poles()
    src = _plate(scene)
    assert src.grid is not None and src.loose is None
    # a cloud that is not one point per pixel centre of the frustum's camera is drawn by splats
    xyz = src.hierarchy.points + 0.003
    grid, on = PlateGrid.from_points(xyz, np.eye(4), PLATE)
    assert grid is None and on.mean() < 0.5


def test_pixel_centres_on_depth_edges_are_shared_fairly():
    """At the plate's own pose a working size that divides the plate's puts every working centre on a
    plate pixel edge: the near-object share matches the traced view (front-wins-ties widened the
    poles, far-wins narrowed them)."""
    scene = poles()
    truth = scene.trace(np.eye(4), HALF)[1]
    got = _plate(scene).view(np.eye(4), HALF).depth  # (a centre on a corner no box claims: a pinhole, filled)
    assert np.isfinite(got).all()
    near_truth, near_got = np.mean(truth < 7), np.mean(got < 7)
    assert near_got == pytest.approx(near_truth, abs=0.006)  # front always: +0.014, far always: -0.023
    assert np.mean(1 / got) == pytest.approx(np.mean(1 / truth), rel=0.015)


@pytest.mark.parametrize("dx", [0.05, 0.2])
def test_thin_poles_keep_their_width_when_the_camera_moves(dx):
    """40 poles 2-5 cm thick: E[1/Z] of the view from a trucked camera within 3% of the traced truth
    (the cloud's splats, a pixel per sample at least, read the poles 9% too wide at 5 cm)."""
    scene = poles()
    c2w = _moved(dx)
    truth = scene.trace(c2w, WORK)[1]
    view = _plate(scene).view(c2w, WORK)
    assert np.isfinite(view.depth).all()
    assert np.mean(1 / view.depth) == pytest.approx(np.mean(1 / truth), rel=0.03)
    splats = PointHierarchy(_plate(scene).hierarchy.points).view(c2w, WORK)
    assert np.nanmean(1 / splats) > 1.05 * np.mean(1 / truth)  # what the grid avoids


def test_disocclusions_take_the_background():
    """The gaps a truck opens behind the poles are filled with what closes them along the row: the
    farther side (the backdrop or the ground), so they hold far depth like the traced truth."""
    scene = poles()
    c2w = _moved(0.05)
    truth = scene.trace(c2w, WORK)[1]
    view = _plate(scene).view(c2w, WORK)
    gap = view.extended
    assert gap.mean() > 0.05  # the move opens real gaps
    assert np.median(view.depth[gap] / truth[gap]) == pytest.approx(1.0, abs=0.05)
    assert np.mean(view.depth[gap] < 0.8 * truth[gap]) < 0.1  # not the poles' depth smeared over them


def test_a_street_seen_from_higher_up_stays_closed():
    """Ground and facades seen at a grazing angle from the plate, then from 0.5 units higher and one
    forward: every pixel whose surface point the plate saw (the tracer says so: the point projects
    into the plate where the plate's traced depth is its own) is covered by the grid's footprints,
    which stretch with the surfaces (one plate pixel each, they would leave the far ground in holes)."""
    scene = street()
    c2w = _moved(0.0, -0.5, 1.0)
    truth = scene.trace(c2w, WORK)[1]
    pts = WORK.unproject(truth, c2w)
    plate_depth = scene.trace(np.eye(4), PLATE)[1]
    z = pts.xyz[:, 2]
    u = np.floor(PLATE.fx * pts.xyz[:, 0] / z + PLATE.cx).astype(int)
    v = np.floor(PLATE.fy * pts.xyz[:, 1] / z + PLATE.cy).astype(int)
    inside = (z > 0) & (u >= 0) & (u < PLATE.width) & (v >= 0) & (v < PLATE.height)
    saw = np.zeros(truth.size, dtype=bool)
    saw[pts.index[inside]] = np.abs(plate_depth[v[inside], u[inside]] / z[inside] - 1) < 0.02
    assert saw.mean() > 0.5
    view = _plate(scene).grid.view(c2w, WORK).reshape(-1)
    assert np.mean(np.isnan(view[saw])) < 0.003
    ok = saw & np.isfinite(view)
    assert np.median(np.abs(view[ok] / truth.reshape(-1)[ok] - 1)) < 0.01
