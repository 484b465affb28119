"""The default state store: one embedded SQLite file, safe to share between processes.

Every change runs in a ``BEGIN IMMEDIATE`` transaction, which takes SQLite's write lock before
reading, so a compare-and-set (take the lock only if nobody holds it) cannot interleave with
another process doing the same. WAL mode lets readers proceed while a writer commits.
"""

from __future__ import annotations

import builtins
import datetime as dt
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import orjson

from dpone.state.merge import canonical
from dpone.state.store import LockedError, LockInfo, PartitionChange, RunRecord, StoredState, T, utc_now
from dpone_protocol.errors import ConfigError, TransientError

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS dpone_state (
        pipeline_id TEXT PRIMARY KEY,
        value TEXT NOT NULL,
        updated_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS dpone_locks (
        pipeline_id TEXT PRIMARY KEY,
        owner TEXT NOT NULL,
        pid INTEGER NOT NULL,
        host TEXT NOT NULL,
        acquired_at TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS dpone_partitions (
        pipeline_id TEXT NOT NULL,
        stream TEXT NOT NULL,
        doc TEXT NOT NULL,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (pipeline_id, stream)
    )""",
    """CREATE TABLE IF NOT EXISTS dpone_runs (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        pipeline_id TEXT NOT NULL,
        run_id TEXT NOT NULL,
        created_at TEXT NOT NULL,
        report TEXT NOT NULL,
        UNIQUE (pipeline_id, run_id)
    )""",
)
_LOCK_COLUMNS = "pipeline_id, owner, pid, host, acquired_at"
_BUSY = ("SQLITE_BUSY", "SQLITE_LOCKED")


def _is_busy(exc: sqlite3.Error) -> bool:
    return str(getattr(exc, "sqlite_errorname", "")).startswith(_BUSY)


class SqliteStore:
    def __init__(self, path: str | Path, *, timeout: float = 30.0) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection shared by the runner's threads; self._mutex serialises its use.
        try:
            self._conn = sqlite3.connect(str(path), timeout=timeout, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise ConfigError(f"cannot open the state database {self.path}: {exc}") from None
        self._mutex = threading.Lock()
        with self._errors():
            self._enable_wal(deadline=time.monotonic() + timeout)
            # A committed state must survive a power cut, not only a crash of this process.
            self._conn.execute("PRAGMA synchronous=FULL")
        with self._write() as conn:
            for statement in _SCHEMA:
                conn.execute(statement)

    def _enable_wal(self, deadline: float) -> None:
        # Switching a new file to WAL fails at once, without waiting on the busy timeout, when
        # another process is switching it too; so wait here, as the busy timeout would.
        delay = 0.002
        while True:
            try:
                self._conn.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc) or time.monotonic() + delay > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.1)

    @contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except sqlite3.Error as exc:
            if _is_busy(exc):
                raise TransientError(f"the state database {self.path} is busy: {exc}; try again") from None
            raise ConfigError(f"the state database {self.path} failed: {exc}") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with self._mutex, self._errors():
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

    def _read(self, query: str, params: tuple[Any, ...] = ()) -> builtins.list[tuple[Any, ...]]:
        with self._mutex, self._errors():
            return self._conn.execute(query, params).fetchall()

    def get(self, pipeline_id: str) -> StoredState | None:
        rows = self._read("SELECT value, updated_at FROM dpone_state WHERE pipeline_id = ?", (pipeline_id,))
        return StoredState(pipeline_id, orjson.loads(rows[0][0]), rows[0][1]) if rows else None

    def put(self, pipeline_id: str, value: dict[str, Any]) -> None:
        encoded = canonical(value).decode()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO dpone_state (pipeline_id, value, updated_at) VALUES (?, ?, ?) "
                "ON CONFLICT (pipeline_id) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (pipeline_id, encoded, utc_now()),
            )

    def delete(self, pipeline_id: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM dpone_state WHERE pipeline_id = ?", (pipeline_id,))

    def list(self) -> builtins.list[StoredState]:
        rows = self._read("SELECT pipeline_id, value, updated_at FROM dpone_state ORDER BY pipeline_id")
        return [StoredState(pid, orjson.loads(value), updated) for pid, value, updated in rows]

    def acquire_lock(self, lock: LockInfo) -> None:
        with self._write() as conn:
            held = conn.execute(
                f"SELECT {_LOCK_COLUMNS} FROM dpone_locks WHERE pipeline_id = ?", (lock.pipeline_id,)
            ).fetchone()
            if held is not None:
                raise LockedError(LockInfo(*held))
            conn.execute(
                f"INSERT INTO dpone_locks ({_LOCK_COLUMNS}) VALUES (?, ?, ?, ?, ?)",
                (lock.pipeline_id, lock.owner, lock.pid, lock.host, lock.acquired_at),
            )

    def release_lock(self, pipeline_id: str, owner: str) -> None:
        with self._write() as conn:
            conn.execute("DELETE FROM dpone_locks WHERE pipeline_id = ? AND owner = ?", (pipeline_id, owner))

    def break_lock(self, pipeline_id: str) -> LockInfo | None:
        with self._write() as conn:
            held = conn.execute(
                f"SELECT {_LOCK_COLUMNS} FROM dpone_locks WHERE pipeline_id = ?", (pipeline_id,)
            ).fetchone()
            conn.execute("DELETE FROM dpone_locks WHERE pipeline_id = ?", (pipeline_id,))
        return LockInfo(*held) if held is not None else None

    def get_lock(self, pipeline_id: str) -> LockInfo | None:
        rows = self._read(f"SELECT {_LOCK_COLUMNS} FROM dpone_locks WHERE pipeline_id = ?", (pipeline_id,))
        return LockInfo(*rows[0]) if rows else None

    def save_run(self, run: RunRecord) -> None:
        report = canonical(run.report).decode()
        with self._write() as conn:
            conn.execute(
                "INSERT INTO dpone_runs (pipeline_id, run_id, created_at, report) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (pipeline_id, run_id) DO UPDATE "
                "SET created_at = excluded.created_at, report = excluded.report",
                (run.pipeline_id, run.run_id, run.created_at, report),
            )

    def runs(self, pipeline_id: str, limit: int = 20) -> builtins.list[RunRecord]:
        return self.recent_runs(limit, pipeline_id)

    def recent_runs(self, limit: int = 20, pipeline_id: str | None = None) -> builtins.list[RunRecord]:
        where, params = ("", ()) if pipeline_id is None else ("WHERE pipeline_id = ? ", (pipeline_id,))
        rows = self._read(
            f"SELECT pipeline_id, run_id, created_at, report FROM dpone_runs {where}"
            "ORDER BY created_at DESC, seq DESC LIMIT ?",
            (*params, max(limit, 0)),
        )
        return [RunRecord(pid, run_id, created, orjson.loads(report)) for pid, run_id, created, report in rows]

    def change_partitions(self, pipeline_id: str, stream: str, change: PartitionChange[T]) -> T:
        with self._write() as conn:
            row = conn.execute(
                "SELECT doc FROM dpone_partitions WHERE pipeline_id = ? AND stream = ?", (pipeline_id, stream)
            ).fetchone()
            doc, result = change(orjson.loads(row[0]) if row else None, dt.datetime.now(dt.UTC))
            if doc is None:
                conn.execute("DELETE FROM dpone_partitions WHERE pipeline_id = ? AND stream = ?", (pipeline_id, stream))
            else:
                conn.execute(
                    "INSERT INTO dpone_partitions (pipeline_id, stream, doc, updated_at) VALUES (?, ?, ?, ?) "
                    "ON CONFLICT (pipeline_id, stream) "
                    "DO UPDATE SET doc = excluded.doc, updated_at = excluded.updated_at",
                    (pipeline_id, stream, canonical(doc).decode(), utc_now()),
                )
        return result

    def partition_plans(self, pipeline_id: str | None = None) -> builtins.list[dict[str, Any]]:
        where, params = ("", ()) if pipeline_id is None else ("WHERE pipeline_id = ? ", (pipeline_id,))
        rows = self._read(f"SELECT doc FROM dpone_partitions {where}ORDER BY pipeline_id, stream", params)
        return [orjson.loads(doc) for (doc,) in rows]

    def close(self) -> None:
        with self._mutex:
            self._conn.close()
