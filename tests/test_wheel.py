"""The server installed from the wheel, as an artist does: ``pip install parascale-*.whl[server]``
into a fresh venv (tests/wheel_env.py), run from a folder outside the checkout with no PYTHONPATH;
its ``parascale-server`` script answers on a free loopback port and completes a warp job over HTTP."""

from __future__ import annotations

import json
import subprocess
import sys
import time
import zipfile
from pathlib import Path

import httpx
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "server"))
from server_helpers import decode_mp4, free_port, plane_scene, submit, wait_finished  # noqa: E402
from wheel_env import ROOT, clean_env  # noqa: E402

pytestmark = [pytest.mark.slow, pytest.mark.server]


def test_the_wheel_holds_the_three_packages_and_the_scripts(installed_server):
    with zipfile.ZipFile(installed_server.wheel) as z:
        names = z.namelist()
        (meta,) = [n for n in names if n.endswith(".dist-info/METADATA")]
        metadata = z.read(meta).decode()
        (eps,) = [n for n in names if n.endswith(".dist-info/entry_points.txt")]
        scripts = z.read(eps).decode()
    assert {n.split("/")[0] for n in names} >= {"parascale_blender", "bridge_server", "parascale_tools"}
    assert not [n for n in names if n.startswith("tests/")]
    assert "parascale-server = bridge_server.__main__:main" in scripts
    torch_reqs = [line.split(";")[0] for line in metadata.splitlines() if line.startswith("Requires-Dist: torch")]
    assert torch_reqs == ["Requires-Dist: torch>=2.4"], torch_reqs  # a floor: no pin, no local +cpu build
    for extra in ("server", "track", "diffusion"):
        assert f"Provides-Extra: {extra}" in metadata


def test_the_installed_packages_come_from_the_venv(installed_server, tmp_path):
    code = "import json, bridge_server as b, parascale_blender as p; print(json.dumps([b.__file__, p.__file__]))"
    out = subprocess.run(
        [str(installed_server.python), "-c", code], cwd=tmp_path, env=clean_env(), capture_output=True, text=True
    )
    assert out.returncode == 0, out.stderr
    site = installed_server.venv.resolve()
    for f in json.loads(out.stdout):
        path = Path(f).resolve()
        assert path.is_relative_to(site) and "site-packages" in path.parts, path
        assert not path.is_relative_to(ROOT), path


def test_parascale_server_from_the_wheel_completes_a_warp_job(installed_server, tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    cmd = [str(installed_server.server_script), "--port", str(port), "--jobs-dir", str(tmp_path / "jobs")]
    proc = subprocess.Popen(
        cmd, cwd=tmp_path, env=clean_env(OMP_NUM_THREADS="1"), stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 60
        with httpx.Client(timeout=30) as http:
            while True:
                assert proc.poll() is None, proc.stdout.read().decode()
                try:
                    health = http.get(url + "/v1/health").json()
                    break
                except httpx.TransportError:
                    assert time.monotonic() < deadline, "parascale-server did not answer in time"
                    time.sleep(0.2)
            assert health["status"] == "ok" and health["device"] == "cpu"
            job = submit(http, url, plane_scene(frames=4), {"num_frames": "4"}).json()
            assert wait_finished(http, url, job["id"], timeout=120)["state"] == "done"
            res = http.get(f"{url}/v1/jobs/{job['id']}/result")
            assert res.status_code == 200
            frames, _, width, height = decode_mp4(res.content)
            assert len(frames) == 4 and (width, height) == (96, 64)
    finally:
        proc.terminate()
        proc.wait(10)
