"""Logical column types -> DuckDB types, and which type changes are safe widenings.

DuckDB has no arbitrary-precision number: DECIMAL stops at 38 digits. A number whose precision fits
is a DECIMAL(p,s), a number the schema declares a binary float is a FLOAT or DOUBLE; any other number (a
plain JSON `number`, a decimal without precision or wider than 38 digits) follows the
`unbounded_numbers` setting: DOUBLE that takes only values a double gives back exactly and stops on any
other (the default: sums work, nothing is rounded), VARCHAR holding the number's text (every digit,
NaN and Infinity too), DECIMAL(38,s) that stops on a value it cannot hold, or DOUBLE that rounds
(`double_rounded`, a lossy choice the user makes).
"""

from __future__ import annotations

import re
from functools import partial

from dpone.targets.framework.schema_evolution import INT64_DIGITS, Dialect, decimal_holds
from dpone_protocol.json_schema import ColumnType, Logical

_SIMPLE = {
    Logical.STRING: "VARCHAR",
    Logical.INTEGER: "BIGINT",
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
UNBOUNDED_SCALE = 9  # decimals of an unbounded number under `unbounded_numbers: decimal`, unless declared
DOUBLE_NUMBERS, VARCHAR_NUMBERS, DECIMAL_NUMBERS = "double", "varchar", "decimal"
ROUNDED_NUMBERS = "double_rounded"
NUMBER_MODES = (DOUBLE_NUMBERS, VARCHAR_NUMBERS, DECIMAL_NUMBERS, ROUNDED_NUMBERS)
DEFAULT_NUMBERS = DOUBLE_NUMBERS


def _declared_decimal(precision: int, scale: int) -> tuple[int, int] | None:
    """DECIMAL(width, scale) holding every value of a declared precision and scale, or None beyond 38.
    A source may declare a negative scale (rounded to hundreds...) or a scale above the precision."""
    int_digits = precision - scale
    decimals = max(scale, 0)
    width = max(int_digits, 0) + decimals
    return (width, decimals) if 0 < width <= MAX_PRECISION else None


def _unbounded(column: ColumnType, numbers: str) -> str:
    if numbers in (DOUBLE_NUMBERS, ROUNDED_NUMBERS):
        return "DOUBLE"
    if numbers == DECIMAL_NUMBERS:
        scale = UNBOUNDED_SCALE if column.scale is None else min(max(column.scale, 0), MAX_PRECISION)
        return f"DECIMAL({MAX_PRECISION},{scale})"
    return "VARCHAR"


def duckdb_type(column: ColumnType, numbers: str = DEFAULT_NUMBERS) -> str:
    """The DuckDB type of a column; `numbers` is the `unbounded_numbers` setting."""
    if column.logical is Logical.DECIMAL:
        if column.precision is not None:
            fits = _declared_decimal(column.precision, column.scale or 0)
            if fits is not None:
                return f"DECIMAL({fits[0]},{fits[1]})"
        return _unbounded(column, numbers)
    if column.logical is Logical.NUMBER:
        # A declared binary float (x-sql-datatype real, format double...) is exactly a FLOAT or DOUBLE.
        if column.bits:
            return "FLOAT" if column.bits <= 32 else "DOUBLE"
        return _unbounded(column, numbers)
    return _SIMPLE[column.logical]


_DECIMAL_RE = re.compile(r"DECIMAL\((\d+),\s*(\d+)\)")
_INTEGERS = ("TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT")


def decimal_shape(t: str) -> tuple[int, int] | None:
    """(width, scale) of a DECIMAL type, else None."""
    m = _DECIMAL_RE.fullmatch(t)
    return (int(m.group(1)), int(m.group(2))) if m else None


def normalize(t: str) -> str:
    t = t.upper().strip()
    return {
        "TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE",
        "INT8": "BIGINT",
        "FLOAT8": "DOUBLE",
        "REAL": "FLOAT",
        "FLOAT4": "FLOAT",
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
    ed, idec = decimal_shape(existing), decimal_shape(incoming)
    if ed and idec:
        return decimal_holds(ed, idec)
    if ed and incoming in _INTEGERS:
        return decimal_holds(ed, INT64_DIGITS)
    if existing == "DOUBLE" and incoming in ("TINYINT", "SMALLINT", "INTEGER", "FLOAT"):
        return True  # exact in a double; a BIGINT beyond 2^53 would be rounded
    return existing == "TIMESTAMP WITH TIME ZONE" and incoming == "DATE"


def widens(existing: str, incoming: str) -> bool:
    """True when altering `existing` to `incoming` keeps every stored value."""
    if (normalize(existing), normalize(incoming)) == ("FLOAT", "DOUBLE"):
        return True  # every 32-bit float is a double
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
    return incoming == "VARCHAR" and (existing in _TEXT_CASTABLE or decimal_shape(existing) is not None)


def keeps(existing: str, incoming: ColumnType) -> str | None:
    """A DOUBLE column (older versions made one for every number) keeps taking plain numbers:
    converting its stored values would not make them exact, and it holds floats as it did."""
    if normalize(existing) == "DOUBLE" and incoming.logical is Logical.NUMBER:
        return "stays DOUBLE: numbers are stored as doubles, as the column holds them (see unbounded_numbers)"
    return None


def dialect(numbers: str = DEFAULT_NUMBERS) -> Dialect:
    """DuckDB's type rules under an `unbounded_numbers` setting. Names keep their case and match
    case-insensitively, as in DuckDB."""
    # Only where numbers become doubles anyway may an older DOUBLE column keep taking them: under
    # varchar or decimal it would round what the setting was chosen to keep (a type change then).
    kept = keeps if numbers in (DOUBLE_NUMBERS, ROUNDED_NUMBERS) else _never_kept
    return Dialect(partial(duckdb_type, numbers=numbers), holds, widens, casts, column_key=str.lower, keeps=kept)


def _never_kept(existing: str, incoming: ColumnType) -> str | None:
    return None


DUCKDB = dialect()
