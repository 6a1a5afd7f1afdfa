"""Key precision: how far Blender's float32 evaluation moves a keyed camera off the computed move.

Blender stores F-curve keys, object locations and ``matrix_world`` in float32. Far from the world
origin the representable positions are spaced ``np.spacing(float32(distance))`` apart (7.6 µm at
100 m, 61 µm at 1 km), so a move whose steps are a few such spacings long is realized with steps of
the wrong length and direction. A parent at the shot's origin with small local keys does not help:
``matrix_world`` (what the renderer and ``ray_cast`` use) is the float32 product of both. The only
remedy is the shot's placement, so the rescale re-measures the move Blender evaluates and says so.
"""

from __future__ import annotations

import numpy as np

from .metrics import pce

KEY_PRECISION_WARNING = 1e-3  # warn when float32 keys alone cost more PCE than this


def key_precision_warning(
    intended_c2w: np.ndarray, evaluated_c2w: np.ndarray, pi_intended: np.ndarray, pi_evaluated: np.ndarray
) -> tuple[float, str | None]:
    """(PCE of the evaluated move's Π against the intended move's Π, a warning or None).

    ``intended_c2w`` / ``evaluated_c2w`` (N,4,4): the computed poses and Blender's evaluated ones
    (read back after keying), in the same world units; ``pi_*``: their Π per step (index 0 NaN)."""
    key_pce = pce(pi_evaluated, pi_intended, strict=False)
    if not key_pce > KEY_PRECISION_WARNING:
        return key_pce, None
    centres = np.asarray(intended_c2w)[:, :3, 3]
    distance = float(np.linalg.norm(centres, axis=1).max())
    spacing = float(np.spacing(np.float32(np.abs(centres).max())))
    steps = np.linalg.norm(np.diff(centres, axis=0), axis=1)
    step = float(np.median(steps[steps > 0])) if (steps > 0).any() else 0.0
    return key_pce, (
        f"key precision: the camera is {distance:.4g} units from the world origin, where Blender's float32 "
        f"positions are {spacing:.2g} units apart, and it steps {step:.2g} units per frame (median): the "
        f"keyed move Blender evaluates is off the computed parallax by PCE {key_pce:.3g}. Move the shot "
        "(scene and camera) nearer the world origin and rescale again"
    )
