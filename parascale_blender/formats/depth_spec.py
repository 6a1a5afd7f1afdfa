"""Depth sources read from files: depth-map sequences and the ``--depth`` spec of the CLI and add-on.

The engine (``core.depth_sources``) never touches files; this module turns paths into its sources.
Units: depth maps hold z-depth in world units, 16-bit PNG counts times ``scale`` (see
:mod:`.depthmaps`); point clouds and meshes are in world units.
"""

from __future__ import annotations

import os
from functools import partial
from pathlib import Path

from ..core.camera import Camera, SparsePoints, Trajectory
from ..core.depth import ConstantDepth, DepthError, DepthSource
from ..core.depth_sources import DepthMapSequence, MeshDepth, PointCloudDepth, SparsePointsDepth
from .colmap import read_colmap
from .colmap_model import find_model
from .depthmaps import EXTENSIONS, list_depth_maps, read_depth_map, read_npy
from .errors import FormatError
from .meshes import read_mesh


def depth_map_sequence(
    path: str | os.PathLike, camera: Camera | None = None, scale: float | None = None
) -> DepthMapSequence:
    """One map per frame from a folder (natural file order), or a single map file for every frame,
    read lazily with :func:`.depthmaps.read_depth_map` (``scale``: world units per stored value,
    None = the format's default)."""
    p = Path(path)
    files = list_depth_maps(p) if p.is_dir() else [p]
    loaders = [partial(read_depth_map, f, scale) for f in files]
    return DepthMapSequence(loaders, camera=camera, names=[f.name for f in files])


def parse_depth_spec(
    spec: str, trajectory: Trajectory | None = None, scale: float | None = None, cloud_sky: bool = False
) -> DepthSource:
    """A depth source from a command-line style spec.

    A number (constant distance); ``track`` (the trajectory's SfM points); a folder of depth maps or
    a COLMAP model folder; a depth map file (.npy HxW, .png, .exr, .pfm: the same map every frame);
    a point cloud (.npy Nx3, .ply without faces); a mesh (.ply with faces, .obj). ``scale`` (or a
    ``?scale=X`` suffix) sets PNG units per count. ``cloud_sky``: a point cloud's uncovered pixels
    are sky instead of unknown (see :class:`~..core.depth_sources.PointCloudDepth`).
    """
    text = str(spec).strip()
    if "?scale=" in text:
        text, _, s = text.partition("?scale=")
        try:
            scale = float(s)
        except ValueError:
            raise DepthError(f"depth spec {spec!r}: scale {s!r} is not a number") from None
    try:
        distance = float(text)
    except ValueError:
        distance = None
    if distance is not None:
        return ConstantDepth(distance)
    if text == "track":
        if trajectory is None or trajectory.points is None:
            raise DepthError("depth 'track': the trajectory has no SfM points (read a COLMAP model or ParaScale JSON)")
        return SparsePointsDepth(trajectory.points)
    p = Path(text).expanduser()
    if not p.exists():
        raise DepthError(f"depth spec {text!r}: not a number, 'track', or an existing file or folder")
    try:
        if p.is_dir():
            if _is_colmap(p):
                return _colmap_points(p, trajectory)
            return depth_map_sequence(p, scale=scale)
        ext = p.suffix.lower()
        if ext == ".npy":
            a = read_npy(p)
            if a.shape[1] == 3 and a.shape[0] > 3:
                return PointCloudDepth(a, sky=cloud_sky)
            return depth_map_sequence(p, scale=scale)
        if ext in EXTENSIONS:
            return depth_map_sequence(p, scale=scale)
        if ext in (".ply", ".obj"):
            mesh = read_mesh(p)
            if mesh.is_point_cloud:
                return PointCloudDepth(mesh.vertices, sky=cloud_sky)
            return MeshDepth(mesh.vertices, mesh.triangles)
    except FormatError as e:
        raise DepthError(f"depth spec {text!r}: {e}") from None
    raise DepthError(f"depth spec {text!r}: unknown file type {p.suffix!r} (expected .npy .png .exr .pfm .ply .obj)")


def _is_colmap(folder: Path) -> bool:
    try:
        find_model(folder)
        return True
    except FormatError:
        return False


def _colmap_points(folder: Path, trajectory: Trajectory | None) -> SparsePointsDepth:
    """COLMAP points; per-frame visibility only when ``trajectory`` is that model's images (same names)."""
    model = read_colmap(folder)
    if model.points is None or len(model.points.xyz) == 0:
        raise DepthError(f"COLMAP model {folder} has no 3D points")
    pts = model.points
    names = model.metadata.get("image_names")
    same = trajectory is not None and trajectory.metadata.get("image_names") == names
    return SparsePointsDepth(SparsePoints(pts.xyz, pts.rgb, pts.visibility if same else None))
