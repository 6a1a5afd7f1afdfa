"""A bpy-free HTTP client for the ParaScale generation server, on ``requests`` (which Blender bundles).

- Every call has an overall deadline (``timeout`` seconds for the whole answer, not per read): the
  body is read as it arrives and the call fails once the deadline has passed, so a slow drip
  cannot hold it (worst case about twice ``timeout``: one read may still wait that long).
- Calls to loopback addresses ignore any system proxy and ``.netrc`` (a proxy breaking 127.0.0.1
  is a classic add-on failure).
- The bearer token is never sent along a redirect to another host (``requests`` strips it).
- Downloads stream to a temporary file next to the destination, checked against the answer's
  ``Content-Length`` and the server's ``X-Content-SHA256`` digest, and are renamed only when complete.
- ``submit`` sends an ``Idempotency-Key``: a retried submission returns the job the first one made.

Failures raise :class:`BridgeError` with a sentence for the artist; an unreachable server raises
:class:`ServerNotRunning` saying how to start it. Upload names sent to the server are fixed plain
names, never local paths. Paths, headers, field names and magic bytes are the shared ones of :mod:`.wire`.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import time
import urllib.parse
import uuid
from pathlib import Path

import requests
import urllib3

from . import wire
from .wire import DEFAULT_URL, is_loopback_url

CHUNK = 1 << 16


class BridgeError(RuntimeError):
    """The server refused or failed a call; ``status`` is the HTTP code (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, detail: list[str] | None = None):
        super().__init__(message)
        self.status, self.detail = status, list(detail or [])


class ServerNotRunning(BridgeError):
    """Nothing answers at the server URL (connection refused: nothing was received by a server)."""


class NoAnswer(BridgeError):
    """The server took the connection but its answer did not arrive (in full) before the deadline."""


def plain_name(name: str, default: str) -> str:
    """``name`` reduced to a plain file name (no folders, no odd characters), or ``default``."""
    base = re.sub(r"[^A-Za-z0-9._ -]", "_", os.path.basename(str(name).replace("\\", "/")))
    base = base.replace("..", "_").strip(" .")[:120]
    return base or default


def _upload_name(data: bytes, field: str) -> str:
    """A plain upload name for ``data`` from its first bytes (the server checks them again)."""
    if field == wire.TRAJECTORY:
        return "trajectory.json"
    return field + (wire.sniff_suffix(data) or (".mp4" if field == wire.VIDEO else ".png"))


def _job_path(template: str, job_id: str) -> str:
    return template.format(job_id=urllib.parse.quote(str(job_id), safe=""))


def _as_bytes(value: bytes | str | os.PathLike) -> bytes:
    return bytes(value) if isinstance(value, bytes | bytearray) else Path(value).read_bytes()


def new_idempotency_key() -> str:
    return uuid.uuid4().hex


def encode_multipart(fields: dict[str, str], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    """(body, content type) of a multipart/form-data request."""
    boundary = f"parascale-{uuid.uuid4().hex}"
    out = []
    for name, value in fields.items():
        out.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data) in files.items():
        head = (
            f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
            f"Content-Type: {wire.OCTET_STREAM}\r\n\r\n"
        )
        out += [head.encode(), data, b"\r\n"]
    out.append(f"--{boundary}--\r\n".encode())
    return b"".join(out), f"multipart/form-data; boundary={boundary}"


class BridgeClient:
    """Talks to one server. ``timeout`` (seconds) is the overall deadline of every call except
    submissions and downloads, which take their own."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout = float(timeout)
        self._session = requests.Session()
        self._session.trust_env = not is_loopback_url(self.url)  # no proxy, no .netrc for loopback
        self._session.max_redirects = 5

    # -- plumbing -------------------------------------------------------------------------
    def _no_answer(self, seconds: float) -> NoAnswer:
        return NoAnswer(f"server at {self.url} did not answer within {seconds:g} s")

    def _send(self, method: str, path: str, deadline: float, seconds: float, body=None, headers=None):
        """The streamed response of one call (status checked), or a :class:`BridgeError`."""
        h = {"Accept": wire.JSON, **(headers or {})}
        if self.token:
            h[wire.AUTHORIZATION] = wire.bearer(self.token)
        left = max(deadline - time.monotonic(), 0.001)
        try:
            resp = self._session.request(
                method, self.url + path, data=body, headers=h, timeout=(min(left, 10.0), left), stream=True
            )
        except requests.exceptions.Timeout:  # connect or first-byte timeout
            raise self._no_answer(seconds) from None
        except requests.exceptions.ConnectionError as e:
            raise ServerNotRunning(
                f"server not running at {self.url}: start it with `parascale-server` ({_reason(e)})"
            ) from None
        except requests.exceptions.RequestException as e:
            raise BridgeError(f"request to {self.url} failed: {_reason(e)}") from None
        if resp.status_code >= 400:
            try:
                raw = self._read(resp, deadline, seconds, limit=1 << 20)
            finally:
                resp.close()
            raise self._http_error(resp, raw)
        return resp

    def _read(self, resp, deadline: float, seconds: float, sink=None, limit: int | None = None) -> bytes:
        """The body of ``resp`` read chunk by chunk until ``deadline`` (to ``sink`` when given)."""
        out, size = [], 0
        try:
            while True:
                if time.monotonic() > deadline:
                    raise self._no_answer(seconds)
                chunk = resp.raw.read1(CHUNK, decode_content=True)
                if not chunk:
                    break
                size += len(chunk)
                if sink is not None:
                    sink(chunk)
                else:
                    out.append(chunk)
                    if limit is not None and size > limit:
                        raise BridgeError(f"server at {self.url} sent an answer larger than {limit} bytes")
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise self._no_answer(seconds) from None
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as e:
            raise NoAnswer(f"server at {self.url} broke off its answer: {_reason(e)}") from None
        return b"".join(out)

    def _http_error(self, resp, raw: bytes) -> BridgeError:
        try:
            body = json.loads(raw.decode("utf-8"))
            error, detail = str(body.get("error", resp.reason)), [str(d) for d in body.get("detail", [])]
        except (ValueError, AttributeError, TypeError):
            error, detail = f"HTTP {resp.status_code} {resp.reason}", []
        if resp.status_code == 401:
            error += " (set the server token in the ParaScale preferences)"
        msg = f"{error}: {'; '.join(detail)}" if detail else error
        return BridgeError(msg, status=resp.status_code, detail=detail)

    def _json(self, method: str, path: str, timeout: float | None = None, **kw):
        seconds = float(timeout or self.timeout)
        deadline = time.monotonic() + seconds
        resp = self._send(method, path, deadline, seconds, **kw)
        try:
            raw = self._read(resp, deadline, seconds, limit=64 << 20)
        finally:
            resp.close()
        try:
            return json.loads(raw.decode("utf-8"))
        except (ValueError, RecursionError):
            raise BridgeError(f"server at {self.url} sent a malformed answer to {method} {path}") from None

    def _json_object(self, method: str, path: str, **kw) -> dict:
        out = self._json(method, path, **kw)
        if not isinstance(out, dict):
            raise BridgeError(f"server at {self.url} sent a malformed answer to {method} {path} (not an object)")
        return out

    def _job_status(self, method: str, path: str, **kw) -> dict:
        """A job status answer, checked: an object with a job ``id`` string and a ``state`` string."""
        out = self._json_object(method, path, **kw)
        if not isinstance(out.get("id"), str) or not out["id"] or not isinstance(out.get("state"), str):
            raise BridgeError(f"server at {self.url} sent a job status without an id or state to {method} {path}")
        return out

    # -- API --------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._json_object("GET", wire.HEALTH)

    def backends(self) -> list[dict]:
        out = self._json("GET", wire.BACKENDS)
        if not isinstance(out, list):
            raise BridgeError(f"server at {self.url} sent a malformed answer to GET {wire.BACKENDS}")
        return out

    def submit(
        self,
        trajectory: bytes | str | os.PathLike | None = None,
        image: bytes | str | os.PathLike | None = None,
        depth: bytes | str | os.PathLike | None = None,
        backend: str = wire.DEFAULT_BACKEND,
        params: dict | None = None,
        depth_scale: float | None = None,
        num_frames: int | None = None,
        timeout: float = 60.0,
        *,
        video: bytes | str | os.PathLike | None = None,
        video_name: str | None = None,
        idempotency_key: str | None = None,
    ) -> dict:
        """Upload a job; returns its status (``id``, ``state``, ``result_media_type``…).

        Send exactly the uploads the backend takes (``GET /v1/backends`` lists them as ``uploads``):
        ``warp``/``diffusers-i2v``/``wan-fun-camera`` trajectory + image + depth, ``depth-anything``
        image, ``track-video`` video. Each is bytes or a local path; ``video_name`` is the name
        shown in messages (reduced to a plain name; default from a path or ``video.mp4``).
        ``depth_scale``: world units per stored depth value; None = the format's default.
        ``idempotency_key``: the same key sent again (a retry after a timeout) returns the job the
        first submission created instead of a second one (a fresh key when None).
        """
        given = {wire.TRAJECTORY: trajectory, wire.IMAGE: image, wire.DEPTH: depth, wire.VIDEO: video}
        blobs = {k: _as_bytes(v) for k, v in given.items() if v is not None}
        if not blobs:
            raise BridgeError("nothing to submit: give the uploads the backend takes")
        fields = {"backend": backend, "params": json.dumps(params or {})}
        if wire.DEPTH in blobs and depth_scale is not None:
            fields["depth_scale"] = repr(float(depth_scale))
        if num_frames is not None:
            fields["num_frames"] = str(int(num_frames))
        files = {k: (_upload_name(v, k), v) for k, v in blobs.items()}
        if wire.VIDEO in blobs:
            named = video_name or (None if isinstance(video, bytes | bytearray) else Path(video).name)
            default = files[wire.VIDEO][0]
            files[wire.VIDEO] = (plain_name(named, default) if named else default, blobs[wire.VIDEO])
        body, ctype = encode_multipart(fields, files)
        headers = {"Content-Type": ctype, wire.IDEMPOTENCY_KEY: idempotency_key or new_idempotency_key()}
        return self._job_status("POST", wire.JOBS, body=body, headers=headers, timeout=timeout)

    def status(self, job_id: str) -> dict:
        return self._job_status("GET", _job_path(wire.JOB, job_id))

    def cancel(self, job_id: str) -> dict:
        return self._job_status("POST", _job_path(wire.JOB_CANCEL, job_id), body=b"")

    def jobs(self) -> list[dict]:
        out = self._json_object("GET", wire.JOBS).get("jobs")
        if not isinstance(out, list):
            raise BridgeError(f"server at {self.url} sent a malformed answer to GET {wire.JOBS}")
        return out

    def download(self, job_id: str, dest: str | os.PathLike, timeout: float = 600.0) -> Path:
        """Save the job's result, whatever its kind (MP4, .npy, JSON: see the status's
        ``result_media_type``), to ``dest``: streamed to a temporary file beside it, checked
        against ``Content-Length`` and the server's SHA-256 digest, renamed only when complete.
        ``timeout`` is the deadline of the whole download. Raises :class:`BridgeError` (and leaves
        ``dest`` untouched) for a short, over-long or corrupted answer."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        path = _job_path(wire.JOB_RESULT, job_id)
        seconds = float(timeout)
        deadline = time.monotonic() + seconds
        resp = self._send("GET", path, deadline, seconds, headers={"Accept": "*/*", "Accept-Encoding": "identity"})
        try:
            length = resp.headers.get("Content-Length")
            digest = (resp.headers.get(wire.CONTENT_SHA256) or "").strip().lower()
            if length is None and not digest:
                raise BridgeError(f"server at {self.url} sent the result of {job_id} without a length or digest")
            sha, size = hashlib.sha256(), 0
            with open(tmp, "wb") as f:

                def sink(chunk: bytes) -> None:
                    nonlocal size
                    size += len(chunk)
                    sha.update(chunk)
                    f.write(chunk)

                self._read(resp, deadline, seconds, sink=sink)
                f.flush()
                os.fsync(f.fileno())
            if length is not None and size != int(length):
                raise BridgeError(f"download of job {job_id} incomplete: {size} of {int(length)} bytes received")
            if digest and sha.hexdigest() != digest:
                raise BridgeError(f"download of job {job_id} corrupted: its SHA-256 differs from the server's")
            os.replace(tmp, dest)
        except ValueError:
            raise BridgeError(f"server at {self.url} sent a malformed Content-Length") from None
        finally:
            resp.close()
            tmp.unlink(missing_ok=True)
        return dest


def _reason(e: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, one line."""
    while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
    inner = getattr(e, "reason", None)
    return str(inner if isinstance(inner, BaseException) else e).splitlines()[0][:300]
