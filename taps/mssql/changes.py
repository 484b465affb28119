"""What CDC and Change Tracking reads share: their catalog queries' errors, the change rows' loop, and
the messages that ask for a full resync.

A change query selects, per change, the record's JSON text (the row, or its key and
`_sdc_deleted_at` for a delete) and the change's position as plain text (an LSN, a version), in
position order. The loop frames the JSON as it comes and notes, when the position moves on, that
every change at the previous one has been sent: that is the position a checkpoint may save.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from dpone.taps.framework.sql_dialect import FIELD_SEPARATOR
from dpone.taps.framework.stream import EncodedRecord
from dpone.taps.mssql import grants
from dpone.taps.mssql.type_map import MssqlColumn
from dpone_protocol.errors import ConfigError
from dpone_protocol.replay import pipeline_word

if TYPE_CHECKING:
    from dpone.taps.mssql.streams import MssqlStream

DELETED_AT = "_sdc_deleted_at"
NOT_DELETED = "CAST(NULL AS VARCHAR(1))"  # `"_sdc_deleted_at":null` on an insert or update


def query(stream: MssqlStream, sql: str, params: Sequence[Any], doing: str, grant: str) -> list[Any]:
    """All rows of a small catalog query; driver errors typed, a permission error naming `grant`."""
    tap = stream.tap
    try:
        return list(tap.conn.execute(sql, *params).fetchall())
    except tap.dialect.driver_errors() as exc:
        raise grants.classified(exc, tap.redactor, f"stream {stream.name!r}: {doing}", grant) from None


def own_columns(selected: Sequence[str]) -> list[str]:
    """The table's columns among the selected properties (a catalog may select the one the tap adds)."""
    return [name for name in selected if name != DELETED_AT]


def columns(stream: MssqlStream, names: Sequence[str]) -> list[MssqlColumn]:
    by_name = stream.dialect.by_name
    missing = [n for n in names if n not in by_name]
    if missing:
        raise ConfigError(
            f"stream {stream.name!r}: selected columns {missing} no longer exist in "
            f"{stream.table.schema}.{stream.table.name}; re-run discovery and update the catalog"
        )
    return [by_name[n] for n in names]


def change_rows(
    stream: MssqlStream, sql: str, params: Sequence[Any], doing: str, grant: str
) -> Iterator[EncodedRecord]:
    """The records of a change query; `stream.change_done` follows the last position fully sent."""
    tap = stream.tap
    current: bytes | None = None
    try:
        with stream.dialect.rows(tap.conn, sql, params) as lines:
            for line in lines:
                sep = line.index(FIELD_SEPARATOR)
                position = line[sep + 1 :]
                if position != current:
                    if current is not None:
                        stream.change_done = current  # every change at it is out: a checkpoint may save it
                    current = position
                yield EncodedRecord(line[:sep])
    except tap.dialect.driver_errors() as exc:
        raise grants.classified(exc, tap.redactor, f"stream {stream.name!r}: {doing}", grant) from None


def resync_needed(stream: MssqlStream, what: str) -> ConfigError:
    """The stream's saved position is older than what the server still keeps."""
    return ConfigError(
        f"stream {stream.name!r}: {what}, so changes in between are gone and a full resync is needed: "
        f"clear the stream's state (dpone state clear {pipeline_word()} --stream {stream.name}, or remove its "
        "bookmark from the state file) and run again: the next run reads the whole table, then changes"
    )
