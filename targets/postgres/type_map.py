"""Logical column types -> PostgreSQL types, and which type changes are safe widenings."""

from __future__ import annotations

import functools
import re

from dpone.targets.framework.schema_evolution import Dialect
from dpone.targets.postgres.ddl import pg_name, truncated
from dpone_protocol.errors import ConfigError
from dpone_protocol.json_schema import ColumnType, Logical

NUMBER_TYPES = ("numeric", "double precision")  # choices of number_type: where a plain JSON number lands
_SIMPLE = {
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


def pg_type(column: ColumnType, number_type: str = "numeric") -> str:
    """`number_type` is what a number without a float format becomes; a declared float is always a float."""
    if column.logical is Logical.NUMBER:
        return "double precision" if column.bits else number_type
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
_FLOATS = ("double precision", "real")
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
    if existing == "numeric":  # JSON numbers are copied in as written: a float's digits fit too
        return incoming in _INTS or incoming in _FLOATS or incoming.startswith("numeric")
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
    if existing in _FLOATS and incoming != existing:
        return False  # float -> numeric keeps only 15 significant digits of each stored value
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


def keeps(existing: str, incoming: ColumnType) -> str | None:
    """A double precision column (older versions made one for every number) keeps taking numbers:
    converting its stored values to numeric would round them, and the values it holds are floats."""
    if existing == "double precision" and incoming.logical is Logical.NUMBER:
        return (
            f"stays {existing}: numbers are stored as floats as before (a plain number would be numeric in a "
            "new table; see number_type)"
        )
    return None


@functools.cache
def dialect(number_type: str = "numeric") -> Dialect:
    if number_type not in NUMBER_TYPES:
        raise ConfigError(f"number_type must be one of {', '.join(NUMBER_TYPES)}; got {number_type!r}")
    return Dialect(
        functools.partial(pg_type, number_type=number_type),
        holds,
        widens,
        casts,
        column_name=pg_name,
        column_key=pg_name,
        former_name=truncated,
        keeps=keeps,
    )


POSTGRES = dialect()
