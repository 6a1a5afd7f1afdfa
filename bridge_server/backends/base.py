"""The backend contract: what a generator must provide to be served.

A backend has a ``name``, a one-line ``description``, a pydantic ``Params`` model (its JSON schema
is published by ``GET /v1/backends``), the ``uploads`` it takes (a subset of :data:`UPLOADS`),
the kind of result it writes (``result_media_type``, ``result_suffix``; default an MP4),
``available() -> (ok, reason)`` (e.g. weights present) and ``generate(job, progress, cancelled)``.
``generate`` runs on a worker thread, reads only the :class:`GenerationJob` it is given, writes
``job.output`` (a file of its result kind), calls ``progress(fraction, message)`` after each frame
and checks ``cancelled()`` between frames, raising :class:`JobCancelled` when it returns true.
It may return a dict of :class:`~bridge_server.models.JobStatus` fields to update once done
(``frames``, ``width``, ``height``, ``fps``, ``first_frame``). ``check_job(params, shape)`` runs at
submission and refuses (422) what cannot run, before anything loads. :class:`JobFailed` fails the job
with its message verbatim (a user-facing reason); any other exception fails it with its type
and message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from parascale_blender.client import wire
from parascale_blender.core.camera import Trajectory

UPLOADS = wire.UPLOADS


class JobCancelled(Exception):
    """Raised by a backend between frames when the job was cancelled."""


class JobFailed(Exception):
    """A failure the user can act on; ``str(err)`` becomes the job's ``error`` as it is."""


@dataclass
class GenerationJob:
    """Everything a backend needs, already decoded and validated.

    ``image`` is the conditioning image (H, W, 3 uint8 RGB) seen by the trajectory's first camera,
    ``depth`` its z-depth (H, W float, world units of the trajectory, NaN = empty). The output
    video has the trajectory's width, height, fps and frame count. Inputs the backend does not
    take (see ``Backend.uploads``) are None; ``video`` is the stored video upload's path and
    ``video_name`` the name to show for it in messages (never the server path).
    """

    trajectory: Trajectory | None
    image: np.ndarray | None
    depth: np.ndarray | None
    params: BaseModel
    output: Path
    device: str = "cpu"
    log: Callable[[str], None] = field(default=lambda msg: None)
    video: Path | None = None
    video_name: str = "video"


ProgressFn = Callable[[float, str], None]
CancelledFn = Callable[[], bool]


class Backend:
    """Base class; subclasses set the class attributes and implement :meth:`generate`."""

    name: str = ""
    description: str = ""
    Params: type[BaseModel] = BaseModel
    uploads: tuple[str, ...] = (wire.TRAJECTORY, wire.IMAGE, wire.DEPTH)
    result_media_type: str = wire.MP4
    result_suffix: str = ".mp4"

    def available(self) -> tuple[bool, str]:
        return True, ""

    def weights_present(self) -> bool:
        return True

    def parameters_schema(self) -> dict:
        return self.Params.model_json_schema()

    def check_job(self, params: BaseModel, shape: dict) -> None:
        """Refuse at submission, from configs alone (no weights loaded), a job this backend cannot run:
        raise :class:`JobFailed` saying what fits. ``shape``: the uploads' ``frames``, ``width``, ``height``."""

    def generate(self, job: GenerationJob, progress: ProgressFn, cancelled: CancelledFn) -> dict | None:
        raise NotImplementedError
