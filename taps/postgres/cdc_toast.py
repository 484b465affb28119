"""Unchanged TOAST values in LOG_BASED updates: filled from the table, one read per batch of changes.

PostgreSQL logs an out-of-line (TOASTed) value only when it changes. With the default REPLICA
IDENTITY an UPDATE that leaves one alone reaches wal2json without it, and a merging target would
write NULL over what it holds. The tap fills such values from the row as it is when the batch is
read, by key. That value may be newer than the change: any later change of the same row is read
after it (in this run, or the next) and applied on top, so the destination ends as the source is.
A row that no longer exists when the batch is read was deleted (or re-keyed) by a later change;
its update is skipped, since that later change removes it downstream anyway.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

import orjson

from dpone_drivers.postgres import classify, driver_errors
from dpone_drivers.sql_names import ANSI

log = logging.getLogger(__name__)
_SRC = "_dpone_src"
_KEYS = "_dpone_keys"


@dataclass(slots=True)
class PendingChange:
    """A change ready to be sent, but for the columns it did not carry."""

    record: dict[str, Any]
    missing: list[str] = field(default_factory=list)
    raw_key: dict[str, tuple[Any, str]] = field(default_factory=dict)  # column -> (wal2json value, type)


def fill_missing(stream: Any, pending: list[PendingChange]) -> tuple[list[dict[str, Any]], int]:
    """The batch's records in order, unchanged TOAST values filled; and how many were skipped (row gone)."""
    wanted = [p for p in pending if p.missing]
    if not wanted:
        return [p.record for p in pending], 0
    found = _current_values(stream, wanted)
    keys = stream.table.primary_key
    out: list[dict[str, Any]] = []
    skipped = 0
    for change in pending:
        if change.missing:
            values = found.get(_key_of(change.record, keys))
            if values is None:
                skipped += 1
                continue
            for column in change.missing:
                change.record[column] = values[column]
        out.append(change.record)
    return out, skipped


def _key_of(record: dict[str, Any], keys: list[str]) -> bytes:
    return orjson.dumps([record.get(k) for k in keys])


def _current_values(stream: Any, wanted: list[PendingChange]) -> dict[bytes, dict[str, Any]]:
    """Key -> {column: value as the snapshot renders it} for the rows the changes name, read now."""
    table = stream.table
    keys = table.primary_key
    columns = sorted({c for p in wanted for c in p.missing})
    by_name = {c.name: c for c in table.columns}

    def rendered(name: str) -> str:
        return str(stream.dialect.column_sql(by_name[name], _SRC))

    first = wanted[0].raw_key
    definition = ", ".join(f"{ANSI.q(k)} {first[k][1]}" for k in keys)
    lookup = [{k: _input_form(*p.raw_key[k]) for k in keys} for p in wanted]
    select = ", ".join(
        [f"json_build_array({', '.join(rendered(k) for k in keys)})::text"]
        + [f"to_json({rendered(c)})::text" for c in columns]
    )
    sql = (
        f"SELECT {select} FROM {table.qualified} AS {_SRC} "
        f"WHERE ({', '.join(f'{_SRC}.{ANSI.q(k)}' for k in keys)}) IN "
        f"(SELECT {', '.join(f'{_KEYS}.{ANSI.q(k)}' for k in keys)} "
        f"FROM jsonb_to_recordset(%s::jsonb) AS {_KEYS}({definition}))"
    )
    try:
        rows = stream.tap.conn.execute(sql, (orjson.dumps(lookup).decode(),)).fetchall()
    except driver_errors() as exc:
        raise classify(
            exc, stream.tap.redactor, f"reading unchanged TOAST values of {table.schema}.{table.name}"
        ) from None
    found: dict[bytes, dict[str, Any]] = {}
    for row in rows:
        # Each value as the server rendered it, spliced in as is (no float or big-number round trip).
        found[orjson.dumps(orjson.loads(row[0]))] = {
            c: None if text is None else orjson.Fragment(text) for c, text in zip(columns, row[1:], strict=True)
        }
    log.debug("stream %s: filled unchanged TOAST values of %d rows", stream.name, len(found))
    return found


def _input_form(value: Any, kind: str) -> Any:
    """wal2json's value of a key column, in a form the column type's input function reads."""
    if kind == "bytea" and isinstance(value, str):
        return "\\x" + value.removeprefix("\\x")  # wal2json sends bare hex
    return value
