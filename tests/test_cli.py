"""The ``parascale`` command line, run as a real subprocess (console script entry point)."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import zlib

os.environ.setdefault("OPENCV_IO_ENABLE_OPENEXR", "1")  # OpenCV checks the forged EXR (set before import)

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402

from parascale_blender.formats.registry import read_trajectory, write_trajectory  # noqa: E402


def parascale(*args, check=True):
    proc = subprocess.run(
        [sys.executable, "-m", "parascale_tools", *map(str, args)], capture_output=True, text=True, timeout=300
    )
    if check and proc.returncode != 0:
        raise AssertionError(f"exit {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")
    return proc


def test_info_json_on_real_re10k(shared_data):
    out = parascale("info", shared_data / "re10k" / "0bf152ef84195293.txt", "--json")
    info = json.loads(out.stdout)
    assert info["frames"] == 16
    assert info["path_length"] > 0


def test_convert_chain_round_trips(shared_data, tmp_path):
    src = shared_data / "re10k" / "0c11dbe781b1c11c.txt"
    parascale("convert", src, tmp_path / "a.json")
    parascale("convert", tmp_path / "a.json", tmp_path / "b.json", "--to", "parascale")
    a, b = read_trajectory(tmp_path / "a.json"), read_trajectory(tmp_path / "b.json")
    np.testing.assert_allclose(a.c2w, b.c2w, atol=1e-12)
    np.testing.assert_allclose(a.c2w, read_trajectory(src).c2w, atol=1e-9)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["info", "/no/such/file.txt"], "file.txt"),
        (["info", "CAMI2V/orbit_left.txt"], "determinant -1"),
        (["rescale", "RE10K", "--reference-depth", "2", "--target-depth", "-3", "-o", "OUT"], "-3"),
        (
            [
                "rescale",
                "RE10K",
                "--reference-depth",
                "2",
                "--target-depth",
                "2",
                "--target-intrinsics",
                "1,2",
                "-o",
                "OUT",
            ],
            "--target-intrinsics",
        ),
    ],
)
def test_user_errors_are_one_line_without_traceback(args, message, shared_data, tmp_path):
    args = [
        a.replace("CAMI2V", str(shared_data / "trajectories" / "cami2v"))
        .replace("RE10K", str(shared_data / "re10k" / "0bf152ef84195293.txt"))
        .replace("OUT", str(tmp_path / "o.json"))
        for a in args
    ]
    proc = parascale(*args, check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert message in proc.stderr
    assert not (tmp_path / "o.json").exists()


def test_rescale_constant_depths_closed_form(shared_data, tmp_path):
    src = shared_data / "re10k" / "0bf152ef84195293.txt"
    out = tmp_path / "shot.json"
    proc = parascale("rescale", src, "--reference-depth", "2.5", "--target-depth", "0.025", "-o", out, "--json")
    summary = json.loads(proc.stdout)
    np.testing.assert_allclose(summary["alpha_range"], [0.01, 0.01], rtol=1e-9)
    shot, ref = read_trajectory(out), read_trajectory(src).relative_to_first()
    np.testing.assert_allclose(shot.centres, 0.01 * ref.centres, atol=1e-12)
    np.testing.assert_allclose(shot.c2w[:, :3, :3], ref.c2w[:, :3, :3], atol=1e-12)
    np.testing.assert_allclose(shot.extras["alpha"][1:], 0.01, rtol=1e-9)


def test_rescale_onto_a_mesh_writes_pi_table(shared_data, tmp_path):
    from parascale_blender.formats.meshes import write_ply
    from parascale_tools.scenes import desk_scene

    scene = desk_scene()
    mesh = tmp_path / "desk.ply"
    write_ply(mesh, scene.vertices, scene.triangles)
    start = tmp_path / "start.json"
    start.write_text(json.dumps({"c2w": scene.start_c2w_blender.tolist()}))
    out = tmp_path / "shot.json"
    proc = parascale(
        "rescale", shared_data / "re10k" / "0bf152ef84195293.txt", "--reference-depth", "2.5",
        "--target-depth", mesh, "--target-start", start, "--start-convention", "blender", "-o", out,
    )  # fmt: skip
    assert "Π_ref" in proc.stdout and "solver residual" in proc.stdout
    assert "check: reference depth: a single subject distance" in proc.stdout
    shot = read_trajectory(out)
    assert np.isfinite(shot.extras["pi_target"][1:]).all()
    # the default (exact) mode reaches the reference's image motion on every step it did not cap
    free = ~np.isin(shot.frames, shot.metadata.get("capped_frames", []))
    free[0] = False
    assert free.sum() > len(shot) // 2
    np.testing.assert_allclose(shot.extras["pi_realized"][free], shot.extras["pi_ref"][free], rtol=1e-9)


def test_metrics_of_a_track_against_itself_are_zero(shared_data):
    src = shared_data / "re10k" / "0f47577ab3441480.txt"
    result = json.loads(parascale("metrics", src, src, "--json").stdout)
    assert result["rot_err"] == pytest.approx(0.0, abs=1e-6)
    assert result["trans_err_relative"] == pytest.approx(0.0, abs=1e-9)


def test_info_names_the_file_and_field_of_a_visibility_index_beyond_int64(shared_data, tmp_path):
    write_trajectory(read_trajectory(shared_data / "re10k" / "0bf152ef84195293.txt"), tmp_path / "t.json", "parascale")
    doc = json.loads((tmp_path / "t.json").read_text())
    n = len(doc["frames"])
    for bad in (2**63, -(2**63) - 1):
        doc["points"] = {"xyz": [[0, 0, 4]], "visibility": [[0]] * (n - 1) + [[bad]]}
        (tmp_path / "t.json").write_text(json.dumps(doc))
        proc = parascale("info", tmp_path / "t.json", check=False)
        assert proc.returncode == 2, proc.stderr
        assert "Traceback" not in proc.stderr
        assert proc.stderr.count("\n") == 1, proc.stderr
        assert str(tmp_path / "t.json") in proc.stderr and "points.visibility" in proc.stderr


def zeros_exr(path, width: int, height: int) -> None:
    """A ZIP-compressed scanline OpenEXR of FLOAT ``Z`` zeros, written one 16-line block at a time."""

    def attr(name: str, kind: str, body: bytes) -> bytes:
        return name.encode() + b"\0" + kind.encode() + b"\0" + struct.pack("<i", len(body)) + body

    box = struct.pack("<iiii", 0, 0, width - 1, height - 1)
    channels = b"Z\0" + struct.pack("<iB3xii", 2, 0, 1, 1) + b"\0"  # one FLOAT channel; the list ends with a null
    header = struct.pack("<iI", 20000630, 2) + attr("channels", "chlist", channels)
    header += attr("compression", "compression", b"\x03") + attr("dataWindow", "box2i", box)
    header += attr("displayWindow", "box2i", box) + attr("lineOrder", "lineOrder", b"\0")
    header += attr("pixelAspectRatio", "float", struct.pack("<f", 1.0))
    header += attr("screenWindowCenter", "v2f", struct.pack("<ff", 0, 0))
    header += attr("screenWindowWidth", "float", struct.pack("<f", 1.0)) + b"\0"
    # zero bytes after the ZIP predictor: the first byte, then deltas of 0 stored as 128
    packed = {n: zlib.compress(b"\0" + b"\x80" * (n * width * 4 - 1), 9) for n in {16, height % 16 or 16}}
    blocks = []
    for y in range(0, height, 16):
        block = packed[min(16, height - y)]
        blocks.append(struct.pack("<ii", y, len(block)) + block)
    offsets = np.cumsum([len(header) + 8 * len(blocks)] + [len(b) for b in blocks[:-1]])
    path.write_bytes(header + offsets.astype("<u8").tobytes() + b"".join(blocks))


def zeros_png(path, width: int, height: int) -> None:
    """An 8-bit greyscale PNG of zeros, compressed one row at a time."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    z, row = zlib.compressobj(9), bytes(width + 1)
    idat = b"".join(z.compress(row) for _ in range(height)) + z.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b""))


@pytest.mark.parametrize("forge", [zeros_exr, zeros_png], ids=["exr", "png"])
def test_rescale_refuses_a_small_depth_map_claiming_16384_squared_from_its_header(forge, shared_data, tmp_path):
    ext = ".exr" if forge is zeros_exr else ".png"
    forge(tmp_path / f"small{ext}", 64, 40)  # the forger writes real files: OpenCV decodes them
    small = cv2.imread(str(tmp_path / f"small{ext}"), cv2.IMREAD_UNCHANGED)
    assert small.shape == (40, 64) and not small.any()
    (tmp_path / "maps").mkdir()
    big = tmp_path / "maps" / f"frame1{ext}"
    forge(big, 16384, 16384)  # 2^28 px in about 1 MB: 6.6 GB and 15-40 s to decode before the header cap
    assert big.stat().st_size < 1_200_000
    out = tmp_path / "shot.json"
    args = [
        "rescale", shared_data / "re10k" / "0bf152ef84195293.txt",
        "--reference-depth", tmp_path / "maps", "--target-depth", "2", "-o", out,
    ]  # fmt: skip
    cap = 3 << 30  # address-space guard: an uncapped decoder fails here instead of taking the machine's memory
    # The CLI in a fresh interpreter that records its own peak RSS (VmHWM, kB) at exit: a fork's
    # ru_maxrss would also count the pytest worker's memory resident at the fork.
    hwm = tmp_path / "vmhwm.txt"
    launcher = (
        "import atexit, resource, runpy, sys\n"
        f"resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))\n"
        "def hwm():\n"
        "    line = [x for x in open('/proc/self/status') if x.startswith('VmHWM:')][0]\n"
        f"    open({str(hwm)!r}, 'w').write(line.split()[1])\n"
        "atexit.register(hwm)\n"
        "sys.argv = ['parascale', *sys.argv[1:]]\n"
        "runpy.run_module('parascale_tools', run_name='__main__')\n"
    )
    child = subprocess.run(
        [sys.executable, "-c", launcher, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    peak_kb = int(hwm.read_text())
    stderr = child.stderr
    assert child.returncode == 2, stderr
    assert "Traceback" not in stderr and stderr.count("\n") == 1, stderr
    assert str(big) in stderr and "16384x16384" in stderr
    assert peak_kb < 500_000, f"peak RSS {peak_kb} kB"
    assert not out.exists()
