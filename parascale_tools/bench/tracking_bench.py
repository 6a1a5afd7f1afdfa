"""Tracking benchmark: seconds per frame and accuracy of ``parascale track`` (pycolmap).

Rows: the synthetic room clip (exact ground truth, our ray caster) at 576x320 and 960x540,
tracked with the global mapper (the default) against the incremental mapper as the baseline;
accuracy rows (max rotation error, max translation-direction error, max Π error vs the exact
depth); and a real RealEstate10K clip against its pose file. Needs pycolmap and PyAV (the
section is skipped without them); the imports are local so the extension never loads them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from parascale_blender.core.camera import Camera

SIZES = ((576, 320), (960, 540))


def _synthetic(width: int, height: int, n: int, tmp: Path):
    from bridge_server.tracking.video import write_video
    from parascale_tools.tracking.evaluate import dense_views, parallax_series
    from parascale_tools.tracking.synthetic import orbit_path, render_clip

    f = 0.78 * width
    cam = Camera(f, f, width / 2, height / 2, width, height)
    poses = orbit_path(n)
    images, _ = render_clip(poses, cam)
    working = cam.working(160)
    _, depth = render_clip(poses, working, supersample=1)
    path = tmp / f"room_{width}x{height}.mp4"
    write_video(path, images)
    return path, poses, parallax_series(poses, dense_views(depth, working))


def _accuracy(track, poses, true_pi) -> tuple[float, float, float]:
    from parascale_tools.tracking.evaluate import pose_errors, track_parallax

    rot, direction = pose_errors(track.c2w, poses)
    pi = track_parallax(track)
    return float(rot.max()), float(np.nanmax(direction)), float(np.nanmax(np.abs(pi[1:] / true_pi[1:] - 1)))


def rows(quick: bool = True) -> list[dict]:
    from bridge_server.tracking import track_video

    n = 12 if quick else 24
    out: list[dict] = []
    with tempfile.TemporaryDirectory(prefix="parascale-trackbench-") as tmp:
        for width, height in SIZES:
            path, poses, true_pi = _synthetic(width, height, n, Path(tmp))
            per_frame, acc = {}, {}
            for mapper in ("incremental", "global"):
                track = track_video(path, {"mapper": mapper})
                per_frame[mapper] = track.metadata["seconds"]["total"] / len(track)
                acc[mapper] = _accuracy(track, poses, true_pi)
            g, i = per_frame["global"], per_frame["incremental"]
            out.append(
                {
                    "name": f"track synthetic {width}x{height}, {n} frames, global mapper",
                    "value": g,
                    "unit": "s/frame",
                    "baseline": i,
                    "ratio": g / i,
                    "note": "baseline: incremental mapper; self-calibrated, SIFT 8192, sequential overlap 10",
                }
            )
            for k, (label, unit, target) in enumerate(
                (
                    ("max rotation error", "deg", 1.0),
                    ("max translation-direction error", "deg", 3.0),
                    ("max per-step Π error", "fraction", 0.10),
                )
            ):
                out.append(
                    {
                        "name": f"track synthetic {width}x{height}: {label}, global (incremental = baseline)",
                        "value": acc["global"][k],
                        "unit": unit,
                        "baseline": acc["incremental"][k],
                        "ratio": acc["global"][k] / acc["incremental"][k] if acc["incremental"][k] else None,
                        "note": f"target <= {target}",
                    }
                )
    out += _re10k_rows()
    return out


def _re10k_rows() -> list[dict]:
    from bridge_server.tracking import track_video
    from parascale_blender.core.metrics import rot_err, trans_err
    from parascale_blender.formats.re10k import read_re10k
    from parascale_tools.tracking.evaluate import pose_errors

    base = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "video" / "re10k_25f"
    video, poses = base / "0bf152ef84195293_svdxt.mp4", base / "0bf152ef84195293_svdxt.txt"
    if not video.is_file():
        return []
    gt = read_re10k(poses, width=576, height=320)
    rows_out = []
    for mapper in ("global", "incremental"):
        track = track_video(video, {"mapper": mapper, "intrinsics": tuple(gt.intrinsics[0])})
        rot, _ = pose_errors(track.c2w, gt.c2w)
        rows_out.append(
            {
                "name": f"track RE10K 0bf152ef 576x320, 25 frames, {mapper}: RotErr (max/frame as baseline)",
                "value": float(np.degrees(rot_err(track.c2w, gt.c2w))),
                "unit": "deg (sum)",
                "baseline": float(rot.max()),
                "ratio": None,
                "note": f"TransErr (relative) {trans_err(track.c2w, gt.c2w):.3f}; "
                f"{track.metadata['seconds']['total'] / len(track):.2f} s/frame; known intrinsics",
            }
        )
    return rows_out


if __name__ == "__main__":  # pragma: no cover
    from .table import format_table

    print(format_table(rows(quick=True)))
