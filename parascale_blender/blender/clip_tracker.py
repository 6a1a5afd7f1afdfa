"""Blender's own Movie Clip tracker and camera solver, run from Python (also headless).

The fallback of "Import Reference Video" when no ParaScale server is reachable: load the video
as a movie clip, detect features on its first frame, track them forward, and solve the camera
(automatic keyframe selection). The clip operators need a CLIP_EDITOR area: the largest area of
the window is switched to one for the duration and restored afterwards.

A tripod shot is a valid move: a clip whose features do not move is solved with Blender's tripod
solver (a stationary camera), and a clip whose full solve fails for lack of parallax is solved again
with it and kept when its error stays below ``TRIPOD_MAX_ERROR_PX`` (a pan/tilt: rotation only).

Failures raise :class:`TrackerError` whose ``kind`` says why: ``features`` (nothing to track),
``static`` (the image does not move and the tripod solve failed), ``parallax`` (the solve failed,
also as a tripod: too little parallax or too few tracks), ``unreadable``. :func:`solve_video`
removes the clip it loaded when it fails, so the file is left as it was.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass

import bpy
import numpy as np

STATIC_FRACTION = 0.0025  # of the image diagonal: below this the median track moves "not at all"
TRIPOD_MAX_ERROR_PX = 1.0  # a tripod solve above this error is a moving camera without enough parallax


class TrackerError(ValueError):
    """Blender's tracker could not solve the clip; ``kind`` is features / static / parallax / unreadable."""

    def __init__(self, message: str, kind: str = "solve"):
        super().__init__(message)
        self.kind = kind


@dataclass
class TrackerOptions:
    """Solve settings. ``focal_mm`` is the lens for ``sensor_width`` (mm); 0 = unknown: start from a
    35 mm-equivalent guess and let the solver refine the focal length."""

    focal_mm: float = 0.0
    sensor_width: float = 36.0
    frame_start: int = 1
    max_frames: int = 0  # 0 = the whole clip


@contextlib.contextmanager
def clip_editor(context, clip) -> Iterator[dict]:
    """A ``temp_override`` dict for the clip operators: the largest area shown as a CLIP_EDITOR."""
    win = context.window or context.window_manager.windows[0]
    screen = win.screen
    area = max(screen.areas, key=lambda a: a.width * a.height)
    old_type = area.type
    area.type = "CLIP_EDITOR"
    try:
        space = area.spaces.active
        old_clip, space.clip = space.clip, clip
        region = next(r for r in area.regions if r.type == "WINDOW")
        yield {"window": win, "area": area, "region": region, "screen": screen}
        space.clip = old_clip
    finally:
        area.type = old_type


def _scaled(size: tuple[int, int]) -> dict:
    """Detection / tracking sizes in pixels for a clip of ``size``, as measured at 320x180."""
    diag = float(np.hypot(*size))
    k = max(diag / 367.0, 1.0)
    return {
        "min_distance": int(round(24 * k)),
        "margin": int(round(16 * k)),
        "pattern": int(round(21 * min(k, 2.0))) | 1,
        "search": int(round(61 * min(k, 3.0))) | 1,
    }


def track_motion_px(clip) -> np.ndarray:
    """Per track, the largest distance (pixels) of its unmuted markers from its first marker."""
    W, H = clip.size
    out = []
    for t in clip.tracking.tracks:
        co = np.array([tuple(m.co) for m in t.markers if not m.mute], dtype=np.float64).reshape(-1, 2)
        if len(co) >= 2:
            out.append(np.max(np.linalg.norm((co - co[0]) * (W, H), axis=1)))
    return np.asarray(out)


class TrackerRun:
    """One detect / track / solve of ``clip``, a frame at a time so a modal operator can show progress
    and stop between frames (Esc); :func:`solve_clip` runs it to the end in one call.

    Made (main thread): the settings are applied, the scene range, frame and active clip saved, the
    largest area of the window shown as a CLIP_EDITOR and the first frame's features detected (raises
    :class:`TrackerError`). :meth:`step` tracks every marker one frame forward (Blender's own
    ``clip.track_markers`` on a single frame, as *Track Markers* with Alt+→); :meth:`finish` solves
    and restores the scene and the area; :meth:`abort` restores them without solving."""

    def __init__(self, context, clip, options: TrackerOptions):
        W, H = int(clip.size[0]), int(clip.size[1])
        if W <= 0 or H <= 0 or clip.frame_duration < 2:
            raise TrackerError(f"{clip.filepath}: Blender could not read the video (size {W}x{H})", "unreadable")
        self.clip, self.options, self.size = clip, options, (W, H)
        sz = _scaled((W, H))
        tr = clip.tracking
        cam = tr.camera
        cam.sensor_width = options.sensor_width
        cam.focal_length = options.focal_mm if options.focal_mm > 0 else 35.0 * options.sensor_width / 36.0
        tr.settings.refine_intrinsics_focal_length = options.focal_mm <= 0
        tr.settings.default_pattern_size, tr.settings.default_search_size = sz["pattern"], sz["search"]
        tr.settings.use_keyframe_selection = True
        clip.frame_start = options.frame_start
        scene = self.scene = context.scene
        self.saved = (scene.frame_start, scene.frame_end, scene.frame_current, scene.active_clip)
        n = clip.frame_duration if options.max_frames <= 0 else min(options.max_frames, clip.frame_duration)
        self.frames, self.done = n, 0
        self.t0 = time.perf_counter()
        self.seconds_track = 0.0
        self._editor, self.override = clip_editor(context, clip), {}
        try:
            scene.frame_start, scene.frame_end = options.frame_start, options.frame_start + n - 1
            # the solver makes the clip the scene's active clip behind RNA's back (its user count then
            # goes wrong: "ID user count error" from the second run on): make it so through RNA first
            scene.active_clip = clip
            self.override = self._editor.__enter__()
            with context.temp_override(**self.override):
                self._go_to(options.frame_start)
                bpy.ops.clip.detect_features(threshold=0.05, min_distance=sz["min_distance"], margin=sz["margin"])
            if len(tr.tracks) < 8:
                raise TrackerError(
                    f"{os.path.basename(clip.filepath)}: only {len(tr.tracks)} features found on the first frame "
                    "(textureless, blurred or too dark); Blender's solver needs at least 8",
                    "features",
                )
        except BaseException:
            self.abort()
            raise

    def _go_to(self, frame: int) -> None:
        self.scene.frame_set(frame)
        # Headless, no frame-change notifier updates the editor's clip user: set it, or a clip that
        # starts at a frame other than the editor's last one has "no valid clip frame".
        self.override["area"].spaces.active.clip_user.frame_current = frame

    @property
    def progress(self) -> float:
        """0..1 of the tracking (the solve is one call at the end)."""
        return self.done / max(self.frames - 1, 1)

    @property
    def tracked(self) -> bool:
        return self.done >= self.frames - 1

    def step(self, context) -> bool:
        """Track every marker from the current frame to the next; True once the last frame is tracked."""
        if not self.tracked:
            with context.temp_override(**self.override):
                self._go_to(self.options.frame_start + self.done)
                bpy.ops.clip.track_markers(backwards=False, sequence=False)
            self.done += 1
            self.seconds_track = time.perf_counter() - self.t0
        return self.tracked

    def finish(self, context) -> dict:
        """Track what is left, solve (tripod when the image does not move, or when the full solve finds no
        parallax and the tripod error stays small) and restore; timing and counts. Raises TrackerError."""
        while not self.step(context):
            pass
        clip, tr, (W, H), n = self.clip, self.clip.tracking, self.size, self.frames
        try:
            with context.temp_override(**self.override):
                motion = track_motion_px(clip)
                static = bool(motion.size and np.median(motion) < STATIC_FRACTION * np.hypot(W, H))
                why = _solve(clip, tripod=static)
                tripod = static
                if why and not static:  # no parallax to solve from: is it a tripod pan/tilt?
                    tripod, why_tripod = True, _solve(clip, tripod=True)
                    if why_tripod or tr.reconstruction.average_error > TRIPOD_MAX_ERROR_PX:
                        raise TrackerError(_solve_failed(clip, n, why), "parallax")
                elif why:
                    raise TrackerError(
                        f"{os.path.basename(clip.filepath)}: static camera: tracked features move "
                        f"{np.median(motion):.2f} px (median) over {n} frames and Blender's tripod solve failed "
                        f"({why})",
                        "static",
                    )
        finally:
            self.abort()
        rec = tr.reconstruction
        return {
            "tracks": len(tr.tracks),
            "cameras": len(rec.cameras),
            "error_px": float(rec.average_error),
            "tripod": "stationary" if static else "rotation only" if tripod else "",
            "seconds_track": self.seconds_track,
            "seconds": time.perf_counter() - self.t0,
        }

    def abort(self) -> None:
        """Put the scene's range, frame and active clip and the window's area back (idempotent)."""
        if self.saved is None:
            return
        scene, saved, self.saved = self.scene, self.saved, None
        scene.frame_start, scene.frame_end = saved[0], saved[1]
        scene.frame_set(saved[2])
        scene.active_clip = saved[3]  # the artist's active clip stays theirs
        if self.override:  # the area was switched to a clip editor
            self._editor.__exit__(None, None, None)


def solve_clip(context, clip, options: TrackerOptions) -> dict:
    """Detect, track and solve ``clip`` in place (blocking); returns timing and counts. Raises TrackerError."""
    return TrackerRun(context, clip, options).finish(context)


def _solve(clip, tripod: bool) -> str:
    """Run Blender's camera solve (its tripod solver when asked); '' when it gave >= 2 cameras, else why not."""
    clip.tracking.settings.use_tripod_solver = tripod
    try:
        bpy.ops.clip.solve_camera()
    except RuntimeError as e:
        return str(e).strip() or "failed"
    rec = clip.tracking.reconstruction
    return "" if rec.is_valid and len(rec.cameras) >= 2 else f"{len(rec.cameras)} cameras solved"


def _solve_failed(clip, n: int, why: str) -> str:
    good = sum(1 for t in clip.tracking.tracks if len(t.markers) >= 3)
    why = f" ({why})" if why else ""
    return (
        f"{os.path.basename(clip.filepath)}: Blender's camera solve failed{why}: {good} tracks over {n} frames. "
        "Usually too little parallax (a tripod pan, a zoom, a flat wall) or too few tracks; "
        "give the focal length, or run the ParaScale server for pycolmap tracking"
    )


def load_clip(path: str):
    """``path`` as a new movie clip (TrackerError when Blender cannot open it)."""
    if not os.path.isfile(path):
        raise TrackerError(f"{path}: file not found", "unreadable")
    try:
        return bpy.data.movieclips.load(path, check_existing=False)
    except RuntimeError as e:
        raise TrackerError(f"{path}: Blender cannot open it as a movie clip ({e})", "unreadable") from None


def solve_video(context, path: str, options: TrackerOptions):
    """Load ``path`` as a movie clip and solve it (blocking); the clip is removed again if anything fails."""
    clip = load_clip(path)
    try:
        info = solve_clip(context, clip, options)
    except BaseException:
        bpy.data.movieclips.remove(clip)
        raise
    return clip, info
