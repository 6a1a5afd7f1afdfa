"""Rotations: validation, SVD repair, quaternions, slerp.

Quaternions are (w, x, y, z), unit norm, Hamilton convention, acting on column vectors
(the convention of COLMAP and Blender's ``mathutils.Quaternion``). All functions are
vectorised over a leading batch axis where it makes sense.
"""

from __future__ import annotations

import numpy as np

ORTHO_TOL = 1e-4


class RotationError(ValueError):
    """A 3x3 block that is not a proper rotation (reflection, shear, NaN)."""


def rotation_defects(R: np.ndarray, tol: float = ORTHO_TOL) -> list[tuple[int, str]]:
    """Indices and reasons of the matrices in ``R`` (N,3,3) that are not rotations."""
    R = np.asarray(R, dtype=np.float64).reshape(-1, 3, 3)
    bad: list[tuple[int, str]] = []
    finite = np.isfinite(R).all(axis=(1, 2))
    ortho = np.abs(R @ np.swapaxes(R, 1, 2) - np.eye(3)).max(axis=(1, 2))
    det = np.linalg.det(np.where(finite[:, None, None], R, 0.0))
    for i in range(len(R)):
        if not finite[i]:
            bad.append((i, "non-finite values"))
        elif ortho[i] > tol * 100:
            bad.append((i, f"not orthonormal (max |RR^T - I| = {ortho[i]:.3g})"))
        elif det[i] < 0:
            bad.append((i, f"determinant {det[i]:.3f} (a reflection, not a rotation)"))
    return bad


def nearest_rotation(R: np.ndarray) -> np.ndarray:
    """Project (N,3,3) matrices onto SO(3) by SVD (a reflection's odd axis is flipped)."""
    R = np.asarray(R, dtype=np.float64)
    U, _, Vt = np.linalg.svd(R)
    d = np.sign(np.linalg.det(U @ Vt))
    D = np.zeros(R.shape[:-2] + (3, 3))
    D[..., 0, 0] = 1.0
    D[..., 1, 1] = 1.0
    D[..., 2, 2] = d
    return U @ D @ Vt


def quat_from_matrix(R: np.ndarray) -> np.ndarray:
    """(…,3,3) rotation matrices → (…,4) unit quaternions (w, x, y, z), w >= 0."""
    R = np.asarray(R, dtype=np.float64)
    shape = R.shape[:-2]
    m = R.reshape(-1, 3, 3)
    t = np.trace(m, axis1=1, axis2=2)
    # Shepperd's method, choosing the numerically largest component per matrix.
    cands = np.stack(
        [t, m[:, 0, 0], m[:, 1, 1], m[:, 2, 2]],
        axis=1,
    )
    k = np.argmax(cands, axis=1)
    q = np.empty((len(m), 4))
    for i, mi in enumerate(m):
        if k[i] == 0:
            s = np.sqrt(max(t[i] + 1.0, 0.0)) * 2
            q[i] = [0.25 * s, (mi[2, 1] - mi[1, 2]) / s, (mi[0, 2] - mi[2, 0]) / s, (mi[1, 0] - mi[0, 1]) / s]
        elif k[i] == 1:
            s = np.sqrt(max(1.0 + mi[0, 0] - mi[1, 1] - mi[2, 2], 0.0)) * 2
            q[i] = [(mi[2, 1] - mi[1, 2]) / s, 0.25 * s, (mi[0, 1] + mi[1, 0]) / s, (mi[0, 2] + mi[2, 0]) / s]
        elif k[i] == 2:
            s = np.sqrt(max(1.0 + mi[1, 1] - mi[0, 0] - mi[2, 2], 0.0)) * 2
            q[i] = [(mi[0, 2] - mi[2, 0]) / s, (mi[0, 1] + mi[1, 0]) / s, 0.25 * s, (mi[1, 2] + mi[2, 1]) / s]
        else:
            s = np.sqrt(max(1.0 + mi[2, 2] - mi[0, 0] - mi[1, 1], 0.0)) * 2
            q[i] = [(mi[1, 0] - mi[0, 1]) / s, (mi[0, 2] + mi[2, 0]) / s, (mi[1, 2] + mi[2, 1]) / s, 0.25 * s]
    q /= np.linalg.norm(q, axis=1, keepdims=True)
    q[q[:, 0] < 0] *= -1
    return q.reshape(shape + (4,))


def matrix_from_quat(q: np.ndarray) -> np.ndarray:
    """(…,4) quaternions (w, x, y, z) → (…,3,3) rotation matrices (normalised first)."""
    q = np.asarray(q, dtype=np.float64)
    q = q / np.linalg.norm(q, axis=-1, keepdims=True)
    w, x, y, z = np.moveaxis(q, -1, 0)
    R = np.stack(
        [
            1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w),
            2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w),
            2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y),
        ],
        axis=-1,
    )  # fmt: skip
    return R.reshape(q.shape[:-1] + (3, 3))


def slerp(q0: np.ndarray, q1: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Spherical interpolation between unit quaternions along the short arc; u in [0, 1]."""
    q0 = np.asarray(q0, dtype=np.float64)
    q1 = np.asarray(q1, dtype=np.float64).copy()
    u = np.asarray(u, dtype=np.float64)[..., None]
    dot = np.sum(q0 * q1, axis=-1, keepdims=True)
    q1 = np.where(dot < 0, -q1, q1)
    dot = np.abs(dot)
    theta = np.arccos(np.clip(dot, -1.0, 1.0))
    sin_t = np.sin(theta)
    small = sin_t < 1e-9
    safe = np.where(small, 1.0, sin_t)
    a = np.where(small, 1 - u, np.sin((1 - u) * theta) / safe)
    b = np.where(small, u, np.sin(u * theta) / safe)
    q = a * q0 + b * q1
    return q / np.linalg.norm(q, axis=-1, keepdims=True)


def rotation_angle(R: np.ndarray) -> np.ndarray:
    """Rotation angle in radians of (…,3,3) rotations, robust near 0 and pi."""
    R = np.asarray(R, dtype=np.float64)
    c = (np.trace(R, axis1=-2, axis2=-1) - 1.0) / 2.0
    return np.arccos(np.clip(c, -1.0, 1.0))


def euler_to_matrix(angles_rad: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Euler angles (…,3) → rotation matrices, ``order`` as in Blender/Nuke naming.

    ``order="XYZ"`` means R = Rz @ Ry @ Rx applied to column vectors (X rotation applied first),
    which is Blender's ``XYZ`` Euler and Nuke's ``XYZ`` rotation order. The three angles are
    always given as (x, y, z).
    """
    a = np.asarray(angles_rad, dtype=np.float64)
    mats = {"X": _rx(a[..., 0]), "Y": _ry(a[..., 1]), "Z": _rz(a[..., 2])}
    R = mats[order[0]]
    for axis in order[1:]:
        R = mats[axis] @ R
    return R


def matrix_to_euler(R: np.ndarray, order: str = "XYZ") -> np.ndarray:
    """Inverse of :func:`euler_to_matrix` for the six Tait-Bryan orders; returns (…,3) (x, y, z)."""
    R = np.asarray(R, dtype=np.float64)
    idx = {"X": 0, "Y": 1, "Z": 2}
    i, j, k = (idx[c] for c in order)
    # R = R_k(c) R_j(b) R_i(a); parity of the permutation fixes the signs.
    sign = 1.0 if (j - i) % 3 == 1 else -1.0
    b = np.arcsin(np.clip(-sign * R[..., k, i], -1.0, 1.0))
    a = np.arctan2(sign * R[..., k, j], R[..., k, k])
    c = np.arctan2(sign * R[..., j, i], R[..., i, i])
    gimbal = np.abs(np.cos(b)) < 1e-9
    if np.any(gimbal):
        a = np.where(gimbal, 0.0, a)
        c = np.where(gimbal, np.arctan2(-sign * R[..., i, j], R[..., j, j]), c)
    out = np.empty(R.shape[:-2] + (3,))
    out[..., i] = a
    out[..., j] = b
    out[..., k] = c
    return out


def _rx(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([o, z, z, z, c, -s, z, s, c], -1).reshape(a.shape + (3, 3))


def _ry(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, z, s, z, o, z, -s, z, c], -1).reshape(a.shape + (3, 3))


def _rz(a):
    c, s = np.cos(a), np.sin(a)
    o, z = np.ones_like(a), np.zeros_like(a)
    return np.stack([c, -s, z, s, c, z, z, z, o], -1).reshape(a.shape + (3, 3))
