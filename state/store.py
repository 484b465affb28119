"""The state store interface every backend implements, and how a backend is chosen.

A store keeps, per pipeline: the last committed Singer state value, a lock so two runs of
the same pipeline cannot interleave, and the reports of past runs.
"""

from __future__ import annotations

import builtins
import datetime as dt
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from dpone_protocol.errors import ConfigError, DponeError, ErrorKind
from dpone_protocol.local_process import process_exists


@dataclass(frozen=True, slots=True)
class LockInfo:
    pipeline_id: str
    owner: str  # a run id
    pid: int
    host: str
    acquired_at: str  # ISO 8601 UTC

    def is_stale(self) -> bool:
        """A lock whose process is gone. Only knowable for locks taken on this host."""
        if self.host != socket.gethostname() or self.pid <= 0:
            return False
        return not process_exists(self.pid)

    def describe(self) -> str:
        stale = " (that process is gone: the lock is stale)" if self.is_stale() else ""
        return f"locked by run {self.owner} (pid {self.pid} on {self.host}) since {self.acquired_at}{stale}"


@dataclass(frozen=True, slots=True)
class StoredState:
    pipeline_id: str
    value: dict[str, Any]
    updated_at: str


@dataclass(slots=True)
class RunRecord:
    pipeline_id: str
    run_id: str
    created_at: str
    report: dict[str, Any] = field(default_factory=dict)


T = TypeVar("T")
# Receives the stored partition document (None: none yet) and the store's clock; returns the document
# to write back (None deletes it) and what the caller gets.
PartitionChange = Callable[[dict[str, Any] | None, dt.datetime], tuple[dict[str, Any] | None, T]]


def utc_now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def new_lock(pipeline_id: str, owner: str) -> LockInfo:
    return LockInfo(pipeline_id, owner, os.getpid(), socket.gethostname(), utc_now())


class LockedError(DponeError):
    """Another run holds the pipeline's lock."""

    def __init__(self, lock: LockInfo) -> None:
        self.lock = lock
        # A live holder finishes on its own: retry later (75). A holder known to be gone never
        # will, so retrying would loop forever: an operator must break the lock (78).
        self.kind = ErrorKind.CONFIG if lock.is_stale() else ErrorKind.TRANSIENT
        hint = f"; if no run is active, break it with `dpone state unlock {lock.pipeline_id}`"
        super().__init__(f"pipeline {lock.pipeline_id!r} is {lock.describe()}{hint}")


class StateStore(Protocol):
    """Every method is atomic: a reader sees the old value or the new one, never a mix."""

    def get(self, pipeline_id: str) -> StoredState | None: ...

    def put(self, pipeline_id: str, value: dict[str, Any]) -> None:
        """Replace the pipeline's state value."""
        ...

    def delete(self, pipeline_id: str) -> None:
        """Forget the pipeline's state value; its lock and run history stay."""
        ...

    def list(self) -> list[StoredState]:
        """Every pipeline's state, sorted by pipeline id."""
        ...

    def acquire_lock(self, lock: LockInfo) -> None:
        """Take the pipeline's lock or raise LockedError naming the holder."""
        ...

    def release_lock(self, pipeline_id: str, owner: str) -> None:
        """Release the lock if `owner` holds it; a lock held by anyone else stays."""
        ...

    def break_lock(self, pipeline_id: str) -> LockInfo | None:
        """Remove whatever lock is held, stale or not; returns it (None if there was none)."""
        ...

    def get_lock(self, pipeline_id: str) -> LockInfo | None: ...

    def save_run(self, run: RunRecord) -> None:
        """Record a run; saving the same (pipeline_id, run_id) again replaces its record."""
        ...

    # `builtins.list`: inside this class body `list` names the method above.
    def runs(self, pipeline_id: str, limit: int = 20) -> builtins.list[RunRecord]:
        """At most `limit` runs, newest (by created_at) first."""
        ...

    def recent_runs(self, limit: int = 20, pipeline_id: str | None = None) -> builtins.list[RunRecord]:
        """At most `limit` runs of every pipeline (or of `pipeline_id`), newest (by created_at) first;
        among equal timestamps of one pipeline, the latest saved first."""
        ...

    def change_partitions(self, pipeline_id: str, stream: str, change: PartitionChange[T]) -> T:
        """Read, change and write a stream's partition manifest atomically (state/partitions.py): no
        other change of the same manifest, from any process or machine, interleaves."""
        ...

    def partition_plans(self, pipeline_id: str | None = None) -> builtins.list[dict[str, Any]]:
        """Every partition manifest (of `pipeline_id`), sorted by pipeline id and stream."""
        ...

    def close(self) -> None: ...


DEFAULT_BACKEND = "sqlite:///.dpone/state.db"


def open_store(uri: str | None = None) -> StateStore:
    """sqlite:///path (default .dpone/state.db), file:///path/state.json, postgresql://..., or
    mssql://user:password@host:port/database?schema=NAME (also sqlserver://; mssql:///?odbc_connect=
    with a URL-encoded ODBC connection string)."""
    uri = uri or os.environ.get("DPONE_STATE_BACKEND") or DEFAULT_BACKEND
    scheme, _, rest = uri.partition("://")
    # SQLAlchemy-style: sqlite:///relative/path and sqlite:////absolute/path
    path = rest[1:] if rest.startswith("/") else rest
    if scheme == "sqlite":
        from dpone.state.sqlite_store import SqliteStore  # noqa: PLC0415 - backends load on demand

        return SqliteStore(path or ".dpone/state.db")
    if scheme == "file":
        from dpone.state.json_store import JsonFileStore  # noqa: PLC0415

        return JsonFileStore(path or ".dpone/state.json")
    if scheme in ("postgresql", "postgres"):
        from dpone.state.postgres_store import PostgresStore  # noqa: PLC0415

        return PostgresStore(uri)
    if scheme in ("mssql", "sqlserver"):
        from dpone.state.mssql_store import MssqlStore  # noqa: PLC0415

        return MssqlStore(uri)
    raise ConfigError(
        f"unknown state backend {scheme!r}: use sqlite:///PATH, file:///PATH, postgresql://... or mssql://..."
    )
