"""Engine benchmark rows: ``rescale`` frames/s against point clouds, and how cost grows.

Target scene: points sampled area-uniformly on the built-in desk mesh; reference: the bundled
RealEstate10K track at a subject distance. Baseline for each row: the brute-force z-buffer
(level of detail off) measured in the same run on the same cloud. Rates are per core: CPU time
of a child process whose BLAS runs on one thread (the engine is single-threaded numpy; OpenBLAS's
idle worker threads spin after every small matmul and would be billed as a second core), so a busy
machine does not skew them.
"""

from __future__ import annotations

import time

import numpy as np

from parascale_blender.core.camera import opencv_from_blender
from parascale_blender.core.depth import ConstantDepth
from parascale_blender.core.depth_sources import PointCloudDepth
from parascale_blender.core.rescale import RescaleOptions, rescale
from parascale_tools.scenes import desk_scene

from .table import median_time


def sample_surface(vertices: np.ndarray, triangles: np.ndarray, n: int, seed: int = 0) -> np.ndarray:
    """``n`` points uniformly distributed over the mesh surface (area-weighted)."""
    rng = np.random.default_rng(seed)
    tri = vertices[triangles]
    area = 0.5 * np.linalg.norm(np.cross(tri[:, 1] - tri[:, 0], tri[:, 2] - tri[:, 0]), axis=1)
    pick = rng.choice(len(tri), size=n, p=area / area.sum())
    u, v = rng.random(n), rng.random(n)
    flip = u + v > 1
    u[flip], v[flip] = 1 - u[flip], 1 - v[flip]
    t = tri[pick]
    return t[:, 0] + u[:, None] * (t[:, 1] - t[:, 0]) + v[:, None] * (t[:, 2] - t[:, 0])


def rows(quick: bool = True) -> list[dict]:
    """The rows, measured in a child process with single-threaded BLAS (see the module docstring)."""
    import json
    import os
    import subprocess
    import sys

    env = {**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", __name__] + (["--quick"] if quick else [])
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    return json.loads(proc.stdout)


def measure(quick: bool = True) -> list[dict]:
    from parascale_blender.formats.registry import read_trajectory
    from parascale_tools.reference import bundled_reference_path

    ref = read_trajectory(bundled_reference_path(), width=640, height=360)
    scene = desk_scene()
    start = opencv_from_blender(scene.start_c2w_blender)
    steps = len(ref) - 1
    repeat = 3 if quick else 5
    out = []

    def fps(source, size=160, mode=RescaleOptions.mode):
        opts = RescaleOptions(working_size=size, mode=mode)
        run = lambda: rescale(ref, ConstantDepth(2.5), source, start, options=opts)  # noqa: E731
        secs = median_time(run, repeat, 1, clock=time.process_time)
        return steps / secs

    counts = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    for n in counts:
        pts = sample_surface(scene.vertices, scene.triangles, n)
        lod, brute = PointCloudDepth(pts), PointCloudDepth(pts, lod_pixels=0)
        f_lod, f_brute, f_harm = fps(lod), fps(brute), fps(lod, mode="harmonic")
        its = rescale(ref, ConstantDepth(2.5), lod, start).solver_iterations / steps
        out.append(
            {
                "name": f"rescale ({RescaleOptions.mode}, default), {n:,} points, 160 px working size",
                "value": f_lod,
                "unit": "frames/s/core",
                "baseline": f_brute,
                "ratio": f_lod / f_brute,
                "note": "baseline: brute-force z-buffer; aim >= 90 frames/s per core at 1M",
            }
        )
        out.append(
            {
                "name": f"exact vs harmonic mode, {n:,} points",
                "value": f_lod,
                "unit": "frames/s/core",
                "baseline": f_harm,
                "ratio": f_lod / f_harm,
                "note": f"the α search: {its:.1f} Π evaluations per step (two passes)",
            }
        )
    pts = sample_surface(scene.vertices, scene.triangles, 100_000)
    src = PointCloudDepth(pts)
    base = None
    for size in (80, 160, 320):
        f = fps(src, size)
        base = base or f
        out.append(
            {
                "name": f"rescale, 100,000 points, {size} px working size",
                "value": f,
                "unit": "frames/s/core",
                "baseline": base,
                "ratio": f / base,
                "note": "growth with resolution (baseline: 80 px)",
            }
        )
    return out


if __name__ == "__main__":
    import json
    import sys

    print(json.dumps(measure(quick="--quick" in sys.argv[1:])))
