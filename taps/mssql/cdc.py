"""LOG_BASED replication: SQL Server change data capture (CDC), in bounded runs.

Each run fixes its end when it starts (`sys.fn_cdc_get_max_lsn()`, the newest change the capture
job has harvested) and reads the capture instance's changes from just after the saved LSN up to it,
with `cdc.fn_cdc_get_all_changes_<instance>`, in commit order (`__$start_lsn`, `__$seqval`): an
insert (2) or update (4) is the row, a delete (1) is the key and `_sdc_deleted_at` (the commit time),
an update's before image (3) is skipped. The saved LSN is the end, as hex text ("0x" and 20 digits):
an LSN is 80 bits wide. A stream without one starts with a snapshot of the table, taken after
noting the max LSN, so no change falls in between (those after it are read again next run).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from dpone.state.records import CdcLsnPosition
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
from dpone_drivers.sql_names import BRACKETS
from dpone_protocol.errors import ConfigError

if TYPE_CHECKING:
    from dpone.taps.mssql.streams import MssqlStream

log = logging.getLogger(__name__)

CHANGES = "_dpone_cdc"  # the alias of the change function in the query
_ENABLED = (
    "SELECT d.name, d.is_cdc_enabled, t.is_tracked_by_cdc FROM sys.databases AS d "
    "LEFT JOIN sys.tables AS t ON t.object_id = OBJECT_ID(?) WHERE d.database_id = DB_ID()"
)
# The newest capture instance first (a table has two while its capture is being migrated).
_INSTANCE = (
    "SELECT ct.capture_instance, cc.column_name FROM cdc.change_tables AS ct "
    "JOIN cdc.captured_columns AS cc ON cc.object_id = ct.object_id "
    "WHERE ct.source_object_id = OBJECT_ID(?) ORDER BY ct.create_date DESC, cc.column_ordinal"
)
_MAX_LSN = "SELECT CONVERT(VARCHAR(22), sys.fn_cdc_get_max_lsn(), 1)"
_RANGE = (
    "SELECT CONVERT(VARCHAR(22), sys.fn_cdc_increment_lsn(CONVERT(BINARY(10), ?, 1)), 1), "
    "CONVERT(VARCHAR(22), sys.fn_cdc_get_min_lsn(?), 1)"
)
# The commit time of a delete, with the server's offset (cdc.lsn_time_mapping keeps local time).
_COMMIT_TIME = (
    f"TODATETIMEOFFSET(sys.fn_cdc_map_lsn_to_time({CHANGES}.[__$start_lsn]), DATEPART(TZOFFSET, SYSDATETIMEOFFSET()))"
)


def lsn_value(lsn: str | None) -> int:
    return int(lsn[2:], 16) if lsn else 0


def capture_instance(stream: MssqlStream) -> tuple[str, list[str]]:
    """The table's newest capture instance and the columns it captures; ConfigError when CDC is off."""
    table = stream.table
    grant = grants.cdc_grant(table.qualified)
    ((database, db_enabled, tracked),) = query(stream, _ENABLED, [table.qualified], "checking CDC", grant)
    if not db_enabled:
        raise ConfigError(
            f"stream {stream.name!r}: LOG_BASED reads SQL Server CDC, which is not enabled on database "
            f"{database!r}: run EXEC sys.sp_cdc_enable_db in it (as a member of sysadmin), then enable the table"
        )
    if not tracked:
        raise ConfigError(
            f"stream {stream.name!r}: CDC is not enabled on {table.qualified}: run EXEC sys.sp_cdc_enable_table "
            f"@source_schema = {render.literal(table.schema)}, @source_name = {render.literal(table.name)}, "
            "@role_name = NULL (or use FULL_TABLE, INCREMENTAL, ROWVERSION or CHANGE_TRACKING)"
        )
    rows = query(stream, _INSTANCE, [table.qualified], "finding the capture instance", grant)
    if not rows:
        raise ConfigError(
            f"stream {stream.name!r}: no capture instance of {table.qualified} is visible to the tap's user ({grant})"
        )
    instance = str(rows[0][0])
    return instance, [str(name) for found, name in rows if found == instance]


def read_changes(stream: MssqlStream, ctx: ReadContext) -> Iterator[Any]:
    table = stream.table
    grant = grants.cdc_grant(table.qualified)
    instance, captured = capture_instance(stream)
    selected = own_columns(ctx.selected)
    missing = [name for name in selected if name not in captured]
    if missing:
        raise ConfigError(
            f"stream {stream.name!r}: columns {missing} are not captured by CDC capture instance {instance!r}: "
            "deselect them, or capture them (sys.sp_cdc_enable_table with a @captured_column_list that names them)"
        )
    saved = ctx.bookmark.lsn if isinstance(ctx.bookmark, CdcLsnPosition) else None
    ((end,),) = query(stream, _MAX_LSN, [], "reading the newest CDC position", grant)
    if end is None:
        raise ConfigError(
            f"stream {stream.name!r}: no change has been captured in this database yet "
            "(sys.fn_cdc_get_max_lsn() is NULL): the CDC capture job must run (SQL Server Agent's "
            "cdc.<database>_capture job; Azure SQL Database runs it itself)"
        )
    if saved is None:
        log.info("stream %s: initial snapshot, then CDC changes after %s (%s)", stream.name, end, instance)
        yield from stream.read_rows(selected, [], "", [])
        stream.change_end = end
        return
    ((start, oldest),) = query(stream, _RANGE, [saved, instance], "reading the CDC validity range", grant)
    if lsn_value(start) < lsn_value(oldest):
        # Checked before any record: the cleanup job removed changes this stream has not read.
        raise resync_needed(
            stream,
            f"its saved CDC position {saved} is older than the oldest change capture instance {instance!r} "
            f"still holds ({oldest}; the CDC cleanup job removed the changes before it)",
        )
    if lsn_value(start) <= lsn_value(end):
        log.info("stream %s: CDC changes from %s to %s (capture instance %s)", stream.name, start, end, instance)
        sql = changes_sql(stream, instance, selected)
        yield from change_rows(stream, sql, [start, end], "reading CDC changes", grant)
    stream.change_end = end if lsn_value(end) >= lsn_value(saved) else saved


def changes_sql(stream: MssqlStream, instance: str, selected: list[str]) -> str:
    """The changes between two LSNs (parameters, as hex), in commit order, each with its LSN."""
    upsert, upsert_join = render.columns_json(columns(stream, selected), CHANGES, [(NOT_DELETED, DELETED_AT)])
    keys = columns(stream, stream.table.primary_key)
    delete, delete_join = render.columns_json(keys, CHANGES, [(_COMMIT_TIME, DELETED_AT)], row="_dpone_key")
    function = f"cdc.{BRACKETS.q('fn_cdc_get_all_changes_' + instance)}"
    return (
        f"SELECT CASE WHEN {CHANGES}.[__$operation] = 1 THEN {delete} ELSE {upsert} END, "
        f"CONVERT(VARCHAR(22), {CHANGES}.[__$start_lsn], 1) "
        f"FROM {function}(CONVERT(BINARY(10), ?, 1), CONVERT(BINARY(10), ?, 1), N'all') AS {CHANGES}"
        f"{upsert_join}{delete_join} "
        f"WHERE {CHANGES}.[__$operation] <> 3 "
        f"ORDER BY {CHANGES}.[__$start_lsn], {CHANGES}.[__$seqval]"
    )
