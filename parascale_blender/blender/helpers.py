"""ParaScale's helper objects: the viewing aids the add-on makes (point clouds of the reference and
the target, imported reference cameras). A viewing aid never renders: each helper is tagged
:data:`TAG`, ``hide_render``, and lives in one collection per scene (:data:`COLLECTION`, made on
demand under the scene's collection, itself ``hide_render``). Renders the add-on makes itself
(Generate's conditioning) run inside :func:`hidden_from_render`, which hides every helper whatever
the artist has since set and gives the artist's settings back afterwards, on error too.
"""

from __future__ import annotations

from contextlib import contextmanager

import bpy

COLLECTION = "ParaScale"
TAG = "parascale_helper"
_LEGACY_TAG = "parascale_points"  # point clouds of files made before helpers were tagged


def is_helper(obj) -> bool:
    return bool(obj.get(TAG) or obj.get(_LEGACY_TAG))


def find_collection(scene):
    """The scene's helper collection (wherever the artist has moved it in the scene), or None."""
    return next((c for c in scene.collection.children_recursive if c.get(TAG)), None)


def collection(scene):
    """The scene's helper collection, made (``hide_render``) when it has none."""
    coll = find_collection(scene)
    if coll is None:
        coll = bpy.data.collections.new(COLLECTION)
        coll[TAG] = True
        coll.hide_render = True
        scene.collection.children.link(coll)
    return coll


def adopt(obj, scene) -> None:
    """Make ``obj`` a helper of ``scene``: tagged, ``hide_render``, in the helper collection only."""
    obj[TAG] = True
    obj.hide_render = True
    coll = collection(scene)
    if coll not in obj.users_collection:
        coll.objects.link(obj)
    for other in obj.users_collection:
        if other is not coll:
            other.objects.unlink(obj)


@contextmanager
def hidden_from_render(scene):
    """Every helper of ``scene`` (and its helper collection) ``hide_render`` for the block; each
    one's own setting is restored afterwards."""
    coll = find_collection(scene)
    items = [o for o in scene.objects if is_helper(o)] + ([coll] if coll is not None else [])
    saved = [(item, item.hide_render) for item in items]
    try:
        for item, _ in saved:
            item.hide_render = True
        yield
    finally:
        for item, hidden in saved:
            item.hide_render = hidden


__all__ = ["COLLECTION", "TAG", "is_helper", "find_collection", "collection", "adopt", "hidden_from_render"]
