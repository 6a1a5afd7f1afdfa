"""Camera-solve QA on the imported reference: dropped frames, per-frame error, orientation, footage.

What the artist gets from a tracked reference (Blender's tracker or the server's):

* every frame of the footage accounted for: frames the solver dropped inside the solved range are
  filled by SE(3) interpolation and flagged, frames outside it get no pose; both are listed in the
  report, marked in the timeline (markers ``PS filled`` / ``PS no solve``) and on the camera
  (animated custom properties ``solve_error_px``, keyed on solved frames only, and
  ``solve_filled`` = 1 on filled frames); ``obj["parascale_solve"]`` holds the one-line summary the
  panel shows;
* a levelled world (:mod:`..core.orient`): Z up from the floor of the points or the cameras;
* the footage as the camera's background (a Movie Clip background image, timed by the clip's
  ``frame_start``).
"""

from __future__ import annotations

import numpy as np

from ..core.camera import Trajectory
from ..core.orient import level
from ..core.rescale import is_tripod
from ..core.solve_gaps import SolveGaps, frame_ranges
from .tracks import TrackError, transform_world

MARKER_FILLED, MARKER_UNSOLVED = "PS filled", "PS no solve"
EXTRAS = ("solve_error_px", "solve_filled")
ORIENT_ITEMS = [
    ("AUTO", "Level (floor or cameras)", "Z up from the floor plane of the points when found, else from the cameras"),
    ("FLOOR", "Floor", "Z up from the floor plane of the solve's points (an error when none is found)"),
    ("CAMERAS", "Cameras", "Z up from the cameras (footage shot level: horizontal right axes)"),
    ("NONE", "As solved", "Keep the solver's world (Blender's: the first camera looks down -Z)"),
]


def orient_world(traj: Trajectory, orient: str) -> tuple[Trajectory, str]:
    """The track levelled as ``orient`` asks (an :data:`ORIENT_ITEMS` name); a note for the report."""
    if orient == "NONE":
        return traj, "world as solved"
    # a tripod solve's points are directions, not a floor
    pts = traj.points.xyz if traj.points is not None and not is_tripod(traj) else None
    try:
        o = level(traj.c2w, pts, orient)
    except ValueError as e:
        raise TrackError(str(e)) from None
    note = f"levelled from the floor ({o.floor_points} points)" if o.source == "floor" else "levelled from the cameras"
    return transform_world(traj, o.W), note


def recorded_gaps(traj: Trajectory) -> SolveGaps:
    """The gaps a server track records (``metadata['interpolated_frames']``: filled, flagged here)."""
    filled = sorted(int(f) for f in traj.metadata.get("interpolated_frames", []))
    flag = np.isin(traj.frames, filled).astype(np.float64)
    return SolveGaps(traj.replace(extras={**traj.extras, "solve_filled": flag}), filled, [])


def summary(traj: Trajectory, gaps: SolveGaps, tried: int) -> str:
    """One line: frames solved, dropped (filled / without pose) and the per-frame error."""
    solved = tried - len(gaps.dropped)
    text = f"{solved} of {tried} frames solved"
    if gaps.filled:
        text += f", {len(gaps.filled)} filled by interpolation ({frame_ranges(gaps.filled)})"
    if gaps.uncovered:
        text += f", {len(gaps.uncovered)} without a pose ({frame_ranges(gaps.uncovered)})"
    err = np.asarray(traj.extras.get("solve_error_px", []), dtype=np.float64)
    ok = np.isfinite(err)
    if ok.any():
        worst = int(np.nanargmax(np.where(ok, err, np.nan)))
        text += f"; error {np.mean(err[ok]):.2f} px mean, {err[worst]:.2f} px worst (frame {int(traj.frames[worst])})"
    return text


def dropped_warning(gaps: SolveGaps) -> str:
    return (
        f"the solve dropped {len(gaps.dropped)} frames ({frame_ranges(gaps.dropped)}): interpolated inside the "
        f"solved range, no pose outside it; marked '{MARKER_FILLED}' / '{MARKER_UNSOLVED}' in the timeline"
    )


def mark(scene, cam, gaps: SolveGaps, text: str, scene_frames=None) -> None:
    """Timeline markers on the dropped frames (replacing earlier ones of ours) and the camera's summary;
    ``scene_frames`` maps the solve's frames to the scene's (``tracks.ShotFit.scene_frames``; None: as is)."""
    markers = scene.timeline_markers
    for m in [m for m in markers if m.name in (MARKER_FILLED, MARKER_UNSOLVED)]:
        markers.remove(m)
    for name, frames in ((MARKER_FILLED, gaps.filled), (MARKER_UNSOLVED, gaps.uncovered)):
        for f in frames if scene_frames is None else scene_frames(frames):
            markers.new(name, frame=int(f))
    cam["parascale_solve"] = text


def set_background(cam, clip) -> None:
    """Show ``clip`` (a Movie Clip) behind ``cam``'s view, timed by the clip's own frame_start."""
    data = cam.data
    bg = next((b for b in data.background_images if b.source == "MOVIE_CLIP" and b.clip == clip), None)
    if bg is None:
        bg = data.background_images.new()
        bg.source = "MOVIE_CLIP"
        bg.clip = clip
    bg.use_camera_clip = False
    bg.show_background_image = True
    data.show_background_images = True


def load_footage(path: str, first_frame: int):
    """The video at ``path`` as a Movie Clip whose frame 1 plays at scene frame ``first_frame`` (an
    existing clip of that file and timing is reused; the artist's other clips are left alone)."""
    import bpy

    for clip in bpy.data.movieclips:
        if bpy.path.abspath(clip.filepath) == path and clip.frame_start == int(first_frame):
            return clip
    clip = bpy.data.movieclips.load(path, check_existing=False)
    clip.frame_start = int(first_frame)
    return clip
