"""The demo's Blender stage: the artist's whole flow, in real headless Blender (the bpy module).

1. Install the built extension zip into an isolated user folder and enable it, as a user would.
2. Build the built-in desk scene (metres) and a target camera.
3. Shot A: import the bundled real RealEstate10K track with its depth as a subject distance.
   Shot B: a synthetic reference room (2-6 m) built in Blender with an animated camera; its depth
   is the room's exact geometry.
4. Show the target scene as a coloured point cloud, rescale each shot onto its own target camera
   (a new action; the original is kept), bake the trajectory to ParaScale JSON.
5. Start the bridge server on loopback, generate each clip with the ``warp`` backend through the
   add-on's Generate operator (driven by ``tick_scene``, as Blender's timer would), and let the clip
   land in the Video Sequencer at the shot's start frame.
6. Measure the realized parallax of each generated clip (optical flow, rotation removed) against
   the reference's Π, print the PCE the server measured as the Generate panel shows it (the strip's
   ``parascale_pce``), save the .blend, a plot of the Π curves and a Markdown report.

Run it through ``parascale demo``; bpy can be imported once per process, so this module sets
Blender's user folders before the first ``import bpy``.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from parascale_blender.client import TERMINAL, wire
from parascale_blender.core.metrics import pce

ROOT = Path(__file__).resolve().parents[1]
SHOT_A_START, SHOT_GAP = 1, 10  # shot B starts SHOT_GAP frames after shot A's move ends


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _isolate_blender_user(out: Path) -> None:
    if "bpy" in sys.modules:
        return
    user = out / "_blender_user"
    for key, sub in (("BLENDER_USER_EXTENSIONS", "extensions"), ("BLENDER_USER_CONFIG", "config")):
        os.environ[key] = str(user / sub)
    os.environ["BLENDER_USER_SCRIPTS"] = str(user / "scripts")


def install_extension(out: Path):
    """Build the zip with the project's build script, install it, enable it; returns the module."""
    sys.path.insert(0, str(ROOT / "scripts"))
    try:
        import build_extension
    finally:
        sys.path.pop(0)
    zip_path = build_extension.build(out / "_dist")
    import bpy  # noqa: I001
    import addon_utils

    res = bpy.ops.extensions.package_install_files(filepath=str(zip_path), repo="user_default", enable_on_install=False)
    if res != {"FINISHED"}:
        raise RuntimeError(f"installing {zip_path} failed: {res}")
    mod = addon_utils.enable("bl_ext.user_default.parascale", default_set=True)
    if mod is None:
        raise RuntimeError("enabling the ParaScale extension failed (see the console)")
    return zip_path


def _ext(name: str):
    import importlib

    return importlib.import_module(f"bl_ext.user_default.parascale.{name}")


def _mesh_object(name: str, vertices, triangles, colors, collection, texture_scale: float):
    import bpy

    me = bpy.data.meshes.new(name)
    me.vertices.add(len(vertices))
    me.vertices.foreach_set("co", np.asarray(vertices, np.float32).ravel())
    me.loops.add(3 * len(triangles))
    me.loops.foreach_set("vertex_index", np.asarray(triangles, np.int32).ravel())
    me.polygons.add(len(triangles))
    me.polygons.foreach_set("loop_start", np.arange(0, 3 * len(triangles), 3, dtype=np.int32))
    me.update()
    attr = me.color_attributes.new("Col", "FLOAT_COLOR", "CORNER")
    rgba = np.concatenate([np.repeat(np.asarray(colors, np.float32), 3, axis=0), np.ones((3 * len(triangles), 1))], 1)
    attr.data.foreach_set("color", rgba.astype(np.float32).ravel())
    # Vertex colour x procedural noise: texture for the eye and for the optical flow that measures the clip.
    mat = bpy.data.materials.new(f"{name} colour")
    mat.use_nodes = True
    nodes, links = mat.node_tree.nodes, mat.node_tree.links
    col = nodes.new("ShaderNodeVertexColor")
    col.layer_name = "Col"
    coord = nodes.new("ShaderNodeTexCoord")
    noise = nodes.new("ShaderNodeTexNoise")
    noise.inputs["Scale"].default_value = texture_scale
    noise.inputs["Detail"].default_value = 8.0
    links.new(coord.outputs["Object"], noise.inputs["Vector"])
    mix = nodes.new("ShaderNodeMix")
    mix.data_type, mix.blend_type = "RGBA", "MULTIPLY"
    mix.inputs["Factor"].default_value = 1.0
    sock = {s.identifier: s for s in mix.inputs}
    links.new(col.outputs["Color"], sock["A_Color"])
    links.new(noise.outputs["Color"], sock["B_Color"])
    out = next(o for o in mix.outputs if o.identifier == "Result_Color")
    links.new(out, nodes["Principled BSDF"].inputs["Base Color"])
    me.materials.append(mat)
    obj = bpy.data.objects.new(name, me)
    collection.objects.link(obj)
    return obj


def _camera(name: str, c2w_blender: np.ndarray, lens: float = 24.0):
    import bpy
    from mathutils import Matrix

    cam = bpy.data.objects.new(name, bpy.data.cameras.new(name))
    cam.data.lens = lens
    cam.data.sensor_width = 36.0
    cam.data.sensor_fit = "HORIZONTAL"
    cam.data.clip_start = 0.001
    cam.matrix_world = Matrix(np.asarray(c2w_blender).tolist())
    bpy.context.scene.collection.objects.link(cam)
    return cam


def build_scenes(quick: bool):
    """The desk target (collection 'Target') and the synthetic reference room (collection 'Reference')."""
    import bpy

    from parascale_tools.scenes import box, desk_scene, look_at_blender, merge

    bpy.ops.wm.read_homefile(use_empty=True)
    scene = bpy.context.scene
    scene.render.resolution_x, scene.render.resolution_y = (320, 180) if quick else (640, 360)
    scene.render.resolution_percentage = 100
    scene.render.fps = 30
    scene.render.engine = "CYCLES"
    scene.cycles.samples = 2 if quick else 8
    scene.cycles.device = "CPU"
    world = bpy.data.worlds.new("World")
    world.use_nodes = True
    background = world.node_tree.nodes["Background"]
    background.inputs["Color"].default_value = (0.75, 0.8, 0.9, 1.0)
    background.inputs["Strength"].default_value = 1.5
    scene.world = world
    target = bpy.data.collections.new("Target")
    scene.collection.children.link(target)
    desk = desk_scene()
    _mesh_object("Desk", desk.vertices, desk.triangles, desk.colors, target, texture_scale=60.0)
    sun = bpy.data.objects.new("Sun", bpy.data.lights.new("Sun", "SUN"))
    sun.data.energy = 3.0
    sun.rotation_euler = (0.6, 0.2, 0.4)
    scene.collection.objects.link(sun)
    # The reference room for shot B: 6 x 8 x 3 m, furniture 2-5 m from the camera.
    reference = bpy.data.collections.new("Reference")
    scene.collection.children.link(reference)
    room = merge(
        [
            box((0, 4, 1.5), (6, 0.2, 3), (0.8, 0.75, 0.6)),
            box((-3, 0, 1.5), (0.2, 8, 3), (0.6, 0.7, 0.8)),
            box((3, 0, 1.5), (0.2, 8, 3), (0.7, 0.8, 0.6)),
            box((0, 0, -0.1), (6, 8, 0.2), (0.5, 0.4, 0.3)),
            box((-1.0, 2.0, 0.5), (1.2, 0.6, 1.0), (0.7, 0.3, 0.3)),
            box((1.2, 1.0, 0.9), (0.5, 0.5, 1.8), (0.3, 0.3, 0.7)),
        ]
    )
    ref_room = _mesh_object("Reference room", *room, reference, texture_scale=6.0)
    ref_room.location = (100.0, 0.0, 0.0)  # far from the desk, so neither scene sees the other
    ref_cam = _camera("Reference B", look_at_blender((100.0, -3.0, 1.6), (100.0, 3.0, 1.2)))
    return scene, desk, target, reference, ref_cam, room


def _animate_reference_b(cam, start: int, n: int) -> None:
    """A slow truck-and-push in the room: 2.5 cm per frame right, 1.5 cm forward."""
    import bpy

    scene = bpy.context.scene
    base = cam.location.copy()
    for i in range(n):
        cam.location = (base.x + 0.025 * i, base.y + 0.015 * i, base.z)
        cam.keyframe_insert("location", frame=start + i)
        cam.keyframe_insert("rotation_euler", frame=start + i)
    scene.frame_set(start)


def _tick_until_done(server_jobs, scene, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        state = server_jobs.tick_scene(scene, "generate")
        if state in TERMINAL:
            return state
        time.sleep(0.05)
    raise RuntimeError(f"generation did not finish within {timeout:.0f} s")


def _decode(path: Path) -> np.ndarray:
    import av

    with av.open(str(path)) as box:
        return np.stack([f.to_ndarray(format="rgb24") for f in box.decode(video=0)])


def realized_pce(clip: Path, baked: Path, reference: Path, reference_depth, target_depth):
    """PCE of the generated clip: its optical-flow Π against the reference's Π in the same (flow) measure.

    Π_ref,t comes from the reference camera and its depth (core depth sources); Π of the clip is
    measured on the decoded frames (rotation flow removed); the model's flow Π of the output track
    over the target geometry is returned too. Returns (PCE, measured, Π_ref, Π_model).
    """
    from bridge_server.clip_parallax import FINEST_SCALE
    from bridge_server.flow_parallax import measured_parallax
    from parascale_blender.core.parallax import ParallaxProbe
    from parascale_blender.formats.registry import read_trajectory

    out, ref = read_trajectory(baked), read_trajectory(reference)
    frames = _decode(clip)
    n = min(len(frames), len(out), len(ref))
    out = out.replace(frames=out.frames[:n], c2w=out.c2w[:n], intrinsics=out.intrinsics[:n], extras={})
    measured = measured_parallax(frames[:n], np.ones(frames[:n].shape[:3], bool), out, finest_scale=FINEST_SCALE)

    def flow_pi(track, depth):
        steps, pi = track.steps_in_camera(), np.full(n, np.nan)
        for t in range(1, n):
            view = depth.view(track.c2w[t - 1], track.camera(t - 1).working(160))
            pi[t] = ParallaxProbe.from_view(view, allow_sky=True).parallax(steps[t - 1], "flow")
        return pi

    pi_ref, pi_model = flow_pi(ref, reference_depth), flow_pi(out, target_depth)
    return pce(measured, pi_ref, strict=False), measured, pi_ref, pi_model


def plot_curves(shots: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(shots), figsize=(6 * len(shots), 4), dpi=100, squeeze=False)
    for ax, (name, s) in zip(axes[0], shots.items()):
        f = np.arange(len(s["pi_ref"]))
        ax.plot(f, s["pi_ref"], "k-", lw=2, label="Π reference (flow measure)")
        ax.plot(f, s["pi_realized"], "C0--", label="Π of the output track over the target geometry")
        ax.plot(f, s["pi_measured"], "C1o", ms=4, label="Π measured on the clip (optical flow)")
        ax2 = ax.twinx()
        ax2.plot(f, s["alpha"], "C2:", label="α")
        ax2.set_ylabel("α (target units per reference unit)")
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("Π per step")
        ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def blender_demo(out: Path, quick: bool = False) -> dict:
    _isolate_blender_user(out)
    import bpy

    from parascale_blender.formats.registry import read_trajectory
    from parascale_tools.reference import REFERENCE_SUBJECT_DISTANCE, bundled_reference_path

    t0 = time.perf_counter()
    zip_path = install_extension(out)
    print(f"[blender] installed and enabled {zip_path.name}")
    scene, desk, target, reference, ref_b, room = build_scenes(quick)
    s = scene.parascale
    server_jobs = _ext("blender.server_jobs")
    _ext("blender.prefs").get(bpy.context).working_size = 96 if quick else 160

    # Shot A: the real RealEstate10K track, depth = a known subject distance.
    assert bpy.ops.import_scene.parascale_track(
        filepath=str(bundled_reference_path()), frame_offset=SHOT_A_START, set_scene=False, image_size=(640, 360)
    ) == {"FINISHED"}, s.last_report
    ref_a = s.reference_camera
    s.reference_depth, s.reference_distance = "DISTANCE", REFERENCE_SUBJECT_DISTANCE
    n = len(_ext("blender.convert").keyed_frames(ref_a))  # retimed to the scene's fps by the import
    from parascale_blender.core.depth import ConstantDepth
    from parascale_blender.core.depth_sources import MeshDepth

    shots = {
        "A: RealEstate10K track (subject distance)": dict(
            ref=ref_a, depth="DISTANCE", start=SHOT_A_START, n=n, core_depth=ConstantDepth(REFERENCE_SUBJECT_DISTANCE)
        ),
    }
    n_b = 8 if quick else 16
    b_start = SHOT_A_START + n + SHOT_GAP  # the shots follow each other on the timeline, as an edit does
    _animate_reference_b(ref_b, b_start, n_b)
    desk_depth = MeshDepth(desk.vertices, desk.triangles)
    room_depth = MeshDepth(room[0] + np.array([100.0, 0.0, 0.0]), room[1])  # as placed in the scene
    shots["B: Blender room, exact geometry depth"] = dict(
        ref=ref_b, depth="SCENE", start=b_start, n=n_b, core_depth=room_depth
    )
    scene.frame_start, scene.frame_end = SHOT_A_START, b_start + n_b - 1

    port = _free_port()
    jobs = out / "_jobs"
    server = subprocess.Popen(
        [sys.executable, "-m", "bridge_server", "--port", str(port), "--jobs-dir", str(jobs)],
        stdout=subprocess.DEVNULL,
        stderr=open(out / "server.log", "w"),  # noqa: SIM115 (kept open for the server's life)
    )
    _ext("blender.prefs").get(bpy.context).server_url = f"http://127.0.0.1:{port}"
    results = {}
    try:
        for i, (name, shot) in enumerate(shots.items()):
            tag = "AB"[i]
            cam = _camera(f"Target {tag}", desk.start_c2w_blender)
            cam.keyframe_insert("location", frame=shot["start"])  # an artist's placeholder move
            cam.keyframe_insert("rotation_euler", frame=shot["start"])
            s.reference_camera = shot["ref"]
            s.reference_depth = shot["depth"]
            s.reference_collection = reference
            s.target_camera, s.target_start_frame = cam, shot["start"]
            s.target_collection, s.mode = target, "exact"
            scene.frame_set(shot["start"])
            assert bpy.ops.parascale.points_from_scene(resolution=96 if quick else 240) == {"FINISHED"}
            s.target_points.name = f"Target {tag} points"
            s.target_depth = "SCENE"  # rescale against the exact meshes; the points are for the artist
            assert bpy.ops.parascale.rescale() == {"FINISHED"}, s.last_report
            baked, ref_file = out / f"shot_{tag}.json", out / f"reference_{tag}.json"
            assert bpy.ops.export_scene.parascale_track(filepath=str(baked), format="parascale") == {"FINISHED"}
            assert bpy.ops.export_scene.parascale_track(
                filepath=str(ref_file), format="parascale", camera=shot["ref"].name
            ) == {"FINISHED"}
            print(f"[blender] shot {tag}: {s.last_report}")
            g, job = scene.parascale_generate, scene.parascale_jobs.generate
            g.source, g.backend, g.output_dir = "RENDER", wire.WARP, str(out)
            _wait_for_server(port)
            assert bpy.ops.parascale.generate() == {"FINISHED"}, job.error
            state = _tick_until_done(server_jobs, scene, timeout=600)
            if state != wire.DONE:
                raise RuntimeError(f"shot {tag}: generation {state}: {job.error}")
            strip = scene.sequence_editor.strips[job.result_name]
            shown = _ext("blender.closed_loop").line(strip)  # the Generate panel's line, from the strip
            pce_measured, measured, pi_ref, pi_model = realized_pce(
                Path(job.output_path), baked, ref_file, shot["core_depth"], desk_depth
            )
            track = read_trajectory(baked)
            results[name] = {
                "clip": job.output_path,
                "baked": str(baked),
                "strip": {"name": strip.name, "channel": strip.channel, "start": strip.frame_final_start,
                          "frames": strip.frame_final_duration},
                "rescale_report": s.last_report,
                "pce_keyed": float(s.pce),  # the keys Blender plays, re-measured (the panel's PCE)
                "pce_keyed_on": s.pce_measured_on,
                "solver_residual": float(s.solver_residual),
                "pce_measured": pce_measured,
                "pce_panel": float(strip.get("parascale_pce", float("nan"))),
                "pce_panel_label": str(strip.get("parascale_pce_label", "")),
                "panel_line": shown,
                "alpha_range": [float(s.scale_min), float(s.scale_max)],
                "pi_ref": pi_ref.tolist(),
                "pi_realized": pi_model.tolist(),
                "pi_measured": measured.tolist(),
                "alpha": track.extras["alpha"].tolist(),
            }  # fmt: skip
            print(f"[blender] shot {tag}: clip {Path(job.output_path).name} -> strip {strip.name!r} "
                  f"at frame {strip.frame_final_start}, channel {strip.channel}; realized PCE (optical flow) "
                  f"{pce_measured:.3f}; as the panel shows it: {shown}")  # fmt: skip
    finally:
        server.terminate()
        server.wait(timeout=20)
    blend = out / "parascale_demo.blend"
    bpy.ops.wm.save_as_mainfile(filepath=str(blend))
    plot_curves(results, out / "pi_curves.png")
    report = write_markdown(out, results, blend, time.perf_counter() - t0)
    (out / "demo_results.json").write_text(json.dumps(results, indent=1))
    print(f"[blender] saved {blend.name}, pi_curves.png, {report.name}")
    keep = ("clip", "pce_keyed", "pce_measured", "panel_line", "alpha_range")
    return {k: {kk: v[kk] for kk in keep} for k, v in results.items()}


def _wait_for_server(port: int, timeout: float = 120.0) -> None:
    from parascale_blender.client.http import BridgeClient, BridgeError

    client = BridgeClient(f"http://127.0.0.1:{port}", timeout=2.0)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            client.health()
            return
        except BridgeError:
            time.sleep(0.3)
    raise RuntimeError(f"the bridge server did not start on port {port} (see server.log)")


def write_markdown(out: Path, results: dict, blend: Path, seconds: float) -> Path:
    lines = [
        "# ParaScale demo",
        "",
        f"Ran in {seconds:.0f} s on this machine, headless, no weights, no network.",
        "",
        "| shot | α range | PCE as keyed | PCE measured on the generated clip | as the panel shows it | strip |",
        "|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        st = r["strip"]
        lines.append(
            f"| {name} | {r['alpha_range'][0]:.4g} – {r['alpha_range'][1]:.4g} | {r['pce_keyed']:.2e} | "
            f"{r['pce_measured']:.3f} | {r['panel_line']} | {st['name']} @ frame {st['start']}, {st['frames']} frames, "
            f"channel {st['channel']} |"
        )
    lines += [
        "",
        "PCE as keyed: the camera Blender plays (its keys evaluated), re-measured on the target depth against",
        "the reference's Π (what float32 keys, parents and constraints cost; the solver's residual is not shown);",
        "the measured PCE compares the optical flow of the generated clip (rotation removed) with the",
        "reference Π, so it includes the optical-flow estimator's own error and the warp preview's",
        "hole filling. The panel's PCE is the server's closed loop (`bridge_server.clip_parallax`): the",
        "clip's flow Π against the reference's Π carried into flow measure on the same pixels (flow/flow).",
        "",
        f"Files: `{blend.name}` (open it in Blender 4.2+ with the ParaScale extension), the clips, the baked",
        "trajectories `shot_*.json`, `pi_curves.png`.",
        "",
        "![Π curves](pi_curves.png)",
        "",
    ]
    path = out / "report.md"
    path.write_text("\n".join(lines))
    return path
