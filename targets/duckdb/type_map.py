"""Logical column types -> DuckDB types, and which type changes are safe widenings."""

from __future__ import annotations

import re

from dpone_protocol.json_schema import ColumnType, Logical
from targets.framework.schema_evolution import Dialect

_SIMPLE = {
    Logical.STRING: "VARCHAR",
    Logical.INTEGER: "BIGINT",
    Logical.NUMBER: "DOUBLE",
    Logical.BOOLEAN: "BOOLEAN",
    Logical.TIMESTAMP: "TIMESTAMP WITH TIME ZONE",
    Logical.DATE: "DATE",
    Logical.TIME: "TIME",
    Logical.UUID: "UUID",
    Logical.OBJECT: "JSON",
    Logical.ARRAY: "JSON",
    Logical.JSON: "JSON",
}
MAX_PRECISION = 38
DEFAULT_DECIMAL = (MAX_PRECISION, 9)


def duckdb_type(column: ColumnType) -> str:
    if column.logical is Logical.DECIMAL:
        precision = column.precision or DEFAULT_DECIMAL[0]
        scale = column.scale if column.scale is not None else DEFAULT_DECIMAL[1]
        if precision > MAX_PRECISION:
            return "VARCHAR"  # wider than DuckDB's DECIMAL: keep every digit as text
        return f"DECIMAL({precision},{scale})"
    return _SIMPLE[column.logical]


_DECIMAL_RE = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")


def _decimal(t: str) -> tuple[int, int] | None:
    m = _DECIMAL_RE.fullmatch(t)
    return (int(m.group(1)), int(m.group(2))) if m else None


def normalize(t: str) -> str:
    t = t.upper().strip()
    return {
        "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
        "INT8": "BIGINT",
        "FLOAT8": "DOUBLE",
        "TEXT": "VARCHAR",
        "STRING": "VARCHAR",
    }.get(t, t)


def holds(existing: str, incoming: str) -> bool:
    """True when values of `incoming` fit losslessly into an `existing` column."""
    existing, incoming = normalize(existing), normalize(incoming)
    if existing == incoming or existing in ("VARCHAR", "JSON"):
        return True
    if incoming in _INTEGERS and existing in _INTEGERS:
        return _INTEGERS.index(existing) >= _INTEGERS.index(incoming)
    ed, idec = _decimal(existing), _decimal(incoming)
    if ed and idec:
        return ed[1] >= idec[1] and ed[0] - ed[1] >= idec[0] - idec[1]
    if ed and incoming in _INTEGERS:
        return ed[0] - ed[1] >= 19
    if existing == "DOUBLE" and incoming in ("TINYINT", "SMALLINT", "INTEGER", "FLOAT"):
        return True  # exact in a double; a BIGINT beyond 2^53 would be rounded
    return existing == "TIMESTAMP WITH TIME ZONE" and incoming == "DATE"


def widens(existing: str, incoming: str) -> bool:
    """True when altering `existing` to `incoming` keeps every stored value."""
    if normalize(incoming) in ("JSON", "DOUBLE", "FLOAT", "VARCHAR") and normalize(existing) != normalize(incoming):
        # A DOUBLE rounds integers beyond 2^53; JSON would change every value's form; a number or date
        # becoming text is a type change (on_type_change: cast), not a widening.
        return False
    return holds(incoming, existing)


_TEXT_CASTABLE = (*_INTEGERS, "DOUBLE", "FLOAT", "BOOLEAN", "DATE", "TIME", "TIMESTAMP", "UUID", "JSON")


def casts(existing: str, incoming: str) -> bool:
    """True when converting stored `existing` values to `incoming` keeps every value (on_type_change: cast)."""
    existing, incoming = normalize(existing), normalize(incoming)
    if widens(existing, incoming):
        return True
    return incoming == "VARCHAR" and (existing in _TEXT_CASTABLE or _decimal(existing) is not None)


# Names keep their case and match case-insensitively, as in DuckDB.
DUCKDB = Dialect(duckdb_type, holds, widens, casts, column_key=str.lower)
