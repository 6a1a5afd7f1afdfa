"""``parascale-server`` / ``python -m bridge_server``: run the generation server with uvicorn."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from parascale_blender.client.wire import DEFAULT_PORT, is_loopback_host

from .config import Limits, ServerConfig, default_threads


def resolve_devices(spec: str) -> list[str]:
    """``auto`` (every CUDA GPU, else CPU), ``cpu``, ``cuda`` or a comma list such as ``cuda:0,cuda:1``."""
    import torch

    if spec == "auto":
        n = torch.cuda.device_count() if torch.cuda.is_available() else 0
        return [f"cuda:{i}" for i in range(n)] or ["cpu"]
    devices = [d.strip() for d in spec.split(",") if d.strip()]
    for d in devices:
        torch.device(d)  # raises a clear RuntimeError for a malformed name
        if d.startswith("cuda") and not torch.cuda.is_available():
            raise ValueError(f"device {d!r} requested but CUDA is not available")
    return devices


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="parascale-server", description="ParaScale local generation server")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (non-loopback needs --token)")
    p.add_argument("--port", type=int, default=DEFAULT_PORT)
    p.add_argument("--token", default=None, help="require 'Authorization: Bearer TOKEN' on every request")
    p.add_argument("--jobs-dir", type=Path, default=Path.home() / ".parascale" / "jobs")
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, or a comma list (one worker each)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch CPU threads (default: half the cores)")
    lim = Limits()
    p.add_argument("--max-frames", type=int, default=lim.max_frames)
    p.add_argument("--max-side", type=int, default=lim.max_side, help="largest width/height in pixels")
    p.add_argument("--max-upload-mb", type=float, default=lim.max_upload_bytes / 2**20)
    p.add_argument(
        "--weights",
        type=Path,
        default=None,
        metavar="DIR",
        help="folder of local model weights, one sub-folder per backend (default: $PARASCALE_WEIGHTS)",
    )
    p.add_argument(
        "--stuck-after",
        type=float,
        default=900.0,
        metavar="S",
        help="seconds without progress after which /v1/health reports a worker as stuck",
    )
    p.add_argument("--log-level", default="warning")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if not is_loopback_host(args.host) and not args.token:
        print(
            f"parascale-server: refusing to bind {args.host} without --token "
            "(only loopback addresses may run without one)",
            file=sys.stderr,
        )
        return 2
    if args.token is not None and len(args.token) < 8:
        print("parascale-server: --token must be at least 8 characters", file=sys.stderr)
        return 2
    weights = None
    if args.weights is not None:
        weights = args.weights.expanduser().resolve()
        if not weights.is_dir():
            print(f"parascale-server: --weights: {weights} is not a folder", file=sys.stderr)
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
        devices=devices,
        limits=limits,
        weights_dir=weights,
        stuck_after=args.stuck_after,
    )
    import uvicorn

    from .app import create_app

    uvicorn.run(create_app(config), host=args.host, port=args.port, log_level=args.log_level)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
