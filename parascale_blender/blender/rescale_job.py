"""A Rescale that does not block Blender: the job the modal *Rescale* operator runs.

Threading contract: bpy is touched on the main thread only. :class:`RescaleJob` reads the scene
when made (``ops_rescale.gather``), computes the core rescale on a daemon thread from numpy inputs,
writes the keys on the main thread in :meth:`RescaleJob.tick` once the thread is done, measures the
keyed move on a thread again and reports in a last tick. The bpy module has no event loop, so tests
drive the job with :meth:`tick` / :meth:`wait`; in Blender the modal operator's timer does.

Cancel (Esc) while computing leaves the scene as it was (nothing is written before); while the keys
are measured it keeps the written result and says that the key precision was not measured.
The result equals the blocking ``execute()``: the same functions on the same inputs.
"""

from __future__ import annotations

import threading

import numpy as np

from ..core.rescale import RescaleResult
from . import ops_rescale

COMPUTING, MEASURING, DONE, CANCELLED, FAILED = "computing", "measuring", "done", "cancelled", "failed"
COMPUTE_SHARE = 0.75  # of the progress bar: the rescale; the rest measures the keys
WORKER_MAX = 0.999  # the workers' progress stays below this: the bar is full only once the job is done


class Cancelled(Exception):
    """Raised inside the worker thread by the progress callback once Cancel was asked."""


class RescaleJob:
    """One Rescale run: ``state`` one of computing, measuring, done, cancelled, failed; ``progress``
    0..1; ``message`` / ``warnings`` when done, ``error`` (str) when failed."""

    def __init__(self, context):
        self.inputs = ops_rescale.gather(context)  # ValueError: nothing started, nothing changed
        self.state = COMPUTING
        self.progress = 0.0
        self.message, self.warnings, self.error = "", [], ""
        self.result: RescaleResult | None = None
        self.written: ops_rescale.Written | None = None
        self.remeasured: np.ndarray | None = None
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    # -- worker side (no bpy)
    def _progress(self, lo: float, hi: float):
        def report(done: float, total: float) -> None:
            if self._cancel.is_set():
                raise Cancelled
            # 1.0 is reached on the main thread, when the job is done (a fast worker may finish between ticks)
            self.progress = min(lo + (hi - lo) * min(max(done / total, 0.0), 1.0), WORKER_MAX)

        return report

    def _spawn(self, fn) -> None:
        def work():
            try:
                fn()
            except Cancelled:
                pass
            except Exception as exc:  # reported on the main thread by tick()
                self._failure = exc

        self._thread = threading.Thread(target=work, name="parascale-rescale", daemon=True)
        self._thread.start()

    def _compute(self) -> None:
        self.result = ops_rescale.run(self.inputs, self._progress(0.0, COMPUTE_SHARE))

    def _measure(self) -> None:
        assert self.written is not None  # set by tick() before this thread starts
        self.remeasured = ops_rescale.measure(
            self.inputs, self.written, self._progress(COMPUTE_SHARE, 1.0), result=self.result
        )

    # -- main thread
    def start(self) -> RescaleJob:
        self._spawn(self._compute)
        return self

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    @property
    def finished(self) -> bool:
        return self.state in (DONE, CANCELLED, FAILED)

    def wait(self, timeout: float | None = None) -> None:
        """Block until the current thread is done (tests; the operator never waits)."""
        if self._thread is not None:
            self._thread.join(timeout)

    def tick(self, context) -> bool:
        """Advance on the main thread when the worker is done; True once the job is finished."""
        if self.finished or self.running:
            return self.finished
        if self._failure is not None:
            self.state, self.error = FAILED, str(self._failure)
            if not isinstance(self._failure, ValueError):  # a bug, not bad input: say what it was
                self.error = f"{type(self._failure).__name__}: {self._failure}"
        elif self._cancel.is_set() and self.state == COMPUTING:
            self.state = CANCELLED
        elif self.state == COMPUTING:
            try:
                self.written = ops_rescale.write(context, self.inputs, self.result)
            except ValueError as exc:  # the target changed meanwhile: nothing written
                self.state, self.error = FAILED, str(exc)
                return True
            self.state = MEASURING
            self._spawn(self._measure)
        else:  # measured (or the measure was cancelled: the keys stay, precision not measured)
            assert self.written is not None  # written before the measuring state
            remeasured = None if self._cancel.is_set() else self.remeasured
            self.message, self.warnings = ops_rescale.report(
                context, self.inputs, self.result, self.written, remeasured
            )
            self.state, self.progress = DONE, 1.0
        return self.finished

    @property
    def cancelling(self) -> bool:
        return self._cancel.is_set()

    def cancel(self) -> None:
        """Ask the worker to stop; the next :meth:`tick` ends the job (the scene untouched if it was
        still computing)."""
        self._cancel.set()


__all__ = ["RescaleJob", "Cancelled", "COMPUTING", "MEASURING", "DONE", "CANCELLED", "FAILED"]
