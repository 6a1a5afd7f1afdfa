"""EXR channel-count bombs (issue 24): small files whose header claims hundreds of channels are
refused from the header, naming the field, before anything is inflated; files just inside the
bounds decode with a bounded peak. Files are written by the OpenEXR library (not our writer), and
each decode runs in a fresh Python process whose peak RSS (``ru_maxrss``) is measured around it."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from parascale_blender.formats.image_backends import EXR_BACKENDS, available
from parascale_blender.formats.image_size import MAX_BLOCK_BYTES

OpenEXR = pytest.importorskip("OpenEXR")
ROOT = Path(__file__).resolve().parents[1]
MB = 2**20
GROWTH_LIMIT = 100 * MB  # the issue's bound on a decode's peak memory growth

_PROBE = r"""
import json, resource, sys
import numpy as np
from pathlib import Path
from parascale_blender.formats.image_backends import decode_exr
from parascale_blender.formats.errors import FormatError
path, backend = sys.argv[1], sys.argv[2] or None
data = Path(path).read_bytes()
if backend in (None, "openexr"):
    import OpenEXR  # imported before the baseline: the library's own pages are not the decode's
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
out = {}
try:
    a = decode_exr(data, path, backend=backend)
    out["shape"], out["max"] = list(a.shape), float(np.nanmax(a))
except FormatError as e:
    out["error"] = str(e)
out["growth"] = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - base) * 1024
print(json.dumps(out))
"""


def _probe(path: Path, backend: str | None = None) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", _PROBE, str(path), backend or ""], capture_output=True, text=True, env=env, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout.strip().splitlines()[-1])


def _write(path: Path, height: int, width: int, n_ballast: int, dtype, compression, z: np.ndarray | None = None):
    """Channel ``Z`` (``z``, else zeros) and ``n_ballast`` zero channels, written by OpenEXR."""
    zero = np.zeros((height, width), dtype)
    channels = {f"c{i:04d}": zero for i in range(n_ballast)}
    channels["Z"] = zero if z is None else z.astype(dtype)
    header = {"compression": compression, "type": OpenEXR.scanlineimage}
    OpenEXR.File(header, channels).write(str(path))
    return path


BACKENDS = [None, *(b for b in EXR_BACKENDS if available(b))]


@pytest.mark.parametrize("n_channels", [500, 1000, 1600])
@pytest.mark.parametrize("backend", BACKENDS)
def test_the_issues_channel_bombs_are_refused_from_the_header(tmp_path, n_channels, backend):
    """16 rows x 4096 px x N zero FLOAT channels, ZIP: 138 KB (N=500) took a server to 3.35 GB."""
    path = _write(tmp_path / "bomb.exr", 16, 4096, n_channels, np.float32, OpenEXR.ZIP_COMPRESSION)
    assert path.stat().st_size < 160_000 * n_channels / 500
    got = _probe(path, backend)
    assert "error" in got, got
    assert "bomb.exr: field 'channels'" in got["error"]
    assert ("one block decompresses" in got["error"]) or ("channels in one part" in got["error"])
    assert got["growth"] < 20 * MB, got


@pytest.mark.parametrize(
    ("lines", "n_ballast", "dtype", "codec"),
    [(16, 255, np.float16, "ZIP"), (32, 127, np.float16, "PIZ"), (256, 15, np.float16, "DWAB")],
)
@pytest.mark.parametrize("backend", BACKENDS)
def test_files_just_inside_the_block_bound_decode_bounded(tmp_path, lines, n_ballast, dtype, codec, backend):
    """One block of each codec at the bound (32 MiB decompressed) decodes to the Z the library wrote,
    with a peak growth within the issue's 100 MB (the built-in codec reads ZIP only)."""
    compression = getattr(OpenEXR, f"{codec}_COMPRESSION")
    if backend == "builtin" and codec != "ZIP":
        pytest.skip("the built-in codec reads NONE/ZIPS/ZIP")
    z = np.tile(np.arange(1, 4097, dtype=np.float64) / 64.0, (lines, 1))  # exact in half
    path = _write(tmp_path / "edge.exr", lines, 4096, n_ballast, dtype, compression, z)
    assert lines * 4096 * (n_ballast + 1) * 2 == MAX_BLOCK_BYTES
    got = _probe(path, backend)
    assert "error" not in got, got
    assert got["shape"] == [lines, 4096] and got["max"] == 4096 / 64.0
    assert got["growth"] < GROWTH_LIMIT, got


def test_one_channel_more_than_the_block_bound_is_refused(tmp_path):
    path = _write(tmp_path / "over.exr", 16, 4096, 256, np.float16, OpenEXR.ZIP_COMPRESSION)
    got = _probe(path)
    assert f"more than the limit of {MAX_BLOCK_BYTES} bytes" in got["error"], got
