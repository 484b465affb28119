"""tap-postgres's reconcile answer: counts and checksums of a stream's table, computed by the server.

Each column is checksummed through the expression the tap renders it with (a numeric as its text,
a float as JSON, bytea as base64...), so the source side of the comparison is the value as it was
sent, not as the table stores it; keys are compared as stored.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dpone_drivers.postgres_reconcile import WORDS, column_types, query
from dpone_drivers.reconcile_sql import Reconciler, Table
from dpone_protocol.errors import ConfigError
from dpone_protocol.reconcile import parse_request

if TYPE_CHECKING:
    from dpone.taps.postgres.tap import PostgresTap


def reconcile(tap: PostgresTap, request: Mapping[str, Any]) -> dict[str, Any]:
    parsed = parse_request(request)
    if parsed.delete is not None:
        raise ConfigError("tap-postgres never deletes: deletes are applied to a destination")
    streams = {stream.name: stream for stream in tap.discover_streams()}
    stream = streams.get(parsed.stream)
    if stream is None:
        raise ConfigError(f"stream {parsed.stream!r} is not in the source (re-run discovery)")
    table = getattr(stream, "table", None)
    if table is None:
        raise ConfigError(f"stream {parsed.stream!r} is not a table")
    conn = tap.conn
    doing = f"reconciling {table.schema}.{table.name}"
    try:
        for statement in WORDS.setup():
            conn.execute(statement)
        types = column_types(conn, table.qualified) or {}
        rendered = {c.name: c.expression for c in table.columns}
        columns = {
            name: (rendered[name], types[name])
            for name in [*parsed.keys, *(c.name for c in parsed.columns)]
            if name in rendered and name in types
        }
        keys = [(WORDS.quoting.q(k), types[k]) for k in parsed.keys if k in types]
        compared = Table(table.qualified, f"{table.schema}.{table.name}", columns, keys)
        return Reconciler(parsed, compared, WORDS, query(conn)).answer()
    except tap.dialect.driver_errors() as exc:
        raise tap.dialect.error(exc, tap.redactor, doing) from None
