"""Real depth data for the depth-source tests: the ICL-NUIM frames in ../shared/data, read by OpenCV."""

from __future__ import annotations

from pathlib import Path

import numpy as np

ICL = Path("depth") / "icl_synthetic_open3d"


def icl_frames(shared_data: Path) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """The five ICL-NUIM depth maps (metres, NaN invalid, read by OpenCV) and their c2w poses."""
    import cv2

    root = shared_data / ICL
    lines = (root / "trajectory.log").read_text().split("\n")
    poses = [np.array([[float(v) for v in lines[5 * i + 1 + j].split()] for j in range(4)]) for i in range(5)]
    maps = []
    for i in range(5):
        d = cv2.imread(str(root / "depth" / f"{i:05d}.png"), cv2.IMREAD_UNCHANGED).astype(np.float64) / 1000.0
        maps.append(np.where(d > 0, d, np.nan))
    return maps, poses
