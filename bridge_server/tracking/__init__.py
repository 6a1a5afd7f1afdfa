"""Reference video → camera track and sparse depth (PyAV decoding, pycolmap SfM).

Server/CLI side only: pycolmap and PyAV never ship inside the Blender extension. Public entry
points: :func:`track_video` (used by the server job and the CLI), :class:`TrackOptions`,
:class:`TrackingError` (``parascale track`` lives in ``parascale_tools.tracking``).
"""

from .errors import TrackingCancelled, TrackingError
from .pipeline import TrackOptions, track_video

__all__ = ["TrackOptions", "TrackingCancelled", "TrackingError", "track_video"]
