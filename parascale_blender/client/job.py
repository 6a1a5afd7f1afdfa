"""The server-job state machine (generate, track, depth: any backend): plain Python, driven by :meth:`ServerJob.tick`.

Inside Blender a persistent timer calls ``tick()`` (the bpy module has no event loop, so tests
call it directly). Each tick makes at most one HTTP call and never waits for the generation.

Any backend: the request carries the uploads the backend takes, and the result is saved as it is
(an MP4, a ``.npy`` depth map or a ParaScale trajectory JSON: see :attr:`ServerJob.result_media_type`).

States: ``pending`` (not yet submitted) → ``queued`` / ``running`` (mirroring the server) →
``downloading`` (the server is done; the next tick saves the result) → ``done``. Terminal states:
``done``, ``failed``, ``cancelled``, ``interrupted`` (the server restarted mid-job), ``lost``
(the server no longer knows the job). A server that stops answering while a job runs is retried
for ``max_unreachable`` ticks before the job fails; the job id survives for re-attaching.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import wire
from .http import BridgeClient, BridgeError, ServerNotRunning

PENDING, DOWNLOADING, LOST = "pending", "downloading", "lost"  # client-side states (not on the wire)
TERMINAL = wire.FINISHED | {LOST}


Upload = bytes | str | os.PathLike


@dataclass
class JobRequest:
    """What to submit: the uploads the backend takes (bytes or paths; None = not sent).

    Video backends take the baked trajectory JSON, the conditioning image and its depth map;
    ``depth-anything`` the image only; ``track-video`` the ``video`` only (``video_name`` is the
    name shown in its messages).
    """

    trajectory: Upload | None = None
    image: Upload | None = None
    depth: Upload | None = None
    backend: str = wire.DEFAULT_BACKEND
    params: dict = field(default_factory=dict)
    depth_scale: float | None = None  # world units per stored depth value; None = the format's default
    video: Upload | None = None
    video_name: str | None = None


class ServerJob:
    """One job of any backend, from submission to its result saved at ``output_path``."""

    def __init__(
        self,
        client: BridgeClient,
        request: JobRequest | None,
        output_path: str | os.PathLike,
        job_id: str | None = None,
        poll_interval: float = 0.5,
        max_unreachable: int = 60,
    ):
        self.client, self.request = client, request
        self.output_path = Path(output_path)
        self.job_id = job_id
        self.poll_interval, self.max_unreachable = poll_interval, max_unreachable
        self.state = wire.QUEUED if job_id else PENDING
        self.progress, self.message, self.error = 0.0, "", None
        self.server_status: dict = {}
        self.result_path: Path | None = None
        self._last_poll = -float("inf")
        self._unreachable = 0
        if request is None and job_id is None:
            raise ValueError("a ServerJob needs a request to submit or a job id to attach to")

    @classmethod
    def attach(cls, client: BridgeClient, job_id: str, output_path: str | os.PathLike, **kw) -> ServerJob:
        """Follow a job submitted earlier (e.g. after reopening the .blend)."""
        return cls(client, None, output_path, job_id=job_id, **kw)

    @property
    def result_media_type(self) -> str | None:
        """``video/mp4``, ``application/octet-stream`` (.npy depth) or ``application/json``
        (ParaScale trajectory), as the server reports it; None before the first answer."""
        return self.server_status.get("result_media_type")

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL

    def tick(self, now: float | None = None) -> str:
        """Advance by at most one HTTP call; returns the state. Safe to call at any rate."""
        now = time.monotonic() if now is None else now
        if self.finished:
            return self.state
        if self.state == PENDING:
            self._submit()
        elif self.state == DOWNLOADING:
            self._download()
        elif now - self._last_poll >= self.poll_interval:
            self._last_poll = now
            self._poll()
        return self.state

    def cancel(self) -> None:
        """Ask the server to cancel; the job ends as ``cancelled`` on a later tick."""
        if self.finished:
            return
        if self.job_id is None:
            self._finish(wire.CANCELLED, "cancelled before submission")
            return
        try:
            self._apply(self.client.cancel(self.job_id))
        except BridgeError as e:
            self.message = f"cancel failed: {e}"

    def _submit(self) -> None:
        r = self.request
        try:
            status = self.client.submit(
                r.trajectory,
                r.image,
                r.depth,
                r.backend,
                r.params,
                r.depth_scale,
                video=r.video,
                video_name=r.video_name,
            )
        except (BridgeError, OSError) as e:
            self._finish(wire.FAILED, error=str(e))
            return
        self.job_id = status["id"]
        self._apply(status)

    def _poll(self) -> None:
        try:
            status = self.client.status(self.job_id)
        except ServerNotRunning as e:
            self._unreachable += 1
            self.message = f"waiting for the server ({self._unreachable}/{self.max_unreachable}): {e}"
            if self._unreachable >= self.max_unreachable:
                self._finish(wire.FAILED, error=str(e))
            return
        except BridgeError as e:
            if e.status == 404:
                self._finish(LOST, error=f"the server does not know job {self.job_id} (jobs folder changed?)")
            else:
                self.message = str(e)
            return
        self._unreachable = 0
        self._apply(status)

    def _apply(self, status: dict) -> None:
        self.server_status = status
        self.progress = float(status.get("progress", self.progress))
        self.message = str(status.get("message", ""))
        state = status.get("state")
        if state == wire.DONE:
            self.state = DOWNLOADING
        elif state in TERMINAL:
            self._finish(state, error=status.get("error") or None)
        elif state in (wire.QUEUED, wire.RUNNING):
            self.state = state

    def _download(self) -> None:
        try:
            self.result_path = self.client.download(self.job_id, self.output_path)
        except (BridgeError, OSError) as e:
            self._finish(wire.FAILED, error=f"download failed: {e}")
            return
        self._finish(wire.DONE, "done")
        self.progress = 1.0

    def _finish(self, state: str, message: str = "", error: str | None = None) -> None:
        self.state = state
        self.message = message or state
        self.error = error
