"""The camera model: :class:`Trajectory`, pinhole intrinsics and axis conventions.

Conventions (stated once, used everywhere in ParaScale):

* Poses are **camera-to-world** 4x4 matrices (``c2w``) with **OpenCV camera axes**:
  x right, y down, z forward (the camera looks along +z). World units are whatever the
  source uses; nothing here assumes metres.
* Blender and OpenGL cameras look down -z with y up. For a c2w matrix without scale:
  ``c2w_opencv = c2w_blender @ FLIP_YZ`` and back with the same matrix (it is its own inverse).
* Intrinsics are pinhole ``(fx, fy, cx, cy)`` in **pixels** with the origin at the top-left
  corner of the top-left pixel, so the image centre is ``(W/2, H/2)``. Lens distortion is
  not modelled.
* Frame numbers are the footage's own integers (not necessarily starting at 0 or 1).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np

from .rotation import RotationError, matrix_from_quat, nearest_rotation, quat_from_matrix, rotation_defects, slerp

FLIP_YZ = np.diag([1.0, -1.0, -1.0, 1.0])


def opencv_from_blender(c2w: np.ndarray) -> np.ndarray:
    """Blender/OpenGL camera-to-world (…,4,4) → OpenCV camera-to-world. Scale must be removed first."""
    return np.asarray(c2w, dtype=np.float64) @ FLIP_YZ


blender_from_opencv = opencv_from_blender  # the flip is an involution


def invert_rigid(T: np.ndarray) -> np.ndarray:
    """Inverse of rigid (…,4,4) transforms (rotation transposed, no general inverse)."""
    T = np.asarray(T, dtype=np.float64)
    R = T[..., :3, :3]
    t = T[..., :3, 3]
    out = np.zeros_like(T)
    Rt = np.swapaxes(R, -1, -2)
    out[..., :3, :3] = Rt
    out[..., :3, 3] = -np.einsum("...ij,...j->...i", Rt, t)
    out[..., 3, 3] = 1.0
    return out


METRES_PER_UNIT = "metres_per_unit"  # Trajectory.metadata key: metres per world unit of its positions


def relative_to_first(c2w: np.ndarray) -> np.ndarray:
    """Rigid poses (N,4,4) as ``c2w_0^-1 @ c2w_j``: expressed in the first pose's frame (frame 0 = identity)."""
    c2w = np.asarray(c2w, dtype=np.float64)
    return invert_rigid(c2w[0]) @ c2w


def make_c2w(R: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Stack rotations (…,3,3) and camera centres (…,3) into (…,4,4) c2w matrices."""
    R = np.asarray(R, dtype=np.float64)
    out = np.zeros(R.shape[:-2] + (4, 4))
    out[..., :3, :3] = R
    out[..., :3, 3] = t
    out[..., 3, 3] = 1.0
    return out


class Unprojected(NamedTuple):
    """World points of a depth map's pixels (see :meth:`Camera.unproject`)."""

    xyz: np.ndarray  # (M, 3) float64 world points, or world directions where not ``finite``
    index: np.ndarray  # (M,) flat row-major pixel index in the map
    finite: np.ndarray  # (M,) bool: a point (True) or a direction at infinity (False)
    depth: np.ndarray  # (M,) z in the camera (1 for directions)


@dataclass(frozen=True)
class Camera:
    """A pinhole camera: intrinsics in pixels and the image size they refer to."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    @property
    def K(self) -> np.ndarray:
        return np.array([[self.fx, 0, self.cx], [0, self.fy, self.cy], [0, 0, 1.0]])

    def scaled_to(self, width: int, height: int) -> Camera:
        """The same field of view at another resolution."""
        sx, sy = width / self.width, height / self.height
        return Camera(self.fx * sx, self.fy * sy, self.cx * sx, self.cy * sy, int(width), int(height))

    def working(self, max_side: int = 160) -> Camera:
        """A low-resolution copy for depth statistics: longest side ``max_side``, aspect kept."""
        s = max_side / max(self.width, self.height)
        return self.scaled_to(max(1, round(self.width * s)), max(1, round(self.height * s)))

    def pixel_rays(self) -> tuple[np.ndarray, np.ndarray]:
        """Normalised image coordinates (x, y) of every pixel centre, each (H, W)."""
        u = (np.arange(self.width) + 0.5 - self.cx) / self.fx
        v = (np.arange(self.height) + 0.5 - self.cy) / self.fy
        x, y = np.meshgrid(u, v)
        return x, y

    def unproject(self, depth: np.ndarray, c2w: np.ndarray, sky: bool = False) -> Unprojected:
        """The pixels of a z-depth map (H, W) seen by this camera from OpenCV pose ``c2w`` as world
        points, row-major; the camera must describe the map (its width and height).

        Pixels without depth (NaN, inf, <= 0) are dropped, or with ``sky`` kept as world directions
        (the ray scaled to camera z = 1, ``finite`` False: a point at infinity).
        """
        d = np.asarray(depth, dtype=np.float64)
        if d.shape != (self.height, self.width):
            raise ValueError(f"depth map is {d.shape[1]}x{d.shape[0]} but the camera is {self.width}x{self.height}")
        x, y = self.pixel_rays()
        finite = np.isfinite(d) & (d > 0)
        index = np.arange(d.size) if sky else np.flatnonzero(finite)
        fin = finite.reshape(-1)[index]
        z = np.where(fin, d.reshape(-1)[index], 1.0)
        local = np.stack([x.reshape(-1)[index] * z, y.reshape(-1)[index] * z, z], axis=1)
        c2w = np.asarray(c2w, dtype=np.float64)
        xyz = local @ c2w[:3, :3].T + fin[:, None] * c2w[:3, 3]
        return Unprojected(xyz, index, fin, z)

    @property
    def hfov(self) -> float:
        """Horizontal field of view in radians (for a centred principal point)."""
        return 2.0 * np.arctan(self.width / (2.0 * self.fx))

    def validate(self, where: str = "camera") -> None:
        vals = (self.fx, self.fy, self.cx, self.cy)
        if not all(np.isfinite(v) for v in vals):
            raise ValueError(f"{where}: intrinsics must be finite, got {vals}")
        if self.fx <= 0 or self.fy <= 0:
            raise ValueError(f"{where}: focal lengths must be positive, got fx={self.fx}, fy={self.fy}")
        if self.width <= 0 or self.height <= 0:
            raise ValueError(f"{where}: image size must be positive, got {self.width}x{self.height}")


@dataclass
class SparsePoints:
    """Sparse 3D points (e.g. SfM) with per-frame visibility.

    ``visibility[i]`` holds the indices into ``xyz`` of the points observed in frame ``i`` of
    the owning trajectory (positional index, not the frame number). ``None`` means unknown.
    """

    xyz: np.ndarray
    rgb: np.ndarray | None = None
    visibility: list[np.ndarray] | None = None


@dataclass
class Trajectory:
    """A camera track: per frame the frame number, c2w (OpenCV axes) and pixel intrinsics.

    ``intrinsics`` is (N, 4) = (fx, fy, cx, cy) per frame in pixels of a ``width`` x ``height``
    image (one image size per track). ``extras`` holds optional per-frame float arrays of
    length N (e.g. ``pi_ref``, ``pi_target``, ``alpha``); ``metadata`` is free-form JSON-able.
    """

    frames: np.ndarray
    c2w: np.ndarray
    intrinsics: np.ndarray
    width: int
    height: int
    fps: float = 24.0
    points: SparsePoints | None = None
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    metadata: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.frames = np.asarray(self.frames, dtype=np.int64).reshape(-1)
        self.c2w = np.asarray(self.c2w, dtype=np.float64).reshape(-1, 4, 4)
        K = np.asarray(self.intrinsics, dtype=np.float64)
        if K.ndim == 1:
            K = np.broadcast_to(K, (len(self.frames), 4)).copy()
        self.intrinsics = K.reshape(-1, 4)
        self.width, self.height = int(self.width), int(self.height)
        self.fps = float(self.fps)

    def __len__(self) -> int:
        return len(self.frames)

    def camera(self, i: int) -> Camera:
        fx, fy, cx, cy = self.intrinsics[i]
        return Camera(float(fx), float(fy), float(cx), float(cy), self.width, self.height)

    @property
    def w2c(self) -> np.ndarray:
        return invert_rigid(self.c2w)

    @property
    def centres(self) -> np.ndarray:
        return self.c2w[:, :3, 3]

    def replace(self, **changes) -> Trajectory:
        return dataclasses.replace(self, **changes)

    def validate(self, source: str = "trajectory", repair_rotations: bool = False) -> Trajectory:
        """Check shapes, finiteness, frame order and rotations; return self or a repaired copy.

        Raises ``ValueError`` naming ``source`` and the offending frame. A reflection
        (determinant -1, as in some public preset files) is an error unless
        ``repair_rotations`` is set, in which case every rotation is projected onto SO(3) by SVD.
        """
        n = len(self.frames)
        if n == 0:
            raise ValueError(f"{source}: the track has no frames")
        if self.c2w.shape != (n, 4, 4) or self.intrinsics.shape != (n, 4):
            raise ValueError(f"{source}: {n} frames but c2w {self.c2w.shape} and intrinsics {self.intrinsics.shape}")
        if np.any(np.diff(self.frames) <= 0):
            i = int(np.argmax(np.diff(self.frames) <= 0)) + 1
            raise ValueError(f"{source}: frame numbers must increase strictly (frame {self.frames[i]} at index {i})")
        if not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"{source}: fps must be positive and finite, got {self.fps}")
        for i in range(n):
            if not np.isfinite(self.c2w[i]).all():
                raise ValueError(f"{source}: frame {self.frames[i]}: pose has non-finite values")
            self.camera(i).validate(f"{source}: frame {self.frames[i]}")
        bad = rotation_defects(self.c2w[:, :3, :3])
        if bad and not repair_rotations:
            i, why = bad[0]
            more = f" (and {len(bad) - 1} more frames)" if len(bad) > 1 else ""
            raise RotationError(
                f"{source}: frame {self.frames[i]}: rotation {why}{more}; "
                "pass repair_rotations (CLI: --repair-rotations) to project onto the nearest rotation by SVD"
            )
        if repair_rotations and bad:
            c2w = self.c2w.copy()
            c2w[:, :3, :3] = nearest_rotation(c2w[:, :3, :3])
            return self.replace(c2w=c2w, metadata={**self.metadata, "repaired_rotations": [int(i) for i, _ in bad]})
        return self

    def relative_to_first(self) -> Trajectory:
        """Poses expressed in the first camera's frame (frame 0 becomes identity)."""
        return self.replace(c2w=relative_to_first(self.c2w))

    def placed_at(self, start_c2w: np.ndarray, scale: float = 1.0) -> Trajectory:
        """The relative motion re-anchored so the first pose equals ``start_c2w``; translations scaled."""
        rel = self.relative_to_first().c2w.copy()
        rel[:, :3, 3] *= scale
        return self.replace(c2w=np.asarray(start_c2w, dtype=np.float64) @ rel)

    def steps_in_camera(self) -> np.ndarray:
        """(N-1, 3) translation of each step t-1 → t, expressed in camera t-1's axes."""
        d_world = np.diff(self.centres, axis=0)
        R_prev = self.c2w[:-1, :3, :3]
        return np.einsum("nji,nj->ni", R_prev, d_world)

    def path_length(self) -> float:
        return float(np.linalg.norm(np.diff(self.centres, axis=0), axis=1).sum())

    def resampled(self, frames: np.ndarray) -> Trajectory:
        """Poses at ``frames`` by SE(3) interpolation of this track's keys.

        Rotation: slerp between neighbouring keys. Position: a centripetal-free Catmull-Rom
        (uniform) spline through the key positions, which passes through every key and is C1;
        intrinsics are interpolated linearly. Frames outside the key range are clamped.
        """
        frames = np.asarray(frames, dtype=np.float64)
        keys = self.frames.astype(np.float64)
        if len(keys) == 1:
            idx = np.zeros(len(frames), dtype=int)
            return self.replace(
                frames=frames.astype(np.int64), c2w=self.c2w[idx], intrinsics=self.intrinsics[idx], extras={}
            )
        f = np.clip(frames, keys[0], keys[-1])
        i = np.clip(np.searchsorted(keys, f, side="right") - 1, 0, len(keys) - 2)
        u = (f - keys[i]) / (keys[i + 1] - keys[i])
        q = quat_from_matrix(self.c2w[:, :3, :3])
        R = matrix_from_quat(slerp(q[i], q[i + 1], u))
        P = self.centres
        p0 = P[np.maximum(i - 1, 0)]
        p1, p2 = P[i], P[i + 1]
        p3 = P[np.minimum(i + 2, len(P) - 1)]
        # Tangents scaled by the key spacing so uneven keys do not overshoot.
        dt = keys[i + 1] - keys[i]
        dt_prev = np.where(i > 0, keys[i] - keys[np.maximum(i - 1, 0)], dt)
        dt_next = np.where(i + 2 < len(keys), keys[np.minimum(i + 2, len(keys) - 1)] - keys[i + 1], dt)
        m1 = (p2 - p0) / ((dt + dt_prev)[:, None]) * dt[:, None]
        m2 = (p3 - p1) / ((dt + dt_next)[:, None]) * dt[:, None]
        m1 = np.where((i > 0)[:, None], m1, p2 - p1)
        m2 = np.where((i + 2 < len(keys))[:, None], m2, p2 - p1)
        uu = u[:, None]
        h00 = 2 * uu**3 - 3 * uu**2 + 1
        h10 = uu**3 - 2 * uu**2 + uu
        h01 = -2 * uu**3 + 3 * uu**2
        h11 = uu**3 - uu**2
        pos = h00 * p1 + h10 * m1 + h01 * p2 + h11 * m2
        K = self.intrinsics[i] * (1 - uu) + self.intrinsics[i + 1] * uu
        return self.replace(
            frames=np.round(frames).astype(np.int64), c2w=make_c2w(R, pos), intrinsics=K, extras={}, points=None
        )

    def retimed(self, fps: float) -> Trajectory:
        """The same move played at ``fps``: poses sampled every 1/``fps`` seconds of the track's own
        time by :meth:`resampled`; frames renumbered from the first one, one per new frame, so the
        duration is kept to within one frame at the new rate. The track's time: its timestamps
        (``extras['timestamp']``, microseconds, when they increase; footage sampled unevenly) or its
        frame numbers at ``self.fps``. Points keep, for each new frame, the visibility of the
        nearest original frame."""
        if not (np.isfinite(fps) and fps > 0) or not (np.isfinite(self.fps) and self.fps > 0):
            raise ValueError(f"retime: frame rates must be positive, got {self.fps!r} -> {fps!r}")
        first = float(self.frames[0])
        ts = self.extras.get("timestamp")
        if ts is not None and len(ts) == len(self) and np.all(np.diff(ts) > 0):
            seconds = (np.asarray(ts, dtype=np.float64) - ts[0]) / 1e6
        else:
            seconds = (self.frames.astype(np.float64) - first) / self.fps
        count = int(np.floor(seconds[-1] * fps + 1e-9)) + 1
        src = np.interp(np.arange(count) / fps, seconds, self.frames.astype(np.float64))  # source positions
        out = self.resampled(src).replace(frames=(np.round(first) + np.arange(count)).astype(np.int64), fps=float(fps))
        pts = self.points
        if pts is not None and pts.visibility is not None:
            nearest = np.clip(np.searchsorted(self.frames, src), 0, len(self) - 1)
            prev = np.clip(nearest - 1, 0, len(self) - 1)
            closer = np.abs(self.frames[prev] - src) <= np.abs(self.frames[nearest] - src)
            idx = np.where(closer, prev, nearest)
            pts = SparsePoints(pts.xyz, pts.rgb, [pts.visibility[i] for i in idx])
        return out.replace(points=pts, metadata={**self.metadata, "retimed_from_fps": float(self.fps)})


def intrinsics_from_blender(
    lens_mm: float,
    sensor_width_mm: float,
    sensor_height_mm: float,
    sensor_fit: str,
    width: int,
    height: int,
    shift_x: float = 0.0,
    shift_y: float = 0.0,
    pixel_aspect: float = 1.0,
) -> Camera:
    """Blender camera data → pixel intrinsics (OpenCV principal point, origin top-left).

    ``pixel_aspect`` is ``render.pixel_aspect_y / pixel_aspect_x``. Blender's shift is a fraction
    of the larger image side (for AUTO fit) and +shift_y moves the image up, i.e. decreases cy.
    """
    w_eff, h_eff = width, height * pixel_aspect
    fit = sensor_fit
    if fit == "AUTO":
        fit = "HORIZONTAL" if w_eff >= h_eff else "VERTICAL"
        sensor = sensor_width_mm
    else:
        sensor = sensor_width_mm if fit == "HORIZONTAL" else sensor_height_mm
    if fit == "HORIZONTAL":
        fx = lens_mm / sensor * width
        fy = fx / pixel_aspect
        side = width
    else:
        fy = lens_mm / sensor * height
        fx = fy * pixel_aspect
        side = height * pixel_aspect
    cx = width / 2.0 - shift_x * side
    cy = height / 2.0 + shift_y * side / pixel_aspect
    return Camera(fx, fy, cx, cy, width, height)


def blender_from_intrinsics(cam: Camera, sensor_width_mm: float = 36.0) -> dict:
    """Pixel intrinsics → Blender camera settings with ``sensor_fit='HORIZONTAL'``.

    Returns ``lens``, ``sensor_width``, ``sensor_fit``, ``shift_x``, ``shift_y`` and
    ``pixel_aspect`` (= fx/fy, to be set as render.pixel_aspect_y / pixel_aspect_x).
    """
    pixel_aspect = cam.fx / cam.fy
    side = cam.width
    return {
        "lens": cam.fx * sensor_width_mm / cam.width,
        "sensor_width": sensor_width_mm,
        "sensor_fit": "HORIZONTAL",
        "shift_x": (cam.width / 2.0 - cam.cx) / side,
        "shift_y": (cam.cy - cam.height / 2.0) * pixel_aspect / side,
        "pixel_aspect": pixel_aspect,
    }
