"""Error answers: every 4xx/5xx is an :class:`~bridge_server.models.ErrorBody` JSON (``error``, a
sentence for people, and ``detail``, one line per problem). :func:`install_error_handlers` maps
request validation errors and :class:`~bridge_server.inputs.InputError` to 422, HTTP errors to
their code (a form that could not be parsed for want of temporary space is 507, not 400) and
anything else to 500. No answer names a path on the server."""

from __future__ import annotations

import errno

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from .inputs import InputError
from .models import ErrorBody

ERRORS = {code: {"model": ErrorBody} for code in (401, 403, 404, 409, 410, 413, 422, 507)}  # documented on every route


def error_response(status: int, error: str, detail: list[str] | None = None, headers: dict | None = None):
    """The :class:`ErrorBody` answer with HTTP ``status``."""
    return JSONResponse(ErrorBody(error=error, detail=detail or []).model_dump(), status_code=status, headers=headers)


async def _invalid(request: Request, exc: RequestValidationError):
    lines = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
    return error_response(422, "invalid request", lines)


NO_SPACE = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


async def _http(request: Request, exc: StarletteHTTPException):
    cause = exc.__cause__
    if exc.status_code == 400 and isinstance(cause, OSError) and cause.errno in NO_SPACE:
        # FastAPI answers 400 to any error while it parses a form; a full temp dir is the server's
        return error_response(507, f"the server cannot hold this upload: {cause.strerror or 'no space left'}")
    return error_response(exc.status_code, str(exc.detail))


async def _input(request: Request, exc: InputError):
    return error_response(422, "invalid job inputs", exc.problems)


async def _crash(request: Request, exc: Exception):
    return error_response(500, f"internal error: {type(exc).__name__}: {exc}")


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(RequestValidationError, _invalid)
    app.add_exception_handler(StarletteHTTPException, _http)
    app.add_exception_handler(InputError, _input)
    app.add_exception_handler(Exception, _crash)
