"""Bad requests get a 4xx with a readable JSON body (``error`` + ``detail`` lines), nothing is
written outside the jobs folder, and the server stays healthy afterwards."""

from __future__ import annotations

import json

import numpy as np
import pytest
from server_helpers import npy_bytes, plane_scene


def _with_doc(change):
    scene = plane_scene(64, 40, 4)
    change(scene.doc)
    return scene


def _frame0(key, value):
    def change(doc):
        doc["frames"][0][key] = value

    return change


CASES = {
    "nan pose": (_with_doc(lambda d: d["frames"][1]["c2w"][0].__setitem__(3, float("nan"))), {}, "frame 2"),
    "zero frames": (_with_doc(lambda d: d.__setitem__("frames", [])), {}, "frames"),
    "too many frames": (_with_doc(lambda d: d.__setitem__("frames", d["frames"] * 80)), {}, "1 to 300 frames"),
    "num_frames 10^6": (plane_scene(64, 40, 4), {"num_frames": "1000000"}, "num_frames"),
    "num_frames mismatch": (plane_scene(64, 40, 4), {"num_frames": "5"}, "has 4 frames"),
    "negative focal": (_with_doc(_frame0("intrinsics", [-50.0, 50.0, 32.0, 20.0])), {}, "focal"),
    "null in pose": (_with_doc(lambda d: d["frames"][0]["c2w"][1].__setitem__(1, None)), {}, "c2w"),
    "huge size": (_with_doc(lambda d: d.__setitem__("width", 10**6)), {}, "width"),
    "bad params": (plane_scene(64, 40, 4), {"params": json.dumps({"crf": 99})}, "params.crf"),
    "unknown param": (plane_scene(64, 40, 4), {"params": json.dumps({"steps": 3})}, "params.steps"),
    "params not json": (plane_scene(64, 40, 4), {"params": "{oops"}, "params"),
    "unknown backend": (plane_scene(64, 40, 4), {"backend": "sora"}, "unknown 'sora'"),
    "nan depth scale": (plane_scene(64, 40, 4), {"depth_scale": "nan"}, "depth_scale"),
    "negative depth scale": (plane_scene(64, 40, 4), {"depth_scale": "-1"}, "depth_scale"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_bad_trajectory_and_form_fields_get_422(server, http, case):
    scene, data, needle = CASES[case]
    r = http.post(server.url + "/v1/jobs", files=scene.files(), data=data)
    assert r.status_code == 422, r.text
    body = r.json()
    assert body["error"] and needle in " ".join([body["error"], *body["detail"]]), body
    assert http.get(server.url + "/v1/health").status_code == 200


def test_bad_files_get_422(server, http):
    scene = plane_scene(64, 40, 4)
    good = scene.files()
    variants = {
        "image": {**good, "image": ("image.png", b"not an image at all")},
        "depth": {**good, "depth": ("d.npy", b"\x93NUMPY garbage")},
        "trajectory": {**good, "trajectory": ("t.json", b"\xff\xfe not utf8")},
    }
    pickled = np.array([{"a": 1}], dtype=object)  # an object array can only be stored pickled
    import io

    buf = io.BytesIO()
    np.save(buf, pickled, allow_pickle=True)
    variants["pickle"] = {**good, "depth": ("d.npy", buf.getvalue())}
    variants["negative depth"] = {**good, "depth": ("d.npy", npy_bytes(-scene.depth))}
    variants["aspect"] = {**good, "depth": ("d.npy", npy_bytes(np.ones((40, 40))))}
    for name, files in variants.items():
        r = http.post(server.url + "/v1/jobs", files=files)
        assert r.status_code == 422, (name, r.text)
        assert r.json()["detail"][0].startswith(("image:", "depth:", "trajectory:", "aspect")), (name, r.json())


def test_missing_image_gets_422_naming_the_field(server, http):
    files = plane_scene(64, 40, 4).files()
    del files["image"]
    r = http.post(server.url + "/v1/jobs", files=files)
    assert r.status_code == 422
    assert any("image" in line and "required" in line.lower() for line in r.json()["detail"]), r.json()


def test_oversized_upload_gets_413_and_server_stays_up(server, http):
    files = plane_scene(64, 40, 4).files()
    files["image"] = ("big.png", b"\x89PNG\r\n\x1a\n" + b"0" * (3 * 2**20))
    r = http.post(server.url + "/v1/jobs", files=files)
    assert r.status_code == 413 and "limit" in r.json()["error"]
    assert http.get(server.url + "/v1/health").json()["status"] == "ok"


@pytest.mark.parametrize("name", ["../../evil.png", "..\\\\evil.png", "/etc/passwd", "a/../../b.png"])
def test_path_like_upload_names_are_refused_and_nothing_escapes(server, http, name):
    before = set(server.jobs_dir.parent.rglob("*"))
    r = http.post(server.url + "/v1/jobs", files=plane_scene(64, 40, 4).files(image=name))
    assert r.status_code == 422 and "plain name" in r.json()["detail"][0]
    after = set(server.jobs_dir.parent.rglob("*"))
    assert not [p for p in after - before if server.jobs_dir not in p.parents]


def test_unknown_or_malformed_job_ids(server, http):
    assert http.get(server.url + "/v1/jobs/" + "0" * 32).status_code == 404
    r = http.get(server.url + "/v1/jobs/..%2F..%2Fetc")
    assert r.status_code in (404, 422) and r.json()["error"]
    assert http.post(server.url + "/v1/jobs/" + "f" * 32 + "/cancel").status_code == 404
    assert http.get(server.url + "/v1/jobs/" + "a" * 32 + "/result").status_code == 404
