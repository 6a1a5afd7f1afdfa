"""Re-attaching on load trusts this installation, not the file (issue 24, item 5): a ``.blend`` that
records a job this Blender never submitted (or a result path it never chose) makes the add-on
fetch nothing and write nothing; a job it did submit lands where the artist chose at submission."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
import test_generate  # noqa: E402
from server_helpers import npy_bytes, plane_scene, png_bytes  # noqa: E402
from test_generate import _run_to_end  # noqa: E402

shot, server = test_generate.shot, test_generate.server


def _tree(folder: Path) -> dict:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_a_crafted_blend_writes_nothing_outside_the_chosen_folder(shot, ext, server, tmp_path):
    import bpy

    from parascale_blender.client import BridgeClient

    jobs = ext("blender.server_jobs")
    scene = plane_scene(32, 24, 3)  # a job someone else submitted to the same server, done
    foreign = BridgeClient(server.url).submit(json.dumps(scene.doc).encode(), png_bytes(scene.image),
                                              npy_bytes(scene.depth))["id"]  # fmt: skip
    victim = tmp_path / "victim"
    victim.mkdir()
    (victim / "precious.mp4").write_bytes(b"the artist's own file")
    before = _tree(victim)
    for kind, target in (("generate", victim / "precious.mp4"), ("depth", victim / "made" / "up" / "x.npy")):
        rec = getattr(shot.parascale_jobs, kind)
        rec.job_id, rec.state, rec.output_path = foreign, "running", str(target)
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "crafted.blend"))
    jobs._JOBS.clear()  # as a fresh Blender opening the file
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "crafted.blend"))
    opened = bpy.context.scene
    for kind in ("generate", "depth"):
        rec = getattr(opened.parascale_jobs, kind)
        assert not jobs.is_running(opened, kind) and rec.state == "lost"
        assert "not submitted from this Blender installation" in rec.error
    for _ in range(10):
        jobs.tick_all()
    assert _tree(victim) == before and not (victim / "made").exists()


def test_a_job_this_installation_submitted_lands_where_it_was_chosen(shot, ext, tmp_path):
    import bpy

    jobs = ext("blender.server_jobs")
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    rec = shot.parascale_jobs.generate
    job_id, chosen = rec.job_id, rec.output_path
    assert job_id and Path(chosen).parent == tmp_path / "clips"
    rec.output_path = str(tmp_path / "elsewhere" / "evil.mp4")  # a path the file says, not the artist
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    jobs._JOBS.clear()
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))
    opened = bpy.context.scene
    assert jobs.is_running(opened, "generate"), opened.parascale_jobs.generate.error
    assert _run_to_end(jobs, opened) == "done", opened.parascale_jobs.generate.error
    assert opened.parascale_jobs.generate.output_path == chosen and Path(chosen).is_file()
    assert not (tmp_path / "elsewhere").exists()
    assert jobs.ledger().get(job_id, ext("blender.prefs").get().server_url) is None, "forgotten once saved"
