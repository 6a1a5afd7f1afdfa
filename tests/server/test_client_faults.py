"""The client against servers that misbehave: truncated or corrupted downloads, slow drips, hung
servers, garbage answers, redirects to another host, and retried submissions.

The misbehaving peers are real TCP servers (the standard library's ``http.server``) that send
exactly the bytes each case needs; the well-behaved one is the real ParaScale server."""

from __future__ import annotations

import hashlib
import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from server_helpers import Server, npy_bytes, plane_scene, png_bytes, wait_finished

from parascale_blender.client import BridgeClient, BridgeError, JobRequest, ServerJob

JOB_ID = "ab" * 16


class Peer:
    """A loopback HTTP server whose handler is ``respond(handler)``; records what it received."""

    def __init__(self, respond):
        self.requests: list[tuple[str, str, dict]] = []
        peer = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a):
                pass

            def _any(self):
                n = int(self.headers.get("Content-Length") or 0)
                if n:
                    self.rfile.read(n)
                peer.requests.append((self.command, self.path, dict(self.headers)))
                try:
                    respond(self)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            do_GET = do_POST = _any

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def peers():
    made = []
    yield lambda respond: made.append(Peer(respond)) or made[-1]
    for p in made:
        p.close()


def _send(h, code: int, body: bytes, headers: dict | None = None, length: int | None = None):
    h.send_response(code)
    h.send_header("Content-Length", str(len(body) if length is None else length))
    for k, v in (headers or {}).items():
        h.send_header(k, v)
    h.end_headers()
    h.wfile.write(body)
    h.wfile.flush()


# The first bytes of an MP4 (an ISO 'ftyp' box, as ffmpeg writes it): what a result must start with.
MP4_START = b"\x00\x00\x00\x20ftypisom\x00\x00\x02\x00isomiso2avc1mp41"


def _result_headers(data: bytes, media_type: str = "video/mp4") -> dict:
    return {"Content-Type": media_type, "X-Content-SHA256": hashlib.sha256(data).hexdigest()}


def _tick_to_end(job, ticks: int = 20) -> None:
    """Tick ``job`` (a :class:`ServerJob` attached to a peer) until it ends, at most ``ticks`` times."""
    for _ in range(ticks):
        if job.tick() in ("done", "failed"):
            return


def _status(state: str, **kw) -> bytes:
    return json.dumps({"id": JOB_ID, "state": state, "progress": 1.0, "message": state, **kw}).encode()


def test_truncated_download_is_never_saved_as_done(peers, tmp_path):
    data = MP4_START + bytes(range(256)) * 4  # the server sends 10 bytes then hangs up

    def respond(h):
        if h.path.endswith("/result"):
            _send(h, 200, data[:10], _result_headers(data), length=len(data))
            h.close_connection = True
        else:
            _send(h, 200, _status("done"))

    peer = peers(respond)
    client = BridgeClient(peer.url, timeout=5)
    with pytest.raises(BridgeError, match=r"incomplete|broke off"):
        client.download(JOB_ID, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []
    peer.requests.clear()
    job = ServerJob.attach(client, JOB_ID, tmp_path / "clip.mp4", poll_interval=0, max_unreachable=3)
    _tick_to_end(job)
    assert job.state == "failed" and "download failed" in job.error
    assert [r[1].endswith("/result") for r in peer.requests].count(True) == 3, "fetched again, then given up"
    assert list(tmp_path.iterdir()) == [], "nothing saved, no temporary file left"


def test_a_download_cut_by_a_restart_is_fetched_again(peers, tmp_path):
    """The first download breaks off mid-file (a server restarting); the next tick fetches it again."""
    data = MP4_START + bytes(range(256)) * 64
    cut = []

    def respond(h):
        if h.path.endswith("/result"):
            first = not cut
            cut.append(1)
            _send(h, 200, data[:100] if first else data, _result_headers(data), length=len(data))
            h.close_connection = True
        else:
            _send(h, 200, _status("done", result_media_type="video/mp4"))

    peer = peers(respond)
    job = ServerJob.attach(BridgeClient(peer.url), JOB_ID, tmp_path / "clip.mp4", poll_interval=0)
    _tick_to_end(job)
    assert job.state == "done", job.error
    assert job.result_path.read_bytes() == data and len(cut) == 2
    assert [p.name for p in tmp_path.iterdir()] == ["clip.mp4"]


def test_corrupted_download_is_refused_by_its_digest(peers, tmp_path):
    data = MP4_START + b"x" * 1000
    peer = peers(lambda h: _send(h, 200, data, _result_headers(MP4_START + b"y" * 1000)))
    with pytest.raises(BridgeError, match="SHA-256 differs"):
        BridgeClient(peer.url).download(JOB_ID, tmp_path / "out.mp4")
    assert list(tmp_path.iterdir()) == []
    ok = peers(lambda h: _send(h, 200, data, _result_headers(data)))
    assert BridgeClient(ok.url).download(JOB_ID, tmp_path / "out.mp4").read_bytes() == data


def test_slow_drip_is_cut_at_the_overall_deadline(peers):
    def respond(h):
        body = _status("running")
        h.send_response(200)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        for b in body:  # one byte every 0.3 s: each read is quick, the whole answer takes ~30 s
            h.wfile.write(bytes([b]))
            h.wfile.flush()
            time.sleep(0.3)

    peer = peers(respond)
    t0 = time.monotonic()
    with pytest.raises(BridgeError, match="did not answer within 1 s"):
        BridgeClient(peer.url, timeout=1).status(JOB_ID)
    assert time.monotonic() - t0 < 2.5


def test_hung_server_fails_the_job_in_bounded_time_without_blocking_ticks(tmp_path):
    with socket.socket() as s:  # accepts connections (the OS backlog) and never answers
        s.bind(("127.0.0.1", 0))
        s.listen(64)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        job = ServerJob.attach(
            BridgeClient(url, timeout=1), JOB_ID, tmp_path / "x.mp4", poll_interval=0, max_unreachable=3
        )
        t0 = time.monotonic()
        job.cancel()  # answered by no one: bounded like a tick
        assert time.monotonic() - t0 < 0.7 and job.state == "queued" and "waiting" in job.message
        t0, longest = time.monotonic(), 0.0
        while not job.finished and time.monotonic() - t0 < 20:
            t = time.monotonic()
            job.tick()
            longest = max(longest, time.monotonic() - t)
        assert job.state == "failed" and "did not answer" in job.error, (job.state, job.error)
        assert longest < 0.7, f"a tick blocked for {longest:.2f} s"
        assert time.monotonic() - t0 < 8


@pytest.mark.parametrize(
    "answer",
    [b"[1, 2]", b'"queued"', b"{not json", b'{"id": 5, "state": "running"}', b'{"id": "x", "state": null}'],
)
def test_garbage_status_fails_the_job_after_max_unreachable_without_raising(peers, tmp_path, answer):
    peer = peers(lambda h: _send(h, 200, answer))
    job = ServerJob.attach(BridgeClient(peer.url), JOB_ID, tmp_path / "x.mp4", poll_interval=0, max_unreachable=3)
    states = [job.tick() for _ in range(3)]
    assert states[-1] == "failed" and ("malformed" in job.error or "without an id" in job.error), (states, job.error)
    assert len(peer.requests) == 3


def test_a_201_without_an_id_fails_once_and_is_not_resubmitted(peers, tmp_path):
    peer = peers(lambda h: _send(h, 201, b'{"state": "queued"}'))
    scene = plane_scene(64, 40, 3)
    request = JobRequest(json.dumps(scene.doc).encode(), png_bytes(scene.image), npy_bytes(scene.depth))
    job = ServerJob(BridgeClient(peer.url), request, tmp_path / "x.mp4", poll_interval=0)
    for _ in range(5):
        job.tick()
    assert job.state == "failed" and "without an id" in job.error
    assert [r[0] for r in peer.requests] == ["POST"]


def test_redirects_are_never_followed(peers, tmp_path):
    """A 3xx is an error naming where it pointed: neither the upload nor the token reaches the other host."""
    other = peers(lambda h: _send(h, 200, _status("running")))
    port = other.url.rsplit(":", 1)[1]

    def redirect(h):
        h.send_response(307)
        h.send_header("Location", f"http://localhost:{port}{h.path}")
        h.send_header("Content-Length", "0")
        h.end_headers()

    first = peers(redirect)
    client = BridgeClient(first.url, token="secret-token-1234")
    with pytest.raises(BridgeError, match=r"redirect \(307\) to 'http://localhost:\d+/v1/health'.*not followed") as e:
        client.status(JOB_ID)
    assert e.value.status == 307
    scene = plane_scene(64, 40, 3)
    job = ServerJob(client, JobRequest(json.dumps(scene.doc).encode(), png_bytes(scene.image)), tmp_path / "x.mp4")
    job.tick()
    assert job.state == "failed" and "redirect" in job.error
    # the challenge (GET /v1/health, no token) met the redirect: the token was never sent anywhere
    assert all("Authorization" not in r[2] for r in first.requests) and other.requests == []
    assert [r[0] for r in first.requests] == ["GET", "GET"]


def test_a_retried_submission_returns_the_same_job_even_after_a_restart(tmp_path):
    scene = plane_scene(64, 40, 3)
    files = scene.files()
    srv = Server(tmp_path / "jobs").start()
    try:
        client = BridgeClient(srv.url)
        args = (files["trajectory"][1], files["image"][1], files["depth"][1])
        first = client.submit(*args, idempotency_key="retry-key-1")
        again = client.submit(*args, idempotency_key="retry-key-1")
        other = client.submit(*args)  # a fresh key: a new job
        assert again["id"] == first["id"] != other["id"]
        with httpx.Client(timeout=30) as http:
            assert wait_finished(http, srv.url, first["id"])["state"] == "done"
            srv.stop()
            srv = Server(tmp_path / "jobs").start()
            assert client.__class__(srv.url).submit(*args, idempotency_key="retry-key-1")["id"] == first["id"]
            ids = [j["id"] for j in http.get(srv.url + "/v1/jobs").json()["jobs"]]
            assert sorted(ids) == sorted({first["id"], other["id"]})
            bad = http.post(srv.url + "/v1/jobs", files=files, headers={"Idempotency-Key": "../x"})
            assert bad.status_code == 422 and "Idempotency-Key" in bad.text
            r = http.get(f"{srv.url}/v1/jobs/{first['id']}/result")
            assert r.headers["X-Content-SHA256"] == hashlib.sha256(r.content).hexdigest()
            assert int(r.headers["Content-Length"]) == len(r.content)
    finally:
        srv.stop()


def test_a_dripped_header_is_cut_at_the_overall_deadline(peers):
    """Headers one byte every 0.2 s (each read quick, the answer ~20 s): the call ends at its deadline."""

    def respond(h):
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"X-Pad-%d: %d\r\n" % (i, i) for i in range(10)) + b"\r\n"
        for b in head:
            h.wfile.write(bytes([b]))
            h.wfile.flush()
            time.sleep(0.2)

    peer = peers(respond)
    t0 = time.monotonic()
    with pytest.raises(BridgeError, match="did not answer within 1.5 s"):
        BridgeClient(peer.url, timeout=1.5).health()
    assert time.monotonic() - t0 < 3.0  # the 1.5 s deadline and the watchdog's 50 ms; the headers take 20 s


def test_a_server_that_hangs_on_post_frees_the_submission_at_its_deadline(tmp_path):
    """A submission's deadline holds while the server reads the upload and never answers."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen(8)
        url = f"http://127.0.0.1:{s.getsockname()[1]}"
        t0 = time.monotonic()
        with pytest.raises(BridgeError, match="did not answer within 1 s"):
            BridgeClient(url).submit(b"{}", MP4_START, timeout=1.0)
        assert time.monotonic() - t0 < 2.5


@pytest.mark.parametrize(
    ("media_type", "body", "why"),
    [
        ("text/html", b"<html><body>Login</body></html>" * 4, "as 'text/html'"),
        ("video/mp4", b"<!DOCTYPE html><html><body>Login</body></html>" * 4, "not a video/mp4"),
        ("application/json", MP4_START * 4, "not video/mp4"),  # the job said MP4: another type is refused
    ],
)
def test_a_result_that_is_not_what_the_job_made_is_never_saved(peers, tmp_path, media_type, body, why):
    def respond(h):
        if h.path.endswith("/result"):
            _send(h, 200, body, _result_headers(body, media_type))
        else:
            _send(h, 200, _status("done", result_media_type="video/mp4"))

    peer = peers(respond)
    job = ServerJob.attach(BridgeClient(peer.url), JOB_ID, tmp_path / "clip.mp4", poll_interval=0)
    _tick_to_end(job)
    assert job.state == "failed" and why in job.error, job.error
    assert list(tmp_path.iterdir()) == []


def test_downloads_are_capped(peers, tmp_path):
    big = MP4_START + b"\0" * 5000
    told = peers(lambda h: _send(h, 200, big, _result_headers(big)))  # Content-Length says too much: not read
    with pytest.raises(BridgeError, match="5032 bytes, more than the 4096"):
        BridgeClient(told.url).download(JOB_ID, tmp_path / "a.mp4", max_bytes=4096)

    def chunked(h):  # no length, only a digest: cut while streaming
        h.send_response(200)
        for k, v in {**_result_headers(big), "Transfer-Encoding": "chunked"}.items():
            h.send_header(k, v)
        h.end_headers()
        for i in range(0, len(big), 1000):
            part = big[i : i + 1000]
            h.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
        h.wfile.write(b"0\r\n\r\n")
        h.wfile.flush()

    streamed = peers(chunked)
    with pytest.raises(BridgeError, match="larger than 4096 bytes"):
        BridgeClient(streamed.url).download(JOB_ID, tmp_path / "b.mp4", max_bytes=4096)
    assert list(tmp_path.iterdir()) == []
    assert BridgeClient(streamed.url).download(JOB_ID, tmp_path / "c.mp4").read_bytes() == big


def test_an_existing_file_is_never_replaced_and_no_folder_is_made(peers, tmp_path):
    data = MP4_START + b"new"
    peer = peers(lambda h: _send(h, 200, data, _result_headers(data)))
    mine = tmp_path / "mine.mp4"
    mine.write_bytes(b"the artist's own file")
    with pytest.raises(BridgeError, match="a file already exists"):
        BridgeClient(peer.url).download(JOB_ID, mine)
    assert mine.read_bytes() == b"the artist's own file"
    with pytest.raises(BridgeError, match="does not exist"):
        BridgeClient(peer.url).download(JOB_ID, tmp_path / "made" / "up" / "x.mp4")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mine.mp4"]


def test_an_unknown_state_is_followed_not_uploaded_again(peers, tmp_path):
    peer = peers(lambda h: _send(h, 201 if h.command == "POST" else 200, _status("paused-by-a-newer-server")))
    scene = plane_scene(64, 40, 3)
    request = JobRequest(json.dumps(scene.doc).encode(), png_bytes(scene.image), npy_bytes(scene.depth))
    job = ServerJob(BridgeClient(peer.url), request, tmp_path / "x.mp4", poll_interval=0)
    for _ in range(6):
        job.tick()
    assert job.job_id == JOB_ID and not job.finished and "unknown to this add-on" in job.message
    assert [r[0] for r in peer.requests] == ["POST"] + ["GET"] * 5


def test_the_token_goes_only_to_a_server_that_proves_it_holds_it(peers, tmp_path):
    """Something else listening at the URL (a stale process, another program) answers like a server:
    the client's challenge gets no valid proof, so the token is never sent to it."""
    squatter = peers(lambda h: _send(h, 200, json.dumps({"status": "ok", "proof": "0" * 64}).encode()))
    client = BridgeClient(squatter.url, token="secret-token-1234")
    for call in (client.health, client.backends, lambda: client.status(JOB_ID)):
        with pytest.raises(BridgeError, match="does not prove it holds this installation's token") as e:
            call()
        assert e.value.status == 401
    assert squatter.requests and all("Authorization" not in r[2] for r in squatter.requests)
    assert all(r[2].get("X-ParaScale-Challenge") for r in squatter.requests)
    assert len({r[2]["X-ParaScale-Challenge"] for r in squatter.requests}) == len(squatter.requests)  # fresh nonces


def test_a_real_server_proves_its_token_and_refuses_bad_challenges(tmp_path):
    """The real server answers the challenge with the HMAC of the nonce under its token (checked here
    with the standard library, not the project's helper), null without a token, 400 for a bad nonce;
    a client with the right token then works, one with another token is refused before sending it."""
    import hmac

    srv = Server(tmp_path / "jobs", args=["--token", "tok-" + "a" * 28]).start()
    try:
        nonce = "0123456789abcdef" * 2
        r = httpx.get(srv.url + "/v1/health", headers={"X-ParaScale-Challenge": nonce})
        want = hmac.new(("tok-" + "a" * 28).encode(), b"parascale-token-proof\0" + nonce.encode(), hashlib.sha256)
        assert r.status_code == 200 and r.json() == {"proof": want.hexdigest()}
        assert httpx.get(srv.url + "/v1/health", headers={"X-ParaScale-Challenge": "xyz"}).status_code == 400
        assert httpx.get(srv.url + "/v1/health").status_code == 401  # without the challenge: the token is needed
        assert BridgeClient(srv.url, token="tok-" + "a" * 28).health()["status"] in ("ok", "degraded")
        with pytest.raises(BridgeError, match="a different one"):
            BridgeClient(srv.url, token="tok-" + "b" * 28).health()
    finally:
        srv.stop()
    plain = Server(tmp_path / "jobs2").start()
    try:
        r = httpx.get(plain.url + "/v1/health", headers={"X-ParaScale-Challenge": "ab" * 16})
        assert r.json() == {"proof": None}
        with pytest.raises(BridgeError, match="it has none"):
            BridgeClient(plain.url, token="tok-" + "a" * 28).health()
    finally:
        plain.stop()
