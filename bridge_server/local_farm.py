"""A whole farm on this machine, for trying it (and for the tests and ``parascale bench``): a private
``redis-server`` on a free loopback port, the API server with ``$PARASCALE_QUEUE`` = ``redis://…`` and N
``parascale-worker`` processes sharing one jobs folder.

    python -m bridge_server.local_farm --workers 2 --jobs-dir ~/.parascale/farm-jobs   # Ctrl-C stops all

Needs ``redis-server`` on PATH (``apt-get install redis-server``) and ``parascale[farm]``. The Redis it
starts asks for a random password (``requirepass``, from a 0600 config file in its temporary folder,
not its command line); the queue URL the server and workers get carries it. :meth:`LocalFarm.stop`
removes that temporary folder (the logs go to ``--log-dir``, default ``<jobs-dir>/../farm-logs``).
"""

from __future__ import annotations

import argparse
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path

from .config import QUEUE_ENV

ROOT = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def redis_server_binary() -> str | None:
    return shutil.which("redis-server")


def farm_available() -> str | None:
    """None when a local farm can start here, else the reason it cannot."""
    if redis_server_binary() is None:
        return "no redis-server on PATH (apt-get install redis-server)"
    try:
        import celery  # noqa: F401
        import redis  # noqa: F401
    except ImportError:
        return "celery[redis] is not installed (pip install 'parascale[farm]')"
    return None


def _stop(proc: subprocess.Popen | None, timeout: float = 10.0) -> None:
    if proc is not None and proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class LocalFarm:
    """redis-server + API server + workers as child processes; every handle is a ``Popen``."""

    def __init__(
        self,
        jobs_dir: Path,
        workers: int = 2,
        device: str = "cpu",
        heartbeat_timeout: float | None = None,
        heartbeat_interval: float | None = None,
        server_args: tuple[str, ...] = (),
        threads: int = 1,
        log_dir: Path | None = None,
        redis_url: str | None = None,
    ):
        self.jobs_dir = Path(jobs_dir)
        self.jobs_dir.mkdir(parents=True, exist_ok=True)
        self.n_workers, self.device, self.threads = workers, device, threads
        self.server_args = tuple(server_args)
        self.redis_port, self.api_port = free_port(), free_port()
        self.tmp = Path(tempfile.mkdtemp(prefix="parascale-farm-"))
        self.log_dir = Path(log_dir) if log_dir else self.tmp
        self.env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        self.env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        if heartbeat_timeout is not None:
            self.env["PARASCALE_HEARTBEAT_TIMEOUT"] = str(heartbeat_timeout)
        if heartbeat_interval is not None:
            self.env["PARASCALE_HEARTBEAT_INTERVAL"] = str(heartbeat_interval)
        self.redis: subprocess.Popen | None = None
        self.server: subprocess.Popen | None = None
        self.workers: list[subprocess.Popen | None] = []
        self.redis_url = redis_url  # an existing Redis to use instead of starting one
        self.redis_password = secrets.token_hex(16)  # of the Redis this farm starts

    def _queue_env(self) -> dict:
        """The children's environment with the queue's URL (its password never on a command line)."""
        return {**self.env, QUEUE_ENV: self.queue}

    @property
    def queue(self) -> str:
        return self.redis_url or f"redis://:{self.redis_password}@127.0.0.1:{self.redis_port}/0"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.api_port}"

    def _log(self, name: str):
        return open(self.log_dir / f"{name}.log", "ab")

    def start_redis(self, timeout: float = 10.0) -> None:
        binary = redis_server_binary()
        if binary is None:
            raise RuntimeError("no redis-server on PATH")
        conf = self.tmp / "redis.conf"
        fd = os.open(conf, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f'port {self.redis_port}\nbind 127.0.0.1\nsave ""\nappendonly no\n')
            f.write(f"dir {self.tmp}\nrequirepass {self.redis_password}\n")
        self.redis = subprocess.Popen([binary, str(conf)], stdout=self._log("redis"), stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.redis_port), timeout=0.5) as s:
                    s.sendall(f"AUTH {self.redis_password}\r\nPING\r\n".encode())
                    time.sleep(0.05)
                    if b"+PONG" in s.recv(64):
                        return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not answer PING")

    def kill_redis(self) -> None:
        if self.redis is not None and self.redis.poll() is None:
            self.redis.send_signal(signal.SIGKILL)
            self.redis.wait(10)

    def start_server(self, timeout: float = 180.0) -> None:
        cmd = [sys.executable, "-m", "bridge_server", "--port", str(self.api_port), "--jobs-dir", str(self.jobs_dir)]
        cmd += ["--device", "cpu", "--threads", str(self.threads), *self.server_args]
        log = self._log("server")
        self.server = subprocess.Popen(cmd, cwd=ROOT, env=self._queue_env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.server.poll() is not None:
                raise RuntimeError(f"server exited with {self.server.returncode}; see {self.log_dir}/server.log")
            try:
                with urllib.request.urlopen(self.url + "/v1/health", timeout=1):
                    return
            except urllib.error.HTTPError as e:
                raise RuntimeError(f"the API server answered /v1/health with {e.code}; see {self.log_dir}") from e
            except OSError:
                time.sleep(0.1)
        raise RuntimeError(f"the API server did not answer in time; see {self.log_dir}/server.log")

    def start_worker(self, index: int) -> str:
        """Start worker ``index`` (named ``w<index>``); returns its name."""
        name = f"w{index}"
        cmd = [sys.executable, "-m", "bridge_server.worker", "--jobs-dir", str(self.jobs_dir)]
        cmd += ["--device", self.device, "--name", name, "--threads", str(self.threads)]
        proc = subprocess.Popen(cmd, cwd=ROOT, env=self._queue_env(), stdout=self._log(name), stderr=subprocess.STDOUT)
        while len(self.workers) <= index:
            self.workers.append(None)
        self.workers[index] = proc
        return name

    def wait_workers(self, timeout: float = 180.0) -> None:
        """Until every running worker has registered its heartbeat in the jobs folder."""
        import json

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            seen = set()
            for p in (self.jobs_dir / "workers").glob("*.json"):
                try:
                    seen.add(json.loads(p.read_text())["name"])
                except (OSError, ValueError, KeyError):
                    pass
            alive = {f"w{i}" for i, w in enumerate(self.workers) if w is not None and w.poll() is None}
            if alive <= seen:
                time.sleep(1.0)  # registered before the Celery consumer: give it a moment to subscribe
                return
            time.sleep(0.1)
        raise RuntimeError("workers did not start in time")

    def kill_worker(self, index: int) -> None:
        proc = self.workers[index]
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait(10)

    def start(self) -> LocalFarm:
        try:
            if self.redis_url is None:
                self.start_redis()
            self.start_server()
            for i in range(self.n_workers):
                self.start_worker(i)
            self.wait_workers()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        for w in self.workers:
            if w is not None and w.poll() is None:
                w.send_signal(signal.SIGTERM)
        for w in self.workers:
            _stop(w, 5.0)
        _stop(self.server)
        _stop(self.redis)
        shutil.rmtree(self.tmp, ignore_errors=True)  # Redis's folder (and the logs, unless log_dir is elsewhere)

    def __enter__(self) -> LocalFarm:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bridge_server.local_farm", description=__doc__.split("\n\n")[0])
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--jobs-dir", type=Path, default=Path.home() / ".parascale" / "farm-jobs")
    p.add_argument("--device", default="cpu", help="the device of every worker (cuda:N: run one farm per GPU)")
    args = p.parse_args(argv)
    reason = farm_available()
    if reason:
        print(f"local farm: {reason}", file=sys.stderr)
        return 2
    log_dir = args.jobs_dir.parent / "farm-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    farm = LocalFarm(args.jobs_dir, args.workers, args.device, threads=2, log_dir=log_dir)
    farm.start()
    print(f"farm up: API {farm.url}  queue {farm.queue}  workers {args.workers}  jobs {args.jobs_dir}")
    print(f"logs in {farm.log_dir}; Ctrl-C stops everything")
    try:
        while farm.server is not None and farm.server.poll() is None:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    finally:
        farm.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
