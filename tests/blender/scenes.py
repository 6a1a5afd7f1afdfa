"""Scenes the Blender tests build (bpy imported lazily: call only from tests)."""

from __future__ import annotations

import numpy as np


def add_camera(name: str, location, rotation_euler, lens: float = 35.0):
    import bpy

    data = bpy.data.cameras.new(name)
    data.lens = lens
    obj = bpy.data.objects.new(name, data)
    bpy.context.scene.collection.objects.link(obj)
    obj.location = location
    obj.rotation_euler = rotation_euler
    return obj


def animate(obj, frames, locations, eulers) -> None:
    """Key location + Euler rotation with plain keyframe_insert (independent of the add-on's bulk path)."""
    for f, loc, rot in zip(frames, locations, eulers):
        obj.location = loc
        obj.rotation_euler = rot
        obj.keyframe_insert("location", frame=int(f))
        obj.keyframe_insert("rotation_euler", frame=int(f))


def reference_move(n: int = 12, seed: int = 3):
    """A smooth truck + dolly + pan move: (locations (n,3), eulers (n,3))."""
    t = np.linspace(0, 1, n)
    rng = np.random.default_rng(seed)
    loc = np.column_stack([0.5 * t + 0.02 * np.sin(7 * t), -3 + 0.3 * t**2, 1.5 + 0.1 * t])
    rot = np.column_stack([np.full(n, np.radians(80)), 0.05 * t, 0.2 * t]) + rng.normal(0, 1e-3, (n, 3))
    return loc, rot


def opencv_track(obj, scene, frames):
    """Independent read-back: per frame, matrix_world (scale removed) in OpenCV axes."""
    out = []
    for f in frames:
        scene.frame_set(int(f))
        m = np.array(obj.matrix_world)
        m[:3, :3] /= np.linalg.norm(m[:3, :3], axis=0)
        out.append(m @ np.diag([1.0, -1, -1, 1]))
    return np.array(out)


def snapshot(scene) -> dict:
    """Everything an operator could change: datablock names, transforms, actions, ParaScale settings."""
    import bpy

    s = scene.parascale
    props = {k: getattr(s, k) for k in s.bl_rna.properties.keys() if k != "rna_type"}  # noqa: SIM118
    props = {k: (v.name if hasattr(v, "name") else v) for k, v in props.items()}
    return {
        "objects": sorted(o.name for o in bpy.data.objects),
        "actions": sorted(a.name for a in bpy.data.actions),
        "meshes": sorted(m.name for m in bpy.data.meshes),
        "cameras": sorted(c.name for c in bpy.data.cameras),
        "matrices": {o.name: np.array(o.matrix_world).round(9).tolist() for o in bpy.data.objects},
        "assigned": {
            o.name: getattr(o.animation_data, "action", None) and o.animation_data.action.name for o in bpy.data.objects
        },  # fmt: skip
        "render": (scene.render.resolution_x, scene.render.resolution_y, scene.frame_start, scene.frame_end),
        "settings": {k: v for k, v in props.items() if not (isinstance(v, float) and v != v)},
    }


def encode_mp4(frames: list, path, fps: int = 24) -> None:
    """H.264 MP4 (near-lossless) of RGB uint8 frames, with PyAV (independent of Blender's encoder)."""
    import av

    with av.open(str(path), "w") as out:
        stream = out.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = frames[0].shape[1], frames[0].shape[0], "yuv420p"
        stream.options = {"crf": "10", "preset": "veryfast"}
        for img in frames:
            out.mux(stream.encode(av.VideoFrame.from_ndarray(img, format="rgb24")))
        out.mux(stream.encode())
