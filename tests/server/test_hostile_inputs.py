"""Hostile inputs get a clean 4xx, checked from the header before anything is decoded, and the
keep-alive connection stays usable: images claiming huge sizes (the server's peak memory, read
from the OS, barely moves), deeply nested or huge-number params, an int64 overflow in
points.visibility, and depth maps without a single valid pixel (OpenCV-written EXRs)."""

from __future__ import annotations

import json
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from server_helpers import plane_scene, png_bytes, wait_finished


def _peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmHWM")


def _png_claiming(width: int, height: int) -> bytes:
    """A real 8x8 PNG (OpenCV) whose IHDR (with a correct CRC) claims width x height."""
    data = bytearray(png_bytes(np.zeros((8, 8, 3), np.uint8)))
    data[16:24] = struct.pack(">II", width, height)
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def _jpeg_claiming(width: int, height: int) -> bytes:
    ok, buf = cv2.imencode(".jpg", np.full((8, 8, 3), 128, np.uint8))
    data = bytearray(buf.tobytes())
    i = data.index(b"\xff\xc0")
    data[i + 5 : i + 9] = struct.pack(">HH", height, width)
    return bytes(data)


def _exr(tmp_path: Path, depth: np.ndarray) -> bytes:
    path = tmp_path / "d.exr"
    assert cv2.imwrite(str(path), depth.astype(np.float32))  # OpenCV's single-channel float EXR
    return path.read_bytes()


BAD_IMAGES = {
    "png 40000x40000 (1.6e9 px)": _png_claiming(40000, 40000),
    "png 65535x65535": _png_claiming(65535, 65535),
    "png 2000x8 (over max side)": _png_claiming(2000, 8),
    "jpeg 65000x65000": _jpeg_claiming(65000, 65000),
    "png 0x0": _png_claiming(0, 0),
    "png truncated header": png_bytes(np.zeros((8, 8, 3), np.uint8))[:20],
}


def _post(http, url, scene, files=None, data=None):
    f = scene.files()
    f.update(files or {})
    return http.post(url + "/v1/jobs", files=f, data=data or {})


def test_images_are_sized_from_their_header_before_decoding(server, http):
    scene = plane_scene(64, 40, 3)
    before = _peak_rss_mb(server.proc.pid)
    for name, data in BAD_IMAGES.items():
        r = _post(http, server.url, scene, {"image": ("i.png", data)})
        assert r.status_code == 422, (name, r.status_code, r.text)
        assert r.json()["detail"][0].startswith("image:"), (name, r.text)
        assert http.get(server.url + "/v1/health").status_code == 200, f"keep-alive broken after {name}"
    assert _peak_rss_mb(server.proc.pid) - before < 150, "a header-only refusal must not allocate the image"


def _deep(n: int) -> str:
    return "[" * n + "]" * n


@pytest.mark.parametrize(
    "params",
    [_deep(20_000), '{"a": ' + _deep(5_000) + "}", '{"fps": 1' + "0" * 5000 + "}", "1" + "0" * 5000],
    ids=["nested-20000", "nested-object", "5000-digit-value", "5000-digit-top"],
)
def test_deeply_nested_or_huge_number_params_get_422(server, http, params):
    r = _post(http, server.url, plane_scene(64, 40, 3), data={"params": params})
    assert r.status_code == 422 and r.json()["detail"][0].startswith("params"), r.text
    assert http.get(server.url + "/v1/health").status_code == 200


@pytest.mark.parametrize(
    "bad", [2**63, 2**70, -(2**63) - 1, 10**400, 1e300], ids=["2^63", "2^70", "-2^63-1", "10^400", "1e300"]
)
def test_int64_overflow_in_points_visibility_gets_422(server, http, bad):
    scene = plane_scene(64, 40, 3)
    doc = dict(scene.doc)
    doc["points"] = {"xyz": [[0, 0, 4]], "visibility": [[0], [bad], [0]]}
    r = _post(http, server.url, scene, {"trajectory": ("t.json", json.dumps(doc).encode())})
    assert r.status_code == 422, r.text
    assert "points.visibility[1]" in r.text
    for _ in range(10):  # the same keep-alive connection still serves
        assert http.get(server.url + "/v1/jobs").status_code == 200


def test_exr_depth_with_no_valid_pixel_is_refused_and_a_valid_one_runs(server, http, tmp_path):
    scene = plane_scene(64, 40, 3)
    for empty in (np.zeros((40, 64)), np.full((40, 64), np.inf)):
        r = _post(http, server.url, scene, {"depth": ("d.exr", _exr(tmp_path, empty))})
        assert r.status_code == 422 and "none of its 2560 pixels" in r.text, r.text
    r = _post(http, server.url, scene, {"depth": ("d.exr", _exr(tmp_path, scene.depth))})
    assert r.status_code == 201, r.text
    assert wait_finished(http, server.url, r.json()["id"])["state"] == "done"


@pytest.mark.parametrize("fps", [1e-300, 0.01, 5000])
def test_fps_outside_what_an_mp4_can_carry_gets_422(server, http, fps):
    scene = plane_scene(64, 40, 3)
    doc = {**scene.doc, "fps": fps}
    r = _post(http, server.url, scene, {"trajectory": ("t.json", json.dumps(doc).encode())})
    assert r.status_code == 422 and "field 'fps'" in r.text, r.text
