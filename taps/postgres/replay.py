"""What rewinding LOG_BASED streams to an earlier LSN would re-deliver, or why the slot cannot.

The replication slot keeps changes from its `confirmed_flush_lsn` on (cdc.py advances it only to
the LSN the committed state holds), so a stream can be rewound to any LSN between that and its
committed bookmark: its next run re-reads every transaction that committed in between. Before the
slot's position the changes are gone; past the committed bookmark is no rewind at all (the changes
in between would be skipped). Nothing here moves the slot: counting the changes peeks at it
(pg_logical_slot_peek_changes), which decodes WAL but consumes nothing.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dpone.state.records import LsnPosition
from dpone.taps.framework.bookmarks import positions_to_rewind
from dpone.taps.postgres.cdc import _escape, int_to_lsn, lsn_to_int
from dpone_protocol.errors import ConfigError
from dpone_protocol.replay import COMMITTED, PIPELINE, StreamReplay, replay_body, resync_hint

if TYPE_CHECKING:
    from dpone.taps.postgres.tap import PostgresTap

_LSN_RE = re.compile(r"^[0-9A-Fa-f]{1,8}/[0-9A-Fa-f]{1,8}$")
# Peeking decodes WAL: a plan stops counting past this many decoded rows and says "at least".
COUNT_LIMIT = 1_000_000
_SLOT = """
SELECT confirmed_flush_lsn::text, to_jsonb(s) ->> 'wal_status', active, database = current_database(), database
FROM pg_replication_slots AS s WHERE slot_name = %s
"""
_PEEK = (
    "SELECT data FROM pg_logical_slot_peek_changes(%s, %s::pg_lsn, %s, 'format-version', '2', "
    "'include-transaction', '1', 'include-lsn', '1', 'add-tables', %s)"
)


@dataclass(frozen=True, slots=True)
class Slot:
    name: str
    confirmed: int | None  # None: the slot is missing (or belongs to another database)
    lost: bool = False  # PostgreSQL removed WAL the slot still needed (max_slot_wal_keep_size)
    active: bool = False  # a reader is connected to it now
    elsewhere: str = ""  # the database it belongs to, when not this one


def parse_lsn(value: Any) -> int:
    """`--to`: PostgreSQL's X/Y notation, or the integer a state holds."""
    text = str(value).strip() if value is not None else ""
    if _LSN_RE.match(text):
        return lsn_to_int(text)
    if text.isdigit():
        return int(text)
    raise ConfigError(f"--to {text!r} is not an LSN: give one as PostgreSQL prints it (e.g. 0/16B3748)")


def _streams(state: Mapping[str, Any], wanted: str | None) -> list[LsnPosition]:
    return positions_to_rewind(
        state,
        wanted,
        lambda p: isinstance(p, LsnPosition) and p.lsn is not None,
        "stream {stream} has no LSN in the state ({found}): only LOG_BASED streams can be rewound to an LSN",
        "the state holds no LOG_BASED stream with an LSN: there is no position to rewind",
    )


def _slot(tap: PostgresTap, name: str) -> Slot:
    row = tap.conn.execute(_SLOT, (name,)).fetchone()
    if row is None:
        return Slot(name, None)
    confirmed, wal_status, active, here, database = row
    if not here:
        return Slot(name, None, elsewhere=str(database))
    return Slot(name, None if confirmed is None else lsn_to_int(confirmed), wal_status == "lost", bool(active))


def _check(plan: StreamReplay, slot: Slot, to: int, committed: int) -> StreamReplay:
    stream = plan.stream
    if to > committed:
        return plan.refuse(
            f"LSN {int_to_lsn(to)} is after the committed position {int_to_lsn(committed)}: that is no rewind, and "
            "the changes in between would be skipped",
            f"rewind to {int_to_lsn(committed)} or earlier",
        )
    if slot.elsewhere:
        return plan.refuse(
            f"replication slot {slot.name!r} belongs to database {slot.elsewhere!r}, not this one: it cannot serve "
            "this stream's changes",
            resync_hint(stream),
        )
    if slot.confirmed is None:
        return plan.refuse(
            f"replication slot {slot.name!r} does not exist (dropped?): the changes it kept are gone",
            resync_hint(stream),
        )
    if slot.lost:
        return plan.refuse(
            f"replication slot {slot.name!r} lost WAL it needed (wal_status 'lost', max_slot_wal_keep_size): "
            "its changes are gone",
            resync_hint(stream),
        )
    if slot.confirmed > committed:
        # The next run fails here too (cdc.py): no position serves this stream any more.
        return plan.refuse(
            f"the slot {slot.name!r} already confirmed {int_to_lsn(slot.confirmed)}, past the committed position "
            f"{int_to_lsn(committed)} (it was advanced or re-created): the changes in between are gone",
            resync_hint(stream),
        )
    if to < slot.confirmed:
        confirmed = int_to_lsn(slot.confirmed)
        return plan.refuse(
            f"the slot {slot.name!r} already confirmed {confirmed}: changes before it are gone",
            f"rewind to {confirmed} or later (`dpone state replay-plan {PIPELINE} --to {confirmed}`); or "
            + resync_hint(stream),
        )
    return plan


def _tables(tap: PostgresTap, streams: list[LsnPosition]) -> dict[tuple[str, str], str]:
    """(schema, table) -> stream, for the streams still discovered."""
    wanted = {p.stream for p in streams}
    found = {}
    for stream in tap.discover_streams():
        table = getattr(stream, "table", None)
        if stream.name in wanted and table is not None:
            found[(table.schema, table.name)] = stream.name
    return found


def count_changes(
    tap: PostgresTap, slot: str, plans: dict[str, tuple[int, int]], limit: int = COUNT_LIMIT
) -> tuple[dict[str, int], bool]:
    """Changes per stream of transactions committed in [to, committed) (`plans`: stream -> the two
    LSNs), by peeking at the slot; and whether the count stopped at `limit`."""
    tables = _tables(tap, [LsnPosition(s, to) for s, (to, _) in plans.items()])
    counts = dict.fromkeys(plans, 0)
    if not tables:
        return counts, False
    upto = max(committed for _, committed in plans.values())
    add = ",".join(f"{_escape(schema)}.{_escape(name)}" for schema, name in tables)
    commit = 0
    rows = 0
    with tap.conn.transaction(), tap.conn.cursor(name="dpone_replay_count") as cur:
        cur.itersize = 10_000
        cur.execute(_PEEK, (slot, int_to_lsn(upto), limit, add))
        for (data,) in cur:
            rows += 1
            change = json.loads(data)
            action = change.get("action")
            if action == "B":
                # A transaction belongs to the run its commit falls in (as cdc.py reads it).
                commit = lsn_to_int(change["lsn"])
                continue
            stream = tables.get((change.get("schema"), change.get("table")))
            if stream is None or action not in ("I", "U", "D", "T"):
                continue
            to, committed = plans[stream]
            if to <= commit < committed:
                counts[stream] += 1
    return counts, rows >= limit


def replay_plan(tap: PostgresTap, request: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    at_committed = str(request.get("to")).strip().lower() == COMMITTED
    asked = 0 if at_committed else parse_lsn(request.get("to"))
    streams = _streams(state, request.get("stream"))
    slot_name = str(tap.config.get("replication_slot") or "dpone")
    try:
        slot = _slot(tap, slot_name)
        plans = []
        for position in streams:
            committed = position.position
            to = committed if at_committed else asked
            plan = StreamReplay(position.stream, position.text, int_to_lsn(to))
            _check(plan, slot, to, committed)
            if not plan.refused:
                # The same figure as pg_wal_lsn_diff(committed, to): LSNs are byte positions in the WAL.
                plan.redeliver = {"wal_bytes": committed - to, "changes": None}
                # The form the state had (an integer, or X/Y text) is kept, with every other key.
                lsn: int | str = to if isinstance(position.lsn, int) else int_to_lsn(to)
                plan.bookmark = LsnPosition(position.stream, lsn, position.extra).to_dict()
            plans.append(plan)
        open_plans = {
            p.stream: (lsn_to_int(p.rewind_to), s.position)
            for p, s in zip(plans, streams, strict=True)
            if not p.refused
        }
        note = _count(tap, slot, open_plans, bool(request.get("count_changes", True)), plans)
    except tap.dialect.driver_errors() as exc:
        raise tap.dialect.error(exc, tap.redactor, f"reading replication slot {slot_name!r}") from None
    for plan in plans:
        if not plan.refused:
            plan.summary = _summary(plan, note)
    return replay_body(plans)


def _count(
    tap: PostgresTap, slot: Slot, plans: dict[str, tuple[int, int]], wanted: bool, replays: list[StreamReplay]
) -> str:
    """Fill in the changes of each planned stream; what keeps them unknown, if anything."""
    if not plans:
        return ""
    if not wanted:
        return "changes not counted (the pipeline is running: peeking at the slot would get in its way)"
    if slot.active:
        return "changes not counted (a reader is connected to the slot now)"
    counts, capped = count_changes(tap, slot.name, plans)
    for plan in replays:
        if plan.stream in counts:
            plan.redeliver["changes"] = counts[plan.stream]
            plan.redeliver["changes_at_least"] = capped
    return ""


def _summary(plan: StreamReplay, note: str) -> str:
    wal = plan.redeliver["wal_bytes"]
    span = f"from {plan.rewind_to} up to {plan.committed} ({wal:,} bytes of WAL)"
    changes = plan.redeliver.get("changes")
    if changes is None:
        return f"re-delivers the changes committed {span}; {note}"
    more = "at least " if plan.redeliver.get("changes_at_least") else ""
    return f"re-delivers {more}{changes:,} change{'s' * (changes != 1)} committed {span}"
