"""A state store in one human-readable JSON file, for setups that want state under version control.

The file holds ``{"version": 1, "states": {...}, "locks": {...}, "runs": {...}}``. Every change
is a read-modify-write done under an exclusive ``flock`` on a sidecar ``<file>.lock``, and the new
content goes to a temp file in the same directory, is fsynced, then renamed over the old file.
So readers need no lock (they see the old file or the new one) and a crash mid-write leaves
the old file whole.
"""

from __future__ import annotations

import builtins
import datetime as dt
import fcntl
import os
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import asdict
from pathlib import Path
from typing import Any

import orjson

from dpone.state.merge import canonical
from dpone.state.store import LockedError, LockInfo, PartitionChange, RunRecord, StoredState, T, utc_now
from dpone_protocol.errors import ConfigError

FORMAT_VERSION = 1
SECTIONS = ("states", "locks", "runs", "partitions")


class JsonFileStore:
    def __init__(self, path: str | Path, *, keep_runs: int = 100) -> None:
        self.path = Path(path)
        self.keep_runs = keep_runs
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        # flock already excludes other processes; this keeps the runner's threads in order too.
        self._mutex = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(f"cannot create the state directory {self.path.parent}: {exc.strerror}") from None

    def _load(self) -> dict[str, Any]:
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            data = b""
        except OSError as exc:
            raise ConfigError(f"cannot read the state file {self.path}: {exc.strerror}") from None
        try:
            doc = orjson.loads(data) if data.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise ConfigError(f"the state file {self.path} is not valid JSON ({exc}); restore or remove it") from None
        if not isinstance(doc, dict) or not all(isinstance(doc.get(s, {}), dict) for s in SECTIONS):
            raise ConfigError(f"the state file {self.path} is not a dpone state file")
        for section in SECTIONS:
            doc.setdefault(section, {})
        return doc

    @contextmanager
    def _change(self) -> Iterator[dict[str, Any]]:
        """The current document, to modify in place; saved when the block ends without error."""
        with self._mutex, open(self._lock_path, "ab") as lock_file:
            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX)  # released when the file closes
            doc = self._load()
            yield doc
            doc["version"] = FORMAT_VERSION
            self._save(doc)

    def _save(self, doc: dict[str, Any]) -> None:
        # Values were checked by canonical() before the lock was taken, so this cannot fail.
        data = orjson.dumps(doc, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS)
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            with suppress(FileNotFoundError):
                os.unlink(tmp)
            raise
        # The rename itself is only durable once the directory entry is on disk.
        dir_fd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)

    def get(self, pipeline_id: str) -> StoredState | None:
        entry = self._load()["states"].get(pipeline_id)
        return StoredState(pipeline_id, entry["value"], entry["updated_at"]) if entry is not None else None

    def put(self, pipeline_id: str, value: dict[str, Any]) -> None:
        canonical(value)  # reject a non-JSON value before taking the file lock
        with self._change() as doc:
            doc["states"][pipeline_id] = {"value": value, "updated_at": utc_now()}

    def delete(self, pipeline_id: str) -> None:
        with self._change() as doc:
            doc["states"].pop(pipeline_id, None)

    def list(self) -> builtins.list[StoredState]:
        states = self._load()["states"]
        return [StoredState(pid, states[pid]["value"], states[pid]["updated_at"]) for pid in sorted(states)]

    def acquire_lock(self, lock: LockInfo) -> None:
        with self._change() as doc:
            held = doc["locks"].get(lock.pipeline_id)
            if held is not None:
                raise LockedError(LockInfo(**held))
            doc["locks"][lock.pipeline_id] = asdict(lock)

    def release_lock(self, pipeline_id: str, owner: str) -> None:
        with self._change() as doc:
            held = doc["locks"].get(pipeline_id)
            if held is not None and held["owner"] == owner:
                del doc["locks"][pipeline_id]

    def break_lock(self, pipeline_id: str) -> LockInfo | None:
        with self._change() as doc:
            held = doc["locks"].pop(pipeline_id, None)
        return LockInfo(**held) if held is not None else None

    def get_lock(self, pipeline_id: str) -> LockInfo | None:
        held = self._load()["locks"].get(pipeline_id)
        return LockInfo(**held) if held is not None else None

    def save_run(self, run: RunRecord) -> None:
        entry = {"run_id": run.run_id, "created_at": run.created_at, "report": run.report}
        canonical(entry)
        with self._change() as doc:
            kept = [r for r in doc["runs"].get(run.pipeline_id, []) if r["run_id"] != run.run_id]
            # Newest first; the stable sort keeps the latest save first among equal timestamps.
            history = sorted([entry, *kept], key=lambda r: str(r["created_at"]), reverse=True)
            doc["runs"][run.pipeline_id] = history[: self.keep_runs]

    def runs(self, pipeline_id: str, limit: int = 20) -> builtins.list[RunRecord]:
        return self.recent_runs(limit, pipeline_id)

    def recent_runs(self, limit: int = 20, pipeline_id: str | None = None) -> builtins.list[RunRecord]:
        saved = self._load()["runs"]
        wanted = sorted(saved) if pipeline_id is None else [pipeline_id]
        # Each pipeline's list is newest first already; the stable sort keeps that among equal stamps.
        merged = [
            RunRecord(pid, r["run_id"], r["created_at"], r["report"]) for pid in wanted for r in saved.get(pid, [])
        ]
        merged.sort(key=lambda r: str(r.created_at), reverse=True)
        return merged[: max(limit, 0)]

    def change_partitions(self, pipeline_id: str, stream: str, change: PartitionChange[T]) -> T:
        with self._change() as doc:
            plans = doc["partitions"].setdefault(pipeline_id, {})
            new, result = change(plans.get(stream), dt.datetime.now(dt.UTC))
            if new is None:
                plans.pop(stream, None)
            else:
                canonical(new)  # a value JSON cannot hold fails here, before the file is written
                plans[stream] = new
            if not plans:
                del doc["partitions"][pipeline_id]
        return result

    def partition_plans(self, pipeline_id: str | None = None) -> builtins.list[dict[str, Any]]:
        found = self._load()["partitions"]
        chosen = sorted(found) if pipeline_id is None else [pipeline_id] if pipeline_id in found else []
        return [found[p][s] for p in chosen for s in sorted(found[p])]

    def close(self) -> None:
        """Nothing stays open between calls."""
