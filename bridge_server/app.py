"""The HTTP API (FastAPI, prefix ``/v1``): health, backends, jobs (submit, list, status, result, cancel).

Every error answer is an :class:`~bridge_server.models.ErrorBody` JSON. When a token is
configured, every request (the OpenAPI document included) needs ``Authorization: Bearer <token>``,
compared in constant time. Request bodies beyond the upload limit get 413 before any parsing.
"""

from __future__ import annotations

import hmac
import json
import os
import re
import time
from contextlib import asynccontextmanager
from pathlib import Path as FilePath
from typing import Annotated

from fastapi import FastAPI, File, Form, HTTPException, Path, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import __version__
from .backends import backend_names, get_backend
from .backends.weights import ENV as WEIGHTS_ENV
from .backends.weights import weights_root
from .config import ServerConfig
from .inputs import (
    EXR_MAGIC,
    NPY_MAGIC,
    PNG_MAGIC,
    InputError,
    decode_depth,
    decode_image,
    match_sizes,
    parse_trajectory,
    probe_video,
    video_file_name,
)
from .jobs import RESULT_MEDIA_TYPES, JobQueue, JobStore, new_job_id
from .models import BackendInfo, ErrorBody, Health, JobList, JobStatus

UNSAFE_NAME = re.compile(r"[/\\\x00-\x1f]")
JobId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="32 hex digits")]
ERRORS = {code: {"model": ErrorBody} for code in (401, 404, 409, 410, 413, 422)}


def _error(status: int, error: str, detail: list[str] | None = None, headers: dict | None = None) -> JSONResponse:
    return JSONResponse(ErrorBody(error=error, detail=detail or []).model_dump(), status_code=status, headers=headers)


class GuardMiddleware:
    """Pure ASGI: bearer-token check (constant time) and the request-body size limit (413)."""

    def __init__(self, app, token: str | None, max_body: int):
        self.app, self.max_body = app, max_body
        self.token = f"Bearer {token}".encode() if token else None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        if self.token is not None and not hmac.compare_digest(headers.get(b"authorization", b""), self.token):
            resp = _error(
                401, "missing or wrong token", ["send 'Authorization: Bearer <token>'"], {"WWW-Authenticate": "Bearer"}
            )
            return await resp(scope, receive, send)
        too_big = _error(413, f"request body larger than the limit of {self.max_body} bytes")
        try:
            declared = int(headers.get(b"content-length", b"0"))
        except ValueError:
            return await _error(400, "malformed Content-Length header")(scope, receive, send)
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


def _weights_dir(backend) -> str | None:
    """The resolved folder a weight-backed backend reads (``<weights root>/<backend>``), else None."""
    sub, root = getattr(backend.Params, "backend_folder", None), weights_root()
    return str(root / sub) if sub and root is not None else None


def create_app(config: ServerConfig) -> FastAPI:
    if config.weights_dir is not None:
        # Weight-backed backends read the root from the environment at call time (weights.py).
        os.environ[WEIGHTS_ENV] = str(FilePath(config.weights_dir).expanduser().resolve())
    store = JobStore(config.jobs_dir)
    jobs = JobQueue(store, config.devices, config.limits)
    limits = config.limits

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        jobs.start()
        yield
        jobs.stop()

    app = FastAPI(title="ParaScale generation server", version=__version__, lifespan=lifespan)
    app.state.store, app.state.jobs = store, jobs
    app.add_middleware(GuardMiddleware, token=config.token, max_body=limits.max_upload_bytes)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, exc: RequestValidationError):
        lines = [f"{'.'.join(str(p) for p in e.get('loc', ()))}: {e.get('msg', '')}" for e in exc.errors()]
        return _error(422, "invalid request", lines)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException):
        return _error(exc.status_code, str(exc.detail))

    @app.exception_handler(InputError)
    async def _input(request: Request, exc: InputError):
        return _error(422, "invalid job inputs", exc.problems)

    @app.exception_handler(Exception)
    async def _crash(request: Request, exc: Exception):
        return _error(500, f"internal error: {type(exc).__name__}: {exc}")

    def _job(job_id: str) -> JobStatus:
        status = store.get(job_id)
        if status is None:
            raise HTTPException(404, f"no job {job_id}")
        return status

    @app.get("/v1/health", response_model=Health, responses=ERRORS)
    def health() -> Health:
        queued, running = jobs.counts()
        return Health(
            version=__version__,
            device=config.devices[0],
            devices=config.devices,
            backends=backend_names(),
            queued=queued,
            running=running,
            weights_dir=str(root) if (root := weights_root()) is not None else None,
        )

    @app.get("/v1/backends", response_model=list[BackendInfo], responses=ERRORS)
    def backends() -> list[BackendInfo]:
        out = []
        for name in backend_names():
            b = get_backend(name)
            ok, reason = b.available()
            out.append(
                BackendInfo(
                    name=name,
                    description=b.description,
                    parameters=b.parameters_schema(),
                    available=ok,
                    reason=reason,
                    weights_present=b.weights_present(),
                    uploads=list(b.uploads),
                    result_media_type=b.result_media_type,
                    weights_dir=_weights_dir(b),
                )
            )
        return out

    @app.post("/v1/jobs", status_code=201, response_model=JobStatus, responses=ERRORS)
    async def submit_job(
        trajectory: Annotated[
            UploadFile | None, File(description="ParaScale trajectory JSON (version 1); generative backends")
        ] = None,
        image: Annotated[
            UploadFile | None, File(description="conditioning image (PNG or JPEG), the first camera's view")
        ] = None,
        depth: Annotated[UploadFile | None, File(description="the image's z-depth: .npy, 16-bit PNG or EXR")] = None,
        video: Annotated[UploadFile | None, File(description="a reference clip (MP4/MOV/MKV/AVI/TS)")] = None,
        backend: Annotated[str, Form(max_length=64)] = "warp",
        params: Annotated[str, Form(max_length=100_000, description="backend parameters, a JSON object")] = "{}",
        depth_scale: Annotated[
            float, Form(gt=0, le=1e6, allow_inf_nan=False, description="depth = value × scale")
        ] = 1.0,
        num_frames: Annotated[int | None, Form(ge=1, le=10**9, description="expected frame count (checked)")] = None,
    ) -> JobStatus:
        b = get_backend(backend)
        if b is None:
            raise InputError(f"backend: unknown {backend!r}; available: {', '.join(backend_names())}")
        ok, reason = b.available()
        if not ok:
            raise InputError(f"backend: {backend!r} is not available: {reason}")
        given = {"trajectory": trajectory, "image": image, "depth": depth, "video": video}
        problems = [
            f"{k}: required by backend {backend!r} (it takes {', '.join(b.uploads)})"
            for k in b.uploads
            if given[k] is None
        ]
        problems += [
            f"{k}: not taken by backend {backend!r} (it takes {', '.join(b.uploads)})"
            for k, f in given.items()
            if f is not None and k not in b.uploads
        ]
        if problems:
            raise InputError(problems)
        try:
            raw_params = json.loads(params)
            parsed = b.Params.model_validate(raw_params)
        except json.JSONDecodeError as e:
            raise InputError(f"params: invalid JSON at column {e.colno}: {e.msg}") from None
        except ValidationError as e:
            lines = [f"params.{'.'.join(str(p) for p in er['loc'])}: {er['msg']}" for er in e.errors()]
            raise InputError(lines or ["params: must be a JSON object"]) from None
        uploads = {k: f for k, f in given.items() if f is not None}
        bad_names = [
            f"{field}: file name {f.filename!r} is not a plain name (no '/', '\\', '..' or control characters)"
            for field, f in uploads.items()
            if f.filename and (UNSAFE_NAME.search(f.filename) or ".." in f.filename)
        ]
        if bad_names:
            raise InputError(bad_names)
        blobs = {k: await f.read() for k, f in uploads.items()}
        status, files = await run_in_threadpool(_validate, b, blobs, parsed, depth_scale, num_frames)
        request = {
            "backend": backend,
            "params": parsed.model_dump(mode="json"),
            "depth_scale": depth_scale,
            "uploaded_names": {k: str(f.filename)[:200] for k, f in uploads.items()},
        }
        await run_in_threadpool(store.create, status, request, files)
        jobs.submit(status.id)
        return status

    def _validate(b, blobs: dict[str, bytes], params, depth_scale: float, num_frames: int | None):
        """Decode and check the uploads (worker thread): (queued JobStatus, stored files by name)."""
        files: dict[str, bytes] = {}
        shape = {"frames": 1, "width": 0, "height": 0, "fps": 0.0, "first_frame": 1}
        traj = img = dep = None
        if "trajectory" in blobs:
            traj = parse_trajectory(blobs["trajectory"], limits)
            if num_frames is not None and num_frames != len(traj):
                if num_frames > limits.max_frames:
                    raise InputError(f"num_frames: {num_frames} exceeds the limit of {limits.max_frames}")
                raise InputError(f"num_frames: {num_frames} given but the trajectory has {len(traj)} frames")
            files["trajectory.json"] = blobs["trajectory"]
            shape.update(frames=len(traj), width=traj.width, height=traj.height, fps=traj.fps)
            shape["first_frame"] = int(traj.frames[0])
        if "image" in blobs:
            img = decode_image(blobs["image"], limits)
            files["image.png" if blobs["image"].startswith(PNG_MAGIC) else "image.jpg"] = blobs["image"]
            if traj is None:
                shape.update(height=img.shape[0], width=img.shape[1])
        if "depth" in blobs:
            d = blobs["depth"]
            dep = decode_depth(d, depth_scale, limits)
            ext = ".npy" if d.startswith(NPY_MAGIC) else ".exr" if d.startswith(EXR_MAGIC) else ".png"
            files[f"depth{ext}"] = d
        if traj is not None and img is not None and dep is not None:
            match_sizes(traj, img, dep)
        if "video" in blobs:
            name = video_file_name(blobs["video"])
            frames, w, h, fps = probe_video(blobs["video"])
            every, most = getattr(params, "every", 1), getattr(params, "max_frames", None)
            tracked = -(-frames // every) if frames else 0
            tracked = min(tracked, most) if most else tracked
            if tracked > limits.max_frames:
                raise InputError(
                    f"video: {tracked} frames to track exceed the limit of {limits.max_frames}; "
                    "set params.every or params.max_frames"
                )
            files[name] = blobs["video"]
            shape.update(frames=tracked, width=w, height=h, fps=fps)
        status = JobStatus(
            id=new_job_id(),
            backend=b.name,
            state="queued",
            message="queued",
            created=time.time(),
            result_media_type=b.result_media_type,
            **shape,
        )
        return status, files

    @app.get("/v1/jobs", response_model=JobList, responses=ERRORS)
    def list_jobs() -> JobList:
        return JobList(jobs=store.all())

    @app.get("/v1/jobs/{job_id}", response_model=JobStatus, responses=ERRORS)
    def job_status(job_id: JobId) -> JobStatus:
        return _job(job_id)

    @app.post("/v1/jobs/{job_id}/cancel", response_model=JobStatus, responses=ERRORS)
    def cancel_job(job_id: JobId) -> JobStatus:
        _job(job_id)
        return jobs.cancel(job_id)

    @app.get(
        "/v1/jobs/{job_id}/result",
        response_class=FileResponse,
        responses={
            **ERRORS,
            200: {
                "content": {t: {} for t in RESULT_MEDIA_TYPES},
                "description": "the job's result: an H.264 MP4 (video backends), a .npy depth map "
                "(depth-anything) or a ParaScale trajectory JSON (track-video); see the job's result_media_type",
            },
        },
    )
    def job_result(job_id: JobId):
        status = _job(job_id)
        if status.state != "done":
            raise HTTPException(409, f"job {job_id} is {status.state}, no result to download")
        path = store.result_path(job_id)
        if path is None:
            raise HTTPException(410, f"job {job_id} is done but its result file is gone from the jobs folder")
        return FileResponse(path, media_type=status.result_media_type, filename=f"parascale_{job_id}{path.suffix}")

    return app
