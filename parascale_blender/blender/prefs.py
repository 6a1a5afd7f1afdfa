"""Add-on preferences: bridge server, working depth resolution, defaults."""

from __future__ import annotations

import bpy

from ..client import DEFAULT_URL

MODE_ITEMS = [
    ("exact", "Exact", "Per-step α from the exact mean translational image motion (default)"),
    ("harmonic", "Harmonic", "Per-step α from ||d||·E[1/Z] (the paper's Π; exact for sideways steps)"),
    ("flow", "Flow", "Per-step α from the mean translational optical flow"),
    ("arithmetic", "Arithmetic", "Per-step α from ||d||/E[Z] (the original paper's form)"),
    ("global", "Global", "One α for the whole shot from the first frame"),
    ("none", "None", "Copy the relative move unscaled (reference units)"),
]


def addon_package() -> str:
    """The add-on's package name (``bl_ext.<repo>.parascale`` when installed as an extension)."""
    return __package__.rpartition(".")[0]


class PARASCALE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__.rpartition(".")[0]

    server_url: bpy.props.StringProperty(
        name="Server URL", default=DEFAULT_URL, description="ParaScale generation server (loopback)"
    )
    token: bpy.props.StringProperty(name="Token", subtype="PASSWORD", description="Bearer token for the server")
    server_python: bpy.props.StringProperty(
        name="Server Python",
        subtype="FILE_PATH",
        description="Python executable (or environment folder) with torch and the ParaScale server, for Start",
    )
    depth_model: bpy.props.StringProperty(
        name="Depth model",
        default="default",
        description="Folder name of the Depth Anything weights under the server's depth-anything weights folder",
    )
    working_size: bpy.props.IntProperty(
        name="Working depth resolution",
        default=160,
        min=16,
        max=2048,
        description="Longest side in pixels of the depth images Π is measured on",
    )
    default_mode: bpy.props.EnumProperty(name="Default mode", items=MODE_ITEMS, default="exact")
    point_radius: bpy.props.FloatProperty(
        name="Point radius",
        default=0.0,
        min=0.0,
        soft_max=1.0,
        subtype="DISTANCE",
        description="Radius of target point clouds; 0 = from the target camera (about 1.5 working pixels)",
    )

    def draw(self, context):
        col = self.layout.column()
        col.prop(self, "server_url")
        col.prop(self, "token")
        box = col.box()
        box.prop(self, "server_python")
        from . import local_server

        local_server.draw(box)
        col.prop(self, "depth_model")
        col.prop(self, "working_size")
        col.prop(self, "default_mode")
        col.prop(self, "point_radius")


def get(context=None) -> PARASCALE_AP_preferences | None:
    """The preferences, or None when the add-on is not enabled under its package name."""
    context = context or bpy.context
    addon = context.preferences.addons.get(addon_package())
    return addon.preferences if addon else None


classes = (PARASCALE_AP_preferences,)
