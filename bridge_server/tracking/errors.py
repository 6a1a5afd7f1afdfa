"""The one exception the tracker raises for user-facing failures."""

from __future__ import annotations


class TrackingError(RuntimeError):
    """A clip could not be tracked. ``str(err)`` is a complete message for the user.

    ``kind`` names the failure for programs: ``input`` (missing/undecodable file, bad option),
    ``static`` (the camera does not move), ``parallax`` (it rotates but barely translates, or the
    scene is flat), ``matches`` (too few feature matches), ``registration`` (too few frames
    could be placed), ``cancelled``.
    """

    def __init__(self, message: str, kind: str = "input"):
        super().__init__(message)
        self.kind = kind


class TrackingCancelled(TrackingError):
    """The caller's ``cancelled()`` returned True."""

    def __init__(self, message: str = "tracking cancelled"):
        super().__init__(message, kind="cancelled")
