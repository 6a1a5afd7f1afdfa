"""Estimate Plate Depth: the target step's plate image → a Depth Anything job on the server →
``<plate>_depth.npy``, which becomes the target step's plate depth.

The result (float32 (H, W) z-depth, NaN invalid; relative models are normalised to a median of 1,
so set the plate depth scale) is saved next to the plate (or the .blend); "Plate + Depth" in the
Target panel then builds the point cloud from it and Generate sends it. The job is a server job
(kind ``"depth"``: progress and Cancel in the panel). A server without the weights refuses the
job with a message naming what is missing; that message is shown as is.
"""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..client import BridgeError, JobRequest, wire
from . import plate, polls, prefs, server_jobs

KIND = "depth"


def apply_depth_result(scene, st, path: str) -> str:
    """Server-jobs handler: check the downloaded depth map and make it the plate depth."""
    name = os.path.basename(path)
    depth = plate.read_plate_depth(path, "METRES")
    valid = np.isfinite(depth) & (depth > 0)
    if not valid.any():
        raise ValueError(f"{name}: the estimated depth has no valid (positive, finite) pixel")
    scene.parascale.target_plate_depth = path
    st.result_name = name
    h, w = depth.shape
    msg = f"plate depth {w}x{h} saved to {name} (median {float(np.median(depth[valid])):.3g})"
    scene.parascale.last_report = msg[:200]
    return msg


class PARASCALE_OT_estimate_plate_depth(bpy.types.Operator):
    """Estimate the plate's depth with Depth Anything on the ParaScale server (saved next to the plate)"""

    bl_idname = "parascale.estimate_plate_depth"
    bl_label = "Estimate Plate Depth"
    bl_options = {"REGISTER"}  # submits a server job; its result lands later, outside undo

    @classmethod
    def poll(cls, context):
        if server_jobs.is_running(context.scene, KIND):
            return polls.fail(cls, "Estimate depth: a job is running; wait for it or Cancel it")
        if not context.scene.parascale.target_plate_image:
            return polls.fail(cls, "Estimate depth: choose the plate image first (Target panel)")
        return True

    def execute(self, context):
        scene = context.scene
        image = plate.plate_paths(scene)[0]
        try:
            if not image or not os.path.isfile(image):
                raise server_jobs.JobError(f"choose the plate image first (not found: {image or '(empty path)'})")
            server_jobs.check_idle(scene, KIND)
            cl = server_jobs.client(context)
            stem = os.path.splitext(os.path.basename(image))[0]
            output = server_jobs.unique_path(server_jobs.output_folder(image), f"{stem}_depth", ".npy")
            p = prefs.get(context)
            params = {"model": p.depth_model} if p is not None and p.depth_model.strip() else {}
            request = JobRequest(image=image, backend=wire.DEPTH_ANYTHING, params=params)
            job = server_jobs.start(scene, KIND, cl, request, image, output, params)
        except (server_jobs.JobError, BridgeError, OSError) as e:
            server_jobs.set_error(scene, KIND, e)
            self.report({"ERROR"}, f"Estimate depth: {e}")
            return {"CANCELLED"}
        self.report({"INFO"}, f"Estimate depth: job {(job.job_id or 'being submitted')[:8]} {job.state}")
        return {"FINISHED"}


classes = (PARASCALE_OT_estimate_plate_depth,)


def register() -> None:
    server_jobs.register_handler(KIND, apply_depth_result)
