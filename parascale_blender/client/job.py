"""The server-job state machine (generate, track, depth: any backend): plain Python, driven by :meth:`ServerJob.tick`.

Inside Blender a persistent timer calls ``tick()`` (the bpy module has no event loop, so tests
call it directly). Each tick starts at most one HTTP call, on a background thread, and waits for it
at most ``tick_budget`` seconds (default 0.5): a fast server's answer is applied in the same tick, a
hung one never blocks Blender's UI for longer; the call's answer is taken by a later tick.

Any backend: the request carries the uploads the backend takes, and the result is saved as it is
(an MP4, a ``.npy`` depth map or a ParaScale trajectory JSON: see :attr:`ServerJob.result_media_type`).

States: ``pending`` (not yet submitted) → ``queued`` / ``running`` (mirroring the server) →
``downloading`` (the server is done; the next tick saves the result) → ``done``. Terminal states:
``done``, ``failed``, ``cancelled``, ``interrupted`` (the server restarted mid-job), ``lost``
(the server no longer knows the job). A server that stops answering while a job runs is retried
for ``max_unreachable`` polls (or downloads) before the job fails (a call that gets no answer within the
client's deadline, a refused connection, or a garbage answer each count as one); the job id
survives for re-attaching. A submission that gets no answer is retried with the same
idempotency key, so the server never runs it twice.
"""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import wire
from .http import BridgeClient, BridgeError, NoAnswer, ServerNotRunning, new_idempotency_key

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
    num_frames: int | None = None  # the frame count the trajectory must have (the server checks it)


def _spawn(kind: str, fn) -> tuple[threading.Thread, dict]:
    """Run ``fn`` on a started daemon thread; its answer lands in the box as ``value`` or ``error``."""
    box: dict = {}

    def run() -> None:
        try:
            box["value"] = fn()
        except Exception as e:  # noqa: BLE001 - handed to whoever takes the answer
            box["error"] = e

    thread = threading.Thread(target=run, name=f"parascale-client-{kind}", daemon=True)
    thread.start()
    return thread, box


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
        tick_budget: float = 0.5,
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
        self.tick_budget = float(tick_budget)
        self.idempotency_key = new_idempotency_key()  # one per job: a re-submission is the same job
        self._call: tuple[str, threading.Thread, dict] | None = None  # the HTTP call in flight
        self._cancel_pending = False
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
        """Advance by at most one HTTP call; returns the state. Safe to call at any rate; returns
        within about ``tick_budget`` seconds whatever the server does."""
        now = time.monotonic() if now is None else now
        if self.finished:
            return self.state
        if self._call is None:
            if self.state == PENDING and self.job_id is None:
                self._start("submit", self._do_submit)
            elif self.state == DOWNLOADING:
                media = self.result_media_type if self.result_media_type in wire.RESULT_MEDIA_TYPES else None
                self._start("download", lambda: self.client.download(self.job_id, self.output_path, media_type=media))
            elif now - self._last_poll >= self.poll_interval:
                self._last_poll = now
                self._start("poll", lambda: self.client.status(self.job_id))
        if self._call is not None:
            kind, thread, box = self._call
            thread.join(self.tick_budget)
            if thread.is_alive():
                return self.state
            self._call = None
            if not self.finished:  # cancelled meanwhile: the late answer is dropped
                getattr(self, f"_after_{kind}")(box.get("value"), box.get("error"))
        return self.state

    def _start(self, kind: str, fn) -> None:
        thread, box = _spawn(kind, fn)
        self._call = (kind, thread, box)

    def _do_submit(self) -> dict:
        r = self.request
        return self.client.submit(
            r.trajectory,
            r.image,
            r.depth,
            r.backend,
            r.params,
            r.depth_scale,
            r.num_frames,
            video=r.video,
            video_name=r.video_name,
            idempotency_key=self.idempotency_key,
        )

    def cancel(self) -> None:
        """Ask the server to cancel (waiting at most ``tick_budget`` s for its answer); the job ends as
        ``cancelled`` on a later tick."""
        if self.finished:
            return
        if self.job_id is None and self._call is not None and self._call[0] == "submit":
            self._cancel_pending, self.message = True, "cancelling"  # cancelled once the server names the job
            return
        if self.job_id is None:
            self._finish(wire.CANCELLED, "cancelled before submission")
            return
        job_id = self.job_id
        thread, box = _spawn("cancel", lambda: self.client.cancel(job_id))
        thread.join(self.tick_budget)  # bounded like a tick: a hung server never freezes the UI
        if thread.is_alive():
            self.message = "cancel sent; waiting for the server"
        elif "error" in box:
            self.message = f"cancel failed: {box['error']}"
        else:
            self._apply(box["value"])

    def _unanswered(self, e: BridgeError) -> None:
        self._unreachable += 1
        self.message = f"waiting for the server ({self._unreachable}/{self.max_unreachable}): {e}"
        if self._unreachable >= self.max_unreachable:
            self._finish(wire.FAILED, error=str(e))

    def _after_submit(self, status, error) -> None:
        if isinstance(error, NoAnswer):  # the upload may have arrived: retry with the same key
            self._unanswered(error)
        elif error is not None:  # refused (nothing arrived), rejected, or a file that cannot be read
            self._finish(wire.FAILED, error=str(error))
        else:
            self._unreachable = 0
            self.job_id = status["id"]
            self._apply(status)
            if self._cancel_pending:
                self.cancel()

    def _after_poll(self, status, error) -> None:
        if isinstance(error, BridgeError) and error.status == 404:
            self._finish(LOST, error=f"the server does not know job {self.job_id} (jobs folder changed?)")
        elif isinstance(error, BridgeError) and error.status is not None and error.status < 500:
            self.message = str(error)
        elif error is not None:  # no answer, refused, a server error or a garbage answer
            self._unanswered(error if isinstance(error, BridgeError) else BridgeError(str(error)))
        else:
            self._unreachable = 0
            self._apply(status)

    def _after_download(self, path, error) -> None:
        if isinstance(error, NoAnswer | ServerNotRunning):  # cut or unanswered (a restart): fetched again
            self._unanswered(BridgeError(f"download failed: {error}"))
            return
        if error is not None:
            self._finish(wire.FAILED, error=f"download failed: {error}")
            return
        self.result_path = path
        self._finish(wire.DONE, "done")
        self.progress = 1.0

    def _apply(self, status: dict) -> None:
        self.server_status = status
        progress = status.get("progress", self.progress)
        if isinstance(progress, int | float) and not isinstance(progress, bool) and 0 <= progress <= 1:
            self.progress = float(progress)
        self.message = str(status.get("message", ""))[:1000]
        state = status.get("state")
        if state == wire.DONE:
            self.state = DOWNLOADING
        elif state in TERMINAL:
            self._finish(state, error=status.get("error") or None)
        elif state in (wire.QUEUED, wire.RUNNING):
            self.state = state
        else:  # a state this client does not know: the job exists, follow it (never re-submit)
            self.state = wire.QUEUED if self.state == PENDING else self.state
            self.message = f"server state {str(state)[:40]!r} unknown to this add-on: {self.message}"[:1000]

    def _finish(self, state: str, message: str = "", error: str | None = None) -> None:
        self.state = state
        self.message = message or state
        self.error = error
