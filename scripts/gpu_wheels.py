#!/usr/bin/env python3
"""The wheels the GPU machine lacks, carried with the checkout, and their offline install there.

The GPU machine lent to this project runs Python 3.12 with numpy 2, torch and transformers, has no
package registry, and lacks :data:`PACKAGES` (diffusers, PyAV, pydantic and what they need beyond
its image). ``build`` (here, with PyPI) downloads them as binary wheels for the target's Python
and platform at the versions pinned in ``requirements/dev.lock``, without dependencies (the image
has the rest), into ``.gpu-wheels/`` (ignored by git) and checks the total fits the carry limit
(:data:`LIMIT_MIB`). ``install`` (there, offline) installs exactly those wheels with
``pip install --no-index --find-links``; pip then checks every dependency against what the image
has and names any missing one.

    python scripts/gpu_wheels.py build                       # here: .gpu-wheels/, size checked
    python scripts/gpu_wheels.py install                     # there (carry .gpu-wheels)
    python scripts/gpu_wheels.py build --python-version 3.12 --platform manylinux2014_x86_64
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LOCK = ROOT / "requirements" / "dev.lock"
DEST = ROOT / ".gpu-wheels"
LIMIT_MIB = 60  # of the 64 MiB that ignored files may carry to the GPU machine; the rest for results
# What bridge_server.backends and scripts/gpu_check.py import that the GPU image does not have.
PACKAGES = (
    "diffusers",
    "av",
    "pydantic",
    "pydantic-core",
    "annotated-types",
    "typing-inspection",
    "importlib-metadata",
    "zipp",
    "lazy-importer",
    "ftfy",
    "wcwidth",
)
PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_17_x86_64", "manylinux2014_x86_64")


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def pins(lock: Path = LOCK, packages=PACKAGES) -> list[str]:
    """``name==version`` for each of ``packages`` as ``lock`` pins it (ValueError naming any not pinned)."""
    pinned = {}
    for line in lock.read_text(encoding="utf-8").splitlines():
        m = re.match(r"^([A-Za-z0-9_.-]+)==([^\s;#]+)", line.strip())
        if m:
            pinned[_norm(m[1])] = m[2]
    missing = [p for p in packages if _norm(p) not in pinned]
    if missing:
        raise ValueError(f"{lock}: no pin for {', '.join(missing)}")
    return [f"{p}=={pinned[_norm(p)]}" for p in packages]


def build(dest: Path, python_version: str, platforms, limit_mib: float = LIMIT_MIB) -> list[Path]:
    """Download the pinned wheels into ``dest`` (emptied first) and check their total size."""
    dest.mkdir(parents=True, exist_ok=True)
    for old in dest.glob("*.whl"):
        old.unlink()
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--dest", str(dest)]
    cmd += ["--python-version", python_version, "--implementation", "cp"]
    for p in platforms:
        cmd += ["--platform", p]
    subprocess.run([*cmd, *pins()], check=True)
    wheels = sorted(dest.glob("*.whl"))
    total = sum(w.stat().st_size for w in wheels) / 2**20
    for w in wheels:
        print(f"{w.stat().st_size / 2**20:7.2f} MiB  {w.name}")
    print(f"{total:7.2f} MiB  total in {dest} (limit {limit_mib} MiB)")
    if total > limit_mib:
        raise SystemExit(f"gpu_wheels: {total:.1f} MiB is over the {limit_mib} MiB carry limit")
    return wheels


def install_command(dest: Path, python: str = sys.executable) -> list[str]:
    """The offline install of every wheel in ``dest`` (no index: nothing is fetched)."""
    wheels = sorted(str(w) for w in Path(dest).glob("*.whl"))
    if not wheels:
        raise SystemExit(f"gpu_wheels: no wheels in {dest} (run 'build' where PyPI is reachable, then carry it)")
    return [python, "-m", "pip", "install", "--no-index", "--find-links", str(dest), *wheels]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("action", choices=["build", "install", "list"])
    ap.add_argument("--dest", type=Path, default=DEST, help="wheel folder (default .gpu-wheels/, git-ignored)")
    ap.add_argument("--python-version", default="3.12", help="target Python (default 3.12)")
    ap.add_argument("--platform", action="append", default=None, help=f"target platform tags (default {PLATFORMS})")
    ap.add_argument("--limit-mib", type=float, default=LIMIT_MIB, help=f"size limit (default {LIMIT_MIB} MiB)")
    args = ap.parse_args(argv)
    if args.action == "list":
        print("\n".join(pins()))
    elif args.action == "build":
        build(args.dest, args.python_version, args.platform or PLATFORMS, args.limit_mib)
    else:
        subprocess.run(install_command(args.dest), check=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
