"""A job's uploads, decoded once in one place: the route streams each upload into the job folder
with :func:`save_upload` and validates the stored files with :func:`decode_uploads` before the job
is queued; the worker loads the stored files back through the same function.

Conventions: uploads are keyed by their form field (``client.wire.UPLOADS``); each is stored in
the job folder as ``<field><suffix>`` with the suffix chosen from its first bytes (the trajectory
as ``trajectory.json``). Uploads are never held whole in memory: they are copied in
:data:`CHUNK`-sized pieces and decoded from the file (memory-mapped, or opened by PyAV).
``depth_scale`` is in world units per stored depth value, None meaning the format's default.
At most :data:`DECODE_SLOTS` image and depth decodes run at once in a process (each is bounded from
its header, see ``formats.image_size``; forty at once were not).
Every problem raises :class:`~bridge_server.inputs.InputError`.
"""

from __future__ import annotations

import json
import mmap
import os
import re
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

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
    image_suffix,
    match_sizes,
    parse_trajectory,
    probe_video,
    video_suffix,
)

CHUNK = 1 << 20  # bytes copied at a time from the request's spooled part to the job folder

UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")


@dataclass
class Uploads:
    """Decoded uploads (None: not sent) and the result shape they imply."""

    trajectory: Trajectory | None = None
    image: np.ndarray | None = None
    depth: np.ndarray | None = None  # resized to the image when trajectory and image come with it
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


def stored_name(name: str, head: bytes) -> str:
    """The file name upload field ``name`` is stored under, its suffix chosen from its first bytes ``head``."""
    if name == wire.TRAJECTORY:
        return "trajectory.json"
    if name == wire.IMAGE:
        return f"image{image_suffix(head)}"
    if name == wire.DEPTH:
        suffix = depth_format(head)
        if suffix not in wire.DEPTH_SUFFIXES:
            raise InputError("depth: not a .npy, 16-bit PNG or OpenEXR file (checked by its first bytes)")
        return f"depth{suffix}"
    return f"video{video_suffix(head)}"


def save_uploads(files: dict[str, BinaryIO], folder: Path, limits: Limits) -> dict[str, Path]:
    """:func:`save_upload` of every upload field -> its file object; returns field -> stored file."""
    return {
        k: save_upload(k, f, folder, limits.max_trajectory_bytes if k == wire.TRAJECTORY else limits.max_upload_bytes)
        for k, f in files.items()
    }


def save_upload(name: str, src: BinaryIO, folder: Path, limit: int) -> Path:
    """Copy upload field ``name`` from ``src`` into ``folder`` in :data:`CHUNK` pieces, refusing it
    past ``limit`` bytes while copying; returns the stored file (named by :func:`stored_name`)."""
    tmp, size = folder / f".{name}.upload", 0
    src.seek(0)
    with open(tmp, "wb") as out:
        head = src.read(CHUNK)
        stored = folder / stored_name(name, head[:1024])
        chunk = head
        while chunk:
            size += len(chunk)
            if size > limit:
                raise InputError(f"{name}: larger than the limit of {limit} bytes for this upload")
            out.write(chunk)
            chunk = src.read(CHUNK)
    os.replace(tmp, stored)
    return stored


@contextmanager
def mapped(path: Path):
    """The bytes of ``path`` memory-mapped read-only (pages come from the file, not the heap)."""
    with open(path, "rb") as f:
        if os.fstat(f.fileno()).st_size == 0:
            yield b""
            return
        with mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as m:
            yield m


DECODE_SLOTS = 2  # image / depth decodes at once in one process (the rest wait their turn)
_decoding = threading.BoundedSemaphore(DECODE_SLOTS)


def check_job_fits(backend: Backend, params: BaseModel, shape: dict) -> None:
    """The backend's submission check (configs only, nothing loaded) as an :class:`InputError` (422)."""
    from .backends.base import JobFailed

    try:
        backend.check_job(params, shape)
    except JobFailed as e:
        raise InputError(f"params: {e}") from None


def decode_uploads(
    paths: dict[str, Path],
    limits: Limits,
    params: BaseModel,
    depth_scale: float | None = None,
    num_frames: int | None = None,
) -> Uploads:
    """Decode and check every stored upload in ``paths`` (field -> file); ``num_frames`` is the
    frame count the client expects (checked against the trajectory)."""
    out = Uploads()
    if wire.TRAJECTORY in paths:
        traj = out.trajectory = parse_trajectory(paths[wire.TRAJECTORY].read_bytes(), limits)
        if num_frames is not None and num_frames != len(traj):
            if num_frames > limits.max_frames:
                raise InputError(f"num_frames: {num_frames} exceeds the limit of {limits.max_frames}")
            raise InputError(f"num_frames: {num_frames} given but the trajectory has {len(traj)} frames")
        out.shape.update(frames=len(traj), width=traj.width, height=traj.height, fps=traj.fps)
        out.shape["first_frame"] = int(traj.frames[0])
    if wire.IMAGE in paths:
        with _decoding, mapped(paths[wire.IMAGE]) as data:
            img = out.image = decode_image(data, limits)
        if out.trajectory is None:
            out.shape.update(height=img.shape[0], width=img.shape[1])
    if wire.DEPTH in paths:
        with _decoding, mapped(paths[wire.DEPTH]) as data:
            out.depth = decode_depth(data, depth_scale, limits, paths[wire.DEPTH])
        if out.trajectory is not None and out.image is not None:
            out.depth = match_sizes(out.trajectory, out.image, out.depth)
    if wire.VIDEO in paths:
        frames, w, h, fps = probe_video(paths[wire.VIDEO])
        every, most = getattr(params, "every", 1), getattr(params, "max_frames", None)
        tracked = -(-frames // every) if frames else 0
        tracked = min(tracked, most) if most else tracked
        if tracked > limits.max_frames:
            raise InputError(
                f"video: {tracked} frames to track exceed the limit of {limits.max_frames}; "
                "set params.every or params.max_frames"
            )
        out.shape.update(frames=tracked, width=w, height=h, fps=fps)
    return out


def stored_uploads(find, takes: tuple[str, ...]) -> dict[str, Path]:
    """The stored file of each upload field in ``takes``; ``find(stem)`` looks one up in the job folder."""
    paths = {k: find(k) for k in takes}
    missing = [k for k, p in paths.items() if p is None]
    if missing:
        raise InputError(f"the job folder lacks its {', '.join(missing)} upload")
    return paths
