"""A bpy-free HTTP client for the ParaScale generation server, on ``requests`` (which Blender bundles).

Works with the ``requests``/``urllib3`` of every Blender the extension claims: Blender 4.2 LTS bundles
requests 2.27.1 with urllib3 1.26.8, Blender 5.0 requests 2.32 with urllib3 2 (only API both have).

- Every call has an overall deadline (``timeout`` seconds for the whole call: connecting, the
  headers and the body). A watchdog shuts the call's socket when it passes, so a server that drips
  its headers or body byte by byte cannot hold the call past it.
- Redirects are never followed (a 3xx is an error naming where it pointed): an upload is never
  re-sent to another host, and the token never leaves the configured server.
- The token is sent only to a server that first proves it holds it (a challenge on ``GET /v1/health``,
  :func:`.wire.token_proof`): a process squatting on the port never receives it.
- Calls to loopback addresses ignore any system proxy and ``.netrc`` (a proxy breaking 127.0.0.1
  is a classic add-on failure).
- Downloads stream to a new temporary file next to the destination, capped at ``max_bytes``,
  checked against the answer's ``Content-Length``, the server's ``X-Content-SHA256`` digest, the
  media type the job reported and the file's first bytes (an MP4 must start like one: never an HTML
  page saved as a clip), then moved to the destination only if no file exists there (never over one).
- ``submit`` sends an ``Idempotency-Key``: a retried submission returns the job the first one made.

Failures raise :class:`BridgeError` with a sentence for the artist; an unreachable server raises
:class:`ServerNotRunning` saying how to start it. Upload names sent to the server are fixed plain
names, never local paths. Paths, headers, field names and magic bytes are the shared ones of :mod:`.wire`.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import re
import socket
import threading
import time
import urllib.parse
import uuid
from pathlib import Path

import requests
import requests.adapters
import urllib3

from . import wire
from .wire import DEFAULT_URL, is_loopback_url

CHUNK = 1 << 16
MAX_DOWNLOAD = 4 << 30  # bytes: the largest result :meth:`BridgeClient.download` saves (a long 4K clip is < 1 GiB)
_CALL = threading.local()  # ``watch``: the :class:`_Watch` of the call this thread is making


class BridgeError(RuntimeError):
    """The server refused or failed a call; ``status`` is the HTTP code (None: no answer)."""

    def __init__(self, message: str, status: int | None = None, detail: list[str] | None = None):
        super().__init__(message)
        self.status, self.detail = status, list(detail or [])


class ServerNotRunning(BridgeError):
    """Nothing answers at the server URL (connection refused: nothing was received by a server)."""


class NoAnswer(BridgeError):
    """The server took the connection but its answer did not arrive (in full) before the deadline."""


class _Watch:
    """One call's deadline: a watchdog thread shuts the sockets of the connections the call uses
    once it has passed (and again every 50 ms until the call ends: a connection made late is shut too)."""

    def __init__(self, seconds: float):
        self.seconds = seconds
        self.deadline = time.monotonic() + seconds
        self.fired = False
        self._conns: list = []
        self._done = threading.Event()
        threading.Thread(target=self._run, name="parascale-client-deadline", daemon=True).start()

    def left(self) -> float:
        return max(self.deadline - time.monotonic(), 0.001)

    def add(self, conn) -> None:
        self._conns.append(conn)

    def _run(self) -> None:
        if self._done.wait(max(self.deadline - time.monotonic(), 0.0)):
            return
        self.fired = True
        while True:
            for conn in list(self._conns):
                sock = getattr(conn, "sock", None)
                if sock is not None:
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
            if self._done.wait(0.05):
                return

    def end(self) -> None:
        self._done.set()


def _tracked(pool_cls):
    """``pool_cls`` whose connections are handed to the watch of the calling thread's call."""

    class Tracked(pool_cls):
        def _get_conn(self, timeout=None):  # urllib3 1.26 and 2.x: where a request takes its connection
            conn = super()._get_conn(timeout)
            watch = getattr(_CALL, "watch", None)
            if watch is not None:
                watch.add(conn)
            return conn

    Tracked.__name__ = f"Tracked{pool_cls.__name__}"
    return Tracked


def _track(manager):
    if not getattr(manager, "_parascale_tracked", False):
        manager.pool_classes_by_scheme = {k: _tracked(v) for k, v in manager.pool_classes_by_scheme.items()}
        manager._parascale_tracked = True
    return manager


class _Adapter(requests.adapters.HTTPAdapter):
    """requests' adapter whose connections the call's watchdog can shut (direct and through a proxy)."""

    def init_poolmanager(self, *args, **kw):
        super().init_poolmanager(*args, **kw)
        _track(self.poolmanager)

    def proxy_manager_for(self, *args, **kw):
        return _track(super().proxy_manager_for(*args, **kw))


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


def looks_like(media_type: str, head: bytes) -> bool:
    """Whether a result's first bytes are what its media type says (an MP4: an ISO box; a .npy:
    numpy's magic; a trajectory: a JSON object). Other types are not checked here."""
    if media_type == wire.MP4:
        return wire.sniff_suffix(head) in (".mp4", ".mov")
    if media_type == wire.JSON:
        return head.lstrip()[:1] == b"{"
    if media_type == wire.OCTET_STREAM:
        return head.startswith(wire.NPY_MAGIC)
    return True


class BridgeClient:
    """Talks to one server. ``timeout`` (seconds) is the overall deadline of every call except
    submissions and downloads, which take their own."""

    def __init__(self, url: str = DEFAULT_URL, token: str | None = None, timeout: float = 5.0):
        self.url = url.rstrip("/")
        self.token = token or None
        self._proven = False  # the server proved it holds the token (see :meth:`_prove`)
        self.timeout = float(timeout)
        self._session = requests.Session()
        self._session.trust_env = not is_loopback_url(self.url)  # no proxy, no .netrc for loopback
        for prefix in ("http://", "https://"):
            self._session.mount(prefix, _Adapter())

    # -- plumbing -------------------------------------------------------------------------
    def _no_answer(self, seconds: float) -> NoAnswer:
        return NoAnswer(f"server at {self.url} did not answer within {seconds:g} s")

    def _call(self, seconds: float, fn):
        """``fn(watch)`` under a deadline of ``seconds`` for everything it sends and reads."""
        watch = _Watch(seconds)
        _CALL.watch = watch
        try:
            return fn(watch)
        except BridgeError:
            if watch.fired:
                raise self._no_answer(seconds) from None
            raise
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException) as e:
            if watch.fired:
                raise self._no_answer(seconds) from None
            raise NoAnswer(f"server at {self.url} broke off its answer: {_reason(e)}") from None
        except OSError:  # a local file (downloads); the connection's own errors are mapped where they happen
            if watch.fired:
                raise self._no_answer(seconds) from None
            raise
        except Exception as e:  # noqa: BLE001 - e.g. a requests/urllib3 this client does not know: a sentence, no traceback
            raise BridgeError(f"talking to the server at {self.url} failed: {type(e).__name__}: {e}") from e
        finally:
            _CALL.watch = None
            watch.end()

    def _send(self, method: str, path: str, watch: _Watch, body=None, headers=None, token: bool = True):
        """The streamed response of one call (status checked), or a :class:`BridgeError`; with ``token``
        False the token is not sent (the challenge of :meth:`_prove`)."""
        h = {"Accept": wire.JSON, **(headers or {})}
        if token and self.token:
            if not self._proven:
                self._prove(watch)
            h[wire.AUTHORIZATION] = wire.bearer(self.token)
        left = watch.left()
        try:
            resp = self._session.request(
                method, self.url + path, data=body, headers=h, timeout=(min(left, 10.0), left), stream=True,
                allow_redirects=False,
            )  # fmt: skip
        except requests.exceptions.Timeout:  # connect or first-byte timeout
            raise self._no_answer(watch.seconds) from None
        except requests.exceptions.ConnectionError as e:
            if watch.fired:
                raise self._no_answer(watch.seconds) from None
            raise ServerNotRunning(
                f"server not running at {self.url}: start it with `parascale-server` ({_reason(e)})"
            ) from None
        except requests.exceptions.RequestException as e:
            raise BridgeError(f"request to {self.url} failed: {_reason(e)}") from None
        if 300 <= resp.status_code < 400:
            resp.close()
            where = resp.headers.get("Location", "")[:200]
            raise BridgeError(
                f"server at {self.url} answered {method} {path} with a redirect ({resp.status_code}) to {where!r}; "
                "redirects are not followed: set the server URL in the ParaScale preferences to the server itself",
                status=resp.status_code,
            )
        if resp.status_code >= 400:
            try:
                raw = self._read(resp, watch, limit=1 << 20)
            finally:
                resp.close()
            raise self._http_error(resp, raw)
        return resp

    def _prove(self, watch: _Watch) -> None:
        """Ask the server to prove it holds the token (a challenge on ``GET /v1/health``, no token
        sent) before the token is sent: whatever else listens at the URL never receives it."""
        assert self.token is not None
        nonce = os.urandom(16).hex()
        resp = self._send("GET", wire.HEALTH, watch, headers={wire.TOKEN_CHALLENGE: nonce}, token=False)
        try:
            raw = self._read(resp, watch, limit=1 << 16)
        finally:
            resp.close()
        try:
            proof = json.loads(raw.decode("utf-8")).get("proof")
        except (ValueError, AttributeError):
            proof = None
        if not isinstance(proof, str) or not hmac.compare_digest(proof, wire.token_proof(self.token, nonce)):
            raise BridgeError(
                f"the server at {self.url} does not prove it holds this installation's token "
                f"({'it has none' if proof is None else 'a different one'}, or something else answers there): "
                "the token was not sent; start the server from Blender, or give it the same token",
                status=401,
            )
        self._proven = True

    def _read(self, resp, watch: _Watch, sink=None, limit: int | None = None) -> bytes:
        """The body of ``resp`` read chunk by chunk (to ``sink`` when given); at most ``limit`` bytes."""
        out, size = [], 0
        try:
            while True:
                chunk = resp.raw.read(CHUNK, decode_content=True)  # urllib3 1.26 and 2.x
                if watch.fired:
                    raise self._no_answer(watch.seconds)
                if not chunk:
                    break
                size += len(chunk)
                if limit is not None and size > limit:
                    raise BridgeError(f"server at {self.url} sent an answer larger than {limit} bytes")
                if sink is not None:
                    sink(chunk)
                else:
                    out.append(chunk)
        except (urllib3.exceptions.ReadTimeoutError, TimeoutError):
            raise self._no_answer(watch.seconds) from None
        except (urllib3.exceptions.HTTPError, requests.exceptions.RequestException, OSError) as e:
            if watch.fired:
                raise self._no_answer(watch.seconds) from None
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
        def call(watch: _Watch) -> bytes:
            resp = self._send(method, path, watch, **kw)
            try:
                return self._read(resp, watch, limit=64 << 20)
            finally:
                resp.close()

        raw = self._call(float(timeout or self.timeout), call)
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

    def download(
        self,
        job_id: str,
        dest: str | os.PathLike,
        timeout: float = 600.0,
        *,
        media_type: str | None = None,
        max_bytes: int = MAX_DOWNLOAD,
    ) -> Path:
        """Save the job's result, whatever its kind (MP4, .npy, JSON: see the status's
        ``result_media_type``; ``media_type``, when given, is the one the answer must have), as the
        new file ``dest`` in an existing folder. Streamed to a temporary file beside it, checked
        against ``Content-Length``, the server's SHA-256 digest, ``max_bytes`` and its first bytes,
        and moved to ``dest`` only if no file is there. ``timeout`` is the deadline of the whole
        download. Raises :class:`BridgeError` (leaving no file behind and any existing one untouched)
        for a short, over-long, corrupted or unexpected answer, a missing folder or an existing file."""
        dest = Path(dest)
        if not dest.parent.is_dir():
            raise BridgeError(f"cannot save the result of job {job_id}: folder {dest.parent} does not exist")
        if os.path.lexists(dest):
            raise BridgeError(f"result of job {job_id} not saved: a file already exists at {dest}")
        tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex[:8]}.part")
        path = _job_path(wire.JOB_RESULT, job_id)

        def call(watch: _Watch) -> None:
            resp = self._send("GET", path, watch, headers={"Accept": "*/*", "Accept-Encoding": "identity"})
            try:
                self._check_result_headers(resp, job_id, media_type, max_bytes)
                length = resp.headers.get("Content-Length")
                digest = (resp.headers.get(wire.CONTENT_SHA256) or "").strip().lower()
                ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
                sha, size, head = hashlib.sha256(), 0, bytearray()
                with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666), "wb") as f:

                    def sink(chunk: bytes) -> None:
                        nonlocal size
                        size += len(chunk)
                        sha.update(chunk)
                        if len(head) < 64:
                            head.extend(chunk[: 64 - len(head)])
                            if len(head) >= 16 and not looks_like(ctype, bytes(head)):
                                raise BridgeError(
                                    f"server at {self.url} sent a result for job {job_id} that is not a {ctype} "
                                    f"(it starts with {bytes(head[:16])!r}); nothing was saved"
                                )
                        f.write(chunk)

                    self._read(resp, watch, sink=sink, limit=max_bytes)
                    f.flush()
                    os.fsync(f.fileno())
            finally:
                resp.close()
            if length is not None and size != int(length):
                raise NoAnswer(f"download of job {job_id} incomplete: {size} of {int(length)} bytes received")
            if digest and sha.hexdigest() != digest:
                raise BridgeError(f"download of job {job_id} corrupted: its SHA-256 differs from the server's")
            if not looks_like(ctype, bytes(head)):
                raise BridgeError(f"server at {self.url} sent a result for job {job_id} that is not a {ctype}")
            try:  # a new file only: the exclusive create fails if anything appeared at dest meanwhile
                os.close(os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666))
            except FileExistsError:
                raise BridgeError(f"result of job {job_id} not saved: a file already exists at {dest}") from None
            os.replace(tmp, dest)

        try:
            self._call(float(timeout), call)
        except OSError as e:  # the temporary file or the destination (not the connection: _call maps those)
            raise BridgeError(f"cannot save the result of job {job_id} at {dest}: {e}") from None
        finally:
            tmp.unlink(missing_ok=True)
        return dest

    def _check_result_headers(self, resp, job_id: str, media_type: str | None, max_bytes: int) -> None:
        """A result answer has a known media type (the job's, when given), a length or a digest,
        and a length within ``max_bytes``."""
        ctype = resp.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if ctype not in wire.RESULT_MEDIA_TYPES or (media_type and ctype != media_type):
            want = media_type or " or ".join(sorted(set(wire.RESULT_MEDIA_TYPES)))
            raise BridgeError(
                f"server at {self.url} sent the result of job {job_id} as {ctype or 'no media type'!r}, "
                f"not {want}; nothing was saved"
            )
        length = resp.headers.get("Content-Length")
        digest = resp.headers.get(wire.CONTENT_SHA256)
        if length is None and not digest:
            raise BridgeError(f"server at {self.url} sent the result of {job_id} without a length or digest")
        try:
            n = None if length is None else int(length)
        except ValueError:
            raise BridgeError(f"server at {self.url} sent a malformed Content-Length") from None
        if n is not None and (n < 0 or n > max_bytes):
            raise BridgeError(f"result of job {job_id} is {n} bytes, more than the {max_bytes} this add-on saves")


def _reason(e: BaseException) -> str:
    """The innermost reason of a requests/urllib3 error, one line."""
    while e.args and isinstance(e.args[0], BaseException):
        e = e.args[0]
    inner = getattr(e, "reason", None)
    return str(inner if isinstance(inner, BaseException) else e).splitlines()[0][:300]
