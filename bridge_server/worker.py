"""``parascale-worker`` / ``python -m bridge_server.worker``: one long-lived farm worker per GPU.

    parascale-worker --queue redis://HOST:6379/0 --jobs-dir /mnt/shared/parascale/jobs --device cuda:0

Concurrency 1 and prefetch 1 (one job at a time, no job held back from an idle worker), the models of
each backend stay loaded between jobs. The jobs folder is this machine's mount of the shared folder
(never sent in a message). ``--run-job ID`` runs one queued job and exits (no Redis needed): the
command another farm manager (OpenCue, Flamenco) wraps. See ``farm.py`` for claim, heartbeat, cancel
and the farm's identity (``<jobs>/farm.json``, which the worker needs to start).

A message naming another farm is refused; a job the worker cannot see in its jobs folder is handed
back to the queue after a pause (never acknowledged). An entry in the queue that is not a message
(``LPUSH parascale.<id> x``) is logged and dropped. The process exits non-zero whenever Celery stops
without being asked to (a signal), so a supervisor's restart-on-failure restarts it.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time
from pathlib import Path

from .config import QUEUE_ENV, Limits, default_threads, redacted_url, setup_logging

log = logging.getLogger("parascale.worker")
REFUSED_PAUSE = 2.0  # seconds before a job this worker cannot see goes back to the queue


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="parascale-worker",
        description="ParaScale farm worker (Celery + Redis)",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument(
        "--queue",
        default=os.environ.get(QUEUE_ENV),
        help=f"the broker, redis://[:PASSWORD@]HOST:PORT/DB (the server's --queue; default ${QUEUE_ENV})",
    )
    p.add_argument("--jobs-dir", type=Path, required=True, help="this machine's path of the shared jobs folder")
    p.add_argument("--device", default="cpu", help="one torch device: cpu, cuda, cuda:1 ...")
    p.add_argument("--name", default=None, help="worker name (default HOST:DEVICE:PID)")
    p.add_argument("--threads", type=int, default=default_threads(), help="torch CPU threads")
    p.add_argument("--visibility-timeout", type=float, default=None, metavar="S", help="the longest job (default 6 h)")
    p.add_argument("--run-job", metavar="ID", default=None, help="run this one queued job now and exit")
    lim = Limits()
    p.add_argument("--max-frames", type=int, default=lim.max_frames, help="most frames a job may ask for")
    p.add_argument("--max-side", type=int, default=lim.max_side, help="largest width or height, pixels")
    p.add_argument("--max-upload-mb", type=float, default=lim.max_upload_bytes / 2**20, help="largest upload, MiB")
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
    farm_id = farm.farm_id(args.jobs_dir)
    if farm_id is None:
        print(
            f"parascale-worker: {args.jobs_dir} holds no {farm.FARM_FILE}: it is not a farm's jobs folder "
            "(is the shared folder mounted here? the API server writes it when it starts)",
            file=sys.stderr,
        )
        return 2
    timeout = args.visibility_timeout or farm.DEFAULT_VISIBILITY_TIMEOUT
    app = farm.celery_app(args.queue, farm_id, timeout)
    from celery.exceptions import Reject
    from celery.worker import state as celery_state

    @app.task(name=farm.TASK, acks_late=True)
    def run_job(job_id: str, farm_of_job: str | None = None) -> str:
        if farm_of_job != farm_id:
            log.error("refused job %s: its message is of farm %s, not %s", job_id, farm_of_job, farm_id)
            raise Reject(f"farm {farm_of_job} is not this worker's farm {farm_id}", requeue=False)
        if runner.disk.get(job_id) is None:
            log.warning("job %s is not in %s here: handed back to the queue", job_id, args.jobs_dir)
            time.sleep(REFUSED_PAUSE)
            raise Reject(f"job {job_id} is not in this worker's jobs folder", requeue=True)
        return runner.run(job_id)

    from . import __version__
    from .backends.weights import weights_root

    setup_logging()
    log.info(
        "parascale-worker %s %s: queue %s (farm %s), device %s, jobs folder %s, weights %s",
        __version__,
        runner.name,
        redacted_url(args.queue),
        farm_id,
        args.device,
        args.jobs_dir,
        weights_root() or "none",
    )
    farm.drop_unreadable_entries()
    runner.start_heartbeat()
    code = 1
    try:
        app.worker_main(
            [
                "worker",
                "--pool=solo",
                "--concurrency=1",
                "--prefetch-multiplier=1",
                f"--queues={farm.queue_name(farm_id)}",
                f"--hostname={runner.name.replace(':', '-')}@%h",
                "--without-gossip",
                "--without-mingle",
                "--without-heartbeat",
                "--loglevel=" + os.environ.get("PARASCALE_WORKER_LOG", "WARNING"),
            ]
        )
    except SystemExit as e:
        code = e.code if isinstance(e.code, int) else 1
    finally:
        runner.stop_heartbeat()
    # A warm or cold shutdown by a signal (SIGTERM, SIGINT, SIGQUIT) sets one of these; anything else
    # (a broker error Celery gave up on, a remote shutdown, an exception) is a failure to restart on.
    asked = celery_state.should_stop is not None or celery_state.should_terminate is not None
    if not asked:
        print(f"parascale-worker: Celery stopped without being asked to (exit status {code})", file=sys.stderr)
        return code or 1
    print("parascale-worker: stopped by a signal", file=sys.stderr)
    wanted = celery_state.should_stop if celery_state.should_stop is not None else celery_state.should_terminate
    return int(wanted) if isinstance(wanted, int) else 0  # the signal's exit status (Celery's own exit is 1)


if __name__ == "__main__":
    raise SystemExit(main())
