"""State kept in SQL Server (or Azure SQL), for runs on several machines sharing one state.

The store talks to the server through :mod:`dpone_drivers.mssql` (pyodbc and an ODBC driver), which
is imported only when a store is opened: importing this module loads no driver. Its URI is either

    mssql://USER:PASSWORD@HOST:PORT/DATABASE?schema=dpone&encrypt=yes&trust_server_certificate=no
    mssql:///?odbc_connect=<the whole ODBC connection string, URL-encoded>&schema=dpone

(``sqlserver://`` is the same); the query also takes the SQL Server connectors' settings ``driver``,
``encrypt``, ``trust_server_certificate``, ``authentication`` and ``connect_timeout``. Tables live
in the schema ``?schema=`` names (default ``dbo``); they are created when missing, and opening a
store where they exist needs no permission beyond reading and writing them.

Every operation is one transaction on a connection opened with autocommit off, ended by an explicit
commit (or a rollback), so what a call changes lands whole or not at all. A connection that drops is
replaced and the call redone once on the new one: every operation is safe to redo, which is what
lets a store survive an idle connection cut by a gateway between two calls of a long run.
Every message goes through a :class:`Redactor`: the password never shows, encoded or not.
"""

from __future__ import annotations

import builtins
import contextlib
import functools
import re
import threading
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import orjson

from dpone.state.merge import canonical
from dpone.state.store import LockedError, LockInfo, PartitionChange, RunRecord, StoredState, T, utc_now
from dpone_drivers import mssql
from dpone_drivers.sql_names import BRACKETS
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError, TransientError

SCHEMES = ("mssql", "sqlserver")
DEFAULT_SCHEMA = "dbo"
APPLICATION = "dpone-state"
TABLES = ("state", "locks", "runs")
# Bounds a statement stuck behind another session's locks: a state call that waits longer is
# failed as transient (HYT00) rather than hanging the run.
STATEMENT_TIMEOUT = 60

# Query parameters of the URI, the driver module's setting names; odbc_connect replaces the others.
_SETTINGS = ("driver", "encrypt", "trust_server_certificate", "authentication", "connect_timeout")
_WITH_ODBC_CONNECT = ("driver", "connect_timeout")
_TRUE = ("yes", "true", "1", "on")
_FALSE = ("no", "false", "0", "off")
_URI_RE = re.compile(r"(?P<netloc>[^/?#]*)(?P<path>/[^?#]*)?(?:\?(?P<query>[^#]*))?", re.DOTALL)
_WORD_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,63}")
_PWD_RE = re.compile(r"(?:^|;)\s*pwd\s*=\s*(\{(?:[^}]|\}\})*\}|[^;]*)", re.IGNORECASE)
# Server error numbers and SQLSTATEs meaning the connection itself is gone (not the statement):
# a reset or timed-out socket, or Azure SQL moving the database and dropping its sessions.
_LOST_NUMBERS = {10053, 10054, 10060, 40197, 40613}
_DUPLICATE_KEY = {2627, 2601}
_EXISTS = 2714  # There is already an object named ... in the database
_LOCK_COLUMNS = "pipeline_id, owner, pid, host, acquired_at"
_ACQUIRE_ATTEMPTS = 5

# Keys are NVARCHAR(400) (800 bytes): within the 900 bytes of a clustered key, and the runs'
# two-column unique key within the 1700 bytes of a nonclustered one. A binary collation makes ids
# case- and accent-exact, as in the other stores (a database's default collation would take `P1`
# for `p1`), and orders them by code point. Trailing spaces no collation keeps: see _exact.
_ID = "NVARCHAR(400) COLLATE Latin1_General_100_BIN2 NOT NULL"
_STAMP = "NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL"
_DDL = {
    "state": "CREATE TABLE {state} (pipeline_id " + _ID + " PRIMARY KEY, value NVARCHAR(MAX) NOT NULL,"
    " updated_at " + _STAMP + ")",
    "locks": "CREATE TABLE {locks} (pipeline_id " + _ID + " PRIMARY KEY, owner " + _ID + ","
    " pid BIGINT NOT NULL, host NVARCHAR(255) NOT NULL, acquired_at NVARCHAR(64) NOT NULL)",
    "runs": "CREATE TABLE {runs} (seq BIGINT IDENTITY(1, 1) NOT NULL PRIMARY KEY, pipeline_id " + _ID + ","
    " run_id " + _ID + ", created_at " + _STAMP + ", report NVARCHAR(MAX) NOT NULL, UNIQUE (pipeline_id, run_id))",
}


@dataclass(frozen=True, slots=True)
class Target:
    """What a store URI says: the driver module's connection settings, the schema, and its secrets."""

    config: dict[str, Any]
    schema: str | None
    redactor: Redactor
    where: str  # the server and database, for messages; never a credential


def parse_uri(uri: str) -> Target:
    """A ``mssql://`` or ``sqlserver://`` URI as connection settings; ConfigError when malformed.

    The messages never quote the URI, only the name of what is wrong: any part of it may be a
    piece of a mis-parsed password.
    """
    scheme, sep, rest = uri.partition("://")
    if scheme.lower() not in SCHEMES or not sep:
        raise ConfigError("a SQL Server state store URI starts with mssql:// or sqlserver://")
    parts = _URI_RE.match(rest)
    assert parts is not None  # every part is optional: any text matches
    netloc, path, query_text = parts["netloc"], (parts["path"] or "/")[1:], parts["query"] or ""
    if netloc and "@" not in netloc and "@" in rest:
        # The host part ended early, at a `/`, `?` or `#` of the password: the pieces around it
        # would be taken for a host, port or parameter, and must not reach a message.
        raise ConfigError(
            "the SQL Server state store URI has an '@' after its host: percent-encode '/', '?', '#' and '@' "
            "in the user name and password (%2F, %3F, %23, %40)"
        )
    userinfo, _, hostport = netloc.rpartition("@")
    user_raw, colon, password_raw = userinfo.partition(":")
    secrets = [password_raw, urllib.parse.unquote(password_raw)] if colon else []
    try:
        query = urllib.parse.parse_qsl(query_text, keep_blank_values=True, strict_parsing=False)
    except ValueError:
        raise ConfigError("the SQL Server state store URI has a malformed query") from None
    params: dict[str, str] = {}
    for key, value in query:
        params[key] = value
        if key == "odbc_connect":
            secrets += [query_text, value]
            secrets += [m.group(1).strip("{}").replace("}}", "}") for m in _PWD_RE.finditer(value)]
    redactor = Redactor(s for s in secrets if s)

    unknown = sorted(set(params) - {"schema", "odbc_connect", *_SETTINGS})
    if unknown:
        # A name that is not a word may be the tail of a password holding an unencoded `?`.
        shown = ", ".join(repr(k) if _WORD_RE.fullmatch(k) else "one that is not a name" for k in unknown)
        allowed = ", ".join(("schema", *_SETTINGS, "odbc_connect"))
        raise ConfigError(f"the SQL Server state store URI has unknown parameters ({shown}): use {allowed}")
    schema = params.pop("schema", "") or None

    config: dict[str, Any] = {}
    if "odbc_connect" in params:
        odbc = params.pop("odbc_connect").strip()
        if netloc or path:
            raise ConfigError(
                "the SQL Server state store URI gives both odbc_connect and a server, login or database: "
                "use mssql:///?odbc_connect=... alone"
            )
        extra = sorted(set(params) - set(_WITH_ODBC_CONNECT))
        if extra:
            raise ConfigError(f"with odbc_connect, put {extra} in the ODBC connection string itself")
        if not odbc:
            raise ConfigError("the SQL Server state store URI's odbc_connect is empty")
        config["odbc_connection_string"] = odbc
        found = re.search(r"(?:^|;)\s*server\s*=\s*([^;]*)", odbc, re.IGNORECASE)
        where = f"server {redactor(found.group(1).strip())}" if found else "the server of odbc_connect"
    else:
        host, port = _split_host(urllib.parse.unquote(hostport))
        if port:
            # Not check_port: it shows a short wrong value, which here may be a piece of a password.
            if not (port.isascii() and port.isdigit() and 1 <= int(port) <= 65535):
                raise ConfigError("the SQL Server state store URI: the port must be a number from 1 to 65535")
            config["port"] = int(port)
        config["host"] = host or "localhost"
        if user_raw:
            config["user"] = urllib.parse.unquote(user_raw)
        if colon:
            config["password"] = urllib.parse.unquote(password_raw)
        database = urllib.parse.unquote(path)
        if database:
            config["database"] = database
        where = f"{config['host']}:{config.get('port', 1433)}/{database or '(default database)'}"
    for key, value in params.items():
        config[key] = _setting(key, value)
    return Target(config, schema, redactor, where)


def _split_host(hostport: str) -> tuple[str, str]:
    if hostport.startswith("["):  # an IPv6 address: [::1]:1433
        address, _, after = hostport[1:].partition("]")
        return address, after.removeprefix(":")
    host, colon, port = hostport.rpartition(":")
    return (host, port) if colon else (hostport, "")


def _setting(key: str, value: str) -> Any:
    if key == "trust_server_certificate":
        if value.lower() in _TRUE:
            return True
        if value.lower() in _FALSE:
            return False
        raise ConfigError(f"the SQL Server state store URI: {key} must be yes or no")
    if key == "encrypt" and value.lower() not in mssql.ENCRYPT_MODES:
        raise ConfigError(f"the SQL Server state store URI: encrypt must be one of {', '.join(mssql.ENCRYPT_MODES)}")
    if key == "authentication" and value not in (mssql.SQL_LOGIN, *mssql.ENTRA_MODES):
        modes = ", ".join((mssql.SQL_LOGIN, *mssql.ENTRA_MODES))
        raise ConfigError(f"the SQL Server state store URI: authentication must be one of {modes}")
    if key == "connect_timeout":
        if not (value.isascii() and value.isdigit() and int(value) > 0):
            raise ConfigError("the SQL Server state store URI: connect_timeout must be a whole number of seconds")
        return int(value)
    return value.lower() if key == "encrypt" else value


def _create(cursor: Any, _redone: bool, *, ddl: str) -> None:
    """Run one CREATE, each in a transaction of its own. Another store opening at the same time may
    be creating the same object: SQL Server makes this CREATE wait for that one's commit, then
    refuses it as existing (2714), which is the outcome wanted, not an error."""
    try:
        cursor.execute(ddl)
    except mssql.driver_errors() as exc:
        if mssql.error_number(exc) != _EXISTS:
            raise


def _exact(value: str, what: str = "pipeline id") -> str:
    """`value`, or ConfigError when SQL Server could not tell it from another: its `=` ignores
    trailing spaces in every collation, so `p1 ` would read and overwrite the rows of `p1`."""
    if value.endswith(" "):
        raise ConfigError(
            f"the SQL Server state store cannot keep the {what} {value!r}: SQL Server ignores trailing spaces "
            f"when it compares text, so it would be the same as {value.rstrip(' ')!r}"
        )
    return value


def _connection_lost(exc: Exception) -> bool:
    return mssql.sqlstate(exc).startswith("08") or mssql.error_number(exc) in _LOST_NUMBERS


class MssqlStore:
    def __init__(self, uri: str, schema: str | None = None) -> None:
        target = parse_uri(uri)
        self._config = target.config
        self._redact = target.redactor
        self._where = target.where
        self.schema = schema or target.schema or DEFAULT_SCHEMA
        if len(self.schema) > 128:
            raise ConfigError("the SQL Server state store's schema name is longer than SQL Server's 128 characters")
        self._driver = mssql.pyodbc()  # ConfigError now, naming what to install, if it is missing
        self._names = {key: BRACKETS.qualified(self.schema, f"dpone_{key}") for key in TABLES}
        self._mutex = threading.Lock()
        self._conn: Any = None
        self._setup()

    # -- connection and transactions ------------------------------------------------------------

    def _connection(self) -> Any:
        if self._conn is None:
            try:
                conn = mssql.connect(self._config, self._redact, APPLICATION, autocommit=False)
            except DponeError as exc:
                # Same kind as the driver module decided (a wrong password is 78, no answer 75),
                # saying which server: the connectors' own connections fail the same way.
                raise type(exc)(f"the SQL Server state store ({self._where}): {exc}") from None
            conn.timeout = STATEMENT_TIMEOUT
            self._conn = conn
        return self._conn

    def _drop_connection(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            # It is gone already; closing only frees the driver's handle.
            with contextlib.suppress(self._driver.Error):
                conn.close()

    def _rollback(self, conn: Any) -> None:
        try:
            conn.rollback()
        except self._driver.Error:
            # A connection that cannot roll back cannot be trusted with the next transaction.
            self._drop_connection()

    def _run(self, doing: str, work: Callable[[Any, bool], T]) -> T:
        """`work(cursor, redone)` as one transaction, committed here; `redone` is True on the second
        attempt, made on a new connection because the first one dropped."""
        with self._mutex:
            for attempt in range(2):
                conn = self._connection()
                cursor = conn.cursor()
                try:
                    result = work(cursor, attempt > 0)
                    conn.commit()
                    return result
                except self._driver.Error as exc:
                    lost = _connection_lost(exc)
                    if lost:
                        self._drop_connection()
                    else:
                        self._rollback(conn)
                    if lost and attempt == 0:
                        continue  # every operation is safe to redo: see the module's docstring
                    raise mssql.classify(
                        exc, self._redact, f"the SQL Server state store ({self._where}) failed {doing}"
                    ) from None
                except BaseException:
                    # Our own verdicts (LockedError, ...) and interrupts: nothing half-done stays.
                    self._rollback(conn)
                    raise
                finally:
                    # After a drop the connection under it is closed: nothing left to free.
                    with contextlib.suppress(self._driver.Error):
                        cursor.close()
            raise AssertionError("unreachable: the second attempt returns or raises")

    def _sql(self, template: str) -> str:
        """`template` with {state}, {locks} and {runs} naming the schema-qualified tables."""
        return template.format(**self._names)

    # -- tables ---------------------------------------------------------------------------------

    def _setup(self) -> None:
        # OBJECT_ID needs only some permission on the table, so a login that may read and write
        # existing tables but not create any opens the store with this one query.
        exists = "SELECT OBJECT_ID(?, 'U'), OBJECT_ID(?, 'U'), OBJECT_ID(?, 'U'), SCHEMA_ID(?)"
        params = (*(self._names[key] for key in TABLES), self.schema)

        def missing(cur: Any, _redone: bool) -> tuple[builtins.list[str], bool]:
            row = cur.execute(exists, params).fetchone()
            ids = tuple(row) if row is not None else (None,) * 4
            return [key for key, found in zip(TABLES, ids[:3], strict=True) if found is None], ids[3] is None

        tables, schema_absent = self._run("checking its tables", missing)
        statements = [f"CREATE SCHEMA {BRACKETS.q(self.schema)}"] if schema_absent else []
        statements += [self._sql(_DDL[key]) for key in tables]
        for statement in statements:
            self._run(f"creating its tables in schema {self.schema!r}", functools.partial(_create, ddl=statement))

    # -- values ---------------------------------------------------------------------------------

    def get(self, pipeline_id: str) -> StoredState | None:
        _exact(pipeline_id)
        query = self._sql("SELECT value, updated_at FROM {state} WHERE pipeline_id = ?")
        row = self._run("reading a state", lambda cur, _: cur.execute(query, (pipeline_id,)).fetchone())
        return StoredState(pipeline_id, self._decode(row[0], pipeline_id), row[1]) if row is not None else None

    def put(self, pipeline_id: str, value: dict[str, Any]) -> None:
        _exact(pipeline_id)
        encoded = canonical(value).decode()
        # HOLDLOCK keeps the key range locked from MERGE's match to its insert, so two puts of a
        # new pipeline cannot both insert (the second would hit the primary key).
        query = self._sql(
            "MERGE INTO {state} WITH (HOLDLOCK) AS t"
            " USING (SELECT ? AS pipeline_id, ? AS value, ? AS updated_at) AS s"
            " ON t.pipeline_id = s.pipeline_id"
            " WHEN MATCHED THEN UPDATE SET value = s.value, updated_at = s.updated_at"
            " WHEN NOT MATCHED THEN INSERT (pipeline_id, value, updated_at)"
            " VALUES (s.pipeline_id, s.value, s.updated_at);"
        )
        params = (pipeline_id, encoded, utc_now())
        self._run("saving a state", lambda cur, _: cur.execute(query, params))

    def delete(self, pipeline_id: str) -> None:
        _exact(pipeline_id)
        query = self._sql("DELETE FROM {state} WHERE pipeline_id = ?")
        self._run("deleting a state", lambda cur, _: cur.execute(query, (pipeline_id,)))

    def list(self) -> builtins.list[StoredState]:
        query = self._sql("SELECT pipeline_id, value, updated_at FROM {state} ORDER BY pipeline_id")
        rows = self._run("listing states", lambda cur, _: cur.execute(query).fetchall())
        return [StoredState(pid, self._decode(value, pid), updated) for pid, value, updated in rows]

    def _decode(self, text: str, pipeline_id: str, what: str = "state") -> Any:
        try:
            return orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            # Only a hand edit of the table gets here: say which row, so it can be fixed.
            raise ConfigError(
                f"the {what} of pipeline {pipeline_id!r} in the SQL Server state store ({self._where}, "
                f"schema {self.schema!r}) is not JSON: {exc}"
            ) from None

    # -- locks ----------------------------------------------------------------------------------

    def acquire_lock(self, lock: LockInfo) -> None:
        _exact(lock.pipeline_id)
        _exact(lock.owner, "run id")
        # UPDLOCK + HOLDLOCK lock the key (or the empty key range) until the commit: a racer waits
        # here, then finds the row; and the holder read next cannot leave in between.
        insert = self._sql(
            f"INSERT INTO {{locks}} ({_LOCK_COLUMNS}) OUTPUT inserted.pipeline_id SELECT ?, ?, ?, ?, ?"
            " WHERE NOT EXISTS (SELECT 1 FROM {locks} WITH (UPDLOCK, HOLDLOCK) WHERE pipeline_id = ?)"
        )
        select = self._sql(f"SELECT {_LOCK_COLUMNS} FROM {{locks}} WHERE pipeline_id = ?")
        mine = (lock.pipeline_id, lock.owner, lock.pid, lock.host, lock.acquired_at)

        def attempt(cur: Any, redone: bool) -> bool:
            try:
                inserted = cur.execute(insert, (*mine, lock.pipeline_id)).fetchone()
            except self._driver.Error as exc:
                # The hints make a duplicate key unexpected; should one come anyway, a racer
                # holds the lock, and the transaction is still open to read it.
                if mssql.error_number(exc) not in _DUPLICATE_KEY:
                    raise
                inserted = None
            if inserted is not None:
                return True
            held = cur.execute(select, (lock.pipeline_id,)).fetchone()
            if held is None:
                return False  # the racer released it in between: try again
            holder = LockInfo(*held)
            # Redone after a dropped connection: the first attempt's insert may have committed,
            # and a row equal to ours to the millisecond says it did.
            if redone and holder == lock:
                return True
            raise LockedError(holder)

        for _ in range(_ACQUIRE_ATTEMPTS):
            if self._run("taking a lock", attempt):
                return
        raise TransientError(f"the lock of pipeline {lock.pipeline_id!r} is changing hands too fast; try again")

    def release_lock(self, pipeline_id: str, owner: str) -> None:
        _exact(pipeline_id)
        _exact(owner, "run id")
        query = self._sql("DELETE FROM {locks} WHERE pipeline_id = ? AND owner = ?")
        self._run("releasing a lock", lambda cur, _: cur.execute(query, (pipeline_id, owner)))

    def break_lock(self, pipeline_id: str) -> LockInfo | None:
        _exact(pipeline_id)
        # One statement deletes and returns the row: no second reader can see it in between.
        query = self._sql(
            "DELETE {locks} OUTPUT deleted.pipeline_id, deleted.owner, deleted.pid, deleted.host,"
            " deleted.acquired_at WHERE pipeline_id = ?"
        )
        held = self._run("breaking a lock", lambda cur, _: cur.execute(query, (pipeline_id,)).fetchone())
        return LockInfo(*held) if held is not None else None

    def get_lock(self, pipeline_id: str) -> LockInfo | None:
        _exact(pipeline_id)
        query = self._sql(f"SELECT {_LOCK_COLUMNS} FROM {{locks}} WHERE pipeline_id = ?")
        held = self._run("reading a lock", lambda cur, _: cur.execute(query, (pipeline_id,)).fetchone())
        return LockInfo(*held) if held is not None else None

    # -- runs -----------------------------------------------------------------------------------

    def save_run(self, run: RunRecord) -> None:
        _exact(run.pipeline_id)
        _exact(run.run_id, "run id")
        report = canonical(run.report).decode()
        # Updating in place keeps the row's seq, so a run saved again keeps its place among
        # runs of the same created_at, as in the other stores.
        query = self._sql(
            "MERGE INTO {runs} WITH (HOLDLOCK) AS t"
            " USING (SELECT ? AS pipeline_id, ? AS run_id, ? AS created_at, ? AS report) AS s"
            " ON t.pipeline_id = s.pipeline_id AND t.run_id = s.run_id"
            " WHEN MATCHED THEN UPDATE SET created_at = s.created_at, report = s.report"
            " WHEN NOT MATCHED THEN INSERT (pipeline_id, run_id, created_at, report)"
            " VALUES (s.pipeline_id, s.run_id, s.created_at, s.report);"
        )
        params = (run.pipeline_id, run.run_id, run.created_at, report)
        self._run("saving a run", lambda cur, _: cur.execute(query, params))

    def runs(self, pipeline_id: str, limit: int = 20) -> builtins.list[RunRecord]:
        return self.recent_runs(limit, pipeline_id)

    def recent_runs(self, limit: int = 20, pipeline_id: str | None = None) -> builtins.list[RunRecord]:
        where, params = ("", ()) if pipeline_id is None else (" WHERE pipeline_id = ?", (_exact(pipeline_id),))
        query = self._sql(
            "SELECT TOP (?) pipeline_id, run_id, created_at, report FROM {runs}"
            f"{where} ORDER BY created_at DESC, seq DESC"
        )
        values = (max(int(limit), 0), *params)
        rows = self._run("reading runs", lambda cur, _: cur.execute(query, values).fetchall())
        return [
            RunRecord(pid, run_id, created, self._decode(report, pid, f"run {run_id!r} report"))
            for pid, run_id, created, report in rows
        ]

    def change_partitions(self, pipeline_id: str, stream: str, change: PartitionChange[T]) -> T:
        raise ConfigError(
            "partitioned loads keep their manifest in a sqlite, file or postgresql state store; the SQL "
            "Server store does not keep one yet"
        )

    def partition_plans(self, pipeline_id: str | None = None) -> builtins.list[dict[str, Any]]:
        return []

    def close(self) -> None:
        with self._mutex:
            self._drop_connection()
