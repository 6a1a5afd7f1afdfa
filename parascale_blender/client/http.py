"""A bpy-free HTTP client for the ParaScale generation server (stdlib ``urllib`` only).

Calls to loopback addresses bypass any system HTTP proxy (a proxy breaking 127.0.0.1 is a
classic add-on failure). Every call has a timeout. Failures raise :class:`BridgeError` with a
sentence for the artist; an unreachable server raises :class:`ServerNotRunning` saying how to
start it. Upload names sent to the server are fixed plain names, never local paths. Paths,
headers, field names and magic bytes are the shared ones of :mod:`.wire`.
"""

from __future__ import annotations

import json
import os
import re
import socket
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

from . import wire
from .wire import DEFAULT_URL, is_loopback_url


class BridgeError(RuntimeError):
    """The server refused or failed a call; ``status`` is the HTTP code (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, detail: list[str] | None = None):
        super().__init__(message)
        self.status, self.detail = status, list(detail or [])


class ServerNotRunning(BridgeError):
    """Nothing answers at the server URL."""


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
    return template.format(job_id=urllib.parse.quote(job_id, safe=""))


def _as_bytes(value: bytes | str | os.PathLike) -> bytes:
    return bytes(value) if isinstance(value, bytes | bytearray) else Path(value).read_bytes()


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
    """Talks to one server. ``timeout`` (seconds) applies to every call except downloads."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.token = token or None
        self.timeout = float(timeout)
        handlers = [urllib.request.ProxyHandler({})] if is_loopback_url(self.url) else []
        self._opener = urllib.request.build_opener(*handlers)

    # -- plumbing -------------------------------------------------------------------------
    def _request(
        self, method: str, path: str, body: bytes | None = None, content_type: str | None = None, timeout=None
    ):
        headers = {"Accept": wire.JSON}
        if self.token:
            headers[wire.AUTHORIZATION] = wire.bearer(self.token)
        if content_type:
            headers["Content-Type"] = content_type
        req = urllib.request.Request(self.url + path, data=body, method=method, headers=headers)
        try:
            return self._opener.open(req, timeout=timeout or self.timeout)
        except urllib.error.HTTPError as e:
            raise self._http_error(e) from None
        except TimeoutError:
            raise BridgeError(f"server at {self.url} did not answer within {timeout or self.timeout:g} s") from None
        except urllib.error.URLError as e:
            if isinstance(e.reason, TimeoutError | socket.timeout):
                raise BridgeError(f"server at {self.url} did not answer within {timeout or self.timeout:g} s") from None
            raise ServerNotRunning(
                f"server not running at {self.url}: start it with `parascale-server` ({e.reason})"
            ) from None
        except (ConnectionError, OSError) as e:
            raise ServerNotRunning(
                f"server not running at {self.url}: start it with `parascale-server` ({e})"
            ) from None

    def _http_error(self, e: urllib.error.HTTPError) -> BridgeError:
        try:
            body = json.loads(e.read().decode("utf-8"))
            error, detail = str(body.get("error", e.reason)), [str(d) for d in body.get("detail", [])]
        except (ValueError, AttributeError, OSError):
            error, detail = f"HTTP {e.code} {e.reason}", []
        if e.code == 401:
            error += " (set the server token in the ParaScale preferences)"
        msg = f"{error}: {'; '.join(detail)}" if detail else error
        return BridgeError(msg, status=e.code, detail=detail)

    def _json(self, method: str, path: str, **kw):
        with self._request(method, path, **kw) as resp:
            raw = resp.read()
        try:
            return json.loads(raw.decode("utf-8"))
        except ValueError:
            raise BridgeError(f"server at {self.url} sent a malformed answer to {method} {path}") from None

    # -- API --------------------------------------------------------------------------------
    def health(self) -> dict:
        return self._json("GET", wire.HEALTH)

    def backends(self) -> list[dict]:
        return self._json("GET", wire.BACKENDS)

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
    ) -> dict:
        """Upload a job; returns its status (``id``, ``state``, ``result_media_type``…).

        Send exactly the uploads the backend takes (``GET /v1/backends`` lists them as ``uploads``):
        ``warp``/``diffusers-i2v``/``wan-fun-camera`` trajectory + image + depth, ``depth-anything``
        image, ``track-video`` video. Each is bytes or a local path; ``video_name`` is the name
        shown in messages (reduced to a plain name; default from a path or ``video.mp4``).
        ``depth_scale``: world units per stored depth value; None = the format's default.
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
        return self._json("POST", wire.JOBS, body=body, content_type=ctype, timeout=timeout)

    def status(self, job_id: str) -> dict:
        return self._json("GET", _job_path(wire.JOB, job_id))

    def cancel(self, job_id: str) -> dict:
        return self._json("POST", _job_path(wire.JOB_CANCEL, job_id), body=b"")

    def jobs(self) -> list[dict]:
        return self._json("GET", wire.JOBS)["jobs"]

    def download(self, job_id: str, dest: str | os.PathLike, timeout: float = 120.0) -> Path:
        """Save the job's result, whatever its kind (MP4, .npy, JSON: see the status's
        ``result_media_type``), to ``dest`` (written to a temporary name, then renamed)."""
        dest = Path(dest)
        dest.parent.mkdir(parents=True, exist_ok=True)
        tmp = dest.with_name(f".{dest.name}.part")
        path = _job_path(wire.JOB_RESULT, job_id)
        try:
            with self._request("GET", path, timeout=timeout) as resp, open(tmp, "wb") as f:
                while chunk := resp.read(1 << 20):
                    f.write(chunk)
            os.replace(tmp, dest)
        finally:
            tmp.unlink(missing_ok=True)
        return dest
