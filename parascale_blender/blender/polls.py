"""Operator polls: cheap checks of what an action needs, each saying why it cannot run
(``poll_message_set``: the button greys out with the reason as its tooltip, and a script's call
raises it). Polls read settings only: no depth, no files, no server.

Linked data is read-only: a camera linked from a library (not a library override) may be edited from
Python, but the edit is not saved with the file, so a move keyed on it would be lost. Operators that
key or edit the target camera refuse it (:func:`linked_error`); a library override is editable.
"""

from __future__ import annotations

import os

import bpy


def fail(cls, why: str) -> bool:
    cls.poll_message_set(why)
    return False


def linked_error(obj) -> str | None:
    """Why ``obj`` cannot be keyed or edited (linked from a library), or None (local, or an override)."""
    lib = getattr(obj, "library", None)
    if lib is None:
        return None
    what = "camera data" if isinstance(obj, bpy.types.Camera) else "camera"
    return (
        f"{what} {obj.name!r} is linked from {os.path.basename(bpy.path.abspath(lib.filepath))} and read-only "
        "(a move keyed on it is lost when the file is saved): make a Library Override of it first "
        "(Object > Library Override > Make)"
    )


def target_camera(cls, context, editable: bool = False) -> bool:
    """The scene has a target camera (one that can be keyed, with ``editable``)."""
    cam = context.scene.parascale.target_camera
    if cam is None:
        return fail(cls, "Target: choose a target camera in the ParaScale Target panel")
    why = linked_error(cam) if editable else None
    return fail(cls, f"Target: {why}") if why else True


def reference_camera(cls, context) -> bool:
    if context.scene.parascale.reference_camera is None:
        return fail(cls, "Reference: no reference camera; import a track or pick an animated camera")
    return True


def any_camera(cls, context) -> bool:
    if not len(bpy.data.cameras):
        return fail(cls, "no camera in this file: add or import one")
    return True
