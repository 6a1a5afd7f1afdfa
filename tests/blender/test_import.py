"""Import operator: keys at the footage's frames, projections equal the core's, points, bad files."""

from __future__ import annotations

import numpy as np
import pytest
from scenes import snapshot


def _synthetic_track(ext, n=12, first=1001):
    cam_mod = ext("core.camera")
    rot = ext("core.rotation")
    t = np.linspace(0, 1, n)
    R = rot.euler_to_matrix(np.column_stack([0.1 * t, 0.3 * t - 0.1, 0.05 * t]), "XYZ")
    c2w = cam_mod.make_c2w(R, np.column_stack([2 * t, 0.1 * np.sin(3 * t), -0.5 * t]))
    rng = np.random.default_rng(0)
    xyz = rng.uniform([-3, -2, 4], [3, 2, 9], (40, 3))
    rgb = rng.integers(0, 256, (40, 3))
    vis = [np.flatnonzero(rng.random(40) < 0.7) for _ in range(n)]
    return cam_mod.Trajectory(
        np.arange(first, first + n),
        c2w,
        [900.0, 900.0, 655.0, 350.0],
        1280,
        720,
        fps=25,
        points=cam_mod.SparsePoints(xyz, rgb, vis),
    )


def test_import_json_keys_projection_points(scene, ext, tmp_path):
    import bpy
    from bpy_extras.object_utils import world_to_camera_view
    from mathutils import Vector

    traj = _synthetic_track(ext)
    path = tmp_path / "shot.json"
    ext("formats.parascale_json").write_parascale_json(traj, path)
    res = bpy.ops.import_scene.parascale_track(filepath=str(path), frame_offset=-1000, timing="FRAMES")
    assert res == {"FINISHED"}
    s = scene.parascale
    cam = s.reference_camera
    assert cam is not None and cam.name == "shot"
    frames, _ = ext("blender.keys").fcurve_values(cam, "location", 0)
    np.testing.assert_array_equal(frames, traj.frames - 1000)
    assert (scene.render.resolution_x, scene.render.resolution_y) == (1280, 720)
    assert (scene.frame_start, scene.frame_end) == (1, 12)
    # A known 3D point projects with Blender exactly as with the core's pinhole model.
    X = np.array([0.4, -0.3, 7.0])
    for i in (0, 5, 11):
        scene.frame_set(int(traj.frames[i]) - 1000)
        uvz = world_to_camera_view(scene, cam, Vector(X))
        px = np.array([uvz[0] * 1280, (1 - uvz[1]) * 720])
        pc = traj.w2c[i] @ np.append(X, 1.0)
        K = traj.intrinsics[i]
        ours = np.array([K[0] * pc[0] / pc[2] + K[2], K[1] * pc[1] / pc[2] + K[3]])
        np.testing.assert_allclose(px, ours, atol=5e-3)
        assert uvz[2] == pytest.approx(pc[2], rel=1e-5)
    # Points: count, colours, visibility survive; reference depth switches to the points.
    pts = s.reference_points
    xyz, rgb = ext("blender.points").points_of(pts)
    np.testing.assert_allclose(xyz, traj.points.xyz, atol=1e-5)
    np.testing.assert_allclose(rgb * 255.0, traj.points.rgb, atol=1e-3)
    vis = ext("blender.points").load_visibility(pts)
    assert all(np.array_equal(a, b) for a, b in zip(vis, traj.points.visibility))
    assert s.reference_depth == "POINTS"
    assert pts.modifiers["ParaScale Points"].node_group.name == "ParaScale Points"
    # Read back through the add-on: the same track (frames shifted by the offset).
    back = ext("blender.tracks").reference_trajectory(bpy.context)
    np.testing.assert_allclose(back.c2w, traj.c2w, atol=2e-5)
    np.testing.assert_allclose(back.intrinsics, traj.intrinsics, rtol=1e-5)
    assert all(np.array_equal(a, b) for a, b in zip(back.points.visibility, traj.points.visibility))


def test_import_real_re10k(scene, shared_data):
    import bpy

    path = next(iter(sorted((shared_data / "re10k").glob("*.txt"))))
    assert bpy.ops.import_scene.parascale_track(filepath=str(path)) == {"FINISHED"}
    cam = scene.parascale.reference_camera
    assert cam.name == path.stem
    # the clip's own duration (its timestamps, microseconds) played at the scene's fps
    stamps = [int(line.split()[0]) for line in path.read_text().splitlines()[1:] if line.strip()]
    seconds = (stamps[-1] - stamps[0]) / 1e6
    fps = scene.render.fps / scene.render.fps_base
    assert scene.frame_start == 0 and abs((scene.frame_end - scene.frame_start) / fps - seconds) <= 1 / fps


def _write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return str(p)


def test_bad_files_report_and_change_nothing(scene, ext, tmp_path, shared_data):
    import bpy

    traj = _synthetic_track(ext)
    one = traj.replace(frames=traj.frames[:1], c2w=traj.c2w[:1], intrinsics=traj.intrinsics[:1], points=None)
    one_path = tmp_path / "one.json"
    ext("formats.parascale_json").write_parascale_json(one, one_path)
    row = "0 0.5 0.8 0.5 0.5 0 0 1 0 0 0 0 1 0 0 0 0 1 0\n"
    nan_row = "1 0.5 0.8 0.5 0.5 0 0 1 0 0 nan 0 1 0 0 0 0 1 0\n"
    cases = [
        (str(tmp_path / "missing.json"), "not found"),
        (_write(tmp_path, "empty.txt", "https://x\n"), "frame"),
        (str(one_path), "one frame"),
        (_write(tmp_path, "nan.txt", "https://x\n" + row + nan_row), "nan|non-finite"),
        (str(shared_data / "trajectories" / "cami2v" / "orbit_left.txt"), "determinant"),
    ]
    for path, match in cases:
        before = snapshot(scene)
        with pytest.raises(RuntimeError, match=f"(?i){match}"):
            bpy.ops.import_scene.parascale_track(filepath=path)
        assert snapshot(scene) == before, path
    # The reflection is accepted when the artist asks for the SVD repair.
    path = str(shared_data / "trajectories" / "cami2v" / "orbit_left.txt")
    assert bpy.ops.import_scene.parascale_track(filepath=path, repair_rotations=True) == {"FINISHED"}
    # Frames beyond Blender's limit after the offset.
    before = snapshot(scene)
    with pytest.raises(RuntimeError, match="exceed Blender's limit"):
        bpy.ops.import_scene.parascale_track(filepath=_json(ext, tmp_path), frame_offset=1048570)
    assert snapshot(scene) == before


def _json(ext, tmp_path):
    p = tmp_path / "ok.json"
    ext("formats.parascale_json").write_parascale_json(_synthetic_track(ext), p)
    return str(p)


def test_import_re10k_with_size_and_colmap_points(scene, shared_data, ext):
    import bpy

    path = sorted((shared_data / "re10k").glob("*.txt"))[1]
    assert bpy.ops.import_scene.parascale_track(filepath=str(path), image_size=(576, 320)) == {"FINISHED"}
    assert (scene.render.resolution_x, scene.render.resolution_y) == (576, 320)
    images = shared_data / "colmap" / "kapture_maupertuis" / "sparse" / "images.txt"
    assert bpy.ops.import_scene.parascale_track(filepath=str(images), up_axis="Y_DOWN") == {"FINISHED"}
    s = scene.parascale
    ref = ext("formats.registry").read_trajectory(images.parent)
    assert len(s.reference_points.data.vertices) == len(ref.points.xyz) == 1039
    assert s.reference_depth == "POINTS"
    back = ext("blender.tracks").reference_trajectory(bpy.context)
    assert [len(v) for v in back.points.visibility] == [len(v) for v in ref.points.visibility]
    # Y_DOWN: the world is rotated to Z up, so relative camera motion is unchanged.
    np.testing.assert_allclose(back.relative_to_first().c2w, ref.relative_to_first().c2w, atol=1e-4)


@pytest.mark.parametrize("src_fps", [6.0, 24.0, 25.0, 30000 / 1001, 30.0])
@pytest.mark.parametrize("scene_fps", [24, 25])
def test_import_plays_the_move_in_its_own_time(scene, ext, tmp_path, src_fps, scene_fps):
    """A 2.5 s move at ``src_fps`` imported into a ``scene_fps`` scene lasts 2.5 s by Blender's own
    clock (its fps setting and the camera's keyed frame range), to within one frame."""
    import bpy

    scene.render.fps, scene.render.fps_base = scene_fps, 1.0
    n = int(round(2.5 * src_fps)) + 1
    traj = _synthetic_track(ext, n=n, first=0).replace(fps=src_fps, points=None)
    path = tmp_path / "move.json"
    ext("formats.parascale_json").write_parascale_json(traj, path)
    assert bpy.ops.import_scene.parascale_track(filepath=str(path)) == {"FINISHED"}
    cam = scene.parascale.reference_camera
    first, last = cam.animation_data.action.frame_range
    seconds = (last - first) / (scene.render.fps / scene.render.fps_base)
    assert abs(seconds - (n - 1) / src_fps) <= 1.0 / scene_fps
    assert ("retimed" in scene.parascale.last_report) == (abs(src_fps - scene_fps) > 1e-6)


def test_import_into_a_shot_keeps_its_settings(scene, ext, tmp_path):
    """A 1920x1080 shot on frames 1001-1100: importing a 576x320 track with non-square pixels changes
    none of the shot's settings, and the move starts on the shot's first frame."""
    import bpy

    r = scene.render
    r.resolution_x, r.resolution_y, r.pixel_aspect_x, r.pixel_aspect_y = 1920, 1080, 1.0, 1.0
    scene.frame_start, scene.frame_end = 1001, 1100
    before = (r.resolution_x, r.resolution_y, r.pixel_aspect_x, r.pixel_aspect_y, r.fps, r.fps_base,
              scene.frame_start, scene.frame_end)  # fmt: skip
    traj = _synthetic_track(ext, first=0).replace(width=576, height=320, fps=24)
    traj = traj.replace(intrinsics=np.tile([500.0, 506.25, 288.0, 160.0], (len(traj), 1)), points=None)
    path = tmp_path / "ref.json"
    ext("formats.parascale_json").write_parascale_json(traj, path)
    assert bpy.ops.import_scene.parascale_track(filepath=str(path)) == {"FINISHED"}
    after = (r.resolution_x, r.resolution_y, r.pixel_aspect_x, r.pixel_aspect_y, r.fps, r.fps_base,
             scene.frame_start, scene.frame_end)  # fmt: skip
    assert after == before
    first, _ = scene.parascale.reference_camera.animation_data.action.frame_range
    assert first == 1001
    # asked for explicitly, the import still sets them
    assert bpy.ops.import_scene.parascale_track(filepath=str(path), set_scene=True) == {"FINISHED"}
    assert (r.resolution_x, r.resolution_y) == (576, 320)
