"""The HTTP API's handlers (an :class:`APIRouter`; paths from ``client.wire``): health, backends,
jobs (submit, list, status, result, cancel). Handlers stay thin: uploads are decoded by
``uploads``, jobs live in ``jobs``, and errors are answered by ``errors``."""

from __future__ import annotations

import re
import shutil
import time
from typing import Annotated

from fastapi import APIRouter, File, Form, HTTPException, Request, UploadFile
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from parascale_blender.client import wire
from parascale_blender.formats.depthmaps import DEFAULT_PNG_SCALE

from . import __version__
from .backends import backend_names, get_backend
from .backends.weights import weights_root
from .dependencies import Config, Job, Queue, Store
from .errors import ERRORS
from .inputs import InputError
from .jobs import KeyPending, file_sha256, new_job_id, queued_status
from .models import BackendInfo, Health, JobList, JobStatus
from .uploads import backend_for, check_job_fits, check_uploads, decode_uploads, parse_params, save_uploads


def operation_id(route) -> str:
    """OpenAPI operation ids are the handlers' names (``submit_job``, ``job_status`` ...): what a
    generated client calls its methods."""
    return route.name


router = APIRouter(generate_unique_id_function=operation_id)


def _weights_dir(backend) -> str | None:
    """The resolved folder a weight-backed backend reads (``<weights root>/<backend>``), else None."""
    sub, root = getattr(backend.Params, "backend_folder", None), weights_root()
    return str(root / sub) if sub and root is not None else None


MIN_FREE_BYTES = 64 * 2**20  # below this much free space on the jobs folder's disk, health is degraded
WRITE_ERROR_WINDOW = 60.0  # seconds a failed status write keeps health degraded


def problems(config, store, jobs) -> list[str]:
    """What keeps the server from working, each in a sentence (no paths): failed status writes, a
    nearly full disk, and what the queue reports (a farm: Redis down, no live workers, lost messages)."""
    out = []
    if store.retry_unsaved():
        out.append(f"job statuses cannot be saved ({store.write_error[1] if store.write_error else 'write failed'})")
    elif store.write_error and time.monotonic() - store.write_error[0] < WRITE_ERROR_WINDOW:
        out.append(f"a job status could not be saved {time.monotonic() - store.write_error[0]:.0f} s ago")
    if not config.read_only:
        try:
            free = shutil.disk_usage(config.jobs_dir).free
        except OSError as e:
            out.append(f"the jobs folder cannot be read ({e.strerror})")
        else:
            if free < MIN_FREE_BYTES:
                out.append(f"the jobs folder's disk is full ({free // 2**20} MiB free)")
    return out + list(getattr(jobs, "problems", list)())


def _local(request: Request) -> bool:
    """Whether the client is on this machine (loopback): only it is told the server's paths."""
    return request.client is not None and wire.is_loopback_host(request.client.host)


@router.get(wire.HEALTH, response_model=Health, responses=ERRORS, tags=["server"])
def health(config: Config, store: Store, jobs: Queue, request: Request) -> Health:
    queued, running = jobs.counts()
    workers = jobs.workers(config.stuck_after)
    wrong = problems(config, store, jobs)
    working = all(w.alive and not w.stuck for w in workers) and not config.read_only and not wrong
    return Health(
        status="ok" if working else "degraded",
        problems=wrong,
        read_only=config.read_only,
        workers=workers,
        version=__version__,
        device=config.devices[0],
        devices=config.devices,
        backends=backend_names(),
        queued=queued,
        running=running,
        weights_dir=str(root) if (root := weights_root()) is not None and _local(request) else None,
        queue="local" if config.queue == "local" else "redis",
    )


@router.get(wire.BACKENDS, response_model=list[BackendInfo], responses=ERRORS, tags=["server"])
def backends(config: Config, jobs: Queue, request: Request) -> list[BackendInfo]:
    out, seen, local, root = [], jobs.workers(config.stuck_after), _local(request), weights_root()
    for name in backend_names():
        b = get_backend(name)
        ok, reason = b.available()
        if not local and root is not None:
            reason = reason.replace(str(root), "<weights>")  # the server's paths stay on its machine
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
                weights_dir=_weights_dir(b) if local else None,
                workers=[w.name for w in seen if name in w.backends],
            )
        )
    return out


@router.post(wire.JOBS, status_code=201, response_model=JobStatus, responses=ERRORS, tags=["jobs"])
async def submit_job(
    request: Request,
    config: Config,
    store: Store,
    jobs: Queue,
    trajectory: Annotated[
        UploadFile | None, File(description="ParaScale trajectory JSON (version 1); generative backends")
    ] = None,
    image: Annotated[
        UploadFile | None, File(description="conditioning image (PNG or JPEG), the first camera's view")
    ] = None,
    depth: Annotated[UploadFile | None, File(description="the image's z-depth: .npy, 16-bit PNG or EXR")] = None,
    video: Annotated[UploadFile | None, File(description="a reference clip (MP4/MOV/MKV/AVI/TS)")] = None,
    backend: Annotated[str, Form(max_length=64)] = wire.DEFAULT_BACKEND,
    params: Annotated[str, Form(max_length=100_000, description="backend parameters, a JSON object")] = "{}",
    depth_scale: Annotated[
        float | None,
        Form(
            gt=0,
            le=1e6,
            allow_inf_nan=False,
            description="world units per stored depth value (depth = value × scale); absent: the format's "
            f"default, {DEFAULT_PNG_SCALE:g} for 16-bit PNG counts (millimetres → metres), 1 for .npy and EXR",
        ),
    ] = None,
    num_frames: Annotated[int | None, Form(ge=1, le=10**9, description="expected frame count (checked)")] = None,
    retries: Annotated[
        int, Form(ge=0, le=3, description="farm queue: times to queue the job again when its worker is lost")
    ] = 0,
) -> JobStatus:
    key = _idempotency_key(request)
    if (existing := _by_key(store, key)) is not None:
        return existing
    b = backend_for(backend)
    given = {wire.TRAJECTORY: trajectory, wire.IMAGE: image, wire.DEPTH: depth, wire.VIDEO: video}
    check_uploads(b, {k: (None if f is None else f.filename or "") for k, f in given.items()})
    parsed = parse_params(b, params)
    uploads = {k: f for k, f in given.items() if f is not None}
    job_id = new_job_id()
    try:
        # Each part arrives spooled by Starlette; it is copied into the job folder in chunks and
        # decoded from there, so no upload is ever held whole in memory.
        folder = await run_in_threadpool(store.stage, job_id)
        try:
            files = {k: f.file for k, f in uploads.items()}
            paths = await run_in_threadpool(save_uploads, files, folder, config.limits)
            decoded = await run_in_threadpool(decode_uploads, paths, config.limits, parsed, depth_scale, num_frames)
            await run_in_threadpool(check_job_fits, b, parsed, decoded.shape)  # 422 before any weights load
        except BaseException:
            await run_in_threadpool(store.discard, job_id)
            raise
        status = queued_status(b, decoded.shape, job_id)
        job_request = {
            "backend": backend,
            "params": parsed.model_dump(mode="json"),
            "depth_scale": depth_scale,
            "num_frames": num_frames,
            "uploaded_names": {k: str(f.filename)[:200] for k, f in uploads.items()},
            "retries": retries,
        }
        stored = await run_in_threadpool(store.create, status, job_request, key)
    except KeyPending:
        raise HTTPException(409, "a submission with this Idempotency-Key is still being stored; retry") from None
    except OSError as e:  # disk full, read-only, quota: the half-made folder is already removed
        why = e.strerror or type(e).__name__  # never str(e): it names the server's paths
        raise HTTPException(507, f"the jobs folder cannot store this job: {why}") from None
    if stored.id == status.id:
        jobs.submit(status.id)
    return stored


IDEMPOTENCY_KEY = re.compile(r"^[A-Za-z0-9_-]{1,128}$")


def _idempotency_key(request: Request) -> str | None:
    key = request.headers.get(wire.IDEMPOTENCY_KEY)
    if key is not None and not IDEMPOTENCY_KEY.match(key):
        raise InputError(f"{wire.IDEMPOTENCY_KEY}: must be 1 to 128 letters, digits, '_' or '-'")
    return key


def _by_key(store, key: str | None) -> JobStatus | None:
    try:
        return store.by_key(key)
    except KeyPending:
        raise HTTPException(409, "a submission with this Idempotency-Key is still being stored; retry") from None


@router.get(wire.JOBS, response_model=JobList, responses=ERRORS, tags=["jobs"])
def list_jobs(store: Store) -> JobList:
    return JobList(jobs=store.all())


@router.get(wire.JOB, response_model=JobStatus, responses=ERRORS, tags=["jobs"])
def job_status(job: Job) -> JobStatus:
    return job


@router.post(wire.JOB_CANCEL, response_model=JobStatus, responses=ERRORS, tags=["jobs"])
def cancel_job(job: Job, jobs: Queue) -> JobStatus:
    return jobs.cancel(job.id)


@router.get(
    wire.JOB_RESULT,
    tags=["jobs"],
    response_class=FileResponse,
    responses={
        **ERRORS,
        200: {
            "content": {t: {} for t in wire.RESULT_MEDIA_TYPES},
            "description": "the job's result: an H.264 MP4 (video backends), a .npy depth map "
            "(depth-anything) or a ParaScale trajectory JSON (track-video); see the job's result_media_type",
        },
    },
)
def job_result(job: Job, store: Store):
    if job.state != wire.DONE:
        raise HTTPException(409, f"job {job.id} is {job.state}, no result to download")
    path = store.result_path(job.id)
    if path is None:
        raise HTTPException(410, f"job {job.id} is done but its result file is gone from the jobs folder")
    digest = job.result_sha256
    if digest is None:  # a job finished by an older server
        digest = file_sha256(path)
        store.update(job.id, result_sha256=digest)
    return FileResponse(
        path,
        media_type=job.result_media_type,
        filename=f"parascale_{job.id}{path.suffix}",
        headers={wire.CONTENT_SHA256: digest},
    )
