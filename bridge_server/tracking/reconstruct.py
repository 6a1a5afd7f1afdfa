"""Structure from motion on decoded frames with pycolmap (SIFT, sequential matching, mapping).

Everything pycolmap-specific lives here; the result is plain numpy (:class:`SfmResult`) with
COLMAP's world-to-camera poses (OpenCV axes, pixel origin at the image's top-left corner, as in
ParaScale) at the resolution the frames were given in.
"""

from __future__ import annotations

import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .errors import TrackingCancelled, TrackingError

Progress = Callable[[float, str], None]
MAPPERS = ("incremental", "global")
# pycolmap's thread pools (SIFT extraction, matching, mapping) reorder features, matches and RANSAC
# draws from run to run whatever the seed: measured on the 10-frame 256x160 room clip, 3 runs each,
# threads=-1 gave floor inliers 226/224/215 and a levelled up 0.69/1.01/1.23 deg off (once no floor
# at all: 1.97 deg from the cameras), any stage multi-threaded alone still varied; threads=1 gave
# the same solve bit for bit (1.22 deg, 229 inliers) for ~25% more time (3.0 vs 2.4 s).
REPRODUCIBLE_THREADS = 1
ROTATION_ONLY = 0.9  # wide pairs explained by a homography at least this often: no usable parallax


@dataclass
class SfmOptions:
    """Reconstruction settings. ``intrinsics`` (fx, fy, cx, cy) are in pixels of the given frames."""

    mapper: str = "global"
    intrinsics: tuple[float, float, float, float] | None = None
    camera_model: str = "SIMPLE_RADIAL"
    max_features: int = 8192
    overlap: int = 10
    threads: int = REPRODUCIBLE_THREADS  # -1: every core, faster but not reproducible
    seed: int = 0
    peak_threshold: float = 0.004
    two_view_tracks: bool = True


@dataclass
class MatchStats:
    """What the verified matches say about the motion, before mapping."""

    pairs: int
    verified_pairs: int
    max_median_motion_px: float
    homography_pairs: int
    median_inliers: float
    wide_homography_fraction: float = 0.0


@dataclass
class SfmResult:
    """Registered poses (``w2c`` NaN where unregistered), one pinhole camera, points and visibility."""

    registered: np.ndarray
    w2c: np.ndarray
    intrinsics: np.ndarray
    extra_params: list[float]
    xyz: np.ndarray
    rgb: np.ndarray
    visibility: list[np.ndarray]
    stats: MatchStats
    seconds: dict[str, float] = field(default_factory=dict)
    mean_reprojection_error: float = float("nan")
    errors_px: np.ndarray | None = None  # per image: mean reprojection error of its observations (NaN: unregistered)


class _CancelWatcher:
    """Polls ``cancelled()`` in a thread and trips a pycolmap CancellationToken."""

    def __init__(self, cancelled: Callable[[], bool] | None):
        import pycolmap

        self.cancelled = cancelled
        self.token = pycolmap.CancellationToken()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True) if cancelled else None

    def _run(self) -> None:
        while not self._stop.wait(0.2):
            if self.cancelled():
                self.token.cancel()
                return

    def check(self) -> None:
        if self.cancelled is None:
            return
        tripped = self.token.is_cancelled  # a property in pycolmap 4.2, a method in some builds
        if (tripped() if callable(tripped) else tripped) or self.cancelled():
            raise TrackingCancelled()

    def __enter__(self) -> _CancelWatcher:
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        self._stop.set()
        if exc_type is InterruptedError and self.cancelled is not None:
            raise TrackingCancelled() from None  # pycolmap stopped at the tripped token


def _match_stats(db_path: Path, n_images: int) -> MatchStats:
    """Per verified pair: median displacement of inlier matches (pixels) and the geometry type."""
    import pycolmap

    db = pycolmap.Database.open(str(db_path))
    try:
        keypoints = {img.image_id: db.read_keypoints(img.image_id)[:, :2] for img in db.read_all_images()}
        pair_ids, geometries = db.read_two_view_geometries()
        motions, inliers, flags = [], [], []
        config = pycolmap.TwoViewGeometryConfiguration
        flat = {config.PLANAR_OR_PANORAMIC, config.PANORAMIC}
        for pair_id, geom in zip(pair_ids, geometries):
            m = np.asarray(geom.inlier_matches)
            if len(m) == 0:
                continue
            a, b = pycolmap.pair_id_to_image_pair(pair_id)
            d = np.linalg.norm(keypoints[a][m[:, 0]] - keypoints[b][m[:, 1]], axis=1)
            motions.append(float(np.median(d)))
            inliers.append(len(m))
            flags.append(geom.config in flat)
        total = db.num_matched_image_pairs()
    finally:
        db.close()
    # Among the widest third of the pairs (by image motion), how many a homography explains:
    # near 1 for a tripod pan/tilt or a flat scene, where depth cannot be recovered.
    wide = np.argsort(motions)[-max(1, len(motions) // 3) :] if motions else []
    return MatchStats(
        pairs=int(total),
        verified_pairs=len(motions),
        max_median_motion_px=max(motions, default=0.0),
        homography_pairs=int(sum(flags)),
        median_inliers=float(np.median(inliers)) if inliers else 0.0,
        wide_homography_fraction=float(np.mean([flags[i] for i in wide])) if motions else 0.0,
    )


def _mapper_options(options: SfmOptions, fixed: bool):
    import pycolmap

    threads = options.threads
    if options.mapper == "incremental":
        opts = pycolmap.IncrementalPipelineOptions()
        opts.num_threads = threads
        opts.random_seed = options.seed
        opts.multiple_models = False
        opts.min_model_size = 3
        opts.triangulation.ignore_two_view_tracks = not options.two_view_tracks
        if fixed:
            opts.ba_refine_focal_length = False
            opts.ba_refine_extra_params = False
            opts.ba_refine_principal_point = False
            opts.mapper.abs_pose_refine_focal_length = False
            opts.mapper.abs_pose_refine_extra_params = False
        return opts
    opts = pycolmap.GlobalPipelineOptions()
    opts.num_threads = threads
    opts.random_seed = options.seed
    opts.mapper.num_threads = threads
    opts.mapper.random_seed = options.seed
    opts.mapper.global_positioning.use_gpu = False
    opts.mapper.bundle_adjustment.ceres.use_gpu = False
    if options.two_view_tracks:
        opts.mapper.track_min_num_views_per_track = 2
        opts.mapper.retriangulation.ignore_two_view_tracks = False
    if fixed:
        ba = opts.mapper.bundle_adjustment
        ba.refine_focal_length = False
        ba.refine_extra_params = False
        ba.refine_principal_point = False
    return opts


def reconstruct(
    images: list[np.ndarray],
    options: SfmOptions | None = None,
    progress: Progress | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> tuple[SfmResult | None, MatchStats]:
    """Run SIFT extraction, sequential matching and mapping on RGB ``images`` (all one size).

    Returns ``(None, stats)`` when mapping produced no model, so the caller can explain why
    from the match statistics. Progress fractions cover 0..1 of this step.
    """
    import cv2
    import pycolmap

    options = options or SfmOptions()
    if options.mapper not in MAPPERS:
        raise TrackingError(f"unknown mapper {options.mapper!r}; choose one of {', '.join(MAPPERS)}")
    report = progress or (lambda f, m: None)
    pycolmap.set_random_seed(options.seed)
    seconds: dict[str, float] = {}
    h, w = images[0].shape[:2]
    fixed = options.intrinsics is not None
    with tempfile.TemporaryDirectory(prefix="parascale-track-") as tmp, _CancelWatcher(cancelled) as watch:
        tmp_path = Path(tmp)
        image_dir = tmp_path / "images"
        image_dir.mkdir()
        names = [f"{i:06d}.png" for i in range(len(images))]
        for name, rgb in zip(names, images):
            cv2.imwrite(str(image_dir / name), cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR))
        db_path = tmp_path / "database.db"

        reader = pycolmap.ImageReaderOptions()
        if fixed:
            reader.camera_model = "PINHOLE"
            reader.camera_params = ",".join(f"{v:.10g}" for v in options.intrinsics)
        else:
            reader.camera_model = options.camera_model
        extraction = pycolmap.FeatureExtractionOptions()
        extraction.num_threads = options.threads
        extraction.sift.max_num_features = options.max_features
        extraction.sift.peak_threshold = options.peak_threshold
        t0 = time.perf_counter()
        report(0.0, f"extracting SIFT features from {len(images)} frames")
        pycolmap.extract_features(
            db_path,
            image_dir,
            image_names=names,
            camera_mode=pycolmap.CameraMode.SINGLE,
            reader_options=reader,
            extraction_options=extraction,
            device=pycolmap.Device.cpu,
            cancellation_token=watch.token,
        )
        watch.check()
        seconds["features"] = time.perf_counter() - t0

        t0 = time.perf_counter()
        report(0.3, "matching neighbouring frames")
        matching = pycolmap.FeatureMatchingOptions()
        matching.num_threads = options.threads
        pairing = pycolmap.SequentialPairingOptions()
        pairing.overlap = options.overlap
        pycolmap.match_sequential(
            db_path,
            matching_options=matching,
            pairing_options=pairing,
            device=pycolmap.Device.cpu,
            cancellation_token=watch.token,
        )
        watch.check()
        seconds["matching"] = time.perf_counter() - t0
        stats = _match_stats(db_path, len(images))
        if stats.verified_pairs == 0 or stats.max_median_motion_px <= 0:
            return None, stats
        if _looks_static(stats, w, h) or stats.wide_homography_fraction >= ROTATION_ONLY:
            return None, stats

        t0 = time.perf_counter()
        report(0.5, f"{options.mapper} mapping")
        out_dir = tmp_path / "sparse"
        out_dir.mkdir()
        mapper_opts = _mapper_options(options, fixed)
        if options.mapper == "incremental":
            done = [0]

            def next_image() -> None:
                done[0] += 1
                report(0.5 + 0.45 * min(1.0, done[0] / len(images)), f"registered {done[0]} of {len(images)} frames")

            models = pycolmap.incremental_mapping(
                db_path,
                image_dir,
                out_dir,
                mapper_opts,
                next_image_callback=next_image,
                cancellation_token=watch.token,
            )
        else:
            models = pycolmap.global_mapping(db_path, image_dir, out_dir, mapper_opts)
        watch.check()
        seconds["mapping"] = time.perf_counter() - t0
    if not models:
        return None, stats
    model = max(models.values(), key=lambda r: r.num_reg_images())
    result = _to_numpy(model, names, stats)
    result.seconds = seconds
    report(1.0, f"registered {int(result.registered.sum())} of {len(images)} frames")
    return result, stats


def _looks_static(stats: MatchStats, width: int, height: int) -> bool:
    """No verified pair moves its matched features by more than 0.25% of the image diagonal."""
    return stats.max_median_motion_px < 0.0025 * float(np.hypot(width, height))


def _fresh_mean_error(model) -> float:
    """pycolmap's mean reprojection error with the points' errors recomputed for the final model."""
    model.update_point_3d_errors()
    return float(model.compute_mean_reprojection_error())


def _to_numpy(model, names: list[str], stats: MatchStats) -> SfmResult:
    index_of = {name: i for i, name in enumerate(names)}
    n = len(names)
    w2c = np.full((n, 4, 4), np.nan)
    registered = np.zeros(n, bool)
    cams = list(model.cameras.values())
    cam = cams[0]
    if cam.model_name in ("SIMPLE_PINHOLE", "SIMPLE_RADIAL", "RADIAL", "SIMPLE_RADIAL_FISHEYE", "RADIAL_FISHEYE"):
        f, cx, cy = cam.params[:3]
        K = np.array([f, f, cx, cy])
        extra = [float(v) for v in cam.params[3:]]
    else:
        K = np.asarray(cam.params[:4], float)
        extra = [float(v) for v in cam.params[4:]]
    image_index: dict[int, int] = {}
    for image_id, image in model.images.items():
        if not image.has_pose:
            continue
        i = index_of[image.name]
        image_index[image_id] = i
        M = np.eye(4)
        M[:3] = image.cam_from_world().matrix()
        w2c[i] = M
        registered[i] = True
    point_ids = list(model.points3D.keys())
    xyz = np.array([model.points3D[p].xyz for p in point_ids], float).reshape(-1, 3)
    rgb = np.array([model.points3D[p].color for p in point_ids], np.uint8).reshape(-1, 3)
    seen: list[list[int]] = [[] for _ in range(n)]
    observed: list[list[int]] = [[] for _ in range(n)]  # the point2D index of each sighting in ``seen``
    for k, p in enumerate(point_ids):
        for el in model.points3D[p].track.elements:
            i = image_index.get(el.image_id)
            if i is not None:
                seen[i].append(k)
                observed[i].append(el.point2D_idx)
    visibility = [np.unique(np.asarray(s, np.int64)) for s in seen]
    errors = np.full(n, np.nan)
    for image_id, i in image_index.items():  # per frame: |projection - observation|, as COLMAP measures it
        if not seen[i]:
            continue
        image = model.images[image_id]
        uv = np.array([image.points2D[j].xy for j in observed[i]], float)
        pc = xyz[seen[i]] @ w2c[i, :3, :3].T + w2c[i, :3, 3]
        proj = model.cameras[image.camera_id].img_from_cam(pc, check_cheirality=False)
        errors[i] = float(np.mean(np.linalg.norm(proj - uv, axis=1)))
    return SfmResult(
        registered=registered,
        w2c=w2c,
        intrinsics=K,
        extra_params=extra,
        xyz=xyz,
        rgb=rgb,
        visibility=visibility,
        stats=stats,
        mean_reprojection_error=_fresh_mean_error(model),
        errors_px=errors,
    )
