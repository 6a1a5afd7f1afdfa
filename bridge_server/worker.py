"""``parascale-worker`` / ``python -m bridge_server.worker``: one long-lived farm worker per GPU.

    parascale-worker --queue redis://HOST:6379/0 --jobs-dir /mnt/shared/parascale/jobs --device cuda:0

Concurrency 1 and prefetch 1 (one job at a time, no job held back from an idle worker), the models of
each backend stay loaded between jobs. The jobs folder is this machine's mount of the shared folder
(never sent in a message). ``--run-job ID`` runs one queued job and exits (no Redis needed): the
command another farm manager (OpenCue, Flamenco) wraps. See ``farm.py`` for claim, heartbeat, cancel.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .config import Limits, default_threads


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="parascale-worker", description="ParaScale farm worker (Celery + Redis)")
    p.add_argument("--queue", help="the broker, redis://HOST:PORT/DB (the server's --queue)")
    p.add_argument("--jobs-dir", type=Path, required=True, help="this machine's path of the shared jobs folder")
    p.add_argument("--device", default="cpu", help="one torch device: cpu, cuda, cuda:1 ...")
    p.add_argument("--name", default=None, help="worker name (default HOST:DEVICE:PID)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch CPU threads")
    p.add_argument("--visibility-timeout", type=float, default=None, metavar="S", help="the longest job (default 6 h)")
    p.add_argument("--run-job", metavar="ID", default=None, help="run this one queued job now and exit")
    lim = Limits()
    p.add_argument("--max-frames", type=int, default=lim.max_frames)
    p.add_argument("--max-side", type=int, default=lim.max_side)
    p.add_argument("--max-upload-mb", type=float, default=lim.max_upload_bytes / 2**20)
    return p


def main(argv: list[str] | None = None) -> int:
    from .executor import farm_missing, is_farm_queue

    args = build_parser().parse_args(argv)
    if args.run_job is None and not is_farm_queue(args.queue or ""):
        print("parascale-worker: --queue redis://HOST:PORT/DB is required (or --run-job ID)", file=sys.stderr)
        return 2
    if not args.jobs_dir.is_dir():
        print(f"parascale-worker: --jobs-dir {args.jobs_dir} is not a folder", file=sys.stderr)
        return 2
    if missing := farm_missing():
        print(f"parascale-worker: {missing}", file=sys.stderr)
        return 2
    import torch

    torch.set_num_threads(max(1, args.threads))
    from . import farm

    limits = Limits(
        max_frames=args.max_frames, max_side=args.max_side, max_upload_bytes=int(args.max_upload_mb * 2**20)
    )
    runner = farm.FarmRunner(args.jobs_dir, args.device, limits, name=args.name)
    if args.run_job is not None:
        try:
            state = runner.run(args.run_job)
        finally:
            runner.stop_heartbeat()
        print(state)
        return 0 if state == "done" else 1
    timeout = args.visibility_timeout or farm.DEFAULT_VISIBILITY_TIMEOUT
    app = farm.celery_app(args.queue, timeout)

    @app.task(name=farm.TASK, acks_late=True)
    def run_job(job_id: str) -> str:
        return runner.run(job_id)

    runner.start_heartbeat()
    try:
        app.worker_main(
            [
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--prefetch-multiplier=1",
                f"--queues={farm.QUEUE_NAME}",
                f"--hostname={runner.name.replace(':', '-')}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=" + os.environ.get("PARASCALE_WORKER_LOG", "WARNING"),
            ]
        )
    finally:
        runner.stop_heartbeat()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
