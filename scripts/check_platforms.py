"""Check that the server installs on every platform artists use, without those machines.

For each target (Linux x86_64, Windows x86_64, macOS arm64; Python 3.11) pip resolves, against
PyPI only, with that platform's environment markers and with binary wheels only (what an artist's
``pip install`` can take without a compiler), with ``pip install --dry-run --ignore-installed --platform ... --report``:

- ``wheel``: the built wheel with its extras (``server,track`` by default), unconstrained, i.e. what
  ``pip install "parascale[server]"`` resolves to on that machine;
- ``lock``: the same with ``requirements/dev.lock`` as constraints, its torch pin stripped of the
  local ``+cpu`` tag (that CPU build lies on this machine's disk only; PyPI's torch of the same
  version is the platform's own build), so the lock's pins of those packages are checked too;
- ``devlock``: every line of ``requirements/dev.lock`` itself (bpy, the diffusion and developer
  tools included), torch likewise without ``+cpu``: the developer environment on that platform.

Nothing is downloaded but metadata. Exit status 0 when every resolution succeeds; the resolved
versions of the key packages are printed per platform. Needs network access to PyPI.

    python scripts/check_platforms.py                  # all platforms, both checks
    python scripts/check_platforms.py --extras server --only wheel --platform win_amd64
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# pip's tags for each target, newest first. pip does not widen a --platform tag to older OS
# versions, so every compatible one is listed: glibc 2.17 to 2.28 (torch's Linux wheels are
# manylinux_2_28, NVIDIA's libraries manylinux_2_27), macOS 11 to 14 on Apple Silicon (torch from
# 2.12 on is built for macOS 14; OpenCV's wheels need macOS 13).
PLATFORMS = {
    "manylinux_x86_64": [f"manylinux_2_{v}_x86_64" for v in range(28, 16, -1)] + ["manylinux2014_x86_64"],
    "win_amd64": ["win_amd64"],
    "macosx_arm64": [f"macosx_{v}_0_arm64" for v in range(14, 10, -1)],
}
# pip evaluates environment markers (``; sys_platform == "linux"``…) against the running
# interpreter even with --platform, which would give a Windows or macOS resolution Linux-only
# dependencies such as torch's NVIDIA libraries; the shim below evaluates them for the target.
MARKERS = {
    "manylinux_x86_64": {"os_name": "posix", "sys_platform": "linux", "platform_system": "Linux",
                         "platform_machine": "x86_64"},
    "win_amd64": {"os_name": "nt", "sys_platform": "win32", "platform_system": "Windows",
                  "platform_machine": "AMD64", "platform_release": "10", "platform_version": "10.0.19045"},
    "macosx_arm64": {"os_name": "posix", "sys_platform": "darwin", "platform_system": "Darwin",
                     "platform_machine": "arm64", "platform_release": "23.0.0", "platform_version": "Darwin Kernel"},
}  # fmt: skip
PIP_SHIM = (
    "import json, sys\n"
    "from pip._vendor.packaging import markers\n"
    "target, base = json.loads(sys.argv.pop(1)), markers.default_environment\n"
    "markers.default_environment = lambda: {**base(), **target}\n"
    "from pip._internal.cli.main import main\n"
    "sys.exit(main())\n"
)
KEY_PACKAGES = ("torch", "numpy", "fastapi", "uvicorn", "av", "opencv-python-headless", "pycolmap")
# Pins of the developer lock that are not part of any extra installed here, and need not exist elsewhere.
CHECKS = ("wheel", "lock", "devlock")
LOCK_SKIP = re.compile(r"^(bpy)\b", re.I)


def build_wheel(out: Path) -> Path:
    """The project's wheel, built from a copy of the sources (no build/ or egg-info in the checkout)."""
    src = out / "src"
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info")
    src.mkdir(parents=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, src / name)
    for pkg in ("parascale_blender", "bridge_server", "parascale_tools"):
        shutil.copytree(ROOT / pkg, src / pkg, ignore=ignore)
    dist = out / "dist"
    cmd = [sys.executable, "-m", "pip", "wheel", str(src), "--no-deps", "--no-build-isolation", "-q", "-w", str(dist)]
    subprocess.run(cmd, check=True)
    (wheel,) = dist.glob("parascale-*.whl")
    return wheel


def lock_constraints(out: Path, skip: re.Pattern | None = LOCK_SKIP, name: str = "constraints.txt") -> Path:
    lines = []
    for line in (ROOT / "requirements" / "dev.lock").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if not line or (skip is not None and skip.match(line)):
            continue
        lines.append(re.sub(r"^(torch==[^+\s]+)\+\S+", r"\1", line))
    path = out / name
    path.write_text("\n".join(lines) + "\n")
    return path


def pypi_only_env() -> dict:
    """The environment with this machine's pip settings (local wheel folders, version caps) removed."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PIP_")}
    env["PIP_CONFIG_FILE"] = os.devnull
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    for cert in ("/etc/ssl/certs/ca-certificates.crt",):
        if os.path.isfile(cert):
            env["PIP_CERT"] = cert
    return env


def resolve(requirement: list[str], platform: str, out: Path, check: str, constraints: Path | None = None) -> dict:
    """pip's report for ``requirement`` on ``platform``: {"ok", "packages" {name: version}, "error"}."""
    report = out / f"report-{platform}-{check}.json"
    target = {**MARKERS[platform], "python_version": "3.11", "implementation_name": "cpython"}
    cmd = [sys.executable, "-c", PIP_SHIM, json.dumps(target)]
    cmd += ["install", "--dry-run", "--ignore-installed", "--only-binary=:all:"]
    for tag in PLATFORMS[platform]:
        cmd += ["--platform", tag]
    cmd += ["--python-version", "3.11", "--implementation", "cp", "--target", str(out / "target")]
    cmd += ["--index-url", "https://pypi.org/simple", "--quiet", "--report", str(report)]
    if constraints is not None:
        cmd += ["-c", str(constraints)]
    cmd += requirement
    proc = subprocess.run(cmd, env=pypi_only_env(), capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        tail = (proc.stderr or proc.stdout).strip().splitlines()[-6:]
        return {"ok": False, "packages": {}, "error": "\n".join(tail)}
    data = json.loads(report.read_text())
    pkgs = {i["metadata"]["name"].lower(): i["metadata"]["version"] for i in data.get("install", [])}
    return {"ok": True, "packages": pkgs, "error": ""}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--platform", action="append", choices=sorted(PLATFORMS), help="default: all")
    ap.add_argument("--extras", default="server,track", help="extras of the wheel to resolve (default: server,track)")
    ap.add_argument("--only", choices=CHECKS, help="run one of the checks")
    ap.add_argument("--json", type=Path, help="also write the results here")
    args = ap.parse_args(argv)
    results: dict = {}
    with tempfile.TemporaryDirectory(prefix="parascale-platforms-") as tmp:
        out = Path(tmp)
        wheel = build_wheel(out)
        requirement = f"{wheel}[{args.extras}]" if args.extras else str(wheel)
        constraints = lock_constraints(out)
        devlock = lock_constraints(out, skip=None, name="dev.lock")
        runs = {
            "wheel": ([requirement], None),
            "lock": ([requirement], constraints),
            "devlock": (["-r", str(devlock)], None),
        }
        for platform in args.platform or list(PLATFORMS):
            for check in CHECKS:
                if args.only and check != args.only:
                    continue
                r = resolve(runs[check][0], platform, out, check, runs[check][1])
                results[f"{platform}/{check}"] = r
                if r["ok"]:
                    keys = ", ".join(f"{k} {r['packages'][k]}" for k in KEY_PACKAGES if k in r["packages"])
                    print(f"ok    {platform:17s} {check:7s} {len(r['packages'])} packages: {keys}")
                else:
                    print(f"FAIL  {platform:17s} {check:7s}\n      " + r["error"].replace("\n", "\n      "))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")
    return 0 if all(r["ok"] for r in results.values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
