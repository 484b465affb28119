"""CHANGE_TRACKING replication: SQL Server Change Tracking, in bounded runs.

Each run fixes its end when it starts (`CHANGE_TRACKING_CURRENT_VERSION()`) and reads the keys
changed after the saved version from `CHANGETABLE(CHANGES t, @version)`, LEFT JOINed to the table
for their current values, in version order: a key whose change is a delete (or whose row is gone
by now) becomes the key and `_sdc_deleted_at`, any other the row as it is now. The saved position
is the end version. A stream without one reads the current version, then the whole table.

With `snapshot_isolation` (and a database that allows it) the version, the check that the saved
version is still valid and the reads happen in one snapshot transaction, so they agree exactly;
otherwise rows changed during the read may come again next run (never lost).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dpone.state.records import ChangeVersionPosition
from dpone.taps.framework.sql_stream import SRC
from dpone.taps.framework.stream import ReadContext
from dpone.taps.mssql import grants, render
from dpone.taps.mssql.changes import (
    DELETED_AT,
    NOT_DELETED,
    change_rows,
    columns,
    own_columns,
    query,
    resync_needed,
)
from dpone_drivers import mssql
from dpone_drivers.sql_names import BRACKETS
from dpone_protocol.errors import ConfigError

if TYPE_CHECKING:
    from dpone.taps.mssql.streams import MssqlStream

log = logging.getLogger(__name__)

CHANGES = "_dpone_ct"  # the alias of CHANGETABLE in the query
_SNAPSHOT_ALLOWED = "SELECT d.name, d.snapshot_isolation_state FROM sys.databases AS d WHERE d.database_id = DB_ID()"
_VERSIONS = "SELECT CHANGE_TRACKING_CURRENT_VERSION(), CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(?)), DB_NAME()"
# ODBC connection attributes (msodbcsql.h, sqlext.h): snapshot isolation has an attribute of its own.
SQL_COPT_SS_TXN_ISOLATION = 1227
SQL_TXN_SS_SNAPSHOT = 0x20
SQL_ATTR_TXN_ISOLATION = 108
SQL_TXN_READ_COMMITTED = 2


def read_changes(stream: MssqlStream, ctx: ReadContext) -> Iterator[Any]:
    table = stream.table
    grant = grants.change_tracking_grant(table.qualified)
    saved = ctx.bookmark.version if isinstance(ctx.bookmark, ChangeVersionPosition) else None
    selected = own_columns(ctx.selected)
    with _transaction(stream, _use_snapshot(stream, grant)):
        ((current, oldest, database),) = query(stream, _VERSIONS, [table.qualified], "reading versions", grant)
        if current is None:
            raise ConfigError(
                f"stream {stream.name!r}: CHANGE_TRACKING needs change tracking on database {database!r}: "
                f"ALTER DATABASE {BRACKETS.q(str(database))} SET CHANGE_TRACKING = ON "
                "(CHANGE_RETENTION = 7 DAYS, AUTO_CLEANUP = ON)"
            )
        if oldest is None:
            raise ConfigError(
                f"stream {stream.name!r}: change tracking is not enabled on {table.qualified}: "
                f"ALTER TABLE {table.qualified} ENABLE CHANGE_TRACKING (or the tap's user cannot see it: {grant})"
            )
        if saved is None:
            log.info("stream %s: initial read of the whole table, then changes after version %s", stream.name, current)
            yield from stream.read_rows(selected, [], "", [])
            stream.change_end = int(current)
            return
        if saved < oldest:
            # Checked before any record: the cleanup removed changes this stream has not read.
            raise resync_needed(
                stream,
                f"its saved change tracking version {saved} is older than the oldest version still valid for "
                f"{table.qualified} ({oldest}; older changes passed the database's CHANGE_RETENTION)",
            )
        log.info("stream %s: changes after version %s up to %s", stream.name, saved, current)
        sql = changes_sql(stream, selected)
        yield from change_rows(stream, sql, [saved, current], "reading change tracking", grant)
        stream.change_end = max(int(current), saved)


def changes_sql(stream: MssqlStream, selected: list[str]) -> str:
    """Keys changed after a version (parameter 1) up to another (parameter 2), with their rows now."""
    table = stream.table
    keys = columns(stream, table.primary_key)
    upsert, upsert_join = render.columns_json(columns(stream, selected), SRC, [(NOT_DELETED, DELETED_AT)])
    delete, delete_join = render.columns_json(keys, CHANGES, [("SYSDATETIMEOFFSET()", DELETED_AT)], row="_dpone_key")
    on = " AND ".join(f"{k.ref(SRC)} = {k.ref(CHANGES)}" for k in keys)
    order = ", ".join([f"{CHANGES}.[SYS_CHANGE_VERSION]", *(k.ref(CHANGES) for k in keys)])
    return (
        f"SELECT CASE WHEN {CHANGES}.[SYS_CHANGE_OPERATION] = 'D' OR {keys[0].ref(SRC)} IS NULL "
        f"THEN {delete} ELSE {upsert} END, CONVERT(VARCHAR(20), {CHANGES}.[SYS_CHANGE_VERSION]) "
        f"FROM CHANGETABLE(CHANGES {table.qualified}, ?) AS {CHANGES} "
        f"LEFT JOIN {table.qualified} AS {SRC} ON {on}{upsert_join}{delete_join} "
        f"WHERE {CHANGES}.[SYS_CHANGE_VERSION] <= ? ORDER BY {order}"
    )


def _use_snapshot(stream: MssqlStream, grant: str) -> bool:
    """Whether to read in a snapshot transaction: the setting, if the database allows it."""
    if not stream.tap.config.get("snapshot_isolation", True):
        return False
    ((database, state),) = query(stream, _SNAPSHOT_ALLOWED, [], "checking snapshot isolation", grant)
    if state == 1:
        return True
    log.warning(
        "stream %s: database %s does not allow snapshot isolation (ALTER DATABASE %s SET "
        "ALLOW_SNAPSHOT_ISOLATION ON allows it): reading change tracking under READ COMMITTED, so rows "
        "changed during the read may come again next run",
        stream.name,
        database,
        BRACKETS.q(str(database)),
    )
    return False


@contextlib.contextmanager
def _transaction(stream: MssqlStream, snapshot: bool) -> Iterator[None]:
    """A snapshot transaction around the reads (nothing when `snapshot` is false)."""
    if not snapshot:
        yield
        return
    conn = stream.tap.conn
    try:
        conn.set_attr(SQL_COPT_SS_TXN_ISOLATION, SQL_TXN_SS_SNAPSHOT)
    except stream.tap.dialect.driver_errors() as exc:
        raise ConfigError(
            f"stream {stream.name!r}: the ODBC driver refused snapshot isolation "
            f"({mssql.message_of(exc, stream.tap.redactor)}); use Microsoft ODBC Driver 18, or set "
            "snapshot_isolation: false"
        ) from None
    conn.autocommit = False
    try:
        yield
        conn.commit()  # read only: ends the snapshot
    except BaseException:
        with contextlib.suppress(Exception):
            conn.rollback()
        raise
    finally:
        with contextlib.suppress(Exception):
            conn.autocommit = True
            conn.set_attr(SQL_ATTR_TXN_ISOLATION, SQL_TXN_READ_COMMITTED)
