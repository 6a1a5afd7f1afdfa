"""The server package on the GPU machine's stack: numpy 2 (and Python 3.12 where this machine has
one), the carried wheel set's pins, and ``bridge_server.backends`` importing without PyAV/OpenCV."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NUMPY2 = "numpy==2.3.5"  # the newest numpy 2 with wheels for every Python the project allows (3.11-3.13)


def load():
    spec = importlib.util.spec_from_file_location("gpu_wheels", ROOT / "scripts" / "gpu_wheels.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_every_carried_wheel_is_pinned_by_the_lock(tmp_path):
    gw = load()
    pins = gw.pins()
    assert [p.split("==")[0] for p in pins] == list(gw.PACKAGES)
    assert all(p.split("==")[1][0].isdigit() for p in pins)
    lock = tmp_path / "lock"
    lock.write_text("numpy==2.0.0\n")
    with pytest.raises(ValueError, match="no pin for diffusers"):
        gw.pins(lock)
    with pytest.raises(SystemExit, match="no wheels in"):
        gw.install_command(tmp_path)
    (tmp_path / "a-1-py3-none-any.whl").write_bytes(b"")
    cmd = gw.install_command(tmp_path, "py")
    assert cmd[:5] == ["py", "-m", "pip", "install", "--no-index"] and cmd[-1].endswith("a-1-py3-none-any.whl")


def test_backends_import_without_pyav_and_opencv():
    """PyAV and OpenCV are imported where a job uses them, not when the registry is imported."""
    code = (
        "import sys\n"
        "sys.modules['av'] = None\n"  # None in sys.modules: 'import av' raises ImportError
        "sys.modules['cv2'] = None\n"
        "import bridge_server.backends as b\n"
        "print(sorted(b.backend_names()))\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "diffusers-i2v" in r.stdout and "wan-fun-camera" in r.stdout


def _venv_with_numpy2(tmp_path: Path, python: str, inherit: str | None) -> Path:
    """A venv of ``python`` with numpy 2 from PyPI; ``inherit``: a site-packages seen after its own."""
    venv = tmp_path / "venv"
    subprocess.run([python, "-m", "venv", str(venv)], check=True, timeout=300)
    py = venv / "bin" / "python"
    if inherit:
        site = subprocess.run(
            [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        Path(site, "zz_inherit.pth").write_text(inherit + "\n")  # after the venv's own packages
    r = subprocess.run(
        [str(py), "-m", "pip", "install", "-q", "--only-binary=:all:", NUMPY2],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if r.returncode != 0:
        pytest.skip(f"cannot install {NUMPY2} from the package index: {r.stderr.strip()[-300:]}")
    return py


JOB = """
import sys, numpy as np, tempfile, pathlib
assert np.__version__.startswith("2."), np.__version__
from bridge_server.backends import get_backend
from bridge_server.backends.base import GenerationJob
from bridge_server.backends.model_limits import capped_size
from bridge_server.backends.noise_shaping import latent_mask
from parascale_blender.core.camera import Trajectory
import av
n, w, h = 5, 64, 48
c2w = np.tile(np.eye(4), (n, 1, 1)); c2w[:, 0, 3] = np.linspace(0, 0.2, n)
traj = Trajectory(np.arange(1, n + 1), c2w, np.tile([50.0, 50.0, w / 2, h / 2], (n, 1)), w, h, 24.0)
image = np.random.default_rng(0).integers(0, 255, (h, w, 3)).astype(np.uint8)
depth = np.full((h, w), 2.0, np.float32)
warp = get_backend("warp")
out = pathlib.Path(tempfile.mkdtemp()) / "warp.mp4"
warp.generate(GenerationJob(traj, image, depth, warp.Params(), out), lambda f, m: None, lambda: False)
with av.open(str(out)) as c:
    frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
assert len(frames) == n and frames[0].shape == (h, w, 3)
m = latent_mask(np.ones((5, 16, 16), bool), 2, 8, 4)
assert m.shape == (2, 2, 2) and capped_size(1920, 1080, 832 * 480, 16) == (832, 464)
print("ok", np.__version__, sys.version.split()[0])
"""


@pytest.mark.slow
def test_server_package_runs_a_job_on_numpy_2(tmp_path):
    """This machine's Python with numpy 2 in front of the dev environment's torch/PyAV/OpenCV:
    the backends import and a warp job writes an MP4 that PyAV decodes."""
    py = _venv_with_numpy2(tmp_path, sys.executable, sysconfig.get_paths()["purelib"])
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run([str(py), "-c", JOB], capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0 and r.stdout.startswith("ok 2."), (r.stdout, r.stderr[-3000:])


def _python312() -> str | None:
    """A working Python 3.12: on PATH, or one pyenv installed."""
    cands = [shutil.which("python3.12"), *sorted(Path.home().glob(".pyenv/versions/3.12*/bin/python3.12"))]
    for c in cands:
        if c and subprocess.run([str(c), "-c", "import venv, ensurepip"], capture_output=True).returncode == 0:
            return str(c)
    return None


IMAGE = ("huggingface_hub", "safetensors", "pillow", "regex", "requests", "filelock", "typing_extensions")
WHEELS_JOB = """
import importlib.util, sys, tempfile, pathlib, numpy as np
assert np.__version__.startswith("2."), np.__version__
import av, diffusers, ftfy, pydantic
from bridge_server.video import Mp4Writer
# the package's __init__ imports every backend (torch): load the config-only module by itself
spec = importlib.util.spec_from_file_location("model_limits", "bridge_server/backends/model_limits.py")
ml = sys.modules["model_limits"] = importlib.util.module_from_spec(spec)  # dataclasses look it up
spec.loader.exec_module(ml)
from parascale_blender.core.camera import Trajectory
out = pathlib.Path(tempfile.mkdtemp()) / "a.mp4"
with Mp4Writer(out, 64, 48, 24.0) as mp4:
    for i in range(5):
        mp4.write(np.full((48, 64, 3), 40 * i, np.uint8))
with av.open(str(out)) as c:
    frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
assert len(frames) == 5 and abs(int(frames[4].mean()) - 160) <= 3
assert ml.model_limits(pathlib.Path(sys.argv[1])).native_width == 832
print("ok", np.__version__, sys.version.split()[0], diffusers.__version__, pydantic.__version__)
"""


def test_carried_wheels_install_offline_on_python_3_12_with_numpy_2(tmp_path):
    """Python 3.12 (the GPU machine's) with numpy 2 and what its image has (torch aside): the
    carried wheels install with no index, and the torch-free server modules work on them (an MP4
    written by ``Mp4Writer`` decodes; Wan's limits come from the published configs)."""
    python = _python312()
    if python is None:
        pytest.skip("no working python3.12 on this machine")
    gw = load()
    wheels = tmp_path / "wheels"
    try:
        gw.build(wheels, "3.12", gw.PLATFORMS)
    except (subprocess.CalledProcessError, OSError) as e:
        pytest.skip(f"cannot download the wheel set from the package index: {e}")
    assert sum(w.stat().st_size for w in wheels.glob("*.whl")) < 64 * 2**20
    py = _venv_with_numpy2(tmp_path, python, None)
    r = subprocess.run([str(py), "-m", "pip", "install", "-q", *IMAGE], capture_output=True, text=True, timeout=600)
    if r.returncode != 0:
        pytest.skip(f"cannot install the image's packages from the package index: {r.stderr[-300:]}")
    subprocess.run(gw.install_command(wheels, str(py)), check=True, timeout=600)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    folder = ROOT / "tests" / "fixtures" / "published" / "wan2.1-i2v-14b-480p-diffusers"
    r = subprocess.run(
        [str(py), "-c", WHEELS_JOB, str(folder)], capture_output=True, text=True, env=env, timeout=600, cwd=ROOT
    )
    assert r.returncode == 0 and r.stdout.startswith("ok 2.") and " 3.12." in r.stdout, (r.stdout, r.stderr[-3000:])
