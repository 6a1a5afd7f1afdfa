"""The lint's type-check of the bpy layer (scripts/typecheck.py) fails on an API one Blender version lacks.

Snippets use the sequencer, the F-curve API and EEVEE's engine name, which Blender 5.0 changed:
5.0-only code must fail the 4.2 run and pass the 5.0 run, 4.2-only code the reverse, and code going
through ``compat`` must pass both. Runs the real checker on the real stubs; skipped until
``./scripts/dev lint`` has installed them.
"""

from __future__ import annotations

import importlib.util
import json
import textwrap
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("typecheck", ROOT / "scripts" / "typecheck.py")
typecheck = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(typecheck)

OPERATOR = """
import bpy


class SEQUENCER_OT_parascale_demo(bpy.types.Operator):
    bl_idname = "sequencer.parascale_demo"
    bl_label = "Demo"

    def execute(self, context):
        ed = context.scene.sequence_editor_create()
{body}
        return {{"FINISHED"}}
"""

SNIPPETS = {
    # Blender 5.0: strips, F-curves in a channelbag of the action's slot, EEVEE's engine name.
    "uses_50.py": """\
ed.strips.new_movie("plate", "/tmp/plate.mp4", channel=1, frame_start=1)
action = bpy.data.actions.new("cam")
slot = action.slots.new(id_type="OBJECT", name="cam")
context.scene.render.engine = "BLENDER_EEVEE"
""",
    # Blender 4.2: sequences, F-curves on the action, EEVEE Next.
    "uses_42.py": """\
ed.sequences.new_movie("plate", "/tmp/plate.mp4", channel=1, frame_start=1)
bpy.data.actions.new("cam").fcurves.new("location", index=0)
context.scene.render.engine = "BLENDER_EEVEE_NEXT"
""",
    # Through compat: one spelling for both.
    "uses_compat.py": """\
from parascale_blender.blender import compat

strips = compat.strips(context.scene)
compat.new_action(context.scene.camera, "cam")
""",
}


def _stub_folders() -> dict[str, Path]:
    base = typecheck.typecheck_dir()
    folders = {v: base / f"bpy-{v}" for v in typecheck.read_lock()[1]}
    missing = [p for p in [base / "checker", *folders.values()] if not (p / ".parascale-lock").is_file()]
    if missing:
        pytest.skip(f"type-check tools not installed ({missing[0]}): run ./scripts/dev lint")
    return folders


def _errors(version: str, stubs: Path, files: list[Path]) -> dict[str, list[str]]:
    res = typecheck.run_pyright(version, stubs, [str(f) for f in files], "--outputjson")
    report = json.loads(res.stdout)
    out: dict[str, list[str]] = {f.name: [] for f in files}
    for d in report["generalDiagnostics"]:
        if d["severity"] == "error":
            line = d["range"]["start"]["line"] + 1
            out[Path(d["file"]).name].append(f"{line}: {d['message'].splitlines()[0]} ({d.get('rule')})")
    return out


@pytest.mark.slow
def test_version_only_api_fails_the_other_versions_typecheck(tmp_path):
    folders = _stub_folders()
    assert {"4.2", "5.0"} <= set(folders)
    files = []
    for name, body in SNIPPETS.items():
        f = tmp_path / name
        f.write_text(OPERATOR.format(body=textwrap.indent(body, " " * 8)))
        files.append(f)

    e42 = _errors("4.2", folders["4.2"], files)
    e50 = _errors("5.0", folders["5.0"], files)

    # Blender 4.2 has no SequenceEditor.strips nor Action.slots; 5.0 has both.
    assert any('"strips"' in e and "SequenceEditor" in e for e in e42["uses_50.py"]), e42
    assert any('"slots"' in e and "Action" in e for e in e42["uses_50.py"]), e42
    assert any('"engine"' in e for e in e42["uses_50.py"]), e42  # 4.2 calls it BLENDER_EEVEE_NEXT
    assert e50["uses_50.py"] == [], e50
    # Blender 5.0 has no SequenceEditor.sequences nor Action.fcurves; 4.2 has both.
    assert any('"sequences"' in e and "SequenceEditor" in e for e in e50["uses_42.py"]), e50
    assert any('"fcurves"' in e and "Action" in e for e in e50["uses_42.py"]), e50
    assert any('"engine"' in e for e in e50["uses_42.py"]), e50
    assert e42["uses_42.py"] == [], e42
    # compat hides the difference.
    assert e42["uses_compat.py"] == [] and e50["uses_compat.py"] == [], (e42, e50)
