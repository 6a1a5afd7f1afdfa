"""ParaScale: transfer a camera move between scenes of any scale by preserving parallax.

This package is both the Blender extension and the home of the bpy-free engine:

* ``core/``    camera model, depth sources, parallax, rescaling, metrics (numpy only)
* ``formats/`` camera-track and depth file readers/writers (numpy only)
* ``blender/`` the thin bpy layer (operators, panels, properties), imported only inside Blender

Importing this package never imports bpy, so the engine works anywhere (CLI, server, tests).
"""

__version__ = "0.1.0"


def register():
    from .blender import register as _register

    _register()


def unregister():
    from .blender import unregister as _unregister

    _unregister()
