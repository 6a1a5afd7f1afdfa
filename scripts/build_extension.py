"""Build ``dist/<id>-<version>.zip`` (the Blender extension) and validate it with Blender's own CLI.

The zip holds ``parascale_blender/`` (add-on + numpy-only engine) with ``blender_manifest.toml``
at its root. The extension CLI ships inside the bpy wheel
(``bpy/<ver>/scripts/addons_core/bl_pkg/cli/blender_ext.py``); it runs standalone, without
importing bpy. Usage: ``python scripts/build_extension.py [--output-dir dist]``.
"""

from __future__ import annotations

import argparse
import importlib.util
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "parascale_blender"
MANIFEST = ROOT / "blender_manifest.toml"
# Imports that must never reach the zip: the extension ships only what Blender already has.
FORBIDDEN_IMPORTS = ("torch", "cv2", "pycolmap", "av", "fastapi", "uvicorn", "pydantic", "scipy")


class BuildError(RuntimeError):
    """The extension could not be built or failed validation."""


def bpy_scripts_dir() -> Path:
    """``bpy/<ver>/scripts`` of the installed bpy wheel, found without importing bpy."""
    spec = importlib.util.find_spec("bpy")
    if spec is None or not spec.submodule_search_locations:
        raise BuildError("the bpy module is not installed (pip install bpy): it carries Blender's extension CLI")
    base = Path(next(iter(spec.submodule_search_locations)))
    found = sorted(base.glob("*/scripts/addons_core/bl_pkg/cli/blender_ext.py"))
    if not found:
        raise BuildError(f"blender_ext.py not found under {base}")
    return found[-1].parents[3]


def _run_cli(args: list[str]) -> str:
    cli = bpy_scripts_dir() / "addons_core" / "bl_pkg" / "cli" / "blender_ext.py"
    proc = subprocess.run([sys.executable, str(cli), *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise BuildError(f"blender_ext {args[0]} failed:\n{proc.stdout}{proc.stderr}")
    return proc.stdout


def check_imports(zip_path: Path) -> None:
    """Fail if any module in the zip imports a forbidden (non-Blender) package at top level or lazily."""
    pattern = re.compile(r"^\s*(?:import|from)\s+(" + "|".join(FORBIDDEN_IMPORTS) + r")\b", re.M)
    with zipfile.ZipFile(zip_path) as zf:
        for name in zf.namelist():
            if name.endswith(".py"):
                m = pattern.search(zf.read(name).decode("utf-8"))
                if m:
                    raise BuildError(f"{zip_path.name}:{name}: imports {m.group(1)!r}, which Blender does not ship")


def build(output_dir: Path = ROOT / "dist") -> Path:
    """Stage package + manifest, build the zip with blender_ext, validate it; return the zip path."""
    manifest = tomllib.loads(MANIFEST.read_text())
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    tags = bpy_scripts_dir() / "modules" / "_bpy_internal" / "extensions" / "tags.py"
    out = output_dir / f"{manifest['id']}-{manifest['version']}.zip"
    with tempfile.TemporaryDirectory(prefix="parascale-ext-") as tmp:
        stage = Path(tmp) / manifest["id"]
        shutil.copytree(PACKAGE, stage, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
        shutil.copy2(MANIFEST, stage / "blender_manifest.toml")
        if out.exists():
            out.unlink()
        _run_cli(["build", "--source-dir", str(stage), "--output-filepath", str(out), "--valid-tags", str(tags)])
    _run_cli(["validate", str(out), "--valid-tags", str(tags)])
    check_imports(out)
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--output-dir", type=Path, default=ROOT / "dist")
    args = ap.parse_args(argv)
    try:
        out = build(args.output_dir)
    except BuildError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    with zipfile.ZipFile(out) as zf:
        n = len(zf.namelist())
    print(f"built and validated {out} ({n} files, {out.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
