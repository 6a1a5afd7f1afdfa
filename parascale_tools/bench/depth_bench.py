"""Depth benchmark rows: DepthView frames/s for point clouds (level of detail vs brute force),
growth with working resolution, hierarchy build time, LOD accuracy, mesh rasterisation, and
decoding a 1080p depth file (the library backend against the built-in codec).

Scene: a furnished room (surfaces of an 8 x 3 x 12 box plus 20 spheres, area-uniform random
samples), seen by a camera dollying and panning through it. Every rate is frames per second of
``source.view`` in CPU time of this process (one core: the engine is single-threaded numpy), so
other load on a shared machine does not distort it; baselines are measured in the same run.
"""

from __future__ import annotations

import time

import numpy as np

from parascale_blender.core.camera import Camera
from parascale_blender.core.depth_sources import MeshDepth, PointCloudDepth

from ..synthetic import camera_path, icosphere, room_cloud

FULL_HD = Camera(1500.0, 1500.0, 960.0, 540.0, 1920, 1080)


def _fps(source, poses: list[np.ndarray], camera: Camera, repeat: int) -> float:
    """Frames per CPU-second of ``source.view`` over ``poses`` (median of ``repeat`` runs, one warm-up)."""
    source.view(poses[0], camera)
    times = []
    for _ in range(repeat):
        t0 = time.process_time()
        for c2w in poses:
            source.view(c2w, camera)
        times.append(time.process_time() - t0)
    return len(poses) / max(float(np.median(times)), 1e-9)


def depth_rows(quick: bool = True) -> list[dict]:
    frames, repeat = (8, 3) if quick else (24, 5)
    poses = camera_path(frames)
    cam = FULL_HD.working(160)
    out: list[dict] = []
    clouds = {}
    for n in (10_000, 100_000, 1_000_000):
        pts = room_cloud(n)
        t0 = time.perf_counter()
        lod = PointCloudDepth(pts)
        build = time.perf_counter() - t0
        clouds[n] = lod
        brute = PointCloudDepth(pts, lod_pixels=0)
        brute.hierarchy = lod.hierarchy  # same points and radii: only the drawing differs
        f_lod = _fps(lod, poses, cam, repeat)
        f_brute = _fps(brute, poses, cam, 1 if n >= 1_000_000 else repeat)
        err = max(
            abs(np.nanmean(1 / lod.view(c, cam).depth) / np.nanmean(1 / brute.view(c, cam).depth) - 1) for c in poses
        )
        name = f"DepthView, {n:,} points, {cam.width}x{cam.height}"
        note = f"LOD vs brute force; max |E[1/Z] LOD / brute - 1| = {err:.2%}; aim >= 100 frames/s at 1M"
        row = {"name": name, "value": f_lod, "unit": "frames/s", "baseline": f_brute, "ratio": f_lod / f_brute}
        out.append({**row, "note": note})
        out.append({"name": f"hierarchy build, {n:,} points", "value": build, "unit": "s", "note": "once per cloud"})
    base = None
    for side in (80, 160, 320):
        c = FULL_HD.working(side)
        f = _fps(clouds[1_000_000], poses, c, repeat)
        base = base or f
        out.append(
            {
                "name": f"DepthView, 1,000,000 points, {c.width}x{c.height}",
                "value": f,
                "unit": "frames/s",
                "baseline": base,
                "ratio": f / base,
                "note": "growth with working resolution (baseline: 80x45)",
            }
        )
    for sub in (4, 6) if quick else (4, 6, 7):
        v, t = icosphere(sub, 5.0)
        mesh = MeshDepth(v, t)
        f = _fps(mesh, poses[: max(2, frames // 4)], cam, repeat)
        out.append(
            {
                "name": f"DepthView, mesh of {len(t):,} triangles (camera inside), {cam.width}x{cam.height}",
                "value": f,
                "unit": "frames/s",
                "note": "exact triangle rasterisation",
            }
        )
    return out + depth_file_rows(quick)


def _decode_ms(call, repeat: int) -> float:
    """Median wall-clock milliseconds of ``call()`` (one warm-up): what the artist waits for."""
    call()
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return 1000 * float(np.median(times))


def depth_file_rows(quick: bool = True) -> list[dict]:
    """Decoding a 1080p depth file: the backend chosen here (OpenImageIO, OpenEXR, OpenCV) against
    the built-in numpy codec, both measured in this run on the same bytes."""
    import tempfile
    from functools import partial
    from pathlib import Path

    from parascale_blender.formats import image_backends as ib
    from parascale_blender.formats.exr import write_exr
    from parascale_blender.formats.png16 import write_png16

    repeat = 3 if quick else 7
    rng = np.random.default_rng(0)
    y, x = np.mgrid[0:1080, 0:1920]
    depth = 2.0 + y / 200.0 + x / 2000.0 + rng.normal(0, 0.01, (1080, 1920))  # a noisy ground plane, metres
    out: list[dict] = []
    with tempfile.TemporaryDirectory() as tmp:
        png, exr = Path(tmp) / "d.png", Path(tmp) / "d.exr"
        counts = np.round(depth * 1000).astype(np.uint16)
        try:  # OpenCV's adaptive row filters (Paeth among them), as Blender's and Pillow's PNGs have
            import cv2

            cv2.imwrite(str(png), counts)
        except ImportError:
            write_png16(png, counts)
        write_exr(exr, depth, compression="ZIP")
        for kind, path, decode, backend in (
            ("16-bit PNG (grey, mm)", png, ib.decode_png, ib.png_backend()),
            ("EXR (float Z, ZIP)", exr, ib.decode_exr, ib.exr_backend()),
        ):
            data = path.read_bytes()
            fast = _decode_ms(partial(decode, data, path, path=path, backend=backend), repeat)
            slow = _decode_ms(partial(decode, data, path, backend="builtin"), repeat)
            out.append(
                {
                    "name": f"depth file decode, 1920x1080 {kind}, {backend}",
                    "value": fast,
                    "unit": "ms",
                    "baseline": slow,
                    "ratio": slow / fast,
                    "note": "baseline: the built-in numpy codec (the extension's fallback); ratio = speed-up",
                }
            )
    return out
