"""What a route needs besides its request: the server's settings, job store and queue, and the job
a ``{job_id}`` path names (404 when unknown), as FastAPI dependencies.

Authentication and the body-size limit are not dependencies but :class:`GuardMiddleware`, a pure
ASGI layer in front of FastAPI: it must also cover ``/openapi.json`` and refuse an oversized body
(413): by its Content-Length before anything reads it, or, without one, once the bytes streamed
through pass the limit (the body is never buffered here). With a token every request needs
``Authorization: Bearer <token>``, compared in constant time.

Browser safety (a web page must not drive the loopback server): the ``Host`` header must name a
loopback name (``localhost``, ``127.0.0.1``, ``::1``), the bound host or an ``--allow-host`` name
(this defeats DNS rebinding), and a request carrying an ``Origin`` header (every cross-origin
browser request does) is refused unless that origin is the server itself or an ``--allow-origin``.
Both refusals are 403, before the token check and before the body is read. A request repeating
one of those headers, ``Authorization`` or ``Content-Length`` is refused (400): no copy silently wins.
"""

from __future__ import annotations

import hmac
import ipaddress
import urllib.parse
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request
from fastapi.responses import JSONResponse

from parascale_blender.client import wire

from .config import ServerConfig
from .errors import error_response
from .executor import Executor
from .jobs import JobStore
from .models import JobStatus

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "::1")
SINGLE_HEADERS = {"host", "origin", "authorization", "content-length"}  # refused when repeated (400)


def _host_name(value: str) -> str | None:
    """The host of a ``Host`` header value (``name[:port]``, ``[v6][:port]``), lower case; None if malformed."""
    if not value or any(c in value for c in "/?#@\\ "):
        return None
    try:
        parts = urllib.parse.urlsplit("//" + value)
        parts.port  # noqa: B018 - raises ValueError for a malformed port
    except ValueError:
        return None
    return (parts.hostname or "").lower() or None


def _is_wildcard(host: str) -> bool:
    try:
        return ipaddress.ip_address(host.strip("[]")).is_unspecified
    except ValueError:
        return False


class GuardMiddleware:
    """Pure ASGI: Host allow-list and Origin check (403), bearer-token check (constant time) and
    the request-body size limit (413)."""

    def __init__(
        self,
        app,
        token: str | None,
        max_body: int,
        host: str = "127.0.0.1",
        port: int = wire.DEFAULT_PORT,
        allow_hosts: tuple[str, ...] = (),
        allow_origins: tuple[str, ...] = (),
        scheme: str = "http",
    ):
        self.app, self.max_body, self.scheme = app, max_body, scheme
        self.secret = token or None  # the token itself (a challenge's proof is keyed with it)
        self.token = wire.bearer(token).encode() if token else None  # the Authorization value expected
        self.any_host = _is_wildcard(host)  # bound to every interface: the token (required) guards it
        self.hosts = {h.lower().strip("[]") for h in (*LOOPBACK_NAMES, host, *allow_hosts)}
        self.port = port
        self.origins = {o.rstrip("/").lower() for o in allow_origins}

    def _refusal(self, headers: dict) -> str | None:
        """Why a request must be refused for its Host or Origin header, or None."""
        raw_host = headers.get(b"host", b"").decode("latin-1")
        name = _host_name(raw_host)
        if not self.any_host and (name is None or name.strip("[]") not in self.hosts):
            return f"Host {raw_host!r} is not served here (allowed: {', '.join(sorted(self.hosts))}; see --allow-host)"
        origin = headers.get(b"origin")
        if origin is None:
            return None
        text = origin.decode("latin-1").rstrip("/").lower()
        if text in self.origins:
            return None
        try:
            o = urllib.parse.urlsplit(text)
            port = o.port or (443 if o.scheme == "https" else 80)
            same = o.scheme == self.scheme and (o.hostname or "") in self.hosts and port == self.port
        except ValueError:
            same = False
        if same:
            return None
        return f"cross-origin request from {text!r} refused (a web page may not drive this server; see --allow-origin)"

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if len(headers) != len(scope["headers"]):  # a repeated header: which one counts is ambiguous
            names = [k for k, _ in scope["headers"]]
            twice = sorted({k.decode("latin-1") for k in names if names.count(k) > 1} & SINGLE_HEADERS)
            if twice:
                return await error_response(400, f"the {', '.join(twice)} header is sent twice")(scope, receive, send)
        refusal = self._refusal(headers)
        if refusal is not None:
            return await error_response(403, refusal)(scope, receive, send)
        challenge = headers.get(wire.TOKEN_CHALLENGE.lower().encode())
        if challenge is not None and scope.get("path") == wire.HEALTH and scope.get("method") == "GET":
            return await self._prove(challenge)(scope, receive, send)
        if self.token is not None and not hmac.compare_digest(
            headers.get(wire.AUTHORIZATION.lower().encode(), b""), self.token
        ):
            hint = [f"send '{wire.AUTHORIZATION}: {wire.bearer('<token>')}'"]
            resp = error_response(401, "missing or wrong token", hint, {"WWW-Authenticate": wire.BEARER})
            return await resp(scope, receive, send)
        too_big = f"request body larger than the limit of {self.max_body} bytes"
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await error_response(400, "malformed Content-Length header")(scope, receive, send)
        if declared > self.max_body:
            return await error_response(413, too_big)(scope, receive, send)
        size = 0

        async def counted():  # the body streams through (never buffered here), counted as it comes
            nonlocal size
            message = await receive()
            size += len(message.get("body", b""))
            if size > self.max_body:  # a chunked body without Content-Length, or a lying one
                raise HTTPException(413, too_big)
            return message

        return await self._guarded(scope, counted, send)

    def _prove(self, challenge: bytes):
        """The answer to a token challenge (no token needed to ask): ``{"proof": hex}`` proves this
        server holds the token without it being sent; ``null`` when it has none (see :mod:`..client.wire`)."""
        nonce = challenge.decode("latin-1")
        lo, hi = wire.NONCE_CHARS
        if not (lo <= len(nonce) <= hi) or any(c not in "0123456789abcdef" for c in nonce):
            return error_response(400, f"{wire.TOKEN_CHALLENGE} must be {lo}-{hi} lowercase hex digits")
        return JSONResponse({"proof": None if self.secret is None else wire.token_proof(self.secret, nonce)})

    async def _guarded(self, scope, receive, send):
        """Run the app; an exception that escaped every handler becomes a 500 answer here, so the
        server neither logs a traceback per request nor drops the keep-alive connection."""
        started = False

        async def tracking_send(message):
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except HTTPException as e:  # raised while reading the body outside a route (size limit)
            if started:
                raise
            await error_response(e.status_code, str(e.detail))(scope, receive, send)
        except Exception as e:  # noqa: BLE001 - the last line of defence
            if started:
                raise
            await error_response(500, f"internal error: {type(e).__name__}: {str(e)[:300]}")(scope, receive, send)


def _config(request: Request) -> ServerConfig:
    return request.app.state.config


def _store(request: Request) -> JobStore:
    return request.app.state.store


def _queue(request: Request) -> Executor:
    return request.app.state.jobs


Config = Annotated[ServerConfig, Depends(_config)]
Store = Annotated[JobStore, Depends(_store)]
Queue = Annotated[Executor, Depends(_queue)]
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="32 hex digits")]


def _existing_job(job_id: JobId, store: Store) -> JobStatus:
    status = store.get(job_id)
    if status is None:
        raise HTTPException(404, f"no job {job_id}")
    return status


Job = Annotated[JobStatus, Depends(_existing_job)]  # the job named by the path (404 when unknown)
