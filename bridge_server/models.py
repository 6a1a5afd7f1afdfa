"""pydantic models of every request and response body (the OpenAPI schema is built from them)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

JobState = Literal["queued", "running", "done", "failed", "cancelled", "interrupted"]
FINISHED: frozenset[str] = frozenset({"done", "failed", "cancelled", "interrupted"})


class ErrorBody(BaseModel):
    """Every 4xx/5xx answer: a sentence for people plus one line per problem."""

    error: str
    detail: list[str] = Field(default_factory=list)


class Health(BaseModel):
    status: Literal["ok"] = "ok"
    version: str
    device: str = Field(description="the first worker's torch device")
    devices: list[str]
    backends: list[str]
    queued: int
    running: int


class BackendInfo(BaseModel):
    name: str
    description: str
    parameters: dict[str, Any] = Field(description="JSON schema of the backend's params")
    available: bool
    reason: str = ""
    weights_present: bool


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
    frames: int
    width: int
    height: int
    fps: float
    first_frame: int = Field(description="the trajectory's first frame number (where the clip starts)")
    generation_seconds: float | None = Field(None, description="time spent inside the backend")


class JobList(BaseModel):
    jobs: list[JobStatus]
