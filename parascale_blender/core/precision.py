"""Key precision: how far Blender's float32 evaluation moves a keyed camera off the computed move.

Blender stores F-curve keys, object locations and ``matrix_world`` in float32. Far from the world
origin the representable positions are spaced ``np.spacing(float32(distance))`` apart (7.6 µm at
100 m, 61 µm at 1 km), so a move whose steps are a few such spacings long is realized with steps of
the wrong length and direction. A parent at the shot's origin with small local keys does not help:
``matrix_world`` (what the renderer and ``ray_cast`` use) is the float32 product of both. The only
remedy is the shot's placement, so the rescale re-measures the move Blender evaluates and says so.
An evaluated pose further off than float32 explains is not precision (a driver, a constraint, a
parent keyed wrongly): the warning then says that instead of advising to move the scene.
"""

from __future__ import annotations

import numpy as np

from .metrics import geodesic_angle, pce

KEY_PRECISION_WARNING = 1e-3  # warn when float32 keys alone cost more PCE than this
FLOAT32_ULPS = 64  # an evaluated position further than this many float32 spacings off is not precision
FLOAT32_ANGLE = 1e-5  # radians: an evaluated rotation further off than this is not precision


def float32_bound(magnitude: float) -> float:
    """The largest position error (units) float32 keys and matrix products explain at ``magnitude``
    units from the origin (the largest coordinate of the poses or of a parent)."""
    return FLOAT32_ULPS * float(np.spacing(np.float32(max(abs(magnitude), 1e-30))))


def off_move(intended_c2w: np.ndarray, evaluated_c2w: np.ndarray, magnitude: float = 0.0) -> tuple[int, float, float]:
    """(index of the worst frame, its position error, its rotation error in radians) where the evaluated
    poses leave the intended ones by more than float32 explains (:func:`float32_bound` at the larger of
    ``magnitude`` and the poses' own coordinates, :data:`FLOAT32_ANGLE`); (-1, 0, 0) when they do not."""
    a, b = np.asarray(intended_c2w, dtype=np.float64), np.asarray(evaluated_c2w, dtype=np.float64)
    pos = np.linalg.norm(b[:, :3, 3] - a[:, :3, 3], axis=1)
    ang = geodesic_angle(np.einsum("nji,njk->nik", a[:, :3, :3], b[:, :3, :3]))
    bound = float32_bound(max(magnitude, float(np.abs(a[:, :3, 3]).max())))
    bad = (pos > bound) | (ang > FLOAT32_ANGLE)
    if not bad.any():
        return -1, 0.0, 0.0
    worst = int(np.argmax(np.where(bad, pos / bound + ang / FLOAT32_ANGLE, -np.inf)))
    return worst, float(pos[worst]), float(ang[worst])


def key_precision_warning(
    intended_c2w: np.ndarray,
    evaluated_c2w: np.ndarray,
    pi_intended: np.ndarray,
    pi_evaluated: np.ndarray,
    magnitude: float = 0.0,
    frames: np.ndarray | None = None,
) -> tuple[float, str | None]:
    """(PCE of the evaluated move's Π against the intended move's Π, a warning or None).

    ``intended_c2w`` / ``evaluated_c2w`` (N,4,4): the computed poses and Blender's evaluated ones
    (read back after keying), in the same world units; ``pi_*``: their Π per step (index 0 NaN);
    ``magnitude``: the largest coordinate of a parent in the chain (float32 products there count).
    When the evaluated poses are further off than float32 explains, the warning says so instead
    (a parent, constraint or driver moves the camera: moving the scene would not help)."""
    key_pce = pce(pi_evaluated, pi_intended, strict=False)
    worst, pos, ang = off_move(intended_c2w, evaluated_c2w, magnitude)
    if worst >= 0:
        frame = int(frames[worst]) if frames is not None else worst
        return key_pce, (
            f"the camera Blender evaluates leaves the keyed move by {pos:.3g} units and {np.degrees(ang):.3g}° "
            f"at frame {frame}, more than float32 precision explains: something else moves it (a driver, a "
            f"constraint, an animated parent); the keyed move as evaluated costs PCE {key_pce:.3g}"
        )
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
