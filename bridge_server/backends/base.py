"""The backend contract: what a generator must provide to be served.

A backend has a ``name``, a one-line ``description``, a pydantic ``Params`` model (its JSON schema
is published by ``GET /v1/backends``), ``available() -> (ok, reason)`` (e.g. weights present) and
``generate(job, progress, cancelled)``. ``generate`` runs on a worker thread, reads only the
:class:`GenerationJob` it is given, writes ``job.output`` (an MP4), calls ``progress(fraction,
message)`` after each frame and checks ``cancelled()`` between frames, raising
:class:`JobCancelled` when it returns true. Any other exception fails the job with its message.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from pydantic import BaseModel

from parascale_blender.core.camera import Trajectory


class JobCancelled(Exception):
    """Raised by a backend between frames when the job was cancelled."""


@dataclass
class GenerationJob:
    """Everything a backend needs, already decoded and validated.

    ``image`` is the conditioning image (H, W, 3 uint8 RGB) seen by the trajectory's first camera,
    ``depth`` its z-depth (H, W float, world units of the trajectory, NaN = empty). The output
    video has the trajectory's width, height, fps and frame count.
    """

    trajectory: Trajectory
    image: np.ndarray
    depth: np.ndarray
    params: BaseModel
    output: Path
    device: str = "cpu"
    log: Callable[[str], None] = field(default=lambda msg: None)


ProgressFn = Callable[[float, str], None]
CancelledFn = Callable[[], bool]


class Backend:
    """Base class; subclasses set the class attributes and implement :meth:`generate`."""

    name: str = ""
    description: str = ""
    Params: type[BaseModel] = BaseModel

    def available(self) -> tuple[bool, str]:
        return True, ""

    def weights_present(self) -> bool:
        return True

    def parameters_schema(self) -> dict:
        return self.Params.model_json_schema()

    def generate(self, job: GenerationJob, progress: ProgressFn, cancelled: CancelledFn) -> None:
        raise NotImplementedError
