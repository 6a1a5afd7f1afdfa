"""What a route needs besides its request: the server's settings, job store and queue, and the job
a ``{job_id}`` path names (404 when unknown), as FastAPI dependencies.

Authentication and the body-size limit are not dependencies but :class:`GuardMiddleware`, a pure
ASGI layer in front of FastAPI: it must also cover ``/openapi.json`` and refuse an oversized body
(413) before anything parses it. With a token every request needs ``Authorization: Bearer <token>``,
compared in constant time.
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from parascale_blender.client import wire

from .config import ServerConfig
from .errors import error_response
from .executor import Executor
from .jobs import JobStore
from .models import JobStatus


class GuardMiddleware:
    """Pure ASGI: bearer-token check (constant time) and the request-body size limit (413)."""

    def __init__(self, app, token: str | None, max_body: int):
        self.app, self.max_body = app, max_body
        self.token = wire.bearer(token).encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.token is not None and not hmac.compare_digest(
            headers.get(wire.AUTHORIZATION.lower().encode(), b""), self.token
        ):
            hint = [f"send '{wire.AUTHORIZATION}: {wire.bearer('<token>')}'"]
            resp = error_response(401, "missing or wrong token", hint, {"WWW-Authenticate": wire.BEARER})
            return await resp(scope, receive, send)
        too_big = error_response(413, f"request body larger than the limit of {self.max_body} bytes")
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await error_response(400, "malformed Content-Length header")(scope, receive, send)
        if declared > self.max_body:
            return await too_big(scope, receive, send)
        if scope["method"] not in ("POST", "PUT", "PATCH"):
            return await self.app(scope, receive, send)
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunks.append(message.get("body", b""))
            size += len(chunks[-1])
            more = message.get("more_body", False)
            if size > self.max_body:
                return await too_big(scope, receive, send)
        body, replayed = b"".join(chunks), False

        async def replay():
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)


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
