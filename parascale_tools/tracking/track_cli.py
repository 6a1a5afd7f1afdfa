"""``parascale track VIDEO [-o track.json] [--intrinsics fx,fy,cx,cy] [--every N] [--max-frames N]
[--mapper incremental|global]``: the CLI subcommand (hooked into ``parascale`` by the lead)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from bridge_server.tracking.errors import TrackingError
from bridge_server.tracking.pipeline import DEFAULT_MAPPER, TrackOptions, track_video
from bridge_server.tracking.reconstruct import MAPPERS
from parascale_blender.formats.registry import write_trajectory

from ..output import ProgressBar


def _intrinsics(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    try:
        values = tuple(float(p) for p in parts)
    except ValueError:
        values = ()
    if len(values) != 4 or not all(v > 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected four positive numbers fx,fy,cx,cy in pixels, got {text!r}")
    return values  # type: ignore[return-value]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def build_parser(prog: str = "parascale track") -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description="Track the camera of a reference video (pycolmap SfM).")
    p.add_argument("video", help="the reference clip (any format FFmpeg reads)")
    p.add_argument(
        "-o", "--output", help="output trajectory, format from its extension (default: VIDEO.track.json beside it)"
    )
    p.add_argument("--intrinsics", type=_intrinsics, help="known fx,fy,cx,cy in pixels of the video (held fixed)")
    p.add_argument("--every", type=_positive, default=1, help="use every N-th frame (default 1)")
    p.add_argument("--max-frames", type=_positive, help="stop after this many used frames")
    p.add_argument("--mapper", choices=MAPPERS, default=DEFAULT_MAPPER, help=f"default {DEFAULT_MAPPER}")
    p.add_argument("--max-side", type=_positive, default=960, help="downsize frames to this longest side (960)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--verbose", action="store_true", help="show COLMAP's own log")
    return p


def track_main(argv: list[str] | None = None) -> int:
    """Run ``parascale track``; returns the exit status (0 ok, 2 tracking or usage error)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    out = Path(args.output) if args.output else Path(args.video).with_suffix(".track.json")
    options = TrackOptions(
        intrinsics=args.intrinsics,
        every=args.every,
        max_frames=args.max_frames,
        mapper=args.mapper,
        max_side=args.max_side,
        verbose=args.verbose,
    )
    bar = ProgressBar(enabled=not args.quiet)
    try:
        track = track_video(args.video, options, progress=bar)
    except TrackingError as exc:
        bar.close()
        print(f"parascale track: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        bar.close()
        print("parascale track: interrupted", file=sys.stderr)
        return 130
    bar.close()
    try:
        write_trajectory(track, out)
    except (OSError, ValueError) as exc:
        print(f"parascale track: error: cannot write {out}: {exc}", file=sys.stderr)
        return 2
    meta = track.metadata
    interp = meta.get("interpolated_frames", [])
    print(
        f"{out}: {len(track)} frames ({meta['registered_frames']} registered, {len(interp)} interpolated), "
        f"{len(track.points.xyz)} points, reprojection error {meta['mean_reprojection_error_px']:.2f} px"
    )
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(track_main())
