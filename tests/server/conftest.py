"""Server tests start the real ``python -m bridge_server`` process on a free loopback port."""

from __future__ import annotations

import os

import httpx
import pytest
from server_helpers import Server

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # tests write EXR with OpenCV as an independent truth


def pytest_collection_modifyitems(config, items):
    for item in items:
        if "tests/server/" in str(item.fspath).replace("\\", "/"):
            item.add_marker(pytest.mark.server)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """A server with small limits (2 MiB uploads, 300 frames, 1024 px), shared by a test module."""
    srv = Server(tmp_path_factory.mktemp("jobs"), ["--max-upload-mb", "2", "--max-frames", "300", "--max-side", "1024"])
    srv.start()
    yield srv
    srv.stop()


@pytest.fixture(scope="module")
def http():
    with httpx.Client(timeout=30) as c:
        yield c
