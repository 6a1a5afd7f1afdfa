"""The server as an artist installs it: the project's wheel, built from a copy of the sources, in
a fresh virtual environment (``pip install parascale-*.whl[server]``; no editable install, no
checkout on the path). Shared by ``tests/test_wheel.py`` and ``tests/blender/test_server_install.py``
through the ``installed_server`` fixture (tests/conftest.py), built once per test session even
under xdist (a file lock in the session's shared temporary folder).

Bounded: pip takes ``requirements/dev.lock`` as constraints, so torch is this machine's CPU build
(found on disk) and every other package the locked version; nothing of several GB is downloaded.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("parascale_blender", "bridge_server", "parascale_tools")


@dataclass(frozen=True)
class InstalledServer:
    venv: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.venv / ("Scripts" if os.name == "nt" else "bin")

    @property
    def python(self) -> Path:
        return self.bin / ("python.exe" if os.name == "nt" else "python")

    @property
    def server_script(self) -> Path:
        return self.bin / ("parascale-server.exe" if os.name == "nt" else "parascale-server")


def clean_env(**extra: str) -> dict:
    """The environment without anything that would put the checkout or another Python on the path."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    env.update(extra)
    return env


def build_wheel(out: Path) -> Path:
    """``pip wheel`` of a copy of the sources (so no build/ or *.egg-info lands in the checkout)."""
    src = out / "src"
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in PACKAGES:
        shutil.copytree(ROOT / pkg, src / pkg, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    dist = out / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)]
    subprocess.run(cmd, check=True, cwd=out, env=clean_env())
    (wheel,) = dist.glob("parascale-*.whl")
    return wheel


def install(out: Path) -> InstalledServer:
    """Build the wheel and install it with the ``server`` extra into ``out/venv``."""
    out.mkdir(parents=True, exist_ok=True)
    wheel = build_wheel(out)
    venv = out / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, cwd=out, env=clean_env())
    constraints = out / "constraints.txt"
    lock = (ROOT / "requirements" / "dev.lock").read_text().splitlines()
    constraints.write_text("\n".join(line for line in lock if not line.startswith("bpy==")) + "\n")
    inst = InstalledServer(venv, wheel)
    cmd = [str(inst.python), "-m", "pip", "install", "-q", "-c", str(constraints), f"{wheel}[server]"]
    proc = subprocess.run(cmd, cwd=out, env=clean_env(), capture_output=True, text=True)
    if proc.returncode != 0:
        raise RuntimeError(f"pip install {wheel.name}[server] failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return inst
