"""The edit as OpenTimelineIO: generated strips exported by ``export_scene.parascale_edit`` read back
with the ``opentimelineio`` library (names, source and record ranges, ParaScale metadata), an EDL
written from it through ``otio-cmx3600-adapter`` gives the same ranges, and a cut made with the
library (.otio and .edl) imports as the named shot markers."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scenes import encode_mp4

otio = pytest.importorskip("opentimelineio")


def _clip(tmp_path, name, frames):
    path = tmp_path / f"{name}.mp4"
    rng = np.random.default_rng(len(name))
    encode_mp4([rng.integers(0, 255, (64, 96, 3), dtype=np.uint8) for _ in range(frames)], path)
    return path


@pytest.fixture
def edit(scene, ext, tmp_path):
    """Two generated clips on channel 1 (the second trimmed by 2 media frames, a 5-frame gap between),
    inserted the way Generate inserts them, one with a closed-loop PCE; and an unrelated movie strip."""
    gen, wire = ext("blender.ops_generate"), ext("client.wire")
    scene.render.fps, scene.render.fps_base = 25, 1.0
    scene.frame_start, scene.frame_end = 101, 160
    record = ext("blender.server_jobs").record(scene, gen.KIND)
    record.report = json.dumps({wire.PCE: 0.0123, wire.PCE_LABEL: "PCE (flow)"})
    a = gen.insert_strip(scene, str(_clip(tmp_path, "a", 12)), 101, 12, "Cam·harmonic·wan", {
        "camera": "Cam", "mode": "harmonic", "backend": "wan-fun-camera", "seed": 7})  # fmt: skip
    record.report = ""
    b = gen.insert_strip(scene, str(_clip(tmp_path, "bb", 20)), 118, 20, "Cam·keyed·warp", {
        "camera": "Cam", "mode": "keyed", "backend": "warp"})  # fmt: skip
    b.frame_offset_start = 2  # trimmed head: the clip plays media frames 2..19 from frame 118
    b.frame_start = 116
    other = ext("blender.compat").strips(scene).new_movie("plate", str(_clip(tmp_path, "c", 5)), 3, 101)
    assert (a.channel, b.channel, other.channel) == (1, 1, 3)
    return scene, a, b


def test_export_reads_back_with_opentimelineio(edit, tmp_path):
    import bpy

    scene, a, b = edit
    path = tmp_path / "edit.otio"
    assert bpy.ops.export_scene.parascale_edit(filepath=str(path)) == {"FINISHED"}
    tl = otio.adapters.read_from_file(str(path))
    assert tl.global_start_time == otio.opentime.RationalTime(101, 25)
    (track,) = tl.video_tracks()  # the plate's channel is not ParaScale's
    clips = list(track.find_clips())
    assert [c.name for c in clips] == [a.name, b.name]
    for clip, strip in zip(clips, (a, b)):
        sr, rec = clip.source_range, clip.range_in_parent()
        assert sr.start_time.rate == 25
        assert (sr.start_time.value, sr.duration.value) == (strip.frame_offset_start, strip.frame_final_duration)
        assert rec.start_time.value == strip.frame_final_start - scene.frame_start
        assert clip.media_reference.target_url.endswith(".mp4")
        assert clip.media_reference.available_range.duration.value == strip.frame_duration
    assert (clips[1].source_range.start_time.value, clips[1].source_range.duration.value) == (2, 18)
    assert clips[1].range_in_parent().start_time.value == 17  # frame 118 - 101
    meta = clips[0].metadata["parascale"]
    assert meta["camera"] == "Cam" and meta["mode"] == "harmonic" and meta["backend"] == "wan-fun-camera"
    assert meta["seed"] == 7 and meta["pce"] == pytest.approx(0.0123) and meta["pce_label"] == "PCE (flow)"
    assert meta["metres_per_unit"] == 1.0
    assert "pce" not in clips[1].metadata["parascale"] and "seed" not in clips[1].metadata["parascale"]

    edl = tmp_path / "edit.edl"
    otio.adapters.write_to_file(tl, str(edl))
    tl_edl = otio.adapters.read_from_file(str(edl), rate=25)  # kept: clips know their parent through it
    back = list(tl_edl.video_tracks()[0].find_clips())
    assert [c.source_range for c in back] == [c.source_range for c in clips]
    rec0 = clips[0].range_in_parent().start_time
    assert [c.range_in_parent().start_time - back[0].range_in_parent().start_time for c in back] == [
        c.range_in_parent().start_time - rec0 for c in clips
    ]


def test_every_movie_strip_on_its_own_track_from_the_earliest_strip(edit, ext, tmp_path):
    import bpy

    scene, a, b = edit
    plate = ext("blender.compat").strips(scene)["plate"]
    plate.frame_start = 95  # before the scene's first frame: the timeline starts there
    path = tmp_path / "all.otio"
    assert bpy.ops.export_scene.parascale_edit(filepath=str(path), every_movie=True) == {"FINISHED"}
    tl = otio.adapters.read_from_file(str(path))
    assert tl.global_start_time.value == 95 and len(tl.video_tracks()) == 2
    (clip,) = tl.video_tracks()[1].find_clips()
    assert clip.name == "plate" and clip.range_in_parent().start_time.value == 0
    assert tl.video_tracks()[0].find_clips()[0].range_in_parent().start_time.value == 101 - 95
    assert "backend" not in clip.metadata["parascale"]


def test_export_without_generated_strips_is_a_clear_error(scene, tmp_path):
    import bpy

    with pytest.raises(RuntimeError, match="no generated clip"):
        bpy.ops.export_scene.parascale_edit(filepath=str(tmp_path / "e.otio"))
    assert not (tmp_path / "e.otio").exists()


def _cut(rate=25):
    RT, TR = otio.opentime.RationalTime, otio.opentime.TimeRange
    tl = otio.schema.Timeline("cut", global_start_time=RT(86400, rate))
    track = otio.schema.Track("V1")
    tl.tracks.append(track)
    for name, src, dur, gap in (("sh010", 10, 24, 0), ("sh020", 0, 36, 0), ("sh030", 5, 12, 6)):
        if gap:
            track.append(otio.schema.Gap(source_range=TR(RT(0, rate), RT(gap, rate))))
        ref = otio.schema.ExternalReference(f"file:///plates/{name}.mov")
        track.append(otio.schema.Clip(name, ref, TR(RT(src, rate), RT(dur, rate))))
    return tl


@pytest.mark.parametrize("suffix", [".otio", ".edl"])
def test_imported_cut_creates_the_shots_it_names(scene, tmp_path, suffix):
    import bpy

    scene.render.fps, scene.render.fps_base = 25, 1.0
    scene.timeline_markers.new("sh020", frame=999)  # an earlier import: moved, not duplicated
    scene.timeline_markers.new("keep me", frame=5)
    path = tmp_path / f"cut{suffix}"
    otio.adapters.write_to_file(_cut(), str(path))
    assert bpy.ops.import_scene.parascale_cut(filepath=str(path), start=1001) == {"FINISHED"}
    marks = sorted((m.frame, m.name) for m in scene.timeline_markers)
    assert marks == [(5, "keep me"), (1001, "sh010"), (1025, "sh020"), (1061, "GAP"), (1067, "sh030")]
    assert (scene.frame_start, scene.frame_end) == (1001, 1078)
    assert bpy.ops.import_scene.parascale_cut(filepath=str(path), start=1) == {"FINISHED"}  # updates
    assert sorted((m.frame, m.name) for m in scene.timeline_markers) == [
        (1, "sh010"), (5, "keep me"), (25, "sh020"), (61, "GAP"), (67, "sh030")]  # fmt: skip


def test_cut_at_another_rate_is_refused_and_changes_nothing(scene, tmp_path):
    import bpy

    scene.render.fps, scene.render.fps_base = 24, 1.0
    path = tmp_path / "cut.otio"
    otio.adapters.write_to_file(_cut(25), str(path))
    with pytest.raises(RuntimeError, match="25 fps, the scene at 24 fps"):
        bpy.ops.import_scene.parascale_cut(filepath=str(path))
    assert len(scene.timeline_markers) == 0 and (scene.frame_start, scene.frame_end) == (1, 250)
