"""Shared fixtures: the path to ../shared/data and small synthetic scenes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_DATA = ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED_DATA.is_dir():
        pytest.skip(f"shared test data not found at {SHARED_DATA}")
    return SHARED_DATA


@pytest.fixture(scope="session")
def installed_server(tmp_path_factory):
    """The wheel installed with ``[server]`` into a fresh venv (tests/wheel_env.py), once per session."""
    from filelock import FileLock
    from wheel_env import InstalledServer, install

    if not os.environ.get("PYTEST_XDIST_WORKER"):
        return install(tmp_path_factory.getbasetemp() / "wheel-server")
    folder = tmp_path_factory.getbasetemp().parent / "wheel-server"  # shared by this session's workers
    with FileLock(str(folder) + ".lock"):
        if not (folder / "installed").exists():
            install(folder)
            (folder / "installed").touch()
    return InstalledServer(folder / "venv", next((folder / "dist").glob("parascale-*.whl")))
