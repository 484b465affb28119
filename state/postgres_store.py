"""State kept in PostgreSQL, for runs on several machines sharing one state.

psycopg is imported only when a store is opened, so importing this module (and so the runner's
CLI) loads no driver. Tables live in a schema given as a constructor argument or as the DSN
query parameter ``?schema=NAME`` (default ``public``); they are created when missing.
Every error message goes through a :class:`Redactor`, so the DSN's password never shows.
"""

from __future__ import annotations

import builtins
import re
import threading
import urllib.parse
from collections.abc import Iterator
from contextlib import contextmanager
from types import ModuleType
from typing import TYPE_CHECKING, Any

from dpone.state.merge import canonical
from dpone.state.store import LockedError, LockInfo, PartitionChange, RunRecord, StoredState, T, utc_now
from dpone_drivers.ports import check_port
from dpone_drivers.postgres import classify
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, FatalError, TransientError

if TYPE_CHECKING:
    import psycopg
    from psycopg import sql

_KV_SCHEMA_RE = re.compile(r"(?:^|\s)schema\s*=\s*(?P<name>'[^']*'|\S+)")
# Serialises first-time DDL between stores opening at once ("dpone" in ASCII).
_SETUP_LOCK_KEY = 0x64706F6E65
_LOCK_COLUMNS = "pipeline_id, owner, pid, host, acquired_at"
_ACQUIRE_ATTEMPTS = 5


def _driver() -> ModuleType:
    try:
        import psycopg  # noqa: PLC0415 - the driver loads only when a store is opened
    except ImportError:
        raise ConfigError("the PostgreSQL state store needs psycopg: pip install 'dpone[postgres]'") from None
    return psycopg


def split_schema(dsn: str) -> tuple[str, str | None]:
    """The DSN without its ``schema`` parameter (libpq would reject it), and that schema."""
    if "://" in dsn:
        parts = urllib.parse.urlsplit(dsn)
        query = urllib.parse.parse_qsl(parts.query, keep_blank_values=True)
        schemas = [v for k, v in query if k == "schema"]
        if not schemas:
            return dsn, None
        rest = urllib.parse.urlencode([(k, v) for k, v in query if k != "schema"])
        return urllib.parse.urlunsplit(parts._replace(query=rest)), schemas[-1] or None
    match = _KV_SCHEMA_RE.search(dsn)
    if match is None:
        return dsn, None
    name = match.group("name").strip("'")
    return (dsn[: match.start()] + dsn[match.end() :]).strip(), name or None


def _redactor(dsn: str) -> Redactor:
    secrets: list[str] = []
    if "://" in dsn:
        raw = urllib.parse.urlsplit(dsn).netloc.rpartition("@")[0].partition(":")[2]
        secrets += [raw, urllib.parse.unquote(raw)]
    # Short passwords are not masked by value, but the Redactor still masks them inside DSNs.
    return Redactor(s for s in secrets if s)


class PostgresStore:
    def __init__(self, dsn: str, schema: str | None = None, *, connect_timeout: int = 10) -> None:
        self._redact = _redactor(dsn)
        conninfo, dsn_schema = split_schema(dsn)
        self.schema = schema or dsn_schema or "public"
        self._psycopg = _driver()
        try:
            params = self._psycopg.conninfo.conninfo_to_dict(conninfo)
        except self._psycopg.Error as exc:
            raise ConfigError(
                f"invalid PostgreSQL state store DSN {self._redact(dsn)}: {self._redact(str(exc))}"
            ) from None
        check_port(params.get("port", ""), "the PostgreSQL state store DSN", several=True)
        params.setdefault("connect_timeout", connect_timeout)
        self._params = params
        schema_id = self._psycopg.sql.Identifier(self.schema)
        self._tables = {
            key: self._psycopg.sql.SQL("{}.{}").format(schema_id, self._psycopg.sql.Identifier(f"dpone_{key}"))
            for key in ("state", "locks", "runs", "partitions")
        }
        self._where = self._redact(conninfo)
        self._mutex = threading.Lock()
        self._conn: psycopg.Connection[Any] | None = None
        self._setup()

    def _connection(self) -> psycopg.Connection[Any]:
        # Reconnects after a dropped connection, so one network blip fails one call, not the run.
        if self._conn is None or self._conn.closed or self._conn.broken:
            try:
                self._conn = self._psycopg.connect(autocommit=True, **self._params)
            except self._psycopg.Error as exc:
                # Classified like the connectors' connections: a wrong password or a missing
                # database is a setting to fix (78), a server that does not answer is transient (75).
                raise classify(
                    exc, self._redact, f"cannot connect to the PostgreSQL state store {self._where}"
                ) from None
        assert self._conn is not None
        return self._conn

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Cursor[Any]]:
        driver = self._psycopg
        with self._mutex:
            try:
                conn = self._connection()
                with conn.transaction(), conn.cursor() as cursor:
                    yield cursor
            except driver.OperationalError as exc:
                raise TransientError(f"the PostgreSQL state store failed: {self._redact(str(exc))}") from None
            except driver.DataError as exc:
                raise DataError(f"the PostgreSQL state store rejected a value: {self._redact(str(exc))}") from None
            except driver.errors.InsufficientPrivilege as exc:
                raise ConfigError(f"the PostgreSQL state store: {self._redact(str(exc))}") from None
            except driver.Error as exc:
                raise FatalError(f"the PostgreSQL state store failed: {self._redact(str(exc))}") from None

    def _query(self, template: str) -> sql.Composed:
        """`template` with {state}, {locks} and {runs} naming the schema-qualified tables."""
        return self._psycopg.sql.SQL(template).format(**self._tables)  # type: ignore[no-any-return]

    def _setup(self) -> None:
        wanted = ("dpone_state", "dpone_locks", "dpone_runs", "dpone_partitions")
        exists = "SELECT count(to_regclass(format('%%I.%%I', %s::text, t))) FROM unnest(%s::text[]) AS t"
        with self._transaction() as cur:
            cur.execute(exists, (self.schema, list(wanted)))
            row = cur.fetchone()
            if row is not None and row[0] == len(wanted):
                return  # the usual case, and one that needs no CREATE privilege
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (_SETUP_LOCK_KEY,))
            cur.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (self.schema,))
            if cur.fetchone() is None:
                cur.execute(
                    self._psycopg.sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(
                        self._psycopg.sql.Identifier(self.schema)
                    )
                )
            cur.execute(
                self._query(
                    "CREATE TABLE IF NOT EXISTS {state} ("
                    " pipeline_id text PRIMARY KEY, value jsonb NOT NULL, updated_at text NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS {locks} ("
                    " pipeline_id text PRIMARY KEY, owner text NOT NULL, pid integer NOT NULL,"
                    " host text NOT NULL, acquired_at text NOT NULL);"
                    "CREATE TABLE IF NOT EXISTS {runs} ("
                    " seq bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, pipeline_id text NOT NULL,"
                    " run_id text NOT NULL, created_at text NOT NULL, report jsonb NOT NULL,"
                    " UNIQUE (pipeline_id, run_id));"
                    "CREATE TABLE IF NOT EXISTS {partitions} ("
                    " pipeline_id text NOT NULL, stream text NOT NULL, doc jsonb NOT NULL,"
                    " updated_at text NOT NULL, PRIMARY KEY (pipeline_id, stream))"
                )
            )

    def get(self, pipeline_id: str) -> StoredState | None:
        with self._transaction() as cur:
            cur.execute(self._query("SELECT value, updated_at FROM {state} WHERE pipeline_id = %s"), (pipeline_id,))
            row = cur.fetchone()
        return StoredState(pipeline_id, row[0], row[1]) if row is not None else None

    def put(self, pipeline_id: str, value: dict[str, Any]) -> None:
        encoded = canonical(value).decode()
        query = self._query(
            "INSERT INTO {state} (pipeline_id, value, updated_at) VALUES (%s, %s::jsonb, %s) "
            "ON CONFLICT (pipeline_id) DO UPDATE SET value = EXCLUDED.value, updated_at = EXCLUDED.updated_at",
        )
        with self._transaction() as cur:
            cur.execute(query, (pipeline_id, encoded, utc_now()))

    def delete(self, pipeline_id: str) -> None:
        with self._transaction() as cur:
            cur.execute(self._query("DELETE FROM {state} WHERE pipeline_id = %s"), (pipeline_id,))

    def list(self) -> builtins.list[StoredState]:
        with self._transaction() as cur:
            cur.execute(self._query("SELECT pipeline_id, value, updated_at FROM {state} ORDER BY pipeline_id"))
            rows = cur.fetchall()
        return [StoredState(pid, value, updated) for pid, value, updated in rows]

    def acquire_lock(self, lock: LockInfo) -> None:
        insert = self._query(
            f"INSERT INTO {{locks}} ({_LOCK_COLUMNS}) VALUES (%s, %s, %s, %s, %s) "
            "ON CONFLICT (pipeline_id) DO NOTHING RETURNING pipeline_id",
        )
        select = self._query(f"SELECT {_LOCK_COLUMNS} FROM {{locks}} WHERE pipeline_id = %s")
        for _ in range(_ACQUIRE_ATTEMPTS):
            with self._transaction() as cur:
                cur.execute(insert, (lock.pipeline_id, lock.owner, lock.pid, lock.host, lock.acquired_at))
                if cur.fetchone() is not None:
                    return
                cur.execute(select, (lock.pipeline_id,))
                held = cur.fetchone()
                if held is not None:
                    raise LockedError(LockInfo(*held))
            # The holder released it between the two statements: try again.
        raise TransientError(f"the lock of pipeline {lock.pipeline_id!r} is changing hands too fast; try again")

    def release_lock(self, pipeline_id: str, owner: str) -> None:
        query = self._query("DELETE FROM {locks} WHERE pipeline_id = %s AND owner = %s")
        with self._transaction() as cur:
            cur.execute(query, (pipeline_id, owner))

    def break_lock(self, pipeline_id: str) -> LockInfo | None:
        query = self._query(f"DELETE FROM {{locks}} WHERE pipeline_id = %s RETURNING {_LOCK_COLUMNS}")
        with self._transaction() as cur:
            cur.execute(query, (pipeline_id,))
            held = cur.fetchone()
        return LockInfo(*held) if held is not None else None

    def get_lock(self, pipeline_id: str) -> LockInfo | None:
        query = self._query(f"SELECT {_LOCK_COLUMNS} FROM {{locks}} WHERE pipeline_id = %s")
        with self._transaction() as cur:
            cur.execute(query, (pipeline_id,))
            held = cur.fetchone()
        return LockInfo(*held) if held is not None else None

    def save_run(self, run: RunRecord) -> None:
        report = canonical(run.report).decode()
        query = self._query(
            "INSERT INTO {runs} (pipeline_id, run_id, created_at, report) VALUES (%s, %s, %s, %s::jsonb) "
            "ON CONFLICT (pipeline_id, run_id) DO UPDATE "
            "SET created_at = EXCLUDED.created_at, report = EXCLUDED.report",
        )
        with self._transaction() as cur:
            cur.execute(query, (run.pipeline_id, run.run_id, run.created_at, report))

    def runs(self, pipeline_id: str, limit: int = 20) -> builtins.list[RunRecord]:
        return self.recent_runs(limit, pipeline_id)

    def recent_runs(self, limit: int = 20, pipeline_id: str | None = None) -> builtins.list[RunRecord]:
        where, params = ("", ()) if pipeline_id is None else (" WHERE pipeline_id = %s", (pipeline_id,))
        query = self._query(
            "SELECT pipeline_id, run_id, created_at, report FROM {runs}"
            f"{where} ORDER BY created_at DESC, seq DESC LIMIT %s",
        )
        with self._transaction() as cur:
            cur.execute(query, (*params, max(limit, 0)))
            rows = cur.fetchall()
        return [RunRecord(pid, run_id, created, report) for pid, run_id, created, report in rows]

    def change_partitions(self, pipeline_id: str, stream: str, change: PartitionChange[T]) -> T:
        with self._transaction() as cur:
            # Serialises every change of this manifest, its creation included (no row to lock yet),
            # across machines; the database's clock times the leases, so workers' clocks may differ.
            cur.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0)), clock_timestamp()",
                (f"dpone-partitions/{pipeline_id}/{stream}",),
            )
            row = cur.fetchone()
            assert row is not None
            now = row[1]
            cur.execute(
                self._query("SELECT doc FROM {partitions} WHERE pipeline_id = %s AND stream = %s"),
                (pipeline_id, stream),
            )
            found = cur.fetchone()
            doc, result = change(found[0] if found else None, now)
            if doc is None:
                cur.execute(
                    self._query("DELETE FROM {partitions} WHERE pipeline_id = %s AND stream = %s"),
                    (pipeline_id, stream),
                )
            else:
                cur.execute(
                    self._query(
                        "INSERT INTO {partitions} (pipeline_id, stream, doc, updated_at) "
                        "VALUES (%s, %s, %s::jsonb, %s) ON CONFLICT (pipeline_id, stream) "
                        "DO UPDATE SET doc = EXCLUDED.doc, updated_at = EXCLUDED.updated_at"
                    ),
                    (pipeline_id, stream, canonical(doc).decode(), utc_now()),
                )
        return result

    def partition_plans(self, pipeline_id: str | None = None) -> builtins.list[dict[str, Any]]:
        where, params = ("", ()) if pipeline_id is None else (" WHERE pipeline_id = %s", (pipeline_id,))
        with self._transaction() as cur:
            cur.execute(self._query(f"SELECT doc FROM {{partitions}}{where} ORDER BY pipeline_id, stream"), params)
            rows = cur.fetchall()
        return [doc for (doc,) in rows]

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
