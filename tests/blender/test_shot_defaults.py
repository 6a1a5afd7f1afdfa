"""A first shot in a fresh scene, clicked through with the defaults: the import sets the scene up
and Rescale agrees with it (no warning); what is only assumed (the reference's subject distance)
and a reference shorter than the shot are said in the reports."""

from __future__ import annotations

import numpy as np


def _track_file(tmp_path, first: int, n: int):
    """A ParaScale JSON track: a camera trucking 5 cm per frame, frames first..first+n-1."""
    from parascale_blender.core.camera import Trajectory
    from parascale_blender.formats.registry import write_trajectory

    c2w = np.tile(np.eye(4), (n, 1, 1))
    c2w[:, 0, 3] = 0.05 * np.arange(n)
    K = np.tile([400.0, 400.0, 320.0, 180.0], (n, 1))
    path = tmp_path / "move.json"
    write_trajectory(Trajectory(np.arange(first, first + n), c2w, K, 640, 360, fps=24), path, fmt="parascale")
    return path


def _target(scene):
    import bpy
    from scenes import add_camera

    cam = add_camera("Target", (0, -4, 1), (np.radians(90), 0, 0))
    bpy.ops.mesh.primitive_plane_add(size=40, location=(0, 2, 1), rotation=(np.radians(90), 0, 0))
    scene.parascale.target_camera = cam
    return cam


def test_a_fresh_scene_with_the_defaults_rescales_without_a_warning(scene, tmp_path):
    import bpy

    assert bpy.ops.import_scene.parascale_track(filepath=str(_track_file(tmp_path, 0, 10))) == {"FINISHED"}
    assert (scene.frame_start, scene.frame_end) == (0, 9)  # the file's frames, the scene set up from them
    _target(scene)
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    report = scene.parascale.last_report
    assert "outside" not in report and "warning" not in report.lower(), report
    assert scene.parascale.target_start_frame == 0  # the move lands on the shot the import set up
    assert "assumed subject distance 3 (a guess" in report
    assert scene.parascale.bl_rna.properties["reference_distance"].name == "Assumed subject distance"


def test_a_reference_shorter_than_the_shot_is_said(scene, tmp_path):
    import bpy

    scene.frame_start, scene.frame_end = 1001, 1100  # the artist's shot
    _target(scene)
    assert bpy.ops.import_scene.parascale_track(filepath=str(_track_file(tmp_path, 0, 10))) == {"FINISHED"}
    short = "shorter than the shot: frames 1001–1010 for the shot's 1001–1100 (90 frames without the move)"
    assert short in scene.parascale.last_report
    scene.parascale.target_start_frame = 1001
    assert bpy.ops.parascale.rescale() == {"FINISHED"}
    assert short in scene.parascale.last_report
