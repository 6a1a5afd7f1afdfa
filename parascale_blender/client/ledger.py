"""The jobs this installation submitted, kept in a JSON file of the add-on's user folder (owner-only).

A ``.blend`` records its jobs' ids and result paths too, but a file can come from anyone: re-attaching
on load follows only a job whose id is in this ledger *for the same server*, and saves its result at
the path recorded here when it was submitted (where the artist chose), never at a path read from the
file. Entries: ``{"job_id": {"server": url, "output": path, "time": unix seconds}}``, newest
:data:`KEEP` kept; a job's entry goes when its result is saved or it ends.
"""

from __future__ import annotations

import json
import os
import time
import uuid

KEEP = 500


class Ledger:
    """The ledger file at ``path`` (created on the first :meth:`add`, mode 0600)."""

    def __init__(self, path: str | os.PathLike):
        self.path = os.fspath(path)

    def _load(self) -> dict:
        try:
            with open(self.path, encoding="utf-8") as f:
                data = json.load(f)
        except (OSError, ValueError):
            return {}
        return {k: v for k, v in data.items() if isinstance(v, dict)} if isinstance(data, dict) else {}

    def _save(self, data: dict) -> None:
        newest = sorted(data.items(), key=lambda kv: kv[1].get("time", 0))[-KEEP:]
        tmp = f"{self.path}.{uuid.uuid4().hex[:8]}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(dict(newest), f)
            os.replace(tmp, self.path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)

    def add(self, job_id: str, server: str, output: str | os.PathLike) -> None:
        data = self._load()
        data[str(job_id)] = {"server": server.rstrip("/"), "output": os.fspath(output), "time": time.time()}
        self._save(data)

    def get(self, job_id: str, server: str) -> dict | None:
        """The entry of ``job_id`` if this installation submitted it to ``server``, else None."""
        entry = self._load().get(str(job_id))
        if entry is None or entry.get("server") != server.rstrip("/") or not isinstance(entry.get("output"), str):
            return None
        return entry

    def remove(self, job_id: str) -> None:
        data = self._load()
        if data.pop(str(job_id), None) is not None:
            self._save(data)
