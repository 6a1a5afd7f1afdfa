"""Real-footage benchmark: the product's Π on real video against the motion the video shows.

Per real clip (``../shared/data/video/re10k_25f``: RealEstate10K footage with its pose file, SfM
poses in their own unit):

* **The product's Π** (Π_product): the clip tracked by the product's tracker
  (:func:`bridge_server.tracking.track_video`, the server's track job; self-calibrated as by default,
  and with the pose file's intrinsics given), read by :func:`~parascale_blender.core.rescale.rescale`
  in its default options (exact Π, sky counted, 160 px working size) with the track's own SfM points
  as reference depth (:class:`SparsePointsDepth`: each frame's visible points, filled 10%); the rescale
  transfers the move into a 1 cm room and its ``pi_ref`` is Π_product.
* **The video's measured motion** (Π_video): :func:`bridge_server.flow_parallax.measured_parallax`,
  DIS optical flow at half resolution (``finest_scale=1``, for lossy MP4), forward-backward masked,
  rotation removed with the *pose file's* rotations and intrinsics (independent of the track).
* **The figure**: PCE(Π_product, Π_video) = mean_t |ln(Π_product,t / Π_video,t)|.

Its split, each part a PCE over the same steps (so total ≤ track + reference depth):

* ``engine``: the rescale's solver residual, PCE of the Π it realized in the 1 cm room against
  Π_product (both on the depth it was given);
* ``track``: PCE(Π_product, Π_posefile), where Π_posefile is Π from the pose file's poses and
  intrinsics with the *same* SfM points, moved by the similarity (Umeyama, sim3) that takes the tracked
  camera centres onto the pose file's: the error of the tracked poses, as far as the pose file (itself
  an SfM estimate) can tell;
* ``reference depth``: PCE(Π_posefile, Π_video): what the sparse SfM depth misses of the motion the
  video shows (untextured and blurred near surfaces have no points), *plus* the ruler's own error.

The ruler's error is bounded two ways: ``levels``, the PCE between DIS at full and at half resolution
(finest scale 0 vs 1); and a rotation-only control, ``floor``: each frame t-1 warped by the
homography of the pose file's rotation of step t (exactly zero translation), read by the same
:func:`measured_parallax`; the translational motion it still reads (px, floored at 0.02 px) against the
clip's Π_video is the noise part of the ruler's error (flow failures on fast near content are not in it).
pycolmap and PyAV are needed (the section is skipped without them).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from parascale_blender.core.camera import SparsePoints, Trajectory
from parascale_blender.core.depth_sources import SparsePointsDepth
from parascale_blender.core.metrics import align_tracks, pce
from parascale_blender.core.parallax import ParallaxProbe
from parascale_blender.core.rescale import RescaleOptions, rescale

CLIPS = ("0bf152ef84195293_svdxt", "0c9b371cc6225682_svdxt")
INTRINSICS = ("self-calibrated", "pose-file intrinsics")  # the tracker's default first
FINEST_SCALE = 1  # DIS at half resolution: lossy MP4 (see measured_parallax)
TARGET_SCALE = 0.01  # the engine's part: the move transferred into a 1 cm room


def clip_folder() -> Path:
    """``../shared/data/video/re10k_25f`` beside the checkout."""
    return Path(__file__).resolve().parents[3] / "shared" / "data" / "video" / "re10k_25f"


def _first(traj: Trajectory, n: int) -> Trajectory:
    return traj.replace(frames=traj.frames[:n], c2w=traj.c2w[:n], intrinsics=traj.intrinsics[:n], extras={})


def load_clip(video: Path, poses: Path, max_frames: int | None = None) -> tuple[np.ndarray, Trajectory]:
    """(frames (N, H, W, 3) uint8 at the video's size, the pose file read at that size), N frames each."""
    from bridge_server.tracking.video import decode_video
    from parascale_blender.formats.re10k import read_re10k

    decoded = decode_video(video, max_frames=max_frames, max_side=None)
    frames = np.stack(decoded.images)
    gt = read_re10k(poses, width=frames.shape[2], height=frames.shape[1])
    if len(gt) < len(frames):
        raise ValueError(f"{poses}: {len(gt)} poses for {len(frames)} frames of {video.name}")
    return frames, _first(gt, len(frames))


@dataclass
class VideoMotion:
    """Π_video per step (normalised units, index 0 NaN) and the ruler's own error."""

    pi: np.ndarray
    levels: float  # PCE of DIS at full resolution against DIS at half resolution
    floor_px: np.ndarray  # rotation-only control: the translation DIS reads where there is none (px)
    focal_px: float  # sqrt(fx·fy) of the pose file: normalised units → pixels

    @property
    def pi_px(self) -> np.ndarray:
        return self.pi * self.focal_px

    @property
    def floor_share(self) -> float:
        """Mean over steps of the control's reading over Π_video (both in pixels of the same step)."""
        return float(np.nanmean(self.floor_px[1:] / self.pi_px[1:]))


def video_motion(frames: np.ndarray, poses: Trajectory) -> VideoMotion:
    """Π_video with the pose file's rotations, its DIS-level spread and the rotation-only control."""
    from bridge_server.flow_parallax import measured_parallax

    ones = np.ones(frames.shape[:3], dtype=bool)
    pi = measured_parallax(frames, ones, poses, finest_scale=FINEST_SCALE)
    full = measured_parallax(frames, ones, poses, finest_scale=0)
    focal = float(np.sqrt(poses.camera(0).fx * poses.camera(0).fy))
    return VideoMotion(pi, pce(full, pi, strict=False), rotation_control(frames, poses), focal)


def rotation_control(frames: np.ndarray, poses: Trajectory) -> np.ndarray:
    """Per step (px, index 0 NaN): the translational motion :func:`measured_parallax` reads between
    frame t-1 and frame t-1 warped by the homography K·R_rel·K⁻¹ of the step's rotation (no translation)."""
    import cv2

    from bridge_server.flow_parallax import measured_parallax

    cam = poses.camera(0)
    K = cam.K
    shift = np.array([[1.0, 0, 0.5], [0, 1.0, 0.5], [0, 0, 1.0]])  # index → continuous pixel coordinates
    H, W = frames.shape[1:3]
    full = np.full((H, W), 255, np.uint8)
    out = np.full(len(frames), np.nan)
    for t in range(1, len(frames)):
        R_rel = poses.c2w[t, :3, :3].T @ poses.c2w[t - 1, :3, :3]
        Hm = np.linalg.inv(shift) @ K @ R_rel @ np.linalg.inv(K) @ shift
        warped = cv2.warpPerspective(frames[t - 1], Hm, (W, H), flags=cv2.INTER_LINEAR)
        covered = cv2.warpPerspective(full, Hm, (W, H), flags=cv2.INTER_LINEAR) == 255
        pair = poses.replace(
            frames=poses.frames[t - 1 : t + 1],
            c2w=poses.c2w[t - 1 : t + 1],
            intrinsics=poses.intrinsics[t - 1 : t + 1],
        )
        pi = measured_parallax(
            np.stack([frames[t - 1], warped]), np.stack([full == 255, covered]), pair, finest_scale=FINEST_SCALE
        )
        out[t] = pi[1] * np.sqrt(cam.fx * cam.fy)
    return out


def reference_parallax(traj: Trajectory, depth: SparsePointsDepth) -> tuple[np.ndarray, float]:
    """(exact Π per step read as :func:`rescale` reads its reference, mean coverage of the views)."""
    opts = RescaleOptions()
    steps = traj.steps_in_camera()
    pi = np.full(len(traj), np.nan)
    cover = []
    for t in range(1, len(traj)):
        view = depth.view(traj.c2w[t - 1], traj.camera(t - 1).working(opts.working_size), index=t - 1)
        pi[t] = ParallaxProbe.from_view(view, allow_sky=opts.allow_sky).parallax(steps[t - 1], opts.measure)
        cover.append(view.coverage)
    return pi, float(np.mean(cover))


@dataclass
class Split:
    """One tracked clip: the figure and its parts (see the module docstring)."""

    clip: str
    intrinsics: str
    total: float
    engine: float
    track: float
    depth: float
    coverage: float  # working pixels with SfM depth (after the fill), pose file's views
    raw_coverage: float  # the same without the fill (one pixel per point)
    align_scale: float
    seconds_track: float
    pi_product: np.ndarray = field(repr=False)
    pi_posefile: np.ndarray = field(repr=False)


def split(clip: str, label: str, track: Trajectory, poses: Trajectory, pi_video: np.ndarray, seconds: float) -> Split:
    """The product's figure for ``track`` and its split against ``poses`` and ``pi_video``."""
    from . import raytrace

    if len(track) != len(poses) or track.points is None or track.points.visibility is None:
        raise ValueError(f"{clip}: the track must place every frame and carry SfM points with visibility")
    own = SparsePointsDepth(track.points)
    res = rescale(track, own, raytrace.SCENES["room"](TARGET_SCALE), np.eye(4), track.camera(0), RescaleOptions())
    al = align_tracks(track, poses, "sim3")
    moved = SparsePoints(al.scale * track.points.xyz @ al.rotation.T + al.translation, None, track.points.visibility)
    pi_pose, coverage = reference_parallax(poses, SparsePointsDepth(moved))
    bare, size = SparsePointsDepth(moved, fill=0.0), RescaleOptions().working_size
    views = (bare.view(poses.c2w[t], poses.camera(t).working(size), index=t) for t in range(len(poses) - 1))
    raw = np.mean([v.coverage for v in views])
    return Split(
        clip=clip,
        intrinsics=label,
        total=pce(res.pi_ref, pi_video),
        engine=res.solver_residual,
        track=pce(res.pi_ref, pi_pose),
        depth=pce(pi_pose, pi_video),
        coverage=coverage,
        raw_coverage=float(raw),
        align_scale=al.scale,
        seconds_track=seconds,
        pi_product=res.pi_ref,
        pi_posefile=pi_pose,
    )


def measure_clip(
    stem: str, intrinsics: tuple[str, ...] = INTRINSICS, max_frames: int | None = None, folder: Path | None = None
) -> tuple[VideoMotion, list[Split]]:
    """Π_video of one clip and the split of each tracking variant in ``intrinsics``."""
    from bridge_server.tracking import track_video

    folder = folder or clip_folder()
    video, pose_file = folder / f"{stem}.mp4", folder / f"{stem}.txt"
    frames, poses = load_clip(video, pose_file, max_frames)
    motion = video_motion(frames, poses)
    out = []
    for label in intrinsics:
        opts: dict = {"max_frames": max_frames}
        if label == "pose-file intrinsics":
            opts["intrinsics"] = tuple(poses.intrinsics[0])
        t0 = time.perf_counter()
        track = track_video(video, opts)
        out.append(split(stem, label, track, poses, motion.pi, time.perf_counter() - t0))
    return motion, out


def rows(quick: bool = True) -> list[dict]:
    import av  # noqa: F401  (the section is skipped without PyAV or pycolmap)
    import pycolmap  # noqa: F401

    folder = clip_folder()
    if not all((folder / f"{c}.mp4").is_file() for c in CLIPS):
        return []
    variants = INTRINSICS[:1] if quick else INTRINSICS
    out: list[dict] = []
    splits: list[Split] = []
    for stem in CLIPS:
        motion, results = measure_clip(stem, variants, folder=folder)
        splits += results
        for s in results:
            per = np.abs(np.log(s.pi_product / motion.pi))
            worst = int(np.nanargmax(per))
            out.append(
                {
                    "name": f"real footage {stem[:8]} ({len(s.pi_product)} frames, {s.intrinsics} track): "
                    "PCE of the product's Π vs the video's measured motion",
                    "value": s.total,
                    "unit": "PCE",
                    "note": f"split: engine {s.engine:.1e}, track {s.track:.3f}, reference depth {s.depth:.3f}; "
                    f"worst step {worst}: |ln| {per[worst]:.2f}; "
                    f"SfM depth covers {s.coverage:.0%} of the view ({s.raw_coverage:.1%} before its fill); "
                    f"tracked in {s.seconds_track:.0f} s",
                }
            )
        mean_px = float(np.nanmean(motion.pi_px[1:]))
        out.append(
            {
                "name": f"real footage {stem[:8]}: the ruler (DIS, rotation removed with the pose file's rotations)",
                "value": motion.floor_share,
                "unit": "fraction",
                "note": f"rotation-only control reads {np.nanmean(motion.floor_px[1:]):.3f} px of translation "
                f"(clip moves {mean_px:.1f} px/step); DIS full vs half resolution: PCE {motion.levels:.3f}",
            }
        )
    for label in variants:
        sel = [s for s in splits if s.intrinsics == label]
        out.append(
            {
                "name": f"real footage, mean of {len(sel)} clips ({label} track): PCE vs the video's measured motion",
                "value": float(np.mean([s.total for s in sel])),
                "unit": "PCE",
                "note": f"engine {max(s.engine for s in sel):.1e} (max), track {np.mean([s.track for s in sel]):.3f}, "
                f"reference depth {np.mean([s.depth for s in sel]):.3f} (means)",
            }
        )
    return out


if __name__ == "__main__":  # pragma: no cover
    from .table import format_table

    print(format_table(rows(quick=True)))
