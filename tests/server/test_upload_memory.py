"""Uploads stream to disk: a 250 MB upload moves the real server process's peak memory (VmHWM,
read from the OS) by a small fraction of its size, and a body without Content-Length is cut at the
limit while it streams."""

from __future__ import annotations

import io
import struct
from pathlib import Path

import av
import httpx
import numpy as np
from server_helpers import Server

MB = 2**20
BIG = 250 * MB


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _mp4(padding: int = 0) -> bytes:
    """A real 3-frame H.264 MP4 (PyAV), followed by a top-level ``free`` box of ``padding`` bytes
    (a box every MP4 reader skips), so the file is a valid video of any size."""
    buf = io.BytesIO()
    with av.open(buf, "w", format="mp4") as c:
        s = c.add_stream("libx264", rate=24)
        s.width, s.height, s.pix_fmt = 64, 48, "yuv420p"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((48, 64, 3), 40 * i, np.uint8), format="rgb24")
            for packet in s.encode(frame):
                c.mux(packet)
        for packet in s.encode():
            c.mux(packet)
    data = buf.getvalue()
    if padding:
        data += struct.pack(">I4s", padding, b"free") + bytes(padding - 8)
    return data


def _submit(http: httpx.Client, url: str, video: bytes) -> httpx.Response:
    return http.post(url + "/v1/jobs", files={"video": ("clip.mp4", video)}, data={"backend": "track-video"})


def test_a_250_mb_upload_streams_to_disk(tmp_path):
    srv = Server(tmp_path / "jobs", ["--max-upload-mb", "300"]).start()
    try:
        with httpx.Client(timeout=120) as http:
            warm = _submit(http, srv.url, _mp4())  # first use imports PyAV etc.: not the upload's memory
            assert warm.status_code == 201, warm.text
            http.post(f"{srv.url}/v1/jobs/{warm.json()['id']}/cancel")
            video = _mp4(BIG)
            before = _peak_rss(srv.proc.pid)
            r = _submit(http, srv.url, video)
            growth = _peak_rss(srv.proc.pid) - before
            assert r.status_code == 201, r.text
            stored = tmp_path / "jobs" / r.json()["id"] / "video.mp4"
            assert stored.read_bytes() == video, "the stored upload is the bytes sent"
            http.post(f"{srv.url}/v1/jobs/{r.json()['id']}/cancel")
        size = len(video)
        print(f"upload {size / MB:.0f} MiB: server peak RSS grew {growth / MB:.1f} MiB")
        assert growth < 0.25 * size, f"peak RSS grew {growth / MB:.0f} MiB for a {size / MB:.0f} MiB upload"
    finally:
        srv.stop()


def test_a_body_without_content_length_is_cut_at_the_limit(server, http):
    def chunks():  # a chunked request body: no Content-Length to refuse it by
        yield b'--b\r\nContent-Disposition: form-data; name="video"; filename="v.mp4"\r\n\r\n'
        for _ in range(24):
            yield b"x" * 2**17

    multipart = {"Content-Type": "multipart/form-data; boundary=b"}
    r = http.post(server.url + "/v1/jobs", content=chunks(), headers=multipart)
    assert r.status_code == 413, r.text
    assert "larger than the limit" in r.json()["error"]
    assert http.get(server.url + "/v1/health").status_code == 200


def test_exr_channel_bombs_sent_at_once_are_refused_with_the_server_peak_bounded(tmp_path):
    """The issue's EXR bombs (16 rows x 4096 px x 500 / 1000 / 1600 zero FLOAT channels, 138-442 KB,
    written by OpenEXR), eight at once: each refused naming the field, the server's peak RSS
    (VmHWM) grows by at most 100 MB (it was 3.35 GB for one 138 KB file)."""
    from concurrent.futures import ThreadPoolExecutor

    import OpenEXR
    from server_helpers import plane_scene

    from parascale_blender.formats.depthmaps import write_depth_map

    def bomb(n: int) -> bytes:
        zero = np.zeros((16, 4096), np.float32)
        channels = {"Z": zero, **{f"c{i:04d}": zero for i in range(n)}}
        path = tmp_path / f"bomb{n}.exr"
        OpenEXR.File({"compression": OpenEXR.ZIP_COMPRESSION, "type": OpenEXR.scanlineimage}, channels).write(str(path))
        return path.read_bytes()

    bombs = [bomb(n) for n in (500, 1000, 1600)]
    scene = plane_scene(64, 40, 3)
    srv = Server(tmp_path / "jobs").start()
    try:
        with httpx.Client(timeout=120) as http:
            write_depth_map(tmp_path / "ok.exr", scene.depth)  # a real depth job first: imports are not the bomb's
            files = {**scene.files(), "depth": ("depth.exr", (tmp_path / "ok.exr").read_bytes())}
            warm = http.post(srv.url + "/v1/jobs", files=files)
            assert warm.status_code == 201, warm.text
            before = _peak_rss(srv.proc.pid)

            def send(data: bytes) -> httpx.Response:
                return http.post(srv.url + "/v1/jobs", files={**scene.files(), "depth": ("depth.exr", data)})

            with ThreadPoolExecutor(8) as pool:
                answers = list(pool.map(send, [bombs[i % 3] for i in range(8)]))
            growth = _peak_rss(srv.proc.pid) - before
        for r in answers:
            assert r.status_code in (400, 422), r.text
            assert "depth: field 'channels'" in r.json()["detail"][0], r.text
        print(f"8 EXR bombs at once: server peak RSS grew {growth / MB:.1f} MiB")
        assert growth < 100 * MB, f"peak RSS grew {growth / MB:.0f} MiB"
    finally:
        srv.stop()
