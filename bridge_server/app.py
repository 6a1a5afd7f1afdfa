"""The application factory: :func:`create_app` wires the settings, the job store and worker queue,
the guard middleware (token, body limit), the error handlers and the routes (``/v1``).

Modules: ``routes`` (handlers), ``dependencies`` (what handlers need; :class:`GuardMiddleware`),
``errors`` (every error answer is an ``ErrorBody`` JSON), ``uploads`` (decoding a job's uploads).
"""

from __future__ import annotations

import os
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI

from . import __version__
from .backends.weights import ENV as WEIGHTS_ENV
from .config import ServerConfig
from .dependencies import GuardMiddleware
from .errors import install_error_handlers
from .executor import make_store_and_executor
from .routes import router


def create_app(config: ServerConfig) -> FastAPI:
    if config.weights_dir is not None:
        # Weight-backed backends read the root from the environment at call time (weights.py).
        os.environ[WEIGHTS_ENV] = str(Path(config.weights_dir).expanduser().resolve())
    store, jobs = make_store_and_executor(config)  # --queue local (threads here) or redis:// (a farm)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        jobs.start()
        yield
        jobs.stop()

    app = FastAPI(title="ParaScale generation server", version=__version__, lifespan=lifespan)
    app.state.config, app.state.store, app.state.jobs = config, store, jobs
    app.add_middleware(
        GuardMiddleware,
        token=config.token,
        max_body=config.limits.max_upload_bytes,
        host=config.host,
        port=config.port,
        allow_hosts=tuple(config.allow_hosts),
        allow_origins=tuple(config.allow_origins),
        scheme="https" if config.tls else "http",
    )
    install_error_handlers(app)
    app.include_router(router)
    return app
