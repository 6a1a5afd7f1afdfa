"""The closed loop: the realized parallax of a returned clip, measured on the server once its MP4 is written.

Three curves per step (index t = step from frame t-1 to t, index 0 empty), all in flow measure
(:func:`~bridge_server.flow_parallax.measured_parallax`: DIS optical flow minus the flow of the known
rotation, mean magnitude in normalised image units), at a working resolution:

- ``realized``: the clip's own frames.
- ``target``: the warp preview of the same trajectory from the job's image and depth (the
  geometrically exact render of the move: the image motion the trajectory promises).
- ``reference``: the reference's Π that Rescale keyed (the trajectory's ``pi_ref`` extra, in the
  rescale's measure — ``exact`` by default, the mean translational image motion) carried into flow
  measure by the estimator's response on this very scene and step:
  ``Π_ref,flow = Π_ref · Π_target,flow / Π_target,model``, where ``Π_target,model`` is the rescale's
  measure of the same step from the warp's depth at frame t-1 over the whole view (holes filled,
  sky as in the rescale), as Rescale measured the target. The
  reference footage and its depth stay in Blender; this is the reference's motion as DIS reads it
  on the target's pixels, so the comparison is flow against flow and DIS's bias cancels.

PCE = mean |ln(realized / reference)| (``against`` = ``reference``), or against ``target`` when the
trajectory carries no ``pi_ref`` (a camera not made by Rescale). For a perfect rescale
(Π_target,model = Π_ref) the reference curve is the target curve; a clip whose motion differs from
the reference (wrong scale, shuffled frames) shows it as PCE.
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from parascale_blender.core.camera import Trajectory
from parascale_blender.core.metrics import pce
from parascale_blender.core.parallax import ParallaxProbe
from parascale_blender.core.rescale import MODES, RescaleOptions

from .flow_parallax import measured_parallax

WORKING_SIDE = 384  # longest side of the frames measured (DIS runs in milliseconds there)
FINEST_SCALE = 1  # DIS's finest level for lossy clips (see flow_parallax.measured_parallax)
LABELS = {"reference": "PCE vs reference, flow/flow", "target": "PCE vs target (warp render), flow/flow"}


def _finite_list(x: np.ndarray) -> list[float | None]:
    return [float(v) if np.isfinite(v) else None for v in x]


def _warp_render(image: np.ndarray, depth: np.ndarray, traj: Trajectory, sky: bool, device: str):
    """Frames (N, H, W, 3) uint8, covered masks and depth keys (inf = hole, ≥ 1e30 = sky) of the warp
    preview along ``traj`` (its own size), from the conditioning ``image``/``depth`` at pose 0."""
    import torch

    from .render import fill_holes, splat, to_uint8, unproject_image

    h, w = depth.shape
    with torch.inference_mode():
        cloud = unproject_image(image, depth, traj.c2w[0], traj.camera(0).scaled_to(w, h), sky=sky, device=device)
        frames, zbufs = [], []
        for i in range(len(traj)):
            rgb, zbuf = splat(cloud, traj.c2w[i], traj.camera(i))
            frames.append(to_uint8(fill_holes(rgb, zbuf)))
            zbufs.append(zbuf.double().cpu().numpy())
    z = np.stack(zbufs)
    return np.stack(frames), np.isfinite(z), z


def _filled_inverse_depth(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(1/Z per pixel, sky mask) from a warp depth key map: holes (disocclusions, content entering
    the frame) filled from the background side as the renderer fills colour, so every pixel of the
    view counts, as in the rescale's view of the target."""
    import torch

    from .render import fill_holes

    sky = np.isfinite(key) & (key >= 1e29)
    solid = np.isfinite(key) & ~sky & (key > 0)
    inv = np.where(solid, 1.0 / np.where(solid, key, 1.0), 0.0)
    if not (solid | sky).all():
        zb = torch.as_tensor(np.where(solid | sky, key, np.inf), dtype=torch.float32)
        filled = fill_holes(torch.as_tensor(np.repeat(inv[..., None], 3, -1), dtype=torch.float32), zb)
        inv = filled[..., 0].double().numpy()
    return np.maximum(inv, 0.0), sky


def model_parallax(z: np.ndarray, traj: Trajectory, measure: str, allow_sky: bool) -> np.ndarray:
    """Π of each step in the rescale's ``measure`` from the warp's depth keys ``z`` at frame t-1
    (every pixel, holes filled; sky as 1/Z = 0 when ``allow_sky``, else left out)."""
    steps = traj.steps_in_camera()
    out = np.full(len(traj), np.nan)
    for t in range(1, len(traj)):
        x, y = traj.camera(t - 1).pixel_rays()
        inv, sky = _filled_inverse_depth(z[t - 1])
        use = ~sky | allow_sky
        out[t] = ParallaxProbe(x[use], y[use], inv[use]).parallax(steps[t - 1], measure)
    return out


def _rescale_measure(traj: Trajectory) -> tuple[str, bool]:
    """The measure and sky rule Rescale used for the trajectory's ``pi_ref`` (from its metadata)."""
    meta = traj.metadata or {}
    mode = meta.get("mode")
    measure = RescaleOptions(mode=mode if mode in MODES else RescaleOptions().mode).measure
    return measure, bool(meta.get("allow_sky", RescaleOptions().allow_sky))


def measure_clip(
    clip: Path,
    traj: Trajectory,
    image: np.ndarray,
    depth: np.ndarray,
    sky: bool = True,
    device: str = "cpu",
    working_side: int = WORKING_SIDE,
) -> dict:
    """The closed-loop report of ``clip`` (an MP4 along ``traj``): see the module docstring.

    Returns the JSON-able fields of :class:`~bridge_server.models.ClipParallax`."""
    from .tracking.video import decode_video

    t0 = time.perf_counter()
    video = decode_video(clip, max_side=working_side)
    n = min(len(video.images), len(traj))
    frames = np.stack(video.images[:n])
    H, W = frames.shape[1:3]
    sx, sy = W / traj.width, H / traj.height  # the clip may be cropped to even sizes: ≤ 1 px off
    K = traj.intrinsics[:n] * np.array([sx, sy, sx, sy])
    work = Trajectory(traj.frames[:n], traj.c2w[:n], K, W, H, traj.fps)
    warp, covered, z = _warp_render(image, depth, work, sky, device)
    t_decode_render = time.perf_counter() - t0
    # The clip is a lossy MP4: DIS at half resolution (FINEST_SCALE), both sides at the same level.
    realized = measured_parallax(frames, covered, work, finest_scale=FINEST_SCALE)
    target = measured_parallax(warp, covered, work, finest_scale=FINEST_SCALE)
    pi_ref = np.asarray(traj.extras.get("pi_ref", np.full(len(traj), np.nan)), np.float64)[:n]
    has_ref = bool(np.isfinite(pi_ref[1:]).any())
    reference = None
    measure, allow_sky = _rescale_measure(traj)
    if has_ref:
        model = model_parallax(z, work, measure, allow_sky)
        with np.errstate(divide="ignore", invalid="ignore"):
            reference = np.where(model > 0, pi_ref * target / model, np.nan)
    against = "reference" if has_ref else "target"
    value = pce(realized, reference if has_ref else target, strict=False)
    seconds = time.perf_counter() - t0
    return {
        "frames": [int(f) for f in traj.frames[:n]],
        "realized": _finite_list(realized),
        "target": _finite_list(target),
        "reference": _finite_list(reference) if reference is not None else None,
        "pce": float(value) if np.isfinite(value) else None,
        "against": against,
        "label": LABELS[against],
        "reference_measure": measure if has_ref else None,
        "working_size": [int(W), int(H)],
        "seconds": seconds,
        "seconds_per_frame": seconds / max(n, 1),
        "render_seconds": t_decode_render,
    }
