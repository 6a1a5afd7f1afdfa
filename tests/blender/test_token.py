"""The server token lives only in an owner-only file (issue 24, item 9): never in ``userpref.blend``."""

from __future__ import annotations

import os
import stat
from pathlib import Path


def test_the_token_is_kept_in_a_0600_file_not_in_the_saved_preferences(scene, ext):
    import bpy

    prefs, local = ext("blender.prefs"), ext("blender.local_server")
    p = prefs.get(bpy.context)
    token = "tok-" + os.urandom(12).hex()
    p.server_token = token
    try:
        path = Path(local.token_path())
        assert path.read_text().strip() == token and p.server_token == token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
        bpy.ops.wm.save_userpref()
        saved = Path(bpy.utils.user_resource("CONFIG")) / "userpref.blend"
        assert saved.is_file() and token.encode() not in saved.read_bytes()
        # A token an older version kept in the preferences is moved to the file, and gone from them.
        p.server_token = ""
        assert not path.exists()
        p.token = "legacy-" + token  # the property where earlier versions stored it
        p = prefs.get(bpy.context)
        assert p.token == "" and p.server_token == "legacy-" + token
        assert stat.S_IMODE(path.stat().st_mode) == 0o600
    finally:
        p.server_token = ""
