"""The developer's entry point on any OS (Windows and macOS included): the twin of ``scripts/dev``.

    python scripts/dev.py demo    run the whole product on embedded defaults
    python scripts/dev.py test    run the test suite
    python scripts/dev.py bench   run the benchmarks
    python scripts/dev.py lint    ruff check + format check + type-check of the bpy layer

Run it with Python 3.11. It creates ``.venv`` (``$PARASCALE_VENV``) from ``requirements/dev.lock``
on first use, as ``scripts/dev`` does. The lock pins this machine's CPU build of torch
(``torch==X+cpu``, a Linux x86_64 wheel); elsewhere the same version without the local tag is
installed (PyPI's build for that OS: CPU on Windows, MPS-capable on Apple Silicon).
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.lock"
JOBS = {
    "demo": ["-m", "parascale_tools", "demo"],
    "test": ["-m", "pytest", "-n", "2", "--dist", "loadfile"],  # by file, as scripts/dev: the farm tests share one farm
    "bench": ["-m", "parascale_tools", "bench"],
}


def platform_lock(text: str, system: str | None = None, machine: str | None = None) -> str:
    """``dev.lock`` for this OS: torch's local ``+cpu`` tag kept only on Linux x86_64."""
    system = system or platform.system()
    machine = (machine or platform.machine()).lower()
    if system == "Linux" and machine in ("x86_64", "amd64"):
        return text
    return re.sub(r"(?m)^(torch==[^+\s#]+)\+\S+", r"\1", text)


def venv_python(venv: Path) -> Path:
    return venv / ("Scripts/python.exe" if os.name == "nt" else "bin/python")


def ensure_env(venv: Path) -> Path:
    py = venv_python(venv)
    if not py.exists():
        print(f"[dev] creating {venv}", file=sys.stderr)
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    lock = platform_lock(LOCK.read_text())
    stamp = venv / ".parascale-lock"
    if not stamp.exists() or stamp.read_text() != lock:
        print("[dev] installing pinned dependencies (requirements/dev.lock)", file=sys.stderr)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
        resolved = venv / "dev.lock"
        resolved.write_text(lock)
        subprocess.run([str(py), "-m", "pip", "install", "-q", "-r", str(resolved)], check=True)
        stamp.write_text(lock)
    cmd = [str(py), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-e", str(ROOT)]
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return py


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    job = argv.pop(0) if argv else "help"
    if job not in (*JOBS, "lint"):
        print(__doc__.split("\n\n")[1], file=sys.stderr)
        return 2
    if sys.version_info[:2] != (3, 11):
        print(f"[dev] needs Python 3.11 (this is {platform.python_version()})", file=sys.stderr)
        return 2
    py = ensure_env(Path(os.environ.get("PARASCALE_VENV") or ROOT / ".venv"))
    os.chdir(ROOT)
    if job == "lint":
        for cmd in (["-m", "ruff", "check", "."], ["-m", "ruff", "format", "--check", "."]):
            if subprocess.run([str(py), *cmd]).returncode:
                return 1
        return subprocess.run([str(py), "scripts/typecheck.py", *argv]).returncode
    return subprocess.run([str(py), *JOBS[job], *argv]).returncode


if __name__ == "__main__":
    raise SystemExit(main())
