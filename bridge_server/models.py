"""pydantic models of every request and response body (the OpenAPI schema is built from them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from parascale_blender.client import wire

JobState = Literal[wire.JOB_STATES]  # type: ignore[valid-type]  # the tuple of state names, as a Literal


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a sentence for people plus one line per problem."""

    error: str
    detail: list[str] = Field(default_factory=list)


class WorkerInfo(BaseModel):
    """A worker serving the queue: a thread of this server (local) or a ``parascale-worker`` process (farm)."""

    name: str
    host: str
    device: str
    backends: list[str]
    heartbeat: float | None = Field(None, description="its last heartbeat (Unix time; farm workers only)")
    job: str | None = Field(None, description="the job it is running, if any")
    alive: bool = Field(True, description="false: the worker has ended (jobs on its device never start)")
    seconds_since_progress: float = Field(0.0, description="since its job last reported progress")
    stuck: bool = Field(False, description="no progress for longer than the server's --stuck-after")


class Health(BaseModel):
    status: Literal["ok", "degraded"] = Field(
        "ok",
        description="degraded: a worker is dead or stuck (see workers), the jobs folder is read-only "
        "(see read_only), or something in problems",
    )
    problems: list[str] = Field(
        default_factory=list,
        description="why the server is degraded besides workers and read_only: status writes failing, a full "
        "disk; on a farm, Redis not answering, no live worker, queued jobs whose messages were lost",
    )
    read_only: bool = Field(
        False, description="the jobs folder is not writable: its jobs and results are served, new jobs get 507"
    )
    version: str
    api: int = Field(wire.API_VERSION, description="the wire protocol's version (an add-on of another one refuses it)")
    device: str = Field(description="the first worker's torch device")
    devices: list[str]
    backends: list[str]
    queued: int
    running: int
    weights_dir: str | None = Field(
        None, description="the resolved weights root (--weights / PARASCALE_WEIGHTS); told to loopback clients only"
    )
    queue: str = Field("local", description="'local' (worker threads in this process) or the farm's redis:// URL")
    workers: list[WorkerInfo] = Field(default_factory=list, description="the workers seen, and whether they work")


class BackendInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON schema of the backend's params")
    available: bool
    reason: str = ""
    weights_present: bool
    uploads: list[str] = Field(description="the multipart uploads a job of this backend needs (no others)")
    result_media_type: str = Field(description="media type of GET /v1/jobs/{id}/result")
    weights_dir: str | None = Field(
        None, description="the folder its models are read from (weight-backed only; told to loopback clients only)"
    )
    workers: list[str] = Field(default_factory=list, description="names of the workers seen that serve it")


class ClipParallax(BaseModel):
    """The closed loop of a returned clip (``bridge_server.clip_parallax``): per-step Π in flow measure
    (normalised image units; entry t is the step from ``frames[t-1]`` to ``frames[t]``, entry 0 null)."""

    frames: list[int] = Field(default_factory=list, description="the trajectory's frame numbers (the scene's frames)")
    realized: list[float | None] = Field(default_factory=list, description="Π of the clip (DIS flow minus rotation)")
    target: list[float | None] = Field(default_factory=list, description="Π of the warp render of the trajectory")
    reference: list[float | None] | None = Field(
        None, description="the reference's Π (the trajectory's pi_ref) carried into flow measure; null without pi_ref"
    )
    pce: float | None = Field(None, description="mean |ln(realized / reference)| (or / target, see against)")
    against: Literal["reference", "target"] = Field("target", description="what the PCE compares the clip with")
    label: str = Field("PCE", description="how to show the PCE, e.g. 'PCE vs reference, flow/flow'")
    reference_measure: str | None = Field(None, description="the rescale's measure of pi_ref (exact, harmonic, ...)")
    working_size: list[int] = Field(default_factory=list, description="[width, height] of the frames measured")
    seconds: float = Field(0.0, description="time the measurement took (decode, warp render, flow)")
    seconds_per_frame: float = 0.0
    render_seconds: float = Field(0.0, description="of which decoding and the warp render")
    error: str | None = Field(None, description="why the clip could not be measured (the job is still done)")


class JobStatus(BaseModel):
    """A job as persisted in ``status.json`` and reported by the API."""

    id: str
    backend: str
    state: JobState
    progress: float = Field(0.0, ge=0.0, le=1.0)
    message: str = ""
    error: str | None = None
    created: float
    started: float | None = None
    finished: float | None = None
    frames: int = Field(description="frames of the result (1 for a depth map; for track-video, tracked frames)")
    width: int
    height: int
    fps: float = Field(description="frames per second (0 for a single image result)")
    first_frame: int = Field(description="the trajectory's first frame number (where the clip starts)")
    generation_seconds: float | None = Field(None, description="time spent inside the backend")
    camera_gauge: float | None = Field(
        None, description="camera-conditioned backends: the factor applied to the trajectory's translations"
    )
    result_sha256: str | None = Field(None, description="hex SHA-256 of the result file (when done)")
    result_media_type: str = Field(
        wire.MP4,
        description="what GET /v1/jobs/{id}/result serves: video/mp4, application/octet-stream (.npy depth) "
        "or application/json (ParaScale trajectory)",
    )
    worker: str | None = Field(None, description="the farm worker that claimed the job (farm queue only)")
    heartbeat: float | None = Field(None, description="its worker's last heartbeat while running (farm queue only)")
    parallax: ClipParallax | None = Field(
        None, description="the clip's realized Π and PCE (video results along a trajectory, when done)"
    )
    attempt: int = Field(0, ge=0, description="0, or how many times a lost worker's job was queued again")


class JobList(BaseModel):
    jobs: list[JobStatus]
