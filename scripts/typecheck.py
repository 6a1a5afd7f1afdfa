"""Type-check the bpy layer against the API stubs of every supported Blender version.

Run by ``./scripts/dev lint`` with the dev venv's Python (stdlib only; that venv resolves numpy & co.)::

    python scripts/typecheck.py                    # parascale_blender/blender, every version
    python scripts/typecheck.py --blender 4.2 F.py # given files, one version

``requirements/typecheck.lock`` pins the checker (pyright) and one ``fake-bpy-module-X-Y`` stub set per
Blender version. Each stub set provides ``bpy``, so each goes into its own folder (``.typecheck/bpy-X.Y``,
``pip install --target``, reinstalled when its lock line changes) and pyright runs once per folder with
``pyrightconfig.json`` plus that folder as ``extraPaths``. An attribute, import, parameter or enum value
that one version lacks fails that version's run.

Two fixes are applied to the installed stubs (from a pristine copy, every run, so they follow this file):
``bpy.types.Context`` declares a member named ``property`` that shadows the builtin in its own class body
(pyright then reads every ``@property`` there as a plain method: ``context.scene`` would be a function),
and ``STUB_ADDITIONS`` declares attributes the stubs lack (the properties the add-on registers on
Blender's types, ``filepath`` of the import/export helpers).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCK = ROOT / "requirements" / "typecheck.lock"
CONFIG = ROOT / "pyrightconfig.json"
STUB_RE = re.compile(r"^fake-bpy-module-(\d+)-(\d+)==\S+$")

# Attributes declared on stub classes: {(stub module file, class): {name: type}}.
# * Properties the add-on registers on Blender's own types (bpy.props.PointerProperty & co. in register()):
#   real attributes at run time in every version, unknown to the stubs. Add a name when you register one;
#   lint says 'Cannot access attribute "<name>" for class "<Type>"' until you do.
# * What the stubs lack: ImportHelper/ExportHelper declare ``filepath`` (a StringProperty) in Blender.
STUB_ADDITIONS = {
    ("bpy-stubs/types/__init__.pyi", "Scene"): {
        "parascale": "typing.Any",  # props.register
        "parascale_generate": "typing.Any",  # props.register
        "parascale_jobs": "typing.Any",  # server_jobs.register
    },
    ("bpy_extras-stubs/io_utils/__init__.pyi", "ImportHelper"): {"filepath": "str"},
    ("bpy_extras-stubs/io_utils/__init__.pyi", "ExportHelper"): {"filepath": "str"},
}


def typecheck_dir() -> Path:
    return Path(os.environ.get("PARASCALE_TYPECHECK_DIR", ROOT / ".typecheck"))


def read_lock() -> tuple[list[str], dict[str, str]]:
    """The checker's requirement lines, and {"4.2": "fake-bpy-module-4-2==…"} in lock order."""
    checker, stubs = [], {}
    for raw in LOCK.read_text().splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = STUB_RE.match(line)
        if m:
            stubs[f"{m[1]}.{m[2]}"] = line
        else:
            checker.append(line)
    return checker, stubs


def _pip_target(target: Path, requirements: list[str]) -> None:
    """Install ``requirements`` (exact pins, no dependency resolution) into ``target`` unless already there."""
    stamp = target / ".parascale-lock"
    want = "\n".join(requirements) + "\n"
    if stamp.is_file() and stamp.read_text() == want:
        return
    print(f"[typecheck] installing {' '.join(requirements)} into {target}", file=sys.stderr)
    shutil.rmtree(target, ignore_errors=True)
    cmd = [sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps"]
    subprocess.run([*cmd, "--target", str(target), *requirements], check=True, stdout=sys.stderr)
    stamp.write_text(want)


def _patched(folder: Path, rel: str) -> tuple[Path, str]:
    """(stub file, its text from the pristine copy) – the pristine copy is made on first use."""
    path = folder / rel
    pristine = path.with_name(path.name + ".orig")
    if not pristine.exists():
        shutil.copyfile(path, pristine)
    return path, pristine.read_text(encoding="utf-8")


def patch_stubs(folder: Path) -> None:
    """Apply the fixes of the module docstring to the stub set in ``folder`` (from pristine copies)."""
    texts = {}
    path, text = _patched(folder, "bpy-stubs/types/__init__.pyi")
    text = re.sub(r"^import typing$", "import builtins\nimport typing", text, count=1, flags=re.M)
    texts[path] = re.sub(r"^    @property$", "    @builtins.property", text, flags=re.M)
    for (rel, cls), attrs in STUB_ADDITIONS.items():
        path = folder / rel
        if path not in texts:
            texts[path] = _patched(folder, rel)[1]
        decl = "".join(f"    {n}: {t}  # added by scripts/typecheck.py\n" for n, t in attrs.items())
        texts[path], n = re.subn(
            rf"^(class {cls}\b.*:\n)", lambda m, d=decl: m[1] + d, texts[path], count=1, flags=re.M
        )
        if n != 1:
            raise SystemExit(f"[typecheck] {path}: no class {cls} to extend")
    for path, text in texts.items():
        if path.read_text(encoding="utf-8") != text:
            path.write_text(text, encoding="utf-8")


def ensure(versions: list[str] | None = None) -> dict[str, Path]:
    """Install the checker and the stub sets (``versions`` or all); {version: stub folder}."""
    base = typecheck_dir()
    checker, stubs = read_lock()
    _pip_target(base / "checker", checker)
    folders = {}
    for version, req in stubs.items():
        if versions and version not in versions:
            continue
        folders[version] = base / f"bpy-{version}"
        _pip_target(folders[version], [req])
        patch_stubs(folders[version])
    if versions and set(versions) - set(folders):
        raise SystemExit(f"[typecheck] no stubs for Blender {sorted(set(versions) - set(folders))} in {LOCK}")
    return folders


def run_pyright(version: str, stubs: Path, files: list[str], *options: str) -> subprocess.CompletedProcess:
    """Pyright with pyrightconfig.json and ``stubs`` as extraPaths, on ``files`` (default: its include)."""
    base = typecheck_dir()
    config = base / f"pyrightconfig-{version}.json"
    # The repository root too, so that a file outside it (a test's snippet) can import parascale_blender.
    text = json.dumps({"extends": str(CONFIG), "extraPaths": [str(stubs), str(ROOT)]}) + "\n"
    if not config.is_file() or config.read_text() != text:
        config.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(base / "checker"), PYRIGHT_PYTHON_IGNORE_WARNINGS="1")
    # --pythonpath: this interpreter's site-packages resolve numpy & co.; stubs in extraPaths come first.
    cmd = [sys.executable, "-m", "pyright", "-p", str(config), "--pythonpath", sys.executable, *options, *files]
    return subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--blender", action="append", metavar="X.Y", help="only this version (repeatable)")
    ap.add_argument("--install-only", action="store_true", help="install checker and stubs, check nothing")
    ap.add_argument("files", nargs="*", help="files to check (default: pyrightconfig.json's include)")
    args = ap.parse_args(argv)
    folders = ensure(args.blender)
    if args.install_only:
        return 0
    t0 = time.perf_counter()
    with ThreadPoolExecutor(len(folders)) as pool:
        runs = {v: pool.submit(run_pyright, v, f, [os.path.abspath(p) for p in args.files]) for v, f in folders.items()}
    failed = []
    for version, fut in runs.items():
        res = fut.result()
        summary = (res.stdout.strip().splitlines() or ["(no output)"])[-1]
        if res.returncode != 0:
            failed.append(version)
            print(f"[typecheck] Blender {version}:\n{res.stdout}{res.stderr}", end="")
        print(f"[typecheck] Blender {version}: {summary}")
    print(f"[typecheck] Blender {', '.join(folders)} checked in {time.perf_counter() - t0:.1f} s")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
