"""``scripts/dev.py``, the cross-platform twin of ``scripts/dev``: the developer lock it installs per
OS (torch's local ``+cpu`` build only on Linux x86_64) and its usage text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
import dev  # noqa: E402


def test_the_lock_keeps_the_cpu_build_only_where_it_exists():
    lock = dev.LOCK.read_text()
    (torch_line,) = [line for line in lock.splitlines() if line.startswith("torch==")]
    assert "+" in torch_line  # this machine's CPU build, pinned in the developer lock only
    assert dev.platform_lock(lock, "Linux", "x86_64") == lock
    for system, machine in (("Windows", "AMD64"), ("Darwin", "arm64"), ("Linux", "aarch64")):
        other = dev.platform_lock(lock, system, machine)
        assert torch_line.split("+")[0] in other.splitlines() and "+cpu" not in other
        assert len(other.splitlines()) == len(lock.splitlines())


def test_usage_without_a_job():
    out = subprocess.run([sys.executable, str(dev.ROOT / "scripts" / "dev.py")], capture_output=True, text=True)
    assert out.returncode == 2 and "python scripts/dev.py test" in out.stderr
