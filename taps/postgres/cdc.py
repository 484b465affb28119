"""LOG_BASED replication: bounded reads of a logical replication slot (wal2json).

Each run fixes the end LSN when it starts and reads changes up to it with
pg_logical_slot_peek_changes, which does not consume them. The slot is advanced only at
the start of the next run, to the LSN the committed state holds: changes the target has not
committed are never released. A stream without an LSN yet starts with a snapshot (a full
copy) taken after noting the slot's position, so nothing falls in between.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import re
from collections.abc import Iterator
from typing import Any

import orjson

from dpone_protocol.errors import ConfigError
from taps.framework.stream import EncodedRecord, ReadContext

log = logging.getLogger(__name__)
_TS_OFFSET_RE = re.compile(r"([+-]\d\d)$")
_CHANGE_BATCH = 10_000


def lsn_to_int(lsn: str) -> int:
    high, _, low = lsn.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


def check_setup(conn: Any, slot: str, create: bool) -> None:
    """Clear errors for the usual set-up problems, before anything is read."""
    level = conn.execute("SHOW wal_level").fetchone()[0]
    if level != "logical":
        raise ConfigError(
            f"LOG_BASED needs wal_level=logical (it is {level!r}): set it in postgresql.conf and restart the server"
        )
    row = conn.execute(
        "SELECT plugin, database, current_database() FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()
    if row is None:
        if not create:
            raise ConfigError(
                f"replication slot {slot!r} does not exist: create it with SELECT "
                f"pg_create_logical_replication_slot('{slot}', 'wal2json'), or set "
                "create_replication_slot: true"
            )
        try:
            conn.execute("SELECT pg_create_logical_replication_slot(%s, 'wal2json')", (slot,))
        except Exception as exc:
            raise ConfigError(
                f"cannot create replication slot {slot!r}: {' '.join(str(exc).split())} "
                "(the user needs the REPLICATION attribute, and wal2json must be installed)"
            ) from None
        log.info("created logical replication slot %s (wal2json)", slot)
    elif row[0] != "wal2json":
        raise ConfigError(f"replication slot {slot!r} uses plugin {row[0]!r}; tap-postgres reads wal2json slots")
    elif row[1] != row[2]:
        raise ConfigError(
            f"replication slot {slot!r} belongs to database {row[1]!r}, not {row[2]!r}: slots are "
            "per database; set replication_slot to one created in this database"
        )


def advance_slot(conn: Any, slot: str, committed: int | None) -> None:
    """Release changes up to the committed LSN (and never past it)."""
    if committed is None:
        return
    confirmed = conn.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()[0]
    if confirmed is not None and lsn_to_int(confirmed) < committed:
        conn.execute("SELECT pg_replication_slot_advance(%s, %s::pg_lsn)", (slot, int_to_lsn(committed)))


def _convert(value: Any, kind: str, schema: dict[str, Any]) -> Any:
    """wal2json gives PostgreSQL text forms; make them what the schema promises (as a snapshot would)."""
    if value is None:
        return None
    declared = schema.get("type")
    types = {declared} if isinstance(declared, str) else set(declared or [])
    fmt = schema.get("format")
    if fmt == "singer.decimal":
        text = str(value)
        return re.sub(r"[^0-9.eE+-]", "", text) if kind == "money" else text
    if isinstance(value, str):
        if kind in ("json", "jsonb"):
            return orjson.loads(value)
        if "string" not in types and "integer" in types:
            return int(value)  # e.g. a domain over integer arrives quoted
        if "string" not in types and "number" in types:
            return float(value)
        if fmt == "date-time":
            text = value.replace(" ", "T", 1)
            return _TS_OFFSET_RE.sub(r"\1:00", text) if "+" in text[10:] or text[10:].count("-") else text
        if schema.get("contentEncoding") == "base64":
            return base64.b64encode(bytes.fromhex(value.removeprefix("\\x"))).decode()
        if "array" in types:
            items = _parse_array(value)
            item_schema = schema.get("items") or {}
            return [_convert(v, "", item_schema) for v in items] if isinstance(items, list) else items
        if kind.startswith("character("):
            return value.rstrip(" ")  # char(n) pads; the snapshot's ::text does not
    return value


def _parse_array(text: str) -> Any:
    """A one-dimensional PostgreSQL array literal of simple values: '{a,"b c",NULL}'."""
    if not (text.startswith("{") and text.endswith("}")):
        return text
    items, current, quoted, escaped, was_quoted = [], [], False, False, False
    for ch in text[1:-1]:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = True
        elif ch == '"':
            quoted, was_quoted = not quoted, True
        elif ch == "," and not quoted:
            word = "".join(current)
            items.append(None if word == "NULL" and not was_quoted else word)
            current, was_quoted = [], False
        else:
            current.append(ch)
    if current or was_quoted:
        word = "".join(current)
        items.append(None if word == "NULL" and not was_quoted else word)
    return items


def read_changes(stream: Any, ctx: ReadContext) -> Iterator[Any]:
    table = stream.table
    config = stream.tap.config
    conn = stream.tap.conn
    slot = str(config.get("replication_slot") or "dpone")
    if not table.primary_key:
        raise ConfigError(
            f"stream {stream.name!r}: LOG_BASED needs a primary key to apply updates and deletes "
            "(or use FULL_TABLE / INCREMENTAL)"
        )
    check_setup(conn, slot, bool(config.get("create_replication_slot", True)))
    start = ctx.bookmark.get("lsn")
    advance_slot(conn, slot, stream.tap.committed_lsn())
    end = lsn_to_int(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
    if start is None:
        # Snapshot first; changes from the slot's position on are read next run (merge makes repeats harmless).
        position = conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()[0]
        log.info("stream %s: initial snapshot, then changes from %s", stream.name, position)
        stream._mode = "FULL_TABLE"
        yield from stream._copy(ctx.selected, [], "", [])
        stream._mode = "LOG_BASED"
        stream._progress["lsn"] = lsn_to_int(position)
        return
    stream._mode = "LOG_BASED"
    confirmed = conn.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()[0]
    if confirmed is not None and lsn_to_int(confirmed) > int(start):
        raise ConfigError(
            f"stream {stream.name!r}: replication slot {slot!r} is past the committed position "
            f"{int_to_lsn(int(start))} (it was advanced or re-created), so changes in between are gone; take a "
            f"new snapshot: dpone state clear PIPELINE --stream {stream.name}"
        )
    yield from _changes(stream, ctx, conn, slot, int(start), end)
    stream._progress["lsn"] = end


def _changes(stream: Any, ctx: ReadContext, conn: Any, slot: str, start: int, end: int) -> Iterator[Any]:
    """Changes of transactions that committed at or after `start` and before `end`."""
    props = stream.schema["properties"]
    selected = set(ctx.selected)
    add_tables = f"{_escape(stream.table.schema)}.{_escape(stream.table.name)}"
    cursor_name = f"dpone_cdc_{abs(hash(stream.name))}"
    sql = (
        "SELECT data FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, NULL, 'format-version', '2', "
        "'include-timestamp', '1', 'include-transaction', '1', 'include-lsn', '1', 'include-types', '1', "
        "'add-tables', %s)"
    )
    skip = False
    with conn.transaction(), conn.cursor(name=cursor_name) as cur:
        cur.itersize = _CHANGE_BATCH
        cur.execute(sql, (slot, int_to_lsn(end), add_tables))
        for (data,) in cur:
            # parse_float=str: numerics keep every digit and trailing zero, as the snapshot's ::text does.
            change = json.loads(data, parse_float=str)
            action = change.get("action")
            if action == "B":
                # A transaction belongs to the run its commit falls in: the B record carries the commit LSN.
                skip = lsn_to_int(change["lsn"]) < start
                continue
            if skip or action not in ("I", "U", "D"):
                continue
            record: dict[str, Any] = {}
            sources = (
                [change.get("identity") or []]
                if action == "D"
                else [change.get("identity") or [], change.get("columns") or []]
            )
            # With REPLICA IDENTITY FULL the old row fills values an update leaves out (unchanged TOAST).
            for columns in sources:
                for col in columns:
                    name = col["name"]
                    if name in selected:
                        record[name] = _convert(col.get("value"), col.get("type", ""), props.get(name, {}))
            record["_sdc_lsn"] = lsn_to_int(change["lsn"])
            record["_sdc_deleted_at"] = _commit_time(change) if action == "D" else None
            yield EncodedRecord(orjson.dumps(record))


def _commit_time(change: dict[str, Any]) -> str:
    stamp = change.get("timestamp")
    if isinstance(stamp, str):
        return _convert(stamp, "", {"format": "date-time"})  # type: ignore[no-any-return]
    return dt.datetime.now(dt.UTC).isoformat()


def _escape(name: str) -> str:
    """wal2json's add-tables takes schema.table with '.', ',' and '\\' escaped."""
    return re.sub(r"([.,\\\\ ])", r"\\\1", name)
