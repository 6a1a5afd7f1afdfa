"""The target step's plate: its image and z-depth map (``scene.parascale.target_plate_*``), read
here for the target points, Estimate Plate Depth and Generate. Plate depth is the depth of the
plate image (a file), not the depth of the scene's geometry (``scene_depth``)."""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..core.depth import DepthError

# What a plate-depth file stores; every choice ends as z-depth in scene units.
DEPTH_UNIT_ITEMS = [
    ("AUTO", "Format default", "16-bit PNG in millimetres; .npy, .exr and .pfm in scene units"),
    ("METRES", "Metres", "The stored value is the z-depth in scene units"),
    ("MILLIMETRES", "Millimetres", "The stored value is the z-depth in millimetres"),
    ("INVERSE", "Inverse depth", "The stored value is 1 / z-depth (1 / scene units), as disparity-like maps"),
    ("SCALE", "Custom scale", "z-depth = stored value × Scale (e.g. 1/5000 for TUM RGB-D PNGs)"),
]
_UNIT_SCALE = {"AUTO": None, "METRES": 1.0, "MILLIMETRES": 0.001, "INVERSE": 1.0}


def read_plate_image(path: str) -> np.ndarray:
    """(H, W, 3) float32 colours of an image file, top row first (Blender loads bottom-up)."""
    img = bpy.data.images.load(path, check_existing=False)
    try:
        w, h = img.size
        if w == 0 or h == 0:
            raise DepthError(f"{path}: could not read the plate image")
        px = np.empty(w * h * img.channels, dtype=np.float32)
        img.pixels.foreach_get(px)  # pyright: ignore[reportAttributeAccessIssue]
        px = px.reshape(h, w, img.channels)[::-1]
        px = px[:, :, :3] if img.channels >= 3 else np.repeat(px[:, :, :1], 3, axis=2)
    finally:
        bpy.data.images.remove(img)
    return px


def read_plate_depth(path: str, unit: str = "AUTO", scale: float = 0.0) -> np.ndarray:
    """(H, W) float32 z-depth in scene units, NaN = none, through ``formats.depthmaps.read_depth_map``;
    ``unit`` one of :data:`DEPTH_UNIT_ITEMS` (``scale`` for ``SCALE``)."""
    from ..formats.depthmaps import read_depth_map

    if not path:
        raise DepthError("plate depth: no file chosen (set Plate depth in the Target panel, or pick a file)")
    if not os.path.isfile(path):
        raise DepthError(f"plate depth: file not found at {path}")
    if unit == "SCALE" and not scale > 0:
        raise DepthError("plate depth: a custom unit needs a positive Scale")
    d = read_depth_map(path, scale=scale if unit == "SCALE" else _UNIT_SCALE[unit])
    if unit == "INVERSE":
        d = 1.0 / d  # empty (NaN) stays empty
    d = np.asarray(d, dtype=np.float32)
    if d.ndim != 2:
        raise DepthError(f"{os.path.basename(path)}: a depth map must be one channel (H, W), got shape {d.shape}")
    return d


def plate_paths(scene) -> tuple[str, str]:
    """(plate image path, plate depth path) of the target step, made absolute ("" when unset)."""
    s = scene.parascale
    image = bpy.path.abspath(s.target_plate_image) if s.target_plate_image else ""
    depth = bpy.path.abspath(s.target_plate_depth) if s.target_plate_depth else ""
    return image, depth


def read_target_plate_depth(scene) -> np.ndarray:
    """The target step's plate depth in scene units (its file, unit and scale)."""
    s = scene.parascale
    return read_plate_depth(plate_paths(scene)[1], s.target_plate_depth_unit, s.target_plate_depth_scale)
