"""Blender 4.2 LTS vs 5.0 API differences, in one place.

* Animation: 4.4+ has slotted (layered) actions whose F-curves live in a channelbag per slot;
  4.2 keeps ``action.fcurves``. :func:`new_action` / :func:`fcurves_of` hide the difference.
* Sequencer: 5.0 calls them ``strips``; 4.2 called them ``sequences``.
* Bundled Python modules (OpenImageIO, which decodes depth EXR and PNG files): Blender's own Python
  has its site-packages on ``sys.path``; the ``bpy`` module (headless, pip's ``bpy``) keeps them off
  it. :func:`expose_bundled_modules` appends that folder when it is missing.
"""

from __future__ import annotations

import os
import sys

import bpy

SLOTTED_ACTIONS = bpy.app.version >= (4, 4, 0)


def _channelbag(action, slot, ensure: bool):
    if ensure:
        from bpy_extras.anim_utils import action_ensure_channelbag_for_slot  # pyright: ignore[reportAttributeAccessIssue]

        return action_ensure_channelbag_for_slot(action, slot)
    from bpy_extras.anim_utils import action_get_channelbag_for_slot  # pyright: ignore[reportAttributeAccessIssue]

    return action_get_channelbag_for_slot(action, slot)


def assign_action(id_data, action) -> None:
    """Make ``action`` the active action of ``id_data`` (4.4+: with a slot for it)."""
    ad = id_data.animation_data or id_data.animation_data_create()
    ad.action = action
    if SLOTTED_ACTIONS and action is not None and ad.action_slot is None:
        slot = action.slots[0] if len(action.slots) else action.slots.new(id_type=id_data.id_type, name=id_data.name)
        ad.action_slot = slot


def new_action(id_data, name: str):
    """A new empty action assigned to ``id_data`` (the previous one is left untouched)."""
    action = bpy.data.actions.new(name)
    if SLOTTED_ACTIONS:
        ad = id_data.animation_data or id_data.animation_data_create()
        ad.action = None
        slot = action.slots.new(id_type=id_data.id_type, name=id_data.name)  # pyright: ignore[reportAttributeAccessIssue]
        ad.action = action
        ad.action_slot = slot
        _channelbag(action, slot, ensure=True)
    else:
        assign_action(id_data, action)
    return action


def fcurves_of(id_data, ensure: bool = False):
    """The F-curve collection animating ``id_data`` through its active action, or None."""
    ad = id_data.animation_data
    if ad is None or ad.action is None:
        return None
    if not SLOTTED_ACTIONS:
        return ad.action.fcurves
    if ad.action_slot is None:
        return None
    bag = _channelbag(ad.action, ad.action_slot, ensure)
    return bag.fcurves if bag is not None else None


def new_fcurve(fcurves, data_path: str, index: int = 0, group: str = ""):
    """Create an F-curve; the group argument differs between the two APIs."""
    if SLOTTED_ACTIONS:
        return fcurves.new(data_path, index=index, group_name=group)
    return fcurves.new(data_path, index=index, action_group=group)


def strips(scene):
    """The sequencer's strip collection (top level) or None without a sequence editor."""
    ed = scene.sequence_editor
    if ed is None:
        return None
    return ed.strips if hasattr(ed, "strips") else ed.sequences


def all_strips(scene):
    """Every strip of the sequencer, inside meta strips too (empty without a sequence editor)."""
    ed = scene.sequence_editor
    if ed is None:
        return ()
    return ed.strips_all if hasattr(ed, "strips_all") else ed.sequences_all


def expose_bundled_modules() -> None:
    """Put Blender's bundled site-packages (OpenImageIO among them) on ``sys.path`` if it is not
    there (only the ``bpy`` module needs this), appended so that it shadows nothing."""
    root = os.path.join(bpy.utils.resource_path("LOCAL"), "python", "lib")
    for site in (
        os.path.join(root, f"python{sys.version_info[0]}.{sys.version_info[1]}", "site-packages"),
        os.path.join(root, "site-packages"),
    ):
        if os.path.isdir(site) and site not in sys.path:
            sys.path.append(site)
            return
