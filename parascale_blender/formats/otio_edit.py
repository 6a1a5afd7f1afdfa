"""The edit as OpenTimelineIO JSON (``.otio``), written and read without the ``opentimelineio`` library.

The extension does not ship ``opentimelineio`` (a compiled package: one wheel per Blender platform
and Python in the extension zip, for a file format that is plain JSON), so this module writes the
``Timeline.1`` / ``Stack.1`` / ``Track.1`` / ``Clip.2`` / ``Gap.1`` schema directly; tests read
its output with the real library and write EDL from it through ``otio-cmx3600-adapter``.

Times are whole frames at the edit's rate. A :class:`EditClip` sits at ``record_start`` frames
from the timeline's start (``global_start_time``) on its track, plays media frames
``source_start .. source_start + duration - 1``, and keeps its ParaScale facts in
``metadata["parascale"]``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import FormatError


@dataclass
class EditClip:
    name: str
    record_start: int  # frames from the timeline's start
    duration: int
    source_start: int = 0  # first media frame played
    media: str = ""  # file path or URL
    media_duration: int | None = None  # the media's own length in frames, when known
    metadata: dict = field(default_factory=dict)


@dataclass
class Shot:
    """A shot of an editorial cut: ``name``, first frame from the timeline's start, frame count."""

    name: str
    start: int
    duration: int


def _rt(value: float, rate: float) -> dict:
    return {"OTIO_SCHEMA": "RationalTime.1", "rate": float(rate), "value": float(value)}


def _tr(start: float, duration: float, rate: float) -> dict:
    return {"OTIO_SCHEMA": "TimeRange.1", "duration": _rt(duration, rate), "start_time": _rt(start, rate)}


def _item(schema: str, name: str, source_range: dict | None, metadata: dict | None = None) -> dict:
    return {
        "OTIO_SCHEMA": schema,
        "metadata": metadata or {},
        "name": name,
        "source_range": source_range,
        "effects": [],
        "markers": [],
        "enabled": True,
        "color": None,
    }


def _url(media: str) -> str:
    if not media or "://" in media:
        return media
    return Path(os.path.abspath(media)).as_uri()


def timeline_dict(tracks: list[list[EditClip]], rate: float, name: str = "", start_frame: int = 0) -> dict:
    """The ``Timeline.1`` document of ``tracks`` (bottom track first), gaps filled with ``Gap.1``."""
    if not rate > 0:
        raise ValueError(f"edit rate must be positive, got {rate}")
    otio_tracks = []
    for i, clips in enumerate(tracks):
        children, at = [], 0
        for c in sorted(clips, key=lambda c: c.record_start):
            if c.duration < 1:
                raise ValueError(f"clip {c.name!r}: duration must be at least one frame, got {c.duration}")
            if c.record_start < at:
                where = f"clip {c.name!r} at frame {c.record_start}"
                raise ValueError(f"{where} starts before the timeline or overlaps the previous clip on track {i + 1}")
            if c.record_start > at:
                children.append(_item("Gap.1", "", _tr(0, c.record_start - at, rate)))
            clip = _item("Clip.2", c.name, _tr(c.source_start, c.duration, rate), c.metadata)
            available = None if c.media_duration is None else _tr(0, c.media_duration, rate)
            ref = {"OTIO_SCHEMA": "ExternalReference.1", "metadata": {}, "name": os.path.basename(c.media)}
            ref.update(available_range=available, available_image_bounds=None, target_url=_url(c.media))
            clip.update(media_references={"DEFAULT_MEDIA": ref}, active_media_reference_key="DEFAULT_MEDIA")
            children.append(clip)
            at = c.record_start + c.duration
        track = _item("Track.1", f"V{i + 1}", None)
        track.update(children=children, kind="Video")
        otio_tracks.append(track)
    stack = _item("Stack.1", "tracks", None)
    stack["children"] = otio_tracks
    return {
        "OTIO_SCHEMA": "Timeline.1",
        "metadata": {},
        "name": name,
        "global_start_time": _rt(start_frame, rate),
        "tracks": stack,
    }


def write_otio(path: str | os.PathLike, tracks: list[list[EditClip]], rate: float, name: str = "", start_frame=0):
    """Write :func:`timeline_dict` as ``.otio`` JSON."""
    text = json.dumps(timeline_dict(tracks, rate, name, start_frame), indent=4, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def _frames(rt, path, where: str, rate: float) -> float:
    if not (isinstance(rt, dict) and rt.get("OTIO_SCHEMA", "").startswith("RationalTime.")):
        raise FormatError(path, f"{where}: expected a RationalTime")
    value, r = rt.get("value"), rt.get("rate")
    if not isinstance(value, int | float) or not isinstance(r, int | float) or r <= 0:
        raise FormatError(path, f"{where}: RationalTime needs numeric value and positive rate")
    return float(value) * rate / float(r)


def read_otio_shots(path: str | os.PathLike) -> tuple[list[Shot], float]:
    """The clips of the first video track of an ``.otio`` file as shots (frames at the timeline's
    rate, from the track's start; transitions take no time), and that rate."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise FormatError(path, f"cannot read ({exc.strerror})") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise FormatError(path, f"not OpenTimelineIO JSON ({exc})") from None
    if not (isinstance(doc, dict) and str(doc.get("OTIO_SCHEMA", "")).startswith("Timeline.")):
        raise FormatError(path, "expected an OpenTimelineIO Timeline", field="OTIO_SCHEMA")
    stack = doc.get("tracks") or {}
    tracks = [t for t in stack.get("children") or [] if isinstance(t, dict) and t.get("kind", "Video") == "Video"]
    if not tracks:
        raise FormatError(path, "the timeline has no video track", field="tracks")
    rate = None
    for t in tracks[0].get("children") or []:
        sr = t.get("source_range") if isinstance(t, dict) else None
        if sr:
            rate = float(sr.get("duration", {}).get("rate") or 0) or None
            break
    if rate is None:
        raise FormatError(path, "the first video track has no timed item", field="tracks")
    shots, at = [], 0.0
    for i, item in enumerate(tracks[0].get("children") or []):
        schema = str(item.get("OTIO_SCHEMA", "")) if isinstance(item, dict) else ""
        if schema.startswith("Transition."):
            continue
        where = f"track 1 item {i + 1} ({item.get('name') or schema})"
        sr = item.get("source_range")
        if not isinstance(sr, dict):
            raise FormatError(path, f"{where}: no source_range (nested or untimed items are not read)")
        duration = _frames(sr.get("duration"), path, where, rate)
        if schema.startswith("Clip."):
            shots.append(Shot(str(item.get("name") or f"shot {len(shots) + 1}"), round(at), round(duration)))
        elif not schema.startswith("Gap."):
            raise FormatError(path, f"{where}: {schema} is not read (clips, gaps and transitions only)")
        at += duration
    return shots, rate
