"""The bpy layer of ParaScale: operators, panel, properties. The only package that imports bpy.

Each submodule named in ``_MODULES`` may define ``classes`` (registered in order, unregistered in
reverse) and optional ``register()`` / ``unregister()`` hooks run after / before its classes.
Adding a module is a one-line change to ``_MODULES``.
"""

from __future__ import annotations

import importlib

_MODULES = (
    "prefs",
    "local_server",
    "server_status",
    "props",
    "server_jobs",
    "ops_reference",
    "ops_video",
    "ops_depth",
    "ops_rescale",
    "live",
    "ops_target",
    "ops_bake",
    "ops_edit",
    "closed_loop",
    "panel",
    "ops_generate",
)

_registered: list = []


def _modules():
    return [importlib.import_module(f".{name}", __package__) for name in _MODULES]


def register() -> None:
    import bpy

    from .compat import expose_bundled_modules

    expose_bundled_modules()  # OpenImageIO decodes depth files (formats.image_backends)
    for mod in _modules():
        for cls in getattr(mod, "classes", ()):
            bpy.utils.register_class(cls)
        hook = getattr(mod, "register", None)
        if callable(hook):
            hook()
        _registered.append(mod)


def unregister() -> None:
    import bpy

    while _registered:
        mod = _registered.pop()
        hook = getattr(mod, "unregister", None)
        if callable(hook):
            hook()
        for cls in reversed(getattr(mod, "classes", ())):
            bpy.utils.unregister_class(cls)
