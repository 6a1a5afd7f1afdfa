"""The one bake: an animated camera as the artist exports it (Bake) and as Generate sends it."""

from __future__ import annotations

import bpy
import numpy as np

from ..core.camera import Trajectory
from . import convert, keys
from .ops_rescale import EXTRAS


def baked_trajectory(context, cam) -> Trajectory:
    """The camera at every frame from its first to its last key, at the scene's frame rate.

    Parents, constraints and drivers are evaluated (``scene.frame_set``). The Π/α curves that
    Rescale keyed become extras (NaN at frames without a key); metadata names the camera, the
    Blender version and, for a rescaled action, its mode, the sky rule of its Π (``allow_sky``: what
    the server's closed loop needs to read ``pi_ref`` in the same measure) and PCE.
    """
    scene = context.scene
    keyed = convert.keyed_frames(cam) if getattr(cam, "type", None) == "CAMERA" else np.zeros(0, np.int64)
    frames = np.arange(keyed[0], keyed[-1] + 1) if len(keyed) else None  # None: "no animation"
    traj = convert.trajectory_from_camera(cam, scene, frames)
    extras = {}
    for name in EXTRAS:
        fv = keys.fcurve_values(cam, f'["{name}"]')
        if fv is not None:
            at = {int(round(f)): v for f, v in zip(*fv)}
            extras[name] = np.array([at.get(int(f), np.nan) for f in traj.frames], dtype=np.float64)
    s = scene.parascale
    meta: dict = {"source": f"Blender camera {cam.name}", "blender": bpy.app.version_string}
    ad = cam.animation_data
    if ad is not None and ad.action is not None and ad.action is s.result_action:
        sky = bool(ad.action.get("parascale_allow_sky", s.allow_sky))
        meta.update(
            mode=ad.action.get("parascale_mode", s.mode), allow_sky=sky, solver_residual=float(s.solver_residual)
        )
    return traj.replace(fps=scene.render.fps / scene.render.fps_base, extras=extras, metadata=meta)
