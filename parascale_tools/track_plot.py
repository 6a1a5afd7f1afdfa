"""Pixel trajectories drawn over frame 0 (``parascale export-tracks --plot``; matplotlib, tools only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def depth_shading(depth: np.ndarray) -> np.ndarray:
    """A grey image of a z-depth map (near bright, far dark, empty black) to draw tracks on."""
    ok = np.isfinite(depth) & (depth > 0)
    out = np.zeros(depth.shape)
    if ok.any():
        inv = 1.0 / depth[ok]
        lo, hi = inv.min(), inv.max()
        out[ok] = 0.25 + 0.65 * (inv - lo) / (hi - lo if hi > lo else 1.0)
    return out


def draw_tracks(tracks: np.ndarray, background: np.ndarray, path: str | Path, max_tracks: int = 400) -> Path:
    """Each track's path (visible steps solid, coloured by its start column; occluded points as grey
    dots) over ``background`` (H, W) or (H, W, 3) in 0..1, written as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    F, N, _ = tracks.shape
    keep = np.flatnonzero(np.isfinite(tracks[0, :, 0]))
    if len(keep) > max_tracks:
        keep = keep[np.linspace(0, len(keep) - 1, max_tracks).astype(int)]
    h, w = background.shape[:2]
    fig = plt.figure(figsize=(w / 100, h / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(background, cmap="gray", vmin=0, vmax=1, extent=(0, w, h, 0), interpolation="nearest")
    colours = plt.get_cmap("turbo")(tracks[0, keep, 0] / w)
    for c, n in zip(colours, keep):
        xy, vis = tracks[:, n, :2], tracks[:, n, 2] > 0.5
        both = vis[1:] & vis[:-1]
        segs = [xy[i : i + 2] for i in np.flatnonzero(both)]
        for s in segs:
            ax.plot(s[:, 0], s[:, 1], color=c, lw=1.2)
        if vis[-1]:
            ax.plot(xy[-1, 0], xy[-1, 1], "o", color=c, ms=2.5)
        hid = ~vis & np.isfinite(xy[:, 0])
        ax.plot(xy[hid, 0], xy[hid, 1], ".", color="0.6", ms=1.5)
    ax.set_xlim(0, w)
    ax.set_ylim(h, 0)
    ax.axis("off")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return Path(path)


def readme_picture(path: str | Path = "docs/img/pixel_tracks.png", step: int = 32) -> Path:
    """The README's picture: a truck across the built-in desk scene (640x360, 25 frames),
    tracks every ``step`` pixels over the desk's exact mesh depth."""
    from parascale_blender.core.camera import Trajectory, opencv_from_blender
    from parascale_blender.core.depth_sources import MeshDepth
    from parascale_blender.core.pixel_tracks import pixel_tracks

    from .scenes import desk_scene
    from .synthetic import camera_move

    desk = desk_scene()
    c2w = opencv_from_blender(desk.start_c2w_blender) @ camera_move("truck", 25, step=0.0008)
    traj = Trajectory(np.arange(25), c2w, [480.0, 480.0, 320.0, 180.0], 640, 360)
    source = MeshDepth(desk.vertices, desk.triangles)
    tracks = pixel_tracks(traj, source, step=step)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    return draw_tracks(tracks, depth_shading(source.view(traj.c2w[0], traj.camera(0), 0).depth), path)


if __name__ == "__main__":
    print(readme_picture())
