"""Estimate Plate Depth: the plate image → a Depth Anything job on the server → ``<plate>_depth.npy``.

The result (float32 (H, W) z-depth, NaN invalid; relative models are normalised to a median of 1,
so set the depth scale) is saved next to the plate (or the .blend) and becomes the Generate plate
depth; "Plate + Depth" in the Target panel then builds the point cloud from it. The job is
followed by the server-jobs timer (progress and Cancel in the panels). A server without the
weights refuses the job with a message naming what is missing; that message is shown as is.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..client import BridgeError, submit_depth
from . import prefs, server_jobs

KIND = "depth"


def apply_depth_result(scene, st, path: str) -> str:
    """Server-jobs handler: check the downloaded .npy and make it the plate depth."""
    try:
        depth = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise ValueError(f"{os.path.basename(path)}: the server's depth map cannot be read ({e})") from None
    name = os.path.basename(path)
    if depth.ndim != 2 or not np.issubdtype(depth.dtype, np.floating):
        raise ValueError(f"{name}: expected a (H, W) float depth map, got {depth.dtype} {depth.shape}")
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise ValueError(f"{os.path.basename(path)}: the estimated depth has no valid (positive, finite) pixel")
    g = scene.parascale_generate
    g.plate_depth = path
    h, w = depth.shape
    msg = f"plate depth {w}x{h} saved to {os.path.basename(path)} (median {float(np.median(depth[valid])):.3g})"
    scene.parascale.last_report = msg[:200]
    return msg


class PARASCALE_OT_estimate_plate_depth(bpy.types.Operator):
    """Estimate the plate's depth with Depth Anything on the ParaScale server (saved next to the plate)"""

    bl_idname = "parascale.estimate_plate_depth"
    bl_label = "Estimate Plate Depth"

    def execute(self, context):
        scene = context.scene
        g = scene.parascale_generate
        plate = bpy.path.abspath(g.plate_image) if g.plate_image else ""
        st = server_jobs.settings(scene, KIND)
        try:
            if not plate or not os.path.isfile(plate):
                raise server_jobs.JobError(f"choose the plate image first (not found: {plate or '(empty path)'})")
            if server_jobs.is_running(scene, KIND):
                raise server_jobs.JobError("a plate depth job is already running for this scene: cancel it first")
            cl = server_jobs.client(context)
            stem = os.path.splitext(os.path.basename(plate))[0]
            output = server_jobs.unique_path(server_jobs.output_folder(plate), f"{stem}_depth", ".npy")
            p = prefs.get(context)
            params = {"model": p.depth_model} if p is not None and p.depth_model.strip() else {}
            status = submit_depth(cl, plate, params)
            job = server_jobs.start(scene, KIND, cl, status, plate, output, params)
        except (server_jobs.JobError, BridgeError, OSError) as e:
            st.state, st.error = "failed", str(e)[:1000]
            self.report({"ERROR"}, f"Estimate depth: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Estimate depth: job {job.job_id[:8]} {job.state}")
        return {"FINISHED"}


class PARASCALE_OT_estimate_plate_depth_cancel(bpy.types.Operator):
    """Cancel the running plate depth job"""

    bl_idname = "parascale.estimate_plate_depth_cancel"
    bl_label = "Cancel Depth"

    def execute(self, context):
        if not server_jobs.cancel(context.scene, KIND):
            self.report({"WARNING"}, "Estimate depth: no running job")
            return {"CANCELLED"}
        return {"FINISHED"}


def draw(layout, context) -> None:
    """The button, or the running job's progress and Cancel; the last error."""
    if not server_jobs.draw_job(layout, context.scene, KIND, "parascale.estimate_plate_depth_cancel"):
        layout.operator("parascale.estimate_plate_depth", icon="MOD_DISPLACE")


classes = (PARASCALE_OT_estimate_plate_depth, PARASCALE_OT_estimate_plate_depth_cancel)


def register() -> None:
    server_jobs.register_handler(KIND, apply_depth_result)
