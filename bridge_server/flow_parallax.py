"""Realized parallax of a rendered clip, read from optical flow (OpenCV DIS).

Π_t = mean translational image motion of step t: the dense flow from frame t-1 to t minus the flow
the known camera rotation causes (pinhole, OpenCV axes, c2w poses), mean magnitude in pixels over
the pixels that are real content, divided by sqrt(fx·fy) so it is in normalised image units — the
same unit as ``parascale_blender.core.parallax``. Used by the benchmark and by the server's
measurement of a returned clip, so both compare flow against flow.
"""

from __future__ import annotations

import numpy as np

from parascale_blender.core.camera import Trajectory

FLOW_FLOOR_PX = 0.02  # below this mean flow, DIS reads noise: a move this small is invisible


def measured_parallax(frames: np.ndarray, covered: np.ndarray, traj: Trajectory, border: int = 1) -> np.ndarray:
    """Per-step mean translational flow (normalised image units) from DIS flow minus rotation flow."""
    import cv2

    cam = traj.camera(0)
    H, W = frames.shape[1:3]
    dis = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
    gray = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in frames]
    uu, vv = np.meshgrid(np.arange(W) + 0.5, np.arange(H) + 0.5)
    rays = np.stack([(uu - cam.cx) / cam.fx, (vv - cam.cy) / cam.fy, np.ones_like(uu)], -1)
    out = np.full(len(frames), np.nan)
    for t in range(1, len(frames)):
        flow = dis.calc(gray[t - 1], gray[t], None)
        R_rel = traj.c2w[t, :3, :3].T @ traj.c2w[t - 1, :3, :3]
        r = rays @ R_rel.T
        pu = cam.fx * r[..., 0] / r[..., 2] + cam.cx
        pv = cam.fy * r[..., 1] / r[..., 2] + cam.cy
        tu, tv = flow[..., 0] - (pu - uu), flow[..., 1] - (pv - vv)
        eu, ev = uu + flow[..., 0], vv + flow[..., 1]
        # Pixels that are not disocclusion fills in frame t-1, nor land on one in frame t (pixels
        # that leave the frame keep DIS's estimate: dropping them biases against near geometry).
        ok = covered[t - 1].copy()
        inside = (eu >= 0) & (eu < W) & (ev >= 0) & (ev < H)
        iu = np.clip(eu.astype(int), 0, W - 1)
        iv = np.clip(ev.astype(int), 0, H - 1)
        ok &= ~inside | covered[t][iv, iu]
        ok[:border], ok[-border:], ok[:, :border], ok[:, -border:] = False, False, False, False
        if ok.mean() > 0.2:
            px = max(float(np.mean(np.hypot(tu[ok], tv[ok]))), FLOW_FLOOR_PX)
            out[t] = px / np.sqrt(cam.fx * cam.fy)
    return out
