"""The shared wire vocabulary against independent truths: files written by OpenCV, numpy and PyAV
are recognised by their first bytes, loopback hosts by ``ipaddress``' own tables, and the served
OpenAPI document (the server's) uses exactly the paths and multipart fields ``wire`` names."""

from __future__ import annotations

import io

import av
import cv2
import numpy as np
import pytest

from parascale_blender.client import wire
from parascale_blender.formats.exr import write_exr

IMG = np.random.default_rng(0).integers(0, 255, (16, 24, 3), dtype=np.uint8)


def _video(container: str, codec: str = "mpeg4") -> bytes:
    buf = io.BytesIO()
    with av.open(buf, "w", format=container) as c:
        s = c.add_stream(codec, rate=24)
        s.width, s.height, s.pix_fmt = 24, 16, "yuv420p"
        for _ in range(3):
            for p in s.encode(av.VideoFrame.from_ndarray(IMG, format="rgb24")):
                c.mux(p)
        for p in s.encode():
            c.mux(p)
    return buf.getvalue()


def test_sniff_suffix_recognises_files_written_by_other_libraries(tmp_path):
    np.save(tmp_path / "d.npy", np.ones((2, 3)))
    write_exr(tmp_path / "d.exr", np.ones((2, 3)))
    written = {
        ".png": cv2.imencode(".png", IMG)[1].tobytes(),
        ".jpg": cv2.imencode(".jpg", IMG)[1].tobytes(),
        ".npy": (tmp_path / "d.npy").read_bytes(),
        ".exr": (tmp_path / "d.exr").read_bytes(),
        ".mp4": _video("mp4"),
        ".mov": _video("mov"),
        ".mkv": _video("matroska"),
        ".avi": _video("avi"),
        ".mpg": _video("mpeg", "mpeg1video"),
        ".ts": _video("mpegts"),
    }
    assert {k: wire.sniff_suffix(v) for k, v in written.items()} == {k: k for k in written}
    assert wire.sniff_suffix(b'{"format": "parascale-trajectory"}') is None
    assert wire.sniff_suffix(b"") is None


@pytest.mark.parametrize(
    "url",
    ["http://127.0.0.1:8765", "http://127.3.4.5", "http://localhost:1", "http://LOCALHOST", "http://[::1]:8765/v1"],
)
def test_loopback_urls(url):
    assert wire.is_loopback_url(url)


@pytest.mark.parametrize("url", ["http://10.0.0.2:8765", "http://example.com", "http://[::2]", "http://0.0.0.0", ""])
def test_non_loopback_urls(url):
    assert not wire.is_loopback_url(url)


def test_served_api_uses_the_wire_names(server, http):
    doc = http.get(server.url + "/openapi.json").json()
    assert set(doc["paths"]) == {wire.HEALTH, wire.BACKENDS, wire.JOBS, wire.JOB, wire.JOB_CANCEL, wire.JOB_RESULT}
    form = doc["paths"][wire.JOBS]["post"]["requestBody"]["content"]["multipart/form-data"]["schema"]["$ref"]
    fields = doc["components"]["schemas"][form.rsplit("/", 1)[1]]["properties"]
    assert list(fields) == [*wire.UPLOADS, *wire.FORM_FIELDS]
    assert doc["components"]["schemas"]["JobStatus"]["properties"]["state"]["enum"] == list(wire.JOB_STATES)
    result = doc["paths"][wire.JOB_RESULT]["get"]["responses"]["200"]["content"]
    assert list(result) == list(wire.RESULT_MEDIA_TYPES)
    served = {b["name"] for b in http.get(server.url + wire.BACKENDS).json()}
    assert served == {wire.WARP, wire.DIFFUSERS_I2V, wire.WAN_FUN_CAMERA, wire.DEPTH_ANYTHING, wire.TRACK_VIDEO}


def test_openapi_names_each_operation_and_tags_it(server, http):
    """Operation ids are the handlers' names (not FastAPI's ``health_v1_health_get``), one each,
    and every operation has a tag (what generated clients and the docs page group by)."""
    spec = http.get(server.url + "/openapi.json").json()
    ops = [(path, op) for path, item in spec["paths"].items() for op in item.values()]
    ids = [op["operationId"] for _, op in ops]
    assert len(set(ids)) == len(ids) and "submit_job" in ids and "health" in ids, ids
    assert not any("_v1_" in i for i in ids), ids
    assert all(op.get("tags") in (["jobs"], ["server"]) for _, op in ops), ops
