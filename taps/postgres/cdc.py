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
import time
from collections.abc import Iterator
from typing import Any

import orjson

from dpone.state.records import LsnPosition
from dpone.taps.framework.stream import EncodedRecord, ReadContext
from dpone.taps.postgres.cdc_toast import PendingChange, fill_missing
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import ActivateVersionMessage
from dpone_protocol.replay import pipeline_word

log = logging.getLogger(__name__)
_TS_OFFSET_RE = re.compile(r"([+-]\d\d)$")
_CHANGE_BATCH = 10_000
_FILL_BATCH = 1_000  # changes per read of unchanged TOAST values


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
            # NaN and the infinities are no JSON numbers: strings, as the snapshot sends them.
            return value if value in ("NaN", "Infinity", "-Infinity") else float(value)
        if fmt == "date-time":
            text = value.replace(" ", "T", 1)
            return _TS_OFFSET_RE.sub(r"\1:00", text) if "+" in text[10:] or text[10:].count("-") else text
        if schema.get("contentEncoding") == "base64":
            return base64.b64encode(bytes.fromhex(value.removeprefix("\\x"))).decode()
        if "array" in types:
            items = _parse_array(value)
            item_schema = schema.get("items") or {}
            while "anyOf" in item_schema:  # items admit nested arrays (more dimensions): the element's is first
                item_schema = item_schema["anyOf"][0]
            element = kind[:-2] if kind.endswith("[]") else ""
            return _convert_items(items, element, item_schema) if isinstance(items, list) else items
        if kind.startswith("character("):
            return value.rstrip(" ")  # char(n) pads; the snapshot's ::text does not
    return value


def _parse_array(text: str) -> Any:
    """A PostgreSQL array literal of simple values, nested as its dimensions are: '{{a,"b c"},{NULL,d}}'."""
    if text.startswith("["):
        text = text[text.index("=") + 1 :]  # '[0:1]={a,b}': bounds other than 1 are not kept
    if not (text.startswith("{") and text.endswith("}")):
        return text
    stack: list[list[Any]] = []
    top: list[Any] = []
    current: list[str] = []
    quoted = escaped = was_quoted = False
    pending = False  # a word has started since the last separator

    def end_word() -> None:
        nonlocal current, was_quoted, pending
        if pending:
            word = "".join(current)
            stack[-1].append(None if word == "NULL" and not was_quoted else word)
        current, was_quoted, pending = [], False, False

    for ch in text:
        if escaped:
            current.append(ch)
            escaped = False
        elif ch == "\\":
            escaped = pending = True
        elif ch == '"':
            quoted, was_quoted, pending = not quoted, True, True
        elif quoted:
            current.append(ch)
        elif ch == "{":
            stack.append([])
        elif ch == "}":
            end_word()
            done = stack.pop()
            if stack:
                stack[-1].append(done)
            else:
                top = done
        elif ch == ",":
            end_word()
        else:
            current.append(ch)
            pending = True
    return top


def _convert_items(items: Any, kind: str, schema: dict[str, Any]) -> Any:
    if isinstance(items, list):
        return [_convert_items(v, kind, schema) for v in items]
    return _convert(items, kind, schema)


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
    committed = ctx.bookmark
    start = committed.position if isinstance(committed, LsnPosition) and committed.lsn is not None else None
    advance_slot(conn, slot, stream.tap.committed_lsn())
    end = lsn_to_int(conn.execute("SELECT pg_current_wal_lsn()::text").fetchone()[0])
    if start is None:
        # Snapshot first; changes from the slot's position on are read next run (merge makes repeats harmless).
        position = conn.execute(
            "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
        ).fetchone()[0]
        log.info("stream %s: initial snapshot, then changes from %s", stream.name, position)
        yield from stream.read_rows(ctx.selected, [], "", [])
        stream.lsn = lsn_to_int(position)
        return
    confirmed = conn.execute(
        "SELECT confirmed_flush_lsn::text FROM pg_replication_slots WHERE slot_name = %s", (slot,)
    ).fetchone()[0]
    if confirmed is not None and lsn_to_int(confirmed) > start:
        raise ConfigError(
            f"stream {stream.name!r}: replication slot {slot!r} is past the committed position "
            f"{int_to_lsn(start)} (it was advanced or re-created), so changes in between are gone; take a "
            f"new snapshot: dpone state clear {pipeline_word()} --stream {stream.name}"
        )
    yield from _changes(stream, ctx, conn, slot, start, end)
    stream.lsn = end


def _changes(stream: Any, ctx: ReadContext, conn: Any, slot: str, start: int, end: int) -> Iterator[Any]:
    """Changes of transactions that committed at or after `start` and before `end`."""
    sql = (
        "SELECT data FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, NULL, 'format-version', '2', "
        "'include-timestamp', '1', 'include-transaction', '1', 'include-lsn', '1', 'include-types', '1', "
        "'add-tables', %s)"
    )
    add_tables = f"{_escape(stream.table.schema)}.{_escape(stream.table.name)}"
    cursor_name = f"dpone_cdc_{abs(hash(stream.name))}"
    builder = _Records(stream, ctx)
    pending: list[PendingChange] = []
    skip = False
    with conn.transaction(), conn.cursor(name=cursor_name) as cur:
        cur.itersize = _CHANGE_BATCH
        cur.execute(sql, (slot, int_to_lsn(end), add_tables))
        for (data,) in cur:
            # parse_float=str: numerics keep every digit and trailing zero, as the snapshot's ::text does.
            change = json.loads(data, parse_float=str, parse_int=_parse_int)
            action = change.get("action")
            if action == "B":
                # A transaction belongs to the run its commit falls in: the B record carries the commit LSN.
                skip = lsn_to_int(change["lsn"]) < start
                continue
            if skip:
                continue
            if action == "T":
                yield from builder.flush(pending)
                yield _truncated(stream, change)
            elif action in ("I", "U", "D"):
                pending.extend(builder.build(action, change))
                if len(pending) >= _FILL_BATCH:
                    yield from builder.flush(pending)
        yield from builder.flush(pending)
    builder.report()


def _truncated(stream: Any, change: dict[str, Any]) -> ActivateVersionMessage:
    """TRUNCATE: a new table version, so the target retires every row it holds of this stream."""
    if stream.tap.config.get("batch_config"):
        # Batch files carry no table version and the tap sends no ACTIVATE_VERSION with them.
        raise ConfigError(
            f"stream {stream.name!r}: {stream.table.schema}.{stream.table.name} was truncated (at LSN "
            f"{change.get('lsn')}), which BATCH output cannot carry: run this stream without batch_config "
            f"once, or empty the destination table and take a new snapshot: dpone state clear {pipeline_word()} "
            f"--stream {stream.name}"
        )
    version = int(time.time() * 1000)
    log.warning(
        "stream %s: TRUNCATE at LSN %s: sending ACTIVATE_VERSION %d, so the target removes the rows it holds "
        "(a target without activate-version support keeps them)",
        stream.name,
        change.get("lsn"),
        version,
    )
    return ActivateVersionMessage(stream.name, version)


def _parse_int(text: str) -> int | float:
    # A float column's negative zero arrives as `-0`: keep it a float (integers have no -0).
    return -0.0 if text == "-0" else int(text)


class _Records:
    """Records of a stream's changes: a key change becomes a delete and an insert, unchanged TOAST
    values are filled (see cdc_toast), JSON nulls are counted."""

    def __init__(self, stream: Any, ctx: ReadContext) -> None:
        self.stream = stream
        self.props = stream.schema["properties"]
        self.selected = set(ctx.selected)
        self.keys = list(stream.table.primary_key)
        self.json_nulls = 0
        self.skipped = 0

    def build(self, action: str, change: dict[str, Any]) -> list[PendingChange]:
        identity = change.get("identity") or []
        columns = change.get("columns") or []
        lsn = lsn_to_int(change["lsn"])
        if action == "D":
            record = self._values([identity], count=False)
            return [PendingChange(self._stamp(record, lsn, _commit_time(change)))]
        out: list[PendingChange] = []
        # With REPLICA IDENTITY FULL the old row fills values an update leaves out (unchanged TOAST).
        record = self._values([identity, columns] if action == "U" else [columns])
        if action == "U":
            old = self._values([identity], count=False)
            old_key = {k: old[k] for k in self.keys if k in old}
            if len(old_key) == len(self.keys) and any(old_key[k] != record.get(k) for k in self.keys):
                # The key changed: the old key is gone from the source.
                out.append(PendingChange(self._stamp(dict(old_key), lsn, _commit_time(change))))
        carried = {c["name"] for c in identity} | {c["name"] for c in columns}
        missing = [name for name in self.props if name in self.selected and name not in carried]
        raw_key = {c["name"]: (c.get("value"), c.get("type", "")) for c in columns if c["name"] in self.keys}
        out.append(PendingChange(self._stamp(record, lsn, None), missing if action == "U" else [], raw_key))
        return out

    def _values(self, sources: list[list[dict[str, Any]]], count: bool = True) -> dict[str, Any]:
        record: dict[str, Any] = {}
        for position, columns in enumerate(sources):
            counting = count and position == len(sources) - 1  # the new row's values, once
            for col in columns:
                name = col["name"]
                if name in self.selected:
                    kind = col.get("type", "")
                    value = col.get("value")
                    if counting and kind in ("json", "jsonb") and isinstance(value, str) and value.strip() == "null":
                        self.json_nulls += 1
                    record[name] = _convert(value, kind, self.props.get(name, {}))
        return record

    @staticmethod
    def _stamp(record: dict[str, Any], lsn: int, deleted_at: str | None) -> dict[str, Any]:
        record["_sdc_lsn"] = lsn
        record["_sdc_deleted_at"] = deleted_at
        return record

    def flush(self, pending: list[PendingChange]) -> Iterator[EncodedRecord]:
        if not pending:
            return
        records, skipped = fill_missing(self.stream, pending)
        self.skipped += skipped
        pending.clear()
        for record in records:
            yield EncodedRecord(orjson.dumps(record))

    def report(self) -> None:
        if self.skipped:
            log.info(
                "stream %s: %d updates skipped: their rows were deleted or re-keyed later (that change follows)",
                self.stream.name,
                self.skipped,
            )
        if self.json_nulls:
            log.warning(
                "stream %s: %d json/jsonb values were JSON null; they are sent as null and land as SQL NULL",
                self.stream.name,
                self.json_nulls,
            )


def _commit_time(change: dict[str, Any]) -> str:
    stamp = change.get("timestamp")
    if isinstance(stamp, str):
        return _convert(stamp, "", {"format": "date-time"})  # type: ignore[no-any-return]
    return dt.datetime.now(dt.UTC).isoformat()


def _escape(name: str) -> str:
    """wal2json's add-tables takes schema.table with '.', ',' and '\\' escaped."""
    return re.sub(r"([.,\\\\ ])", r"\\\1", name)
