"""Add-on preferences: bridge server, working depth resolution, defaults.

The server token is never stored with the preferences (``userpref.blend`` is world-readable): the
*Token* field (``server_token``) reads and writes the owner-only file ``server-token`` of the extension's user folder
(:func:`local_server.install_token` makes it); a token an older version saved in the preferences is
moved there by :func:`get`.
"""

from __future__ import annotations

import os

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


DEVICE_ITEMS = [
    ("AUTO", "Auto", "CUDA if present, else Apple's MPS, else the CPU"),
    ("CUDA", "CUDA", "NVIDIA GPU"),
    ("MPS", "MPS", "Apple Silicon GPU (Metal)"),
    ("CPU", "CPU", "The processor only"),
]


def addon_package() -> str:
    """The add-on's package name (``bl_ext.<repo>.parascale`` when installed as an extension)."""
    return __package__.rpartition(".")[0]


def _token_file() -> str:
    from . import local_server

    return local_server.token_path()


def read_token() -> str:
    try:
        with open(_token_file(), encoding="utf-8") as f:
            return f.read().strip()
    except (OSError, ValueError):
        return ""


def write_token(value: str) -> None:
    """Keep ``value`` in the owner-only token file (empty: remove it)."""
    from . import local_server

    value = value.strip()
    if not value:
        try:
            os.remove(_token_file())
        except FileNotFoundError:
            pass
        return
    local_server.write_private(_token_file(), value + "\n")


def _get_token(_self) -> str:
    return read_token()


def _set_token(_self, value: str) -> None:
    write_token(value)


class PARASCALE_AP_preferences(bpy.types.AddonPreferences):
    bl_idname = __package__.rpartition(".")[0]

    server_url: bpy.props.StringProperty(
        name="Server URL", default=DEFAULT_URL, description="ParaScale generation server (loopback)"
    )
    token: bpy.props.StringProperty(
        name="Old token",
        options={"HIDDEN"},
        description="Where earlier versions kept the token in clear (moved to the file)",
    )
    server_token: bpy.props.StringProperty(
        name="Token",
        subtype="PASSWORD",
        description="Bearer token for the server (kept in an owner-only file of the add-on's user folder, "
        "not in the preferences)",
        get=_get_token,
        set=_set_token,
    )
    server_python: bpy.props.StringProperty(
        name="Server Python",
        subtype="FILE_PATH",
        description="Python executable, environment folder or parascale-server script of the ParaScale server, "
        "for Start (empty: found on PATH or in the usual folders)",
    )
    server_device: bpy.props.EnumProperty(
        name="Device",
        items=DEVICE_ITEMS,
        default="AUTO",
        description="Where the server computes: Auto picks CUDA, else Apple's MPS, else the CPU",
    )
    weights_dir: bpy.props.StringProperty(
        name="Weights folder",
        subtype="DIR_PATH",
        description="Local model weights, one sub-folder per backend (empty: the server's $PARASCALE_WEIGHTS)",
    )
    server_folder: bpy.props.StringProperty(
        name="Set-up folder",
        subtype="DIR_PATH",
        description="Where Set Up Server creates the server's Python environment (empty: a ParaScale folder "
        "in your user data)",
    )
    server_package: bpy.props.StringProperty(
        name="Server package",
        subtype="FILE_PATH",
        description="The ParaScale wheel (parascale-<version>-py3-none-any.whl) or a pip requirement",
    )
    setup_python: bpy.props.StringProperty(
        name="Setup Python",
        subtype="FILE_PATH",
        description="Your own Python 3.11 that creates the environment, never Blender's (empty: found on PATH)",
    )
    setup_pip_args: bpy.props.StringProperty(
        name="pip options",
        description="Extra pip options, e.g. --extra-index-url https://download.pytorch.org/whl/cu128 for "
        "CUDA torch on Windows",
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
    view_every: bpy.props.IntProperty(
        name="Target view every",
        default=1,
        min=1,
        max=16,
        description="Render the target's depth every this many frames and re-project it between (faster long "
        "shots, at a small cost in accuracy on thin structures); 1 renders every frame",
    )
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
        col.prop(self, "server_token")
        box = col.box()
        box.prop(self, "server_python")
        box.prop(self, "server_device")
        box.prop(self, "weights_dir")
        from . import local_server

        local_server.draw(box, self)
        col.prop(self, "depth_model")
        col.prop(self, "working_size")
        col.prop(self, "view_every")
        col.prop(self, "default_mode")
        col.prop(self, "point_radius")


def get(context=None) -> PARASCALE_AP_preferences | None:
    """The preferences, or None when the add-on is not enabled under its package name."""
    context = context or bpy.context
    addon = context.preferences.addons.get(addon_package())
    p = addon.preferences if addon else None
    if p is not None and p.token:  # stored in clear by an older version: moved to the file
        old, p.token = p.token, ""
        if old.strip() and not read_token():
            write_token(old)
    return p


classes = (PARASCALE_AP_preferences,)
