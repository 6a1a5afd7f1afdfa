"""A job's uploads, decoded once in one place: the route validates with :func:`decode_uploads`
before the job is stored, and the worker loads the stored files back through the same function.

Conventions: uploads are keyed by their form field (``client.wire.UPLOADS``); each is stored in
the job folder as ``<field><suffix>`` with the suffix chosen from its first bytes (the trajectory
as ``trajectory.json``). ``depth_scale`` is in world units per stored depth value, None meaning the
format's default. Every problem raises :class:`~bridge_server.inputs.InputError`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ValidationError

from parascale_blender.client import wire
from parascale_blender.core.camera import Trajectory
from parascale_blender.formats.depthmaps import depth_format

from .backends import Backend, backend_names, get_backend
from .config import Limits
from .inputs import (
    InputError,
    decode_depth,
    decode_image,
    match_sizes,
    parse_trajectory,
    probe_video,
    video_suffix,
)

UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")


@dataclass
class Uploads:
    """Decoded uploads (None: not sent), their stored files and the result shape they imply."""

    trajectory: Trajectory | None = None
    image: np.ndarray | None = None
    depth: np.ndarray | None = None  # resized to the image when trajectory and image come with it
    files: dict[str, bytes] = field(default_factory=dict)  # stored name -> bytes
    shape: dict = field(default_factory=lambda: {"frames": 1, "width": 0, "height": 0, "fps": 0.0, "first_frame": 1})


def backend_for(name: str) -> Backend:
    """The served, available backend called ``name``."""
    b = get_backend(name)
    if b is None:
        raise InputError(f"backend: unknown {name!r}; available: {', '.join(backend_names())}")
    ok, reason = b.available()
    if not ok:
        raise InputError(f"backend: {name!r} is not available: {reason}")
    return b


def check_uploads(b: Backend, filenames: dict[str, str | None]) -> None:
    """The uploads sent (field -> file name, None = not sent) are exactly those ``b`` takes, with plain names."""
    takes = ", ".join(b.uploads)
    problems = [f"{k}: required by backend {b.name!r} (it takes {takes})" for k in b.uploads if filenames[k] is None]
    problems += [
        f"{k}: not taken by backend {b.name!r} (it takes {takes})"
        for k, name in filenames.items()
        if name is not None and k not in b.uploads
    ]
    if problems:
        raise InputError(problems)
    bad_names = [
        f"{k}: file name {name!r} is not a plain name (no '/', '\\', '..' or control characters)"
        for k, name in filenames.items()
        if name and (UNSAFE_NAME.search(name) or ".." in name)
    ]
    if bad_names:
        raise InputError(bad_names)


def parse_params(b: Backend, text: str) -> BaseModel:
    """The ``params`` form field (a JSON object) validated by the backend's ``Params`` model."""
    try:
        return b.Params.model_validate(json.loads(text))
    except json.JSONDecodeError as e:
        raise InputError(f"params: invalid JSON at column {e.colno}: {e.msg}") from None
    except ValidationError as e:
        lines = [f"params.{'.'.join(str(p) for p in er['loc'])}: {er['msg']}" for er in e.errors()]
        raise InputError(lines or ["params: must be a JSON object"]) from None
    except RecursionError:
        raise InputError("params: nested too deeply") from None
    except ValueError as e:  # e.g. an integer of more than 4,300 digits
        raise InputError(f"params: {str(e)[:200]}") from None


def decode_uploads(
    blobs: dict[str, bytes],
    limits: Limits,
    params: BaseModel,
    depth_scale: float | None = None,
    num_frames: int | None = None,
) -> Uploads:
    """Decode and check every upload in ``blobs`` (field -> bytes); ``num_frames`` is the frame
    count the client expects (checked against the trajectory)."""
    out = Uploads()
    if wire.TRAJECTORY in blobs:
        data = blobs[wire.TRAJECTORY]
        traj = out.trajectory = parse_trajectory(data, limits)
        if num_frames is not None and num_frames != len(traj):
            if num_frames > limits.max_frames:
                raise InputError(f"num_frames: {num_frames} exceeds the limit of {limits.max_frames}")
            raise InputError(f"num_frames: {num_frames} given but the trajectory has {len(traj)} frames")
        out.files["trajectory.json"] = data
        out.shape.update(frames=len(traj), width=traj.width, height=traj.height, fps=traj.fps)
        out.shape["first_frame"] = int(traj.frames[0])
    if wire.IMAGE in blobs:
        data = blobs[wire.IMAGE]
        img = out.image = decode_image(data, limits)
        out.files[f"image{wire.sniff_suffix(data)}"] = data
        if out.trajectory is None:
            out.shape.update(height=img.shape[0], width=img.shape[1])
    if wire.DEPTH in blobs:
        data = blobs[wire.DEPTH]
        out.depth = decode_depth(data, depth_scale, limits)
        out.files[f"depth{depth_format(data)}"] = data
        if out.trajectory is not None and out.image is not None:
            out.depth = match_sizes(out.trajectory, out.image, out.depth)
    if wire.VIDEO in blobs:
        data = blobs[wire.VIDEO]
        suffix = video_suffix(data)
        frames, w, h, fps = probe_video(data)
        every, most = getattr(params, "every", 1), getattr(params, "max_frames", None)
        tracked = -(-frames // every) if frames else 0
        tracked = min(tracked, most) if most else tracked
        if tracked > limits.max_frames:
            raise InputError(
                f"video: {tracked} frames to track exceed the limit of {limits.max_frames}; "
                "set params.every or params.max_frames"
            )
        out.files[f"video{suffix}"] = data
        out.shape.update(frames=tracked, width=w, height=h, fps=fps)
    return out


def stored_uploads(find, takes: tuple[str, ...]) -> dict[str, Path]:
    """The stored file of each upload field in ``takes``; ``find(stem)`` looks one up in the job folder."""
    paths = {k: find(k) for k in takes}
    missing = [k for k, p in paths.items() if p is None]
    if missing:
        raise InputError(f"the job folder lacks its {', '.join(missing)} upload")
    return paths
