"""``parascale-server`` / ``python -m bridge_server``: run the generation server with uvicorn."""

from __future__ import annotations

import argparse
import logging
import os
import ssl
import sys
from pathlib import Path

from parascale_blender.client.wire import DEFAULT_PORT, is_loopback_host

from .config import QUEUE_ENV, Limits, ServerConfig, default_threads, redacted_url, setup_logging

TOKEN_ENV = "PARASCALE_TOKEN"  # the add-on starts the server with its per-install token here


def mps_available() -> bool:
    import torch

    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available())


def resolve_devices(spec: str) -> list[str]:
    """``auto`` (every CUDA GPU, else Apple's MPS, else CPU), ``cpu``, ``cuda``, ``mps`` or a comma
    list such as ``cuda:0,cuda:1``."""
    import torch

    if spec == "auto":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or (["mps"] if mps_available() else ["cpu"])
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    for d in devices:
        torch.device(d)  # raises a clear RuntimeError for a malformed name
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {d!r} requested but CUDA is not available")
        if d.startswith("mps") and not mps_available():
            raise ValueError(f"device {d!r} requested but Apple's MPS is not available")
    return devices


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parascale-server",
        description="ParaScale local generation server",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs --token)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT, help="port to listen on")
    p.add_argument(
        "--token",
        default=None,
        help=f"require 'Authorization: Bearer TOKEN' on every request (visible in the process list: "
        f"prefer --token-file or ${TOKEN_ENV})",
    )
    p.add_argument("--token-file", type=Path, default=None, metavar="PATH", help="read the token from this file")
    p.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="NAME",
        help="a Host header name served besides loopback names and --host (repeatable)",
    )
    p.add_argument(
        "--allow-origin",
        action="append",
        default=[],
        metavar="ORIGIN",
        help="a browser origin (scheme://host[:port]) allowed to call the server (repeatable; none by default)",
    )
    p.add_argument(
        "--tls-cert",
        type=Path,
        default=None,
        metavar="PEM",
        help="serve HTTPS with this certificate chain (PEM; with --tls-key); advised off loopback",
    )
    p.add_argument("--tls-key", type=Path, default=None, metavar="PEM", help="the private key of --tls-cert (PEM)")
    p.add_argument("--jobs-dir", type=Path, default=Path.home() / ".parascale" / "jobs", help="where jobs are kept")
    p.add_argument(
        "--device",
        default="auto",
        help="auto (CUDA, else MPS, else CPU), cpu, cuda, mps, or a comma list (one worker each)",
    )
    p.add_argument("--threads", type=int, default=default_threads(), help="torch CPU threads (default: half the cores)")
    lim = Limits()
    p.add_argument("--max-frames", type=int, default=lim.max_frames, help="most frames a job may ask for")
    p.add_argument("--max-side", type=int, default=lim.max_side, help="largest width/height in pixels")
    p.add_argument("--max-upload-mb", type=float, default=lim.max_upload_bytes / 2**20, help="largest upload, MiB")
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of local model weights, one sub-folder per backend (default: $PARASCALE_WEIGHTS)",
    )
    p.add_argument(
        "--queue",
        default=os.environ.get(QUEUE_ENV, "local"),
        help="'local' (one worker thread per --device in this process) or redis://[:PASSWORD@]HOST:PORT/DB "
        "(a farm: jobs run in parascale-worker processes sharing --jobs-dir; needs parascale[farm]); "
        f"default ${QUEUE_ENV} or 'local' (the environment keeps a Redis password off the command line)",
    )
    p.add_argument(
        "--heartbeat-timeout",
        type=float,
        default=None,
        metavar="S",
        help="farm: a running job whose worker sent no heartbeat for S seconds is lost "
        "(default: $PARASCALE_HEARTBEAT_TIMEOUT or 60)",
    )
    p.add_argument(
        "--stuck-after",
        type=float,
        default=900.0,
        metavar="S",
        help="seconds without progress after which /v1/health reports a worker as stuck",
    )
    p.add_argument(
        "--stale-after",
        type=float,
        default=600.0,
        metavar="S",
        help="at start, remove job folders without status.json older than this many seconds",
    )
    p.add_argument("--log-level", default="warning", help="uvicorn's access and error log level")
    p.add_argument(
        "--limit-concurrency",
        type=int,
        default=256,
        metavar="N",
        help="connections and requests at once; beyond it new ones get 503 (idle connections then cannot "
        "use up the process's file descriptors)",
    )
    p.add_argument("--keep-alive", type=float, default=5.0, metavar="S", help="seconds an idle connection stays open")
    p.add_argument(
        "--header-timeout",
        type=float,
        default=10.0,
        metavar="S",
        help="seconds a new connection has to send its first request's head before it is closed",
    )
    return p


def resolve_token(args) -> str | None:
    """The token from ``--token``, else ``--token-file``, else ``$PARASCALE_TOKEN``; None without one.
    Raises ValueError naming the source when it is unusable."""
    if args.token is not None:
        token, source = args.token, "--token"
    elif args.token_file is not None:
        try:
            token = args.token_file.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as e:
            raise ValueError(f"--token-file: cannot read {args.token_file}: {e}") from None
        source = f"--token-file {args.token_file}"
    elif os.environ.get(TOKEN_ENV):
        token, source = os.environ[TOKEN_ENV].strip(), f"${TOKEN_ENV}"
    else:
        return None
    if len(token) < 8 or any(c.isspace() or not c.isprintable() for c in token):
        raise ValueError(f"{source}: the token must be at least 8 printable characters without spaces")
    return token


def check_tls(cert: Path | None, key: Path | None) -> str | None:
    """Why ``--tls-cert``/``--tls-key`` cannot serve HTTPS (one without the other, unreadable,
    not a matching certificate and key), or None."""
    if cert is None and key is None:
        return None
    if cert is None or key is None:
        return "--tls-cert and --tls-key go together (the certificate chain and its private key, PEM)"
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        return f"--tls-cert {cert} / --tls-key {key}: not a usable certificate and key ({e})"
    return None


def check_jobs_dir(path: Path) -> str | None:
    """Why ``path`` cannot be the jobs folder (a file, cannot be created), or None."""
    path = path.expanduser()
    if path.exists() and not path.is_dir():
        return f"--jobs-dir: {path} is a file, not a folder"
    try:
        path.mkdir(parents=True, exist_ok=True, mode=0o700)  # the owner's only, as every job folder in it
    except OSError as e:
        return f"--jobs-dir: cannot create {path}: {e.strerror or e}"
    return None


def unwritable_reason(path: Path) -> str | None:
    """Why the existing folder ``path`` cannot be written (read-only, full), or None."""
    probe = path.expanduser() / f".parascale-write-test-{os.getpid()}"
    try:
        probe.write_bytes(b"ok")
        probe.unlink()
    except OSError as e:
        return e.strerror or str(e)
    return None


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.token = resolve_token(args)
    except ValueError as e:
        print(f"parascale-server: {e}", file=sys.stderr)
        return 2
    if not is_loopback_host(args.host) and not args.token:
        print(
            f"parascale-server: refusing to bind {args.host} without --token "
            f"(only loopback addresses may run without one; or set ${TOKEN_ENV} / --token-file)",
            file=sys.stderr,
        )
        return 2
    problem = check_tls(args.tls_cert, args.tls_key)
    if problem is not None:
        print(f"parascale-server: {problem}", file=sys.stderr)
        return 2
    if not is_loopback_host(args.host) and args.tls_cert is None:
        print(
            f"parascale-server: warning: serving {args.host} over plain HTTP: the token and every result "
            "cross the network readable; use --tls-cert/--tls-key",
            file=sys.stderr,
        )
    problem = check_jobs_dir(args.jobs_dir)
    if problem is not None:
        print(f"parascale-server: {problem}", file=sys.stderr)
        return 2
    read_only = unwritable_reason(args.jobs_dir)
    if read_only is not None and args.queue != "local":
        print(f"parascale-server: --jobs-dir: {args.jobs_dir} is not writable ({read_only})", file=sys.stderr)
        return 2
    if read_only is not None:
        print(
            f"parascale-server: warning: --jobs-dir {args.jobs_dir} is not writable ({read_only}): serving its "
            "jobs and results read-only; new jobs are refused (507) until it is writable and the server restarts",
            file=sys.stderr,
        )
    weights = None
    if args.weights is not None:
        weights = args.weights.expanduser().resolve()
        if not weights.is_dir():
            print(f"parascale-server: --weights: {weights} is not a folder", file=sys.stderr)
            return 2
    if args.queue != "local":
        from .executor import farm_missing, is_farm_queue

        if not is_farm_queue(args.queue):
            print(
                f"parascale-server: --queue must be 'local' or redis://HOST:PORT/DB, not {args.queue!r}",
                file=sys.stderr,
            )
            return 2
        if missing := farm_missing():
            print(f"parascale-server: --queue {args.queue}: {missing}", file=sys.stderr)
            return 2
    import torch

    torch.set_num_threads(max(1, args.threads))
    try:
        devices = resolve_devices(args.device)
    except (ValueError, RuntimeError) as e:
        print(f"parascale-server: --device: {e}", file=sys.stderr)
        return 2
    limits = Limits(
        max_frames=args.max_frames, max_side=args.max_side, max_upload_bytes=int(args.max_upload_mb * 2**20)
    )
    config = ServerConfig(
        jobs_dir=args.jobs_dir,
        host=args.host,
        port=args.port,
        token=args.token,
        tls=args.tls_cert is not None,
        read_only=read_only is not None,
        devices=devices,
        limits=limits,
        weights_dir=weights,
        queue=args.queue,
        heartbeat_timeout=args.heartbeat_timeout,
        stuck_after=args.stuck_after,
        stale_after=args.stale_after,
        allow_hosts=args.allow_host,
        allow_origins=args.allow_origin,
    )
    import uvicorn

    from . import __version__
    from .app import create_app
    from .backends.weights import weights_root

    setup_logging()
    log = logging.getLogger("parascale.server")
    if args.device == "auto" and devices == ["cpu"]:
        log.warning("--device auto: torch %s sees no GPU (CUDA available: %s): running on the CPU, slowly",
                    torch.__version__, torch.cuda.is_available())  # fmt: skip
    app = create_app(config)
    scheme = "https" if args.tls_cert else "http"
    log.info(
        "parascale-server %s: %s://%s:%d, device %s, jobs folder %s%s, weights %s, queue %s",
        __version__,
        scheme,
        args.host,
        args.port,
        ",".join(devices),
        args.jobs_dir,
        " (read-only)" if read_only is not None else "",
        weights_root() or "none",
        redacted_url(args.queue),
    )
    tls = {"ssl_certfile": str(args.tls_cert), "ssl_keyfile": str(args.tls_key)} if args.tls_cert else {}
    from .http_protocol import HeadDeadlineH11

    HeadDeadlineH11.head_timeout = args.header_timeout
    uvicorn.run(
        app,
        http=HeadDeadlineH11,
        host=args.host,
        port=args.port,
        log_level=args.log_level,
        limit_concurrency=args.limit_concurrency,
        timeout_keep_alive=args.keep_alive,
        **tls,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
