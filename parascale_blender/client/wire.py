"""The wire between the add-on's client and the generation server: every name both sides must agree on.

Pure Python (the standard library and ``formats.magic``): it ships in the Blender extension and
``bridge_server`` imports it, so each word of the protocol is written once.

Contract (HTTP/JSON, prefix :data:`API`):

- ``GET  /v1/health``, ``GET /v1/backends``, ``GET /v1/jobs``, ``GET /v1/jobs/{job_id}``,
  ``POST /v1/jobs/{job_id}/cancel``, ``GET /v1/jobs/{job_id}/result`` and ``POST /v1/jobs`` (multipart:
  the file uploads :data:`UPLOADS` a backend takes, plus the form fields :data:`FORM_FIELDS`).
  Job ids are 32 hex digits. Every error answer is JSON ``{"error": str, "detail": [str]}``.
- With a token, every request carries ``Authorization: Bearer <token>`` (:func:`bearer`). Before the
  first one, a client sends ``GET /v1/health`` with :data:`TOKEN_CHALLENGE` (a random nonce) and no
  token; the server answers ``{"proof": token_proof(token, nonce)}`` (``null`` without a token), so the
  token goes only to a server that already holds it.
- ``POST /v1/jobs`` may carry :data:`IDEMPOTENCY_KEY` (1-128 of ``[A-Za-z0-9_-]``): a job submitted
  with a key already seen is not created again; the first job's status is answered.
- ``GET .../result`` answers :data:`CONTENT_SHA256` (hex SHA-256 of the file) and ``Content-Length``.
- A job's ``state`` is one of :data:`JOB_STATES`; :data:`FINISHED` are final on the server.
- Uploads are recognised by their first bytes (:func:`sniff_suffix`), never by their names; the
  server stores each as ``<field><suffix>``.
- A result is served as one of :data:`RESULT_MEDIA_TYPES` (the job's ``result_media_type``).
- ``depth_scale`` is in world units per stored depth value; absent means the format's default
  (``formats.depthmaps.DEFAULT_PNG_SCALE`` for 16-bit PNG, 1 for float formats).
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import urllib.parse

from ..formats.magic import (  # noqa: F401 (re-exported: the upload vocabulary)
    EXR_MAGIC,
    JPEG_MAGIC,
    MKV_MAGIC,
    MPEG_PS_MAGIC,
    NPY_MAGIC,
    PNG_MAGIC,
    VIDEO_SUFFIXES,
    sniff_suffix,
)

# The protocol's version: ``GET /v1/health`` answers it as ``api`` (absent: a server from before it was
# reported, which speaks version 1). Raised whenever a change breaks the other side.
API_VERSION = 1

DEFAULT_PORT = 8765
DEFAULT_URL = f"http://127.0.0.1:{DEFAULT_PORT}"

# -- paths -------------------------------------------------------------------------------------
API = "/v1"
HEALTH = f"{API}/health"
BACKENDS = f"{API}/backends"
JOBS = f"{API}/jobs"
JOB = f"{JOBS}/{{job_id}}"  # str.format(job_id=...) on the client, a path template on the server
JOB_CANCEL = f"{JOB}/cancel"
JOB_RESULT = f"{JOB}/result"

# -- headers -----------------------------------------------------------------------------------
AUTHORIZATION = "Authorization"
BEARER = "Bearer"
IDEMPOTENCY_KEY = "Idempotency-Key"  # on POST /v1/jobs: the same key again returns the same job
CONTENT_SHA256 = "X-Content-SHA256"  # on a result: the hex SHA-256 of the whole file


TOKEN_CHALLENGE = "X-ParaScale-Challenge"  # GET /v1/health with a client's random nonce (hex), no token sent
NONCE_CHARS = (32, 128)  # a challenge's length in hex digits


def bearer(token: str) -> str:
    """The ``Authorization`` header value for ``token``."""
    return f"{BEARER} {token}"


def token_proof(token: str, nonce: str) -> str:
    """Hex HMAC-SHA256 of ``nonce`` under ``token``: a server answers a challenge with it, so a client
    learns that the server holds its token before sending it (never to whatever else listens there)."""
    return hmac.new(token.encode(), b"parascale-token-proof\0" + nonce.encode(), hashlib.sha256).hexdigest()


# -- job states ----------------------------------------------------------------------------------
QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED = (
    "queued",
    "running",
    "done",
    "failed",
    "cancelled",
    "interrupted",
)
JOB_STATES = (QUEUED, RUNNING, DONE, FAILED, CANCELLED, INTERRUPTED)
FINISHED = frozenset({DONE, FAILED, CANCELLED, INTERRUPTED})  # a job in one of these never changes again

# -- backends ------------------------------------------------------------------------------------
WARP = "warp"
DIFFUSERS_I2V = "diffusers-i2v"
WAN_FUN_CAMERA = "wan-fun-camera"
DEPTH_ANYTHING = "depth-anything"
TRACK_VIDEO = "track-video"
DEFAULT_BACKEND = WARP

# -- uploads and form fields of POST /v1/jobs ----------------------------------------------------
TRAJECTORY, IMAGE, DEPTH, VIDEO = "trajectory", "image", "depth", "video"
UPLOADS = (TRAJECTORY, IMAGE, DEPTH, VIDEO)
FORM_FIELDS = ("backend", "params", "depth_scale", "num_frames", "retries")  # retries: farm queue only

# -- the closed loop: a done video job's status carries its clip's realized parallax --------------
# ``status[PARALLAX]`` (null when not measured): per-step lists aligned with ``PI_FRAMES`` (entry t is
# the step from frame t-1 to t, entry 0 null), all in flow measure; ``PCE`` against ``PCE_AGAINST``,
# shown as ``PCE_LABEL``; ``PARALLAX_ERROR`` says why a clip could not be measured.
PARALLAX = "parallax"
PI_FRAMES, PI_REALIZED, PI_TARGET, PI_REFERENCE = "frames", "realized", "target", "reference"
PCE, PCE_AGAINST, PCE_LABEL, PARALLAX_ERROR = "pce", "against", "label", "error"

# -- media types ---------------------------------------------------------------------------------
MP4 = "video/mp4"
OCTET_STREAM = "application/octet-stream"
NPY = OCTET_STREAM  # a .npy float32 (H, W) depth map
JSON = "application/json"  # a ParaScale trajectory
RESULT_MEDIA_TYPES = (MP4, NPY, JSON)

# -- file kinds (signatures live in formats.magic) ------------------------------------------------
IMAGE_SUFFIXES = (".png", ".jpg")
DEPTH_SUFFIXES = (".npy", ".png", ".exr")


def api_mismatch(health: dict, url: str = "the server") -> str | None:
    """None when the server's ``/v1/health`` answer speaks this add-on's :data:`API_VERSION`; else a
    sentence saying which of the two to update."""
    api = health.get("api", 1)
    if not isinstance(api, int) or isinstance(api, bool):
        return f"{url} reports an API version {api!r} this add-on does not understand: update both"
    if api == API_VERSION:
        return None
    server = f"{url} (server {health.get('version', '?')}) speaks API version {api}, this add-on {API_VERSION}"
    if api > API_VERSION:
        return f"{server}: update the ParaScale add-on (Blender: Get Extensions, or install the new zip)"
    return f"{server}: update the server (Set Up Server again, or pip install -U the new ParaScale wheel)"


# -- hosts ---------------------------------------------------------------------------------------
def is_loopback_host(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 (bracketed or not) and ``localhost``."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def is_loopback_url(url: str) -> bool:
    """True when ``url``'s host is a loopback address (such calls bypass any HTTP proxy)."""
    return is_loopback_host(urllib.parse.urlsplit(url).hostname or "")
