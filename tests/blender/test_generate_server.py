"""Generate and its server, in real bpy against the real server process (issue 11, items 9 and 11):
the health check comes before any bake or render; the backend menu is the server's
``/v1/backends`` with each backend's availability; seed, frames and resolution reach the stored
job; strips are named by shot, mode and backend; a server stopped mid-job ends ``interrupted``
with Retry; a file closed during a job carries the job to its clip on disk."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "server"))
import test_generate  # noqa: E402
from server_helpers import Server, free_port  # noqa: E402
from test_generate import END, START, _run_to_end  # noqa: E402
from test_ui import RecordingLayout, _draw  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
shot, server = test_generate.shot, test_generate.server  # the keyed 96x54 shot and its real server
TOKEN = "a-token-of-this-test-0123456789"


def _get_json(url: str):
    """The server's own answer, read with the standard library (not the add-on's client). A fresh
    opener: ``urlopen`` would install a process-wide one that keeps this moment's proxy settings."""
    with urllib.request.build_opener().open(url, timeout=10) as r:
        return json.load(r)


def _counting(handlers):
    """Append a counter to a bpy.app.handlers list; returns (counter list, remover)."""
    calls: list = []

    def count(*_a):
        calls.append(1)

    handlers.append(count)
    return calls, lambda: handlers.remove(count)


def _generate_refused(shot, match: str) -> float:
    """Run Generate (Render source, Cycles) expecting a refusal; assert nothing was baked or rendered."""
    import bpy

    shot.render.engine, shot.cycles.samples, shot.cycles.device = "CYCLES", 1, "CPU"
    shot.parascale_generate.source = "RENDER"
    renders, undo_r = _counting(bpy.app.handlers.render_pre)
    frames, undo_f = _counting(bpy.app.handlers.frame_change_pre)
    try:
        t0 = time.perf_counter()
        with pytest.raises(RuntimeError, match=match):
            bpy.ops.parascale.generate()
        elapsed = time.perf_counter() - t0
    finally:
        undo_r()
        undo_f()
    assert not renders, "no render before the server said yes"
    assert not frames, "no bake (frame_set per frame) before the server said yes"
    assert shot.sequence_editor is None or not len(shot.sequence_editor.strips)
    assert shot.parascale_jobs.generate.job_id == "" and match.split(":")[0] in shot.parascale_jobs.generate.error
    return elapsed


def test_server_down_fails_in_seconds_without_baking_or_rendering(shot, ext):
    import bpy

    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    ext("blender.prefs").get(bpy.context).server_url = url
    elapsed = _generate_refused(shot, f"server not running at {url}")
    print(f"time to error, server down: {elapsed:.3f} s")
    assert elapsed < 2.0
    log = _draw(bpy.types.PARASCALE_PT_generate, bpy.context)
    assert any(k == "label" and t.startswith(f"server not running at {url}") for k, t in log)
    assert ("operator", "parascale.server_start") in log and ("operator", "parascale.server_stop") in log


@pytest.fixture(scope="module")
def token_server(tmp_path_factory):
    srv = Server(tmp_path_factory.mktemp("jobs"), env={"PARASCALE_TOKEN": TOKEN}).start()
    yield srv
    srv.stop()


def test_a_refused_token_is_said_before_any_render(shot, ext, token_server):
    import bpy

    p = ext("blender.prefs").get(bpy.context)
    p.server_url, p.server_token = token_server.url, "not-the-token"
    try:
        elapsed = _generate_refused(shot, f"the server at {token_server.url} refused the token")
        assert elapsed < 2.0
        p.server_token = TOKEN  # the right token: the same shot goes through
        shot.parascale_generate.source = "PLATE"
        assert bpy.ops.parascale.generate() == {"FINISHED"}, shot.parascale_jobs.generate.error
        assert _run_to_end(ext("blender.server_jobs"), shot) == "done"
    finally:
        p.server_token = ""


def test_backend_menu_is_the_servers_list_with_availability(shot, ext, server):
    """The truth is the server's own GET /v1/backends read with urllib; every generating backend is in
    the menu, an unavailable one carries its reason and Generate refuses it with that reason."""
    import bpy

    truth = {b["name"]: b for b in _get_json(server.url + "/v1/backends")}
    generating = {n for n, b in truth.items() if "trajectory" in b["uploads"]}
    assert {"warp", "diffusers-i2v"} <= generating and "track-video" not in generating
    assert bpy.ops.parascale.server_refresh() == {"FINISHED"}
    g = shot.parascale_generate
    ui = bpy.types.UILayout  # the menu as Blender's UI resolves it (the dynamic items callback)
    for name, b in truth.items():
        label, tip = ui.enum_item_name(g, "backend_menu", name), ui.enum_item_description(g, "backend_menu", name)
        if name not in generating:
            assert label == "", f"{name} does not generate clips: not in the menu"
        elif b["available"]:
            assert label == name
        else:
            assert label == f"{name} (unavailable)" and b["reason"] and b["reason"] in tip
    unavailable = next(n for n in sorted(generating) if not truth[n]["available"])
    g.backend_menu = unavailable
    assert g.backend == unavailable
    log = _draw(bpy.types.PARASCALE_PT_generate, bpy.context)
    assert ("label", f"{unavailable}: {truth[unavailable]['reason']}"[:200]) in log
    assert any(k == "label" and t.startswith(f"Server ok at {server.url}") for k, t in log)
    _generate_refused(shot, f"backend '{unavailable}' is not available")
    g.backend_menu = "warp"
    assert g.backend == "warp"


def test_frames_resolution_and_strip_names_reach_the_server_and_the_sequencer(shot, ext, server):
    import av
    import bpy

    jobs = ext("blender.server_jobs")
    g = shot.parascale_generate
    g.frames, g.resolution_x, g.resolution_y = 5, 64, 0  # 96x54 shot: 64 wide keeps 16:9 -> 64x36
    assert bpy.ops.parascale.generate() == {"FINISHED"}, shot.parascale_jobs.generate.error
    rec = shot.parascale_jobs.generate
    folder = server.jobs_dir / rec.job_id
    request = json.loads((folder / "request.json").read_text())
    sent = json.loads((folder / "trajectory.json").read_text())
    assert request["num_frames"] == 5 and request["backend"] == "warp" and "seed" not in request["params"]
    assert (sent["width"], sent["height"], len(sent["frames"])) == (64, 36, 5)
    assert [f["frame"] for f in sent["frames"]] == list(range(START, START + 5))
    assert _run_to_end(jobs, shot) == "done", rec.error
    with av.open(rec.output_path) as clip:  # the clip as PyAV decodes it
        stream = clip.streams.video[0]
        assert (stream.width, stream.height) == (64, 36)
        assert sum(1 for _ in clip.decode(stream)) == 5
    strip = shot.sequence_editor.strips[rec.result_name]
    assert rec.result_name == "Target·keyed·warp" and strip.frame_final_duration == 5
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    assert _run_to_end(jobs, shot) == "done"
    assert rec.result_name == "Target·keyed·warp·2", "unique per scene"
    g.frames = END - START + 2
    with pytest.raises(RuntimeError, match=f"Frames: {END - START + 2} asked but the baked shot has {END - START + 1}"):
        bpy.ops.parascale.generate()
    g.frames, g.resolution_y = 0, 40
    with pytest.raises(RuntimeError, match="Width/Height: 64x40 has aspect"):
        bpy.ops.parascale.generate()


@pytest.fixture(scope="module")
def gen_server(tmp_path_factory):
    """A server whose diffusers-i2v has tiny random weights (built in a child process, as in the
    server tests), so a backend that takes a seed is available."""
    root = tmp_path_factory.mktemp("weights")
    code = "import sys, pathlib; from parascale_tools.bench.gen_bench import build_tiny_wan_i2v as b"
    code += "; b(pathlib.Path(sys.argv[1]))"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "PYTHONPATH": str(ROOT)}
    subprocess.run([sys.executable, "-c", code, str(root / "diffusers-i2v" / "default")], check=True, env=env)
    srv = Server(tmp_path_factory.mktemp("jobs"), env={"PARASCALE_WEIGHTS": str(root)}).start(60)
    yield srv
    srv.stop()


def test_the_seed_reaches_a_backend_that_takes_one(shot, ext, gen_server):
    import bpy

    ext("blender.prefs").get(bpy.context).server_url = gen_server.url
    assert bpy.ops.parascale.server_refresh() == {"FINISHED"}
    g = shot.parascale_generate
    g.backend_menu, g.seed = "diffusers-i2v", 1234
    for random_seed in (False, True):
        g.random_seed = random_seed
        assert bpy.ops.parascale.generate() == {"FINISHED"}, shot.parascale_jobs.generate.error
        rec = shot.parascale_jobs.generate
        stored = json.loads((gen_server.jobs_dir / rec.job_id / "request.json").read_text())
        sent = json.loads(rec.options)["seed"]
        assert stored["params"]["seed"] == sent and (sent == 1234) != random_seed
        assert bpy.ops.parascale.server_job_cancel(kind="generate") == {"FINISHED"}
        assert _run_to_end(ext("blender.server_jobs"), shot, 120) == "cancelled"
    assert g.seed == 1234, "a random seed never overwrites the artist's"


def _until(jobs, scene, predicate, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        jobs.tick_scene(scene, "generate")
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError("timed out")


def test_a_server_stopped_mid_job_ends_interrupted_and_retry_resubmits_it(shot, ext, tmp_path):
    import bpy

    jobs = ext("blender.server_jobs")
    srv = Server(tmp_path / "jobs").start()
    try:
        ext("blender.prefs").get(bpy.context).server_url = srv.url
        shot.parascale.target_camera.keyframe_insert("location", frame=END + 1500)  # a long job
        assert bpy.ops.parascale.generate() == {"FINISHED"}
        rec = shot.parascale_jobs.generate
        first = rec.job_id
        _until(jobs, shot, lambda: rec.state == "running" and rec.progress > 0)
        srv.stop()  # SIGTERM: the server shuts down cleanly while the job runs
        srv.start()  # restarted on the same port and jobs folder
        assert _run_to_end(jobs, shot, 120) == "interrupted", (rec.state, rec.error)
        assert _get_json(f"{srv.url}/v1/jobs/{first}")["state"] == "interrupted"
        layout = RecordingLayout([])
        log = _draw(bpy.types.PARASCALE_PT_generate, bpy.context, layout)
        assert ("label", "Generate interrupted: the server stopped during the job") in log
        assert ("parascale.server_job_retry", {"kind": "generate"}) in [(i, vars(p)) for i, p in layout.op_props]
        assert bpy.ops.parascale.server_job_retry(kind="generate") == {"FINISHED"}
        assert rec.job_id != first
        for name in ("trajectory.json", "depth.npy", "image.png"):  # the same request, sent again
            assert (srv.jobs_dir / rec.job_id / name).read_bytes() == (srv.jobs_dir / first / name).read_bytes()
        assert _run_to_end(jobs, shot, 300) == "done", rec.error
        assert shot.sequence_editor.strips[rec.result_name].frame_final_duration == END + 1500 - START + 1
    finally:
        srv.stop()


def test_a_new_file_during_a_job_carries_it_to_its_clip_on_disk(shot, ext, server):
    import av
    import bpy

    jobs = ext("blender.server_jobs")
    shot.parascale.target_camera.keyframe_insert("location", frame=END + 200)
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    rec = shot.parascale_jobs.generate
    job_id, output = rec.job_id, rec.output_path
    bpy.ops.wm.read_homefile(use_empty=True)  # File > New while the job runs
    assert not jobs._JOBS, "nothing of the closed file is followed as the new file's"
    carried = [c for c in jobs.carried() if c["job"].job_id == job_id]
    assert len(carried) == 1
    deadline = time.monotonic() + 120
    while not carried[0]["job"].finished and time.monotonic() < deadline:
        jobs.tick_all()  # what the persistent timer runs
        time.sleep(0.02)
    assert carried[0]["job"].state == "done", carried[0]["job"].error
    assert _get_json(f"{server.url}/v1/jobs/{job_id}")["state"] == "done", "not cancelled on the server"
    with av.open(output) as clip:
        assert sum(1 for _ in clip.decode(video=0)) == END + 200 - START + 1
    log = _draw(bpy.types.PARASCALE_PT_main, bpy.context)
    assert any(k == "label" and f"result saved at {output}" in t for k, t in log), log


def test_reopening_the_file_takes_a_carried_job_back(shot, ext, tmp_path):
    """Saved with a running job, left for File > New, reopened: the job is the file's again and its
    clip lands as its strip (one job on the server, not a second)."""
    import bpy

    jobs = ext("blender.server_jobs")
    shot.parascale.target_camera.keyframe_insert("location", frame=END + 200)
    assert bpy.ops.parascale.generate() == {"FINISHED"}
    job_id = shot.parascale_jobs.generate.job_id
    bpy.ops.wm.save_as_mainfile(filepath=str(tmp_path / "shot.blend"))
    bpy.ops.wm.read_homefile(use_empty=True)
    assert any(c["job"].job_id == job_id for c in jobs.carried())
    bpy.ops.wm.open_mainfile(filepath=str(tmp_path / "shot.blend"))
    scene = bpy.context.scene
    assert not any(c["job"].job_id == job_id for c in jobs.carried()), "taken back by its file"
    assert scene.parascale_jobs.generate.job_id == job_id
    assert _run_to_end(jobs, scene, 120) == "done"
    strip = scene.sequence_editor.strips[scene.parascale_jobs.generate.result_name]
    assert strip.frame_final_duration == END + 200 - START + 1


class _Layout(RecordingLayout):
    """A recording layout whose rows keep their own ``enabled`` (greyed-out buttons are recorded as such)."""

    def __init__(self, log, ops=None, enabled=True):
        super().__init__(log)
        self.ops, self.parent_enabled = ops if ops is not None else [], enabled

    def _child(self, *a, **k):
        return _Layout(self.log, self.ops, self.parent_enabled and self.enabled)

    row = column = box = split = _child

    def operator(self, idname, **k):
        self.ops.append((idname, self.parent_enabled and self.enabled))
        return super().operator(idname, **k)


def _server_buttons(bpy) -> tuple[dict, list]:
    layout = _Layout([])
    _draw(bpy.types.PARASCALE_PT_generate, bpy.context, layout)
    buttons = dict(layout.ops)
    return {k: buttons[k] for k in ("parascale.server_start", "parascale.server_stop")}, layout.log


def test_start_and_stop_from_the_panel_only_stop_a_server_blender_started(shot, ext, server, monkeypatch):
    import bpy

    ls = ext("blender.local_server")
    monkeypatch.setenv("PYTHONPATH", str(ROOT))  # the server process imports bridge_server from here
    p = ext("blender.prefs").get(bpy.context)
    assert bpy.ops.parascale.server_refresh() == {"FINISHED"}  # the test's own server: not ours
    buttons, log = _server_buttons(bpy)
    assert buttons == {"parascale.server_start": True, "parascale.server_stop": False}
    assert bpy.ops.parascale.server_stop() == {"CANCELLED"}, "a server Blender did not start is never stopped"
    assert urllib.request.build_opener().open(server.url + "/v1/health", timeout=10).status == 200
    url = f"http://127.0.0.1:{free_port()}"
    old = p.server_url, p.server_python, p.server_token
    p.server_url, p.server_python = url, sys.executable
    try:
        assert bpy.ops.parascale.server_start() == {"FINISHED"}
        deadline = time.monotonic() + 60
        while ls.tick() == "starting" and time.monotonic() < deadline:
            time.sleep(0.1)
        assert ls.status()[0] == "running", ls.status()
        buttons, log = _server_buttons(bpy)
        assert buttons == {"parascale.server_start": False, "parascale.server_stop": True}
        assert bpy.ops.parascale.server_refresh() == {"FINISHED"}
        buttons, log = _server_buttons(bpy)
        assert any(k == "label" and t.startswith(f"Server ok at {url}") for k, t in log), log
        proc = ls.running_proc()
        assert bpy.ops.parascale.server_stop() == {"FINISHED"}
        # uvicorn re-raises SIGTERM after its clean shutdown; -SIGKILL would mean it had to be killed
        assert proc.returncode in (0, -signal.SIGTERM), proc.returncode
        buttons, log = _server_buttons(bpy)
        assert buttons == {"parascale.server_start": True, "parascale.server_stop": False}
        assert ("label", f"Local server stopped (pid {proc.pid})") in log
    finally:
        ls.stop()
        p.server_url, p.server_python, p.server_token = old
