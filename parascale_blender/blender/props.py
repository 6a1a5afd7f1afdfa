"""Per-scene ParaScale settings: ``scene.parascale`` (the steps: reference, target with its plate,
rescale results) and ``scene.parascale_generate`` (Generate's own inputs). Server-job state lives
in ``server_jobs`` (``scene.parascale_jobs``)."""

from __future__ import annotations

import bpy

from ..client import wire
from . import server_status
from .plate import DEPTH_UNIT_ITEMS
from .prefs import MODE_ITEMS


def _is_camera(self, obj) -> bool:
    return obj.type == "CAMERA"


REF_DEPTH_ITEMS = [
    ("DISTANCE", "Assumed distance", "A subject distance in reference units (the default 3 is a guess)"),
    ("POINTS", "Track points", "The reference track's own 3D points (SfM / solve bundles) with visibility"),
    ("SCENE", "Scene geometry", "Meshes of the reference collection seen from the reference camera"),
    ("DEPTHMAPS", "Depth maps", "A depth-map sequence, one per reference frame"),
]
TARGET_DEPTH_ITEMS = [
    ("SCENE", "Scene geometry", "Meshes of the target collection seen from the target camera"),
    ("POINTS", "Point cloud", "The target point-cloud object (e.g. from a plate + depth map)"),
    ("DISTANCE", "Known distance", "A known subject distance in target units"),
]


class ParaScaleSettings(bpy.types.PropertyGroup):
    reference_camera: bpy.props.PointerProperty(name="Reference camera", type=bpy.types.Object, poll=_is_camera)
    reference_source: bpy.props.StringProperty(name="Source", description="Where the reference track came from")
    reference_points: bpy.props.PointerProperty(name="Reference points", type=bpy.types.Object)
    reference_depth: bpy.props.EnumProperty(name="Reference depth", items=REF_DEPTH_ITEMS, default="DISTANCE")
    reference_distance: bpy.props.FloatProperty(
        name="Assumed subject distance", default=3.0, min=1e-6, soft_max=1e4, subtype="DISTANCE",
        description="The reference subject's distance: a guess (3) unless you know it; the transfer's scale follows it",
    )  # fmt: skip
    reference_depth_path: bpy.props.StringProperty(name="Depth maps", subtype="FILE_PATH")
    reference_collection: bpy.props.PointerProperty(name="Reference geometry", type=bpy.types.Collection)

    target_camera: bpy.props.PointerProperty(name="Target camera", type=bpy.types.Object, poll=_is_camera)
    target_start_frame: bpy.props.IntProperty(name="Start frame", default=1)
    target_depth: bpy.props.EnumProperty(name="Target depth", items=TARGET_DEPTH_ITEMS, default="SCENE")
    target_collection: bpy.props.PointerProperty(name="Target geometry", type=bpy.types.Collection)
    target_points: bpy.props.PointerProperty(name="Target points", type=bpy.types.Object)
    target_distance: bpy.props.FloatProperty(
        name="Target distance",
        default=3.0,
        min=1e-6,
        soft_max=1e4,
        subtype="DISTANCE",
        description="The subject's distance",
    )
    target_plate_image: bpy.props.StringProperty(
        name="Plate", subtype="FILE_PATH", description="The target shot's first frame (PNG or JPEG)"
    )
    target_plate_depth: bpy.props.StringProperty(
        name="Plate depth",
        subtype="FILE_PATH",
        description="Z-depth of the plate image (.npy, .exr, .pfm or 16-bit PNG), e.g. from Estimate Plate Depth",
    )
    target_plate_depth_unit: bpy.props.EnumProperty(
        name="Depth unit", items=DEPTH_UNIT_ITEMS, default="AUTO", description="What the plate-depth file stores"
    )
    target_plate_depth_scale: bpy.props.FloatProperty(
        name="Scale",
        default=0.001,
        min=0.0,
        precision=6,
        description="Scene units per stored value, for the custom depth unit",
    )

    mode: bpy.props.EnumProperty(
        name="Mode",
        items=[("DEFAULT", "Default", "The Default mode of the add-on's preferences"), *MODE_ITEMS],
        default="DEFAULT",
    )
    allow_sky: bpy.props.BoolProperty(
        name="Allow sky",
        description="Pixels with no depth (sky) count as not moving, as the eye sees them; off: left out of Π",
        default=True,
    )
    cloud_sky: bpy.props.BoolProperty(
        name="Cloud gaps are sky",
        description=(
            "Where a target point cloud has no points the camera sees sky (not moving), e.g. a plate's open sky; "
            "off: those pixels are unknown and left out of Π. A cloud from a plate is sky only inside that plate's "
            "view, never beyond what it saw"
        ),
        default=False,
    )

    fov_match: bpy.props.EnumProperty(
        name="Match",
        items=[
            ("ANGULAR", "Angle", "Match Π in angle (image motion per radian of view): the same parallax to the eye"),
            ("FRAME", "Frame", "Match Π as a share of the frame width: the same on-screen motion whatever the lenses"),
        ],
        default="ANGULAR",
        description="How Π is compared when the reference and target lenses differ",
    )
    transfer_zoom: bpy.props.BoolProperty(
        name="Transfer zoom",
        description="When the reference zooms, key the target's lens with the same relative focal change",
        default=True,
    )

    original_action: bpy.props.PointerProperty(name="Original action", type=bpy.types.Action)
    result_action: bpy.props.PointerProperty(name="Rescaled action", type=bpy.types.Action)
    original_lens_action: bpy.props.PointerProperty(name="Original lens action", type=bpy.types.Action)
    result_lens_action: bpy.props.PointerProperty(name="Rescaled lens action", type=bpy.types.Action)
    solver_residual: bpy.props.FloatProperty(
        name="Solver residual",
        description="How closely the solver met its own Π target (not a quality measure)",
        default=float("nan"),
    )
    pce: bpy.props.FloatProperty(
        name="PCE",
        description="The move as Blender plays it, re-measured against the reference's Π: on the meshes a "
        "Points-from-Scene cloud came from when there are some, else on the target depth",
        default=float("nan"),
    )
    pce_measured_on: bpy.props.StringProperty(name="PCE measured on")
    check_summary: bpy.props.StringProperty(name="Checks")
    scale_min: bpy.props.FloatProperty(name="α min", default=float("nan"))
    scale_max: bpy.props.FloatProperty(name="α max", default=float("nan"))
    last_report: bpy.props.StringProperty(name="Last report")


def _get_backend(self) -> int:
    items = server_status.backend_items(self)
    return next((it[4] for it in items if it[0] == self.backend), 0)


def _set_backend(self, value: int) -> None:
    items = server_status.backend_items(self)
    self.backend = next((it[0] for it in items if it[4] == value), self.backend)


class ParaScaleGenerateSettings(bpy.types.PropertyGroup):
    """Generate's inputs; the plate is the target step's, the job is ``scene.parascale_jobs.generate``."""

    source: bpy.props.EnumProperty(
        name="Image",
        items=[
            ("RENDER", "Render", "Render the target camera's first frame with the scene's engine; depth from geometry"),
            ("PLATE", "Plate", "The target step's plate image and plate depth"),
        ],
        default="RENDER",
    )
    backend: bpy.props.StringProperty(name="Backend", default=wire.DEFAULT_BACKEND)
    backend_menu: bpy.props.EnumProperty(
        name="Backend",
        items=server_status.backend_items,
        get=_get_backend,
        set=_set_backend,
        description="The server's generating backends (Refresh asks the server; unavailable ones say why)",
    )
    seed: bpy.props.IntProperty(
        name="Seed", default=0, min=0, description="Noise seed of diffusion backends: the same seed gives the same clip"
    )
    random_seed: bpy.props.BoolProperty(
        name="New seed each run", description="Draw a random seed per Generate (the job's message names it)"
    )
    frames: bpy.props.IntProperty(
        name="Frames", default=0, min=0, description="Frames to generate from the shot's first (0: the whole shot)"
    )
    resolution_x: bpy.props.IntProperty(
        name="Width", default=0, min=0, subtype="PIXEL", description="Clip width (0: the scene's)"
    )
    resolution_y: bpy.props.IntProperty(
        name="Height", default=0, min=0, subtype="PIXEL", description="Clip height (0: the scene's)"
    )
    output_dir: bpy.props.StringProperty(name="Output folder", subtype="DIR_PATH", default="//")


classes = (ParaScaleSettings, ParaScaleGenerateSettings)


def register() -> None:
    bpy.types.Scene.parascale = bpy.props.PointerProperty(type=ParaScaleSettings)
    bpy.types.Scene.parascale_generate = bpy.props.PointerProperty(type=ParaScaleGenerateSettings)


def unregister() -> None:
    del bpy.types.Scene.parascale_generate
    del bpy.types.Scene.parascale
