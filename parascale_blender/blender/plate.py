"""The target step's plate: its image and z-depth map (``scene.parascale.target_plate_*``), read
here for the target points, Estimate Plate Depth and Generate. Plate depth is the depth of the
plate image (a file), not the depth of the scene's geometry (``scene_depth``)."""

from __future__ import annotations

import os

import bpy
import numpy as np

from ..core.depth import DepthError


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


def read_plate_depth(path: str, scale: float | None = None) -> np.ndarray:
    """(H, W) float32 z-depth in world units, NaN = none, through ``formats.depthmaps.read_depth_map``
    (``scale``: world units per stored value, None = the format's default)."""
    from ..formats.depthmaps import read_depth_map

    if not path or not os.path.isfile(path):
        raise DepthError(f"plate depth: file not found at {path or '(empty path)'}")
    d = np.asarray(read_depth_map(path, scale=scale), dtype=np.float32)
    if d.ndim != 2:
        raise DepthError(f"{os.path.basename(path)}: a depth map must be one channel (H, W), got shape {d.shape}")
    return d


def plate_paths(scene) -> tuple[str, str, float | None]:
    """(plate image path, plate depth path, depth scale or None = the format's default) of the target
    step, paths made absolute."""
    s = scene.parascale
    image = bpy.path.abspath(s.target_plate_image) if s.target_plate_image else ""
    depth = bpy.path.abspath(s.target_plate_depth) if s.target_plate_depth else ""
    return image, depth, float(s.target_plate_depth_scale) or None
