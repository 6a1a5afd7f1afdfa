"""The product's depth paths judged by an oracle on the true geometry (``parascale_tools.bench.depth_paths``):
the engine gets a plate's cloud or a scan's points, the judge traces the scene itself."""

from __future__ import annotations

import numpy as np
import pytest

from parascale_blender.core.depth_sources import PointCloudDepth
from parascale_blender.core.rescale import RescaleOptions, rescale
from parascale_tools.bench import depth_paths as dp
from parascale_tools.bench.closed_loop import _track
from parascale_tools.synthetic import camera_move


@pytest.fixture(scope="module")
def room_truck():
    scene = dp.SCENES["room"](0.01)
    return scene, dp.scale_to_speed(scene, camera_move("truck", 10, step=0.05, seed=1), dp.CAM, dp.SPEED_PX)


def test_a_plate_cloud_truck_into_a_street_matches_the_geometry_and_stays_out_of_the_facade(room_truck):
    """Points from Plate + Depth of a street (sky above, facades cut off by the plate's frame): the
    transfer lands within 0.05 of the geometry's answer (oracle PCE of both, traced) and the camera
    never reaches the facade 1.5 units to its right."""
    ref_scene, ref_c2w = room_truck
    street = dp.SCENES["street"](1.0)
    plate = dp.run_case(ref_scene, ref_c2w, "geometry", street, "plate")
    mesh = dp.run_case(ref_scene, ref_c2w, "geometry", street, "mesh")
    assert mesh["oracle_pce"] < 1e-3
    assert abs(plate["oracle_pce"] - mesh["oracle_pce"]) < 0.05, plate
    src = dp.plate_source(street, np.eye(4), dp.CAM.scaled_to(640, 360))
    res = rescale(_track(ref_c2w, dp.CAM), ref_scene, src, np.eye(4), dp.CAM, RescaleOptions())
    assert (res.trajectory.c2w[:, 0, 3] < 1.5).all()


def test_a_plate_knows_its_sky_and_leaves_nothing_unknown():
    """The plate's empty directions are sky from any pose (sky is at infinity); what the plate did not
    see is extended from around it, so a moved camera's view is fully known."""
    street = dp.SCENES["street"](1.0)
    work = dp.CAM.working(160)
    src = dp.plate_source(street, np.eye(4), dp.CAM.scaled_to(640, 360))
    moved = np.eye(4)
    moved[:3, 3] = [0.6, 0.0, 0.5]
    view = src.view(moved, work)
    truth = street.view(moved, work)
    assert (view.valid | view.sky_mask).all()  # every pixel has a depth or is sky ...
    assert 0.5 < view.known_coverage < 1.0  # ... but what was extended is not counted as known
    true_sky = ~np.isfinite(truth.depth)
    assert (view.sky_mask == true_sky).mean() > 0.97  # a pixel-wide seam at most


def test_scan_clouds_in_explicit_modes_give_the_old_results_on_scenes_without_sky(room_truck):
    """A dense scan of a closed room (clutter, occlusion edges) in the explicit modes: its gaps are
    unknown, not sky, so harmonic and flow match the geometry's answer as they did before sky counted."""
    ref_scene, ref_c2w = room_truck
    room = dp.SCENES["room"](1.0)
    cloud = PointCloudDepth(dp.scene_cloud(room, 300_000))
    for mode in ("harmonic", "flow"):
        on_cloud = dp.run_case(ref_scene, ref_c2w, "geometry", room, "cloud", mode, source=cloud)
        on_mesh = dp.run_case(ref_scene, ref_c2w, "geometry", room, "mesh", mode)
        assert abs(on_cloud["oracle_pce"] - on_mesh["oracle_pce"]) <= 0.03, (mode, on_cloud, on_mesh)


def test_a_cloud_marked_as_sky_counts_its_gaps_as_not_moving():
    """--cloud-sky: a cloud of a floor under open sky; unknown by default (only the floor counts), sky
    when marked (the empty upper half moves zero, as the traced scene's does)."""
    from parascale_blender.core.parallax import ParallaxProbe
    from parascale_tools.bench.raytrace import RectScene, _rect

    floor = RectScene("floor", [_rect((-10, 1, 0.5), (20, 0, 0), (0, 0, 20), (0.5, 0.5, 0.5), 0.1)], 1.0, sky=True)
    xyz = dp.scene_cloud(floor, 200_000)
    work = dp.CAM.working(96)
    d = np.array([0.5, 0.0, 0.0])
    truth = ParallaxProbe.from_view(floor.view(np.eye(4), work), allow_sky=True).parallax(d)
    unknown = ParallaxProbe.from_view(PointCloudDepth(xyz).view(np.eye(4), work), allow_sky=True).parallax(d)
    marked = ParallaxProbe.from_view(PointCloudDepth(xyz, sky=True).view(np.eye(4), work), allow_sky=True).parallax(d)
    assert unknown > 1.5 * truth
    assert marked == pytest.approx(truth, rel=0.1)


def test_the_benchmark_counts_a_refused_case_as_a_failure():
    cases = [
        {"oracle_pce": 0.01, "reference": "r", "move": "truck", "target": "t"},
        {"oracle_pce": None, "reference": "r", "move": "dolly", "target": "t"},
    ]
    st = dp._stats(cases)
    assert st["failures"] == 1 and st["worst"] == float("inf") and st["mean"] == pytest.approx(0.01)
