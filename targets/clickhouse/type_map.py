"""Logical column types -> ClickHouse types, and which type changes are safe widenings.

Exact where the schema says how exact: a decimal with a precision is a Decimal(P,S), an integer an
Int64, a number declared a binary float a Float32/Float64. A number without a declared precision
follows `unbounded_numbers`: Float64 that takes only what a Float64 gives back (the default), a
Float64 that rounds (`float64_rounded`), or String holding the number's text. `Nullable(T)` only
where the schema allows null: ClickHouse pays for a null map per Nullable column.
"""

from __future__ import annotations

import re
from functools import partial

from dpone.targets.framework.schema_evolution import INT64_DIGITS, Dialect, decimal_holds
from dpone_protocol.json_schema import ColumnType, Logical

MAX_PRECISION = 76
FLOAT_NUMBERS, ROUNDED_NUMBERS, STRING_NUMBERS = "float64", "float64_rounded", "string"
NUMBER_MODES = (FLOAT_NUMBERS, ROUNDED_NUMBERS, STRING_NUMBERS)
STRING_OBJECTS, JSON_OBJECTS = "string", "json"
OBJECT_MODES = (STRING_OBJECTS, JSON_OBJECTS)
TIMESTAMP = "DateTime64(6, 'UTC')"

_SIMPLE = {
    Logical.STRING: "String",
    Logical.INTEGER: "Int64",
    Logical.BOOLEAN: "Bool",
    Logical.TIMESTAMP: TIMESTAMP,
    Logical.DATE: "Date32",
    Logical.TIME: "String",  # ClickHouse's Time type is still experimental
    Logical.UUID: "UUID",
}
# Types that cannot be inside Nullable(): a null is stored as their empty value.
_NEVER_NULLABLE = ("Array(", "JSON", "Map(", "Tuple(")


def declared_decimal(precision: int, scale: int) -> tuple[int, int] | None:
    """Decimal(P,S) holding every value of a declared precision and scale (a source may declare a
    negative scale or a scale above the precision), or None beyond 76 digits."""
    decimals = max(scale, 0)
    width = max(precision - scale, 0) + decimals
    return (max(width, 1), decimals) if width <= MAX_PRECISION else None


def base_type(column: ColumnType, numbers: str = FLOAT_NUMBERS, objects: str = STRING_OBJECTS) -> str:
    """The ClickHouse type of a column's values, without Nullable."""
    logical = column.logical
    if logical is Logical.DECIMAL and column.precision is not None:
        fits = declared_decimal(column.precision, column.scale or 0)
        if fits is not None:
            return f"Decimal({fits[0]}, {fits[1]})"
    if logical in (Logical.DECIMAL, Logical.NUMBER):
        if logical is Logical.NUMBER and column.bits:
            return "Float32" if column.bits <= 32 else "Float64"
        return "String" if numbers == STRING_NUMBERS else "Float64"
    if logical is Logical.ARRAY and column.items is not None:
        item = column.items
        if item.logical not in (Logical.OBJECT, Logical.ARRAY, Logical.JSON):
            inner = base_type(item, numbers, objects)
            return f"Array(Nullable({inner}))" if item.nullable else f"Array({inner})"
    if logical is Logical.OBJECT and objects == JSON_OBJECTS:
        return "JSON"
    if logical in (Logical.OBJECT, Logical.ARRAY, Logical.JSON):
        return "String"  # JSON text as sent; ClickHouse's JSON type holds objects only
    return _SIMPLE[logical]


def clickhouse_type(column: ColumnType, numbers: str = FLOAT_NUMBERS, objects: str = STRING_OBJECTS) -> str:
    base = base_type(column, numbers, objects)
    return nullable(base) if column.nullable else base


def nullable(type_: str) -> str:
    if type_.startswith("Nullable(") or type_.startswith(_NEVER_NULLABLE):
        return type_
    return f"Nullable({type_})"


def low_cardinality(type_: str) -> str:
    """`LowCardinality(T)` for a String-like column (it wraps Nullable, not the other way round)."""
    inner = strip(type_)
    if inner not in ("String", "Date32", "Int64", "Float64", "UUID") or type_.startswith("LowCardinality("):
        return type_
    return f"LowCardinality({type_})"


_WRAPPER = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")
_DECIMAL = re.compile(r"^Decimal\((\d+), ?(\d+)\)$")
_INTEGERS = ("Int8", "Int16", "Int32", "Int64", "Int128", "Int256")
_UNSIGNED = ("UInt8", "UInt16", "UInt32", "UInt64", "UInt128", "UInt256")


def normalize(type_: str) -> str:
    """One spelling per type: system.columns writes `DateTime64(6, 'UTC')`, `Decimal(9, 2)`."""
    return re.sub(r",\s*", ", ", type_.strip())


def strip(type_: str) -> str:
    """The type inside Nullable and LowCardinality."""
    text = normalize(type_)
    while match := _WRAPPER.match(text):
        text = match.group(1)
    return text


def is_nullable(type_: str) -> bool:
    text = normalize(type_)
    return text.startswith("Nullable(") or text.startswith("LowCardinality(Nullable(")


def decimal_shape(type_: str) -> tuple[int, int] | None:
    match = _DECIMAL.match(strip(type_))
    return (int(match.group(1)), int(match.group(2))) if match else None


def _base_holds(existing: str, incoming: str) -> bool:
    if existing == incoming or (existing == "String" and not incoming.startswith(("Array(", "JSON"))):
        return True
    if incoming in _INTEGERS and existing in _INTEGERS:
        return _INTEGERS.index(existing) >= _INTEGERS.index(incoming)
    ed, idec = decimal_shape(existing), decimal_shape(incoming)
    if ed and idec:
        return decimal_holds(ed, idec)
    if ed and incoming in _INTEGERS:
        return decimal_holds(ed, INT64_DIGITS)
    if existing == "Float64" and incoming in ("Float32", "Int8", "Int16", "Int32"):
        return True  # exact in a double; an Int64 beyond 2^53 would be rounded
    return existing == TIMESTAMP and incoming == "Date32"


def holds(existing: str, incoming: str) -> bool:
    """True when values of `incoming` fit losslessly into an `existing` column."""
    if is_nullable(incoming) and not is_nullable(existing) and not strip(existing).startswith(_NEVER_NULLABLE):
        return False
    return _base_holds(strip(existing), strip(incoming))


def widens(existing: str, incoming: str) -> bool:
    """True when `ALTER TABLE ... MODIFY COLUMN existing -> incoming` keeps every stored value:
    wider integers and decimals, Float32 -> Float64, a column made Nullable."""
    old, new = strip(existing), strip(incoming)
    if old != new and new in ("String", "JSON", "Float64", "Float32") and (old, new) != ("Float32", "Float64"):
        return False  # a number or date becoming text is a type change (on_type_change: cast)
    return holds(incoming, existing) or (_base_holds(new, old) and is_nullable(incoming))


_TEXT_CASTABLE = (*_INTEGERS, *_UNSIGNED, "Float64", "Float32", "Bool", "Date32", "Date", "UUID", TIMESTAMP)


def casts(existing: str, incoming: str) -> bool:
    """True when converting stored values keeps every one (on_type_change: cast)."""
    if widens(existing, incoming):
        return True
    old = strip(existing)
    return strip(incoming) == "String" and (old in _TEXT_CASTABLE or decimal_shape(old) is not None)


def dialect(numbers: str = FLOAT_NUMBERS, objects: str = STRING_OBJECTS) -> Dialect:
    """ClickHouse's type rules; names are case-sensitive in ClickHouse, so they match exactly."""
    return Dialect(partial(clickhouse_type, numbers=numbers, objects=objects), holds, widens, casts)
