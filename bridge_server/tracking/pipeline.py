"""``track_video``: reference video → ParaScale camera track with its own sparse depth."""

from __future__ import annotations

import contextlib
import dataclasses
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from parascale_blender.core.camera import Trajectory

from .convert import to_trajectory
from .errors import TrackingCancelled, TrackingError
from .motion import is_static
from .reconstruct import MAPPERS, REPRODUCIBLE_THREADS, ROTATION_ONLY, MatchStats, SfmOptions, reconstruct
from .rotation_only import track_rotation_only
from .video import decode_video

ProgressCallback = Callable[[float, str], None]
DEFAULT_MAPPER = "global"  # measured: registers every frame of all test clips; incremental does not


@dataclass
class TrackOptions:
    """Tracking settings.

    ``intrinsics`` (fx, fy, cx, cy) in pixels of the video's own size: held fixed when given,
    else one focal length and radial distortion are estimated. ``max_side`` downsizes frames
    for feature extraction (poses and intrinsics are reported at the video's size).
    """

    intrinsics: tuple[float, float, float, float] | None = None
    every: int = 1
    max_frames: int | None = None
    mapper: str = DEFAULT_MAPPER
    max_side: int | None = 960
    max_features: int = 8192
    overlap: int = 10
    camera_model: str = "SIMPLE_RADIAL"
    min_registered: float = 0.5
    threads: int = REPRODUCIBLE_THREADS  # the same video gives the same track (-1: every core, not reproducible)
    seed: int = 0
    verbose: bool = False

    @classmethod
    def from_mapping(cls, values: dict | TrackOptions | None) -> TrackOptions:
        """Options from a JSON-like dict (e.g. a server job); unknown keys are an error."""
        if values is None:
            return cls()
        if isinstance(values, cls):
            return values
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise TrackingError(f"unknown tracking option(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        opts = cls(**values)
        if opts.intrinsics is not None:
            opts.intrinsics = tuple(float(v) for v in opts.intrinsics)
        return opts

    def validate(self) -> None:
        if self.mapper not in MAPPERS:
            raise TrackingError(f"unknown mapper {self.mapper!r}; choose one of {', '.join(MAPPERS)}")
        if self.intrinsics is not None:
            if len(self.intrinsics) != 4 or not all(v > 0 for v in self.intrinsics):
                raise TrackingError(f"intrinsics must be four positive numbers fx,fy,cx,cy, got {self.intrinsics}")
        if not 0.0 < self.min_registered <= 1.0:
            raise TrackingError(f"min_registered must be in (0, 1], got {self.min_registered}")


@contextlib.contextmanager
def _colmap_log(verbose: bool) -> Iterator[None]:
    import pycolmap

    old = pycolmap.logging.minloglevel
    pycolmap.logging.minloglevel = old if verbose else 2
    try:
        yield
    finally:
        pycolmap.logging.minloglevel = old


def explain_failure(stats: MatchStats, n_frames: int, width: int, height: int, source: str) -> TrackingError:
    """The user-facing reason a clip produced no reconstruction, from its match statistics."""
    diag = float((width**2 + height**2) ** 0.5)
    if stats.verified_pairs == 0:
        return TrackingError(
            f"{source}: too few feature matches: no pair of frames shares 15 consistent SIFT matches "
            "(textureless, blurred, too dark, or the clip cuts between shots).",
            kind="matches",
        )
    if stats.max_median_motion_px < 0.0025 * diag:
        return TrackingError(
            f"{source}: static camera: matched features move {stats.max_median_motion_px:.2f} px at most "
            f"over {n_frames} frames; there is no camera move to transfer (Π is zero for this clip).",
            kind="static",
        )
    if stats.wide_homography_fraction >= ROTATION_ONLY:
        return TrackingError(
            f"{source}: too little parallax: even the most distant frame pairs are explained by a pure rotation "
            f"or a flat scene ({stats.homography_pairs} of {stats.verified_pairs} pairs): a tripod pan/tilt, a zoom, "
            "or a wall. Depth and translation cannot be recovered from this clip; track a longer range "
            "(larger --every or more frames) or supply the move another way.",
            kind="parallax",
        )
    return TrackingError(
        f"{source}: the reconstruction could not start: {stats.verified_pairs} frame pairs matched "
        f"(median {stats.median_inliers:.0f} inliers) but no pair had enough parallax to initialise. "
        "Try --mapper global, a larger --every, or known --intrinsics.",
        kind="parallax",
    )


def track_video(
    path: str | Path,
    options: TrackOptions | dict | None = None,
    progress: ProgressCallback | None = None,
    cancelled: Callable[[], bool] | None = None,
) -> Trajectory:
    """Track the camera of the video at ``path``.

    ``progress(fraction, message)`` is called with fractions rising from 0 to 1; ``cancelled()``
    is polled and, once True, stops the work with :class:`TrackingCancelled`. Every failure a
    user can cause raises :class:`TrackingError` with a complete message.
    """
    opts = TrackOptions.from_mapping(options)
    opts.validate()
    report = progress or (lambda fraction, message: None)
    source = str(path)
    t_start = time.perf_counter()
    report(0.0, f"decoding {Path(path).name}")
    video = decode_video(path, every=opts.every, max_frames=opts.max_frames, max_side=opts.max_side)
    if cancelled is not None and cancelled():
        raise TrackingCancelled()
    seconds_decode = time.perf_counter() - t_start
    static, motion = is_static(video.images)
    K = None
    if opts.intrinsics is not None:
        K = tuple(v * video.scale for v in opts.intrinsics)
    if static:  # a locked-off shot is a valid (zero) move
        report(0.5, f"static camera ({motion:.2f} px): tripod track")
        track = track_rotation_only(video, K, source, {"seconds": {"total": time.perf_counter() - t_start}})
        report(1.0, f"tracked {len(track)} frames (stationary)")
        return track
    sfm_opts = SfmOptions(
        mapper=opts.mapper,
        intrinsics=K,
        camera_model=opts.camera_model,
        max_features=opts.max_features,
        overlap=opts.overlap,
        threads=opts.threads,
        seed=opts.seed,
    )
    h, w = video.images[0].shape[:2]

    def sub(fraction: float, message: str) -> None:
        report(0.05 + 0.9 * fraction, message)

    with _colmap_log(opts.verbose):
        sfm, stats = reconstruct(video.images, sfm_opts, sub, cancelled)
    if sfm is None:
        failure = explain_failure(stats, len(video.images), w, h, source)
        if failure.kind != "static" and stats.wide_homography_fraction < ROTATION_ONLY:
            raise failure
        report(0.95, "no parallax: tripod track from homographies")  # a tripod pan/tilt is a valid move
        try:
            track = track_rotation_only(video, K, source, {"seconds": {"total": time.perf_counter() - t_start}})
        except TrackingError:
            raise failure from None  # the camera moved after all: SfM's reason stands
        report(1.0, f"tracked {len(track)} frames ({track.metadata['tripod']})")
        return track
    import pycolmap

    meta = {
        "tracker": f"pycolmap {pycolmap.__version__} {opts.mapper}",
        "intrinsics": "given" if K is not None else f"estimated ({opts.camera_model})",
        "tracked_size": [w, h],
        "seconds": {"decode": seconds_decode, **sfm.seconds, "total": time.perf_counter() - t_start},
    }
    track = to_trajectory(sfm, video, source, opts.min_registered, meta)
    report(1.0, f"tracked {len(track)} frames")
    return track
