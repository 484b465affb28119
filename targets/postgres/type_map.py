"""Logical column types -> PostgreSQL types, and which type changes are safe widenings."""

from __future__ import annotations

import re

from dpone_protocol.json_schema import ColumnType, Logical
from targets.framework.schema_evolution import Dialect
from targets.postgres.ddl import truncated

_SIMPLE = {
    Logical.NUMBER: "double precision",
    Logical.BOOLEAN: "boolean",
    Logical.TIMESTAMP: "timestamp with time zone",
    Logical.DATE: "date",
    Logical.TIME: "time without time zone",
    Logical.UUID: "uuid",
    Logical.OBJECT: "jsonb",
    Logical.ARRAY: "jsonb",
    Logical.JSON: "jsonb",
}
MAX_VARCHAR = 10_485_760


def pg_type(column: ColumnType) -> str:
    if column.logical is Logical.STRING:
        n = column.max_length
        return f"character varying({n})" if n and n <= MAX_VARCHAR else "text"
    if column.logical is Logical.INTEGER:
        return "bigint"  # schemas' integer limits are rarely trustworthy; bigint costs little
    if column.logical is Logical.DECIMAL:
        if column.precision and column.precision <= 1000:
            return f"numeric({column.precision},{column.scale or 0})"
        return "numeric"  # unbounded: every digit kept
    return _SIMPLE[column.logical]


_INTS = ["smallint", "integer", "bigint"]
_NUMERIC_RE = re.compile(r"numeric\((\d+),\s*(\d+)\)")
_VARCHAR_RE = re.compile(r"character varying\((\d+)\)")
_TEMPORAL = ["date", "timestamp without time zone", "timestamp with time zone"]


def _numeric(t: str) -> tuple[int, int] | None:
    m = _NUMERIC_RE.fullmatch(t)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _integer_digits(t: str) -> int | None:
    """Digits before the point a type holds; None when unbounded."""
    if t in _INTS:
        return {"smallint": 5, "integer": 10, "bigint": 19}[t]
    n = _numeric(t)
    return n[0] - n[1] if n else None


def holds(existing: str, incoming: str) -> bool:
    """True when every value of `incoming` fits losslessly into an `existing` column."""
    if existing in (incoming, "text"):
        return True
    if existing == "jsonb":
        return incoming in ("json", "jsonb")
    if existing in _INTS and incoming in _INTS:
        return _INTS.index(existing) >= _INTS.index(incoming)
    if existing == "numeric":
        return incoming in _INTS or incoming.startswith("numeric")
    en, inc = _numeric(existing), _numeric(incoming)
    if en and (inc or incoming in _INTS):
        scale = inc[1] if inc else 0
        digits = _integer_digits(incoming)
        return en[1] >= scale and digits is not None and en[0] - en[1] >= digits
    if existing == "double precision":
        return incoming in ("real", "smallint", "integer")  # a bigint beyond 2^53 would be rounded
    ev, iv = _VARCHAR_RE.fullmatch(existing), _VARCHAR_RE.fullmatch(incoming)
    if ev and iv:
        return int(ev.group(1)) >= int(iv.group(1))
    if existing in _TEMPORAL and incoming in _TEMPORAL:
        return _TEMPORAL.index(existing) >= _TEMPORAL.index(incoming)
    return False


def widens(existing: str, incoming: str) -> bool:
    """True when `ALTER COLUMN ... TYPE incoming` keeps every stored value."""
    if incoming == "text":
        return existing == "text" or existing.startswith("character varying")
    if incoming == "jsonb":
        return existing == "json"
    if incoming == "double precision" and existing != incoming:
        return existing in ("real", "smallint", "integer")  # bigint and numeric values would be rounded
    return holds(incoming, existing)


# Types whose every stored value has an exact text form (timestamps print with their offset in UTC).
_TEXT_CASTABLE = {
    *_INTS,
    "numeric",
    "double precision",
    "real",
    "boolean",
    "uuid",
    "jsonb",
    "json",
    "time without time zone",
    *_TEMPORAL,
}


def casts(existing: str, incoming: str) -> bool:
    """True when converting stored `existing` values to `incoming` keeps every value (on_type_change: cast)."""
    if widens(existing, incoming):
        return True
    if incoming == "text":
        return existing in _TEXT_CASTABLE or _numeric(existing) is not None
    return False


POSTGRES = Dialect(pg_type, holds, widens, casts, column_name=truncated, column_key=truncated)
