"""The closed loop in Blender: a returned clip's realized parallax beside its strip.

The server measures the clip (``bridge_server.clip_parallax``; the job status's ``parallax``, words
in ``client.wire``): per step the realized, target and reference Π in flow measure and the PCE. Here
they land on the movie strip: ``parascale_pce`` / ``parascale_pce_label`` (what the panel shows),
the three curves as custom properties ``parascale_pi_<curve>`` keyed in the scene's action at the
frames where the strip shows each clip frame (so the Graph Editor draws them), and a plot image
``ParaScale Π <strip>`` (drawn with numpy; packed into the .blend) for the panel and Image Editor.
Value t is the step from clip frame t-1 to t, keyed at the frame that shows clip frame t.
"""

from __future__ import annotations

import json

import bpy
import numpy as np

from ..client import wire
from . import compat, keys

CURVES = (wire.PI_REFERENCE, wire.PI_TARGET, wire.PI_REALIZED)
COLOURS = {wire.PI_REFERENCE: (0.85, 0.85, 0.85), wire.PI_TARGET: (0.25, 0.55, 1.0), wire.PI_REALIZED: (1.0, 0.55, 0.1)}
PROP = "parascale_pi_{}"
PCE_PROP, LABEL_PROP, IMAGE_PROP = "parascale_pce", "parascale_pce_label", "parascale_pi_image"
RELIABILITY_PROP = "parascale_pce_reliability"
GROUP = "ParaScale closed loop"
# flow/flow PCE of a faithful clip: DIS's own error on clean renders with exact motion (closed-loop
# benchmark's flow floor, 0.044-0.067); the warp preview of a perfect rescale measures below 0.05
FLOW_FLOOR_PCE = 0.07
MIN_MEASURED = 0.5  # fewer measured steps than this fraction: the flow is not to be trusted
SCALE_NOTE = "PCE = mean |ln(realized / reference Π)| per step: 0.10 ≈ 10% off; below 0.07 is the flow's floor"


def _values(report: dict, name: str) -> np.ndarray | None:
    v = report.get(name)
    return None if v is None else np.array([np.nan if x is None else float(x) for x in v], dtype=np.float64)


def plot_curves(curves: list[tuple[np.ndarray, tuple]], width: int = 480, height: int = 240) -> np.ndarray:
    """RGBA float pixels (height, width, 4), row 0 at the top: each (values, rgb) as a polyline over
    its index (NaN breaks the line), one shared y axis from 0 to 110% of the largest value, a dot at
    each value (smaller for each later curve, so equal values show as rings) and faint rules at
    quarters of the axis."""
    img = np.empty((height, width, 4), np.float32)
    img[:] = (0.12, 0.12, 0.12, 1.0)
    m = 12  # margin, px
    for q in range(5):
        img[m + round((height - 2 * m) * q / 4), m : width - m, :3] = 0.25
    n = max((len(v) for v, _ in curves), default=0)
    top = max((float(np.nanmax(v)) for v, _ in curves if np.isfinite(v).any()), default=0.0) * 1.1
    if n < 2 or not top > 0:
        return img

    def xy(i, val):
        return m + (width - 2 * m - 1) * i / (n - 1), height - m - 1 - (height - 2 * m - 1) * val / top

    def dot(x, y, rgb, r):
        xi, yi = np.round(x).astype(int), np.round(y).astype(int)
        for dx in range(-r, r + 1):
            for dy in range(-r, r + 1):
                ok = (xi + dx >= 0) & (xi + dx < width) & (yi + dy >= 0) & (yi + dy < height)
                img[(yi + dy)[ok], (xi + dx)[ok], :3] = rgb

    for k, (vals, rgb) in enumerate(curves):
        for i in range(len(vals) - 1):
            if np.isfinite(vals[i]) and np.isfinite(vals[i + 1]):
                (x0, y0), (x1, y1) = xy(i, vals[i]), xy(i + 1, vals[i + 1])
                s = np.linspace(0.0, 1.0, int(2 * max(abs(x1 - x0), abs(y1 - y0))) + 2)
                dot(x0 + s * (x1 - x0), y0 + s * (y1 - y0), rgb, 1)
        i = np.flatnonzero(np.isfinite(vals))
        dot(*xy(i, vals[i]), rgb, 2 + len(curves) - k)  # later curves smaller: coinciding dots stay visible
    return img


def _image(name: str, pixels: np.ndarray):
    h, w = pixels.shape[:2]
    img = bpy.data.images.get(name)
    if img is None or tuple(img.size) != (w, h):
        if img is not None:
            bpy.data.images.remove(img)
        img = bpy.data.images.new(name, w, h, alpha=True)
    rows = np.ascontiguousarray(pixels[::-1]).ravel()  # Blender's rows run bottom-up
    img.pixels.foreach_set(rows)  # pyright: ignore[reportAttributeAccessIssue]
    img.pack()
    img.use_fake_user = True  # nothing else uses it: without a user it would not be saved
    return img


def apply(scene, strip, report: dict) -> str:
    """Put the clip's closed-loop ``report`` on ``strip``; returns the line the panel shows."""
    if not report:
        return ""
    if report.get(wire.PARALLAX_ERROR):
        strip[LABEL_PROP] = str(report[wire.PARALLAX_ERROR])[:200]
        return strip[LABEL_PROP]
    pce = report.get(wire.PCE)
    strip[PCE_PROP] = float(pce) if pce is not None else float("nan")
    strip[LABEL_PROP] = str(report.get(wire.PCE_LABEL) or "PCE")
    frames = strip.frame_start + np.arange(len(report.get(wire.PI_FRAMES) or ()), dtype=np.float64)
    fcurves = compat.fcurves_of(scene, ensure=True)
    if fcurves is None:  # the scene's own action (given a slot) or a new one: never replaced
        ad = scene.animation_data
        if ad is not None and ad.action is not None:
            compat.assign_action(scene, ad.action)
        else:
            compat.new_action(scene, f"{scene.name} ParaScale")
        fcurves = compat.fcurves_of(scene, ensure=True)
    plotted = []
    for name in CURVES:
        vals = _values(report, name)
        if vals is None or not np.isfinite(vals).any():
            continue
        prop = PROP.format(name)
        strip[prop] = float(vals[np.isfinite(vals)][0])
        keys._key(fcurves, f'{strip.path_from_id()}["{prop}"]', 0, frames[: len(vals)], vals, GROUP)
        plotted.append((vals, COLOURS[name]))
    strip[IMAGE_PROP] = _image(f"ParaScale Π {strip.name}", plot_curves(plotted)).name
    strip[RELIABILITY_PROP] = reliability(_values(report, wire.PI_REALIZED))
    return line(strip)


def reliability(realized: np.ndarray | None) -> str:
    """ "" when the flow measured most steps, else why the PCE is not to be trusted."""
    n = 0 if realized is None else len(realized) - 1  # index 0: no step
    k = 0 if realized is None else int(np.isfinite(realized[1:]).sum())
    if n > 0 and k >= MIN_MEASURED * n:
        return ""
    return (
        f"flow unreliable: {k} of {n} steps measured (too little texture or motion for optical flow); "
        "judge the clip by eye"
    )


def verdict(pce: float) -> str:
    """What a flow/flow PCE means for the clip, in words."""
    off = 100.0 * (np.exp(pce) - 1.0)
    if pce <= FLOW_FLOOR_PCE:
        return f"good (Π within ~{off:.0f}%/step, at the flow's own floor)"
    return f"Π off by ~{off:.0f}%/step (good is below {FLOW_FLOOR_PCE:g})"


def line(strip) -> str:
    """``"PCE vs reference, flow/flow 0.012: good (…)"`` for a measured strip, else ""."""
    if LABEL_PROP not in strip:
        return ""
    pce = strip.get(PCE_PROP)
    if pce is None or not np.isfinite(pce):
        return str(strip[LABEL_PROP])
    return f"{strip[LABEL_PROP]} {pce:.3f}: {verdict(pce)}"


def strip_of(scene, name: str):
    s = compat.strips(scene)
    return s.get(name) if s is not None and name else None


def draw(layout, scene, strip_name: str) -> None:
    """The Generate section's closed-loop lines for the strip ``strip_name``: PCE, the plot, legend."""
    strip = strip_of(scene, strip_name)
    if strip is None or not (text := line(strip)):
        return
    layout.label(text=text, icon="GRAPH")
    layout.label(text=SCALE_NOTE)
    if note := strip.get(RELIABILITY_PROP):
        layout.label(text=note, icon="ERROR")
    img = bpy.data.images.get(strip.get(IMAGE_PROP, ""))
    if img is not None:
        img.preview_ensure()
        layout.template_icon(icon_value=img.preview.icon_id, scale=6.0)
        layout.label(text="Π per step: reference (white), target (blue), realized (orange)")
        layout.operator(PARASCALE_OT_show_parallax_plot.bl_idname, icon="IMAGE").image = img.name


class PARASCALE_OT_show_parallax_plot(bpy.types.Operator):
    """Show the clip's Π curves (reference, target, realized) in an Image Editor"""

    bl_idname = "parascale.show_parallax_plot"
    bl_label = "Show Π Curves"
    bl_options = {"REGISTER"}

    image: bpy.props.StringProperty(name="Image")

    def execute(self, context):
        img = bpy.data.images.get(self.image)
        if img is None:
            self.report({"ERROR"}, f"no image {self.image!r}")
            return {"CANCELLED"}
        screen = context.window.screen if context.window else None
        areas = [a for a in (screen.areas if screen else ()) if a.type == "IMAGE_EDITOR"]
        if not areas:
            self.report({"INFO"}, f"open an Image Editor and pick {img.name!r}")
            return {"FINISHED"}
        areas[0].spaces.active.image = img  # pyright: ignore[reportAttributeAccessIssue]
        return {"FINISHED"}


def report_of(record) -> dict:
    """The closed-loop report a generate job's record holds (``{}`` if none)."""
    try:
        return json.loads(getattr(record, "report", "") or "{}") or {}
    except ValueError:
        return {}


classes = (PARASCALE_OT_show_parallax_plot,)
