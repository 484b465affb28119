"""Logical column types -> SQL Server types, and which type changes keep every value."""

from __future__ import annotations

import functools
import re

from dpone.targets.framework.schema_evolution import INT64_DIGITS, Dialect, decimal_holds
from dpone.targets.mssql.ddl import JSON_TYPE, SQL
from dpone_protocol.json_schema import ColumnType, Logical

MAX_PRECISION = 38
# A decimal whose schema gives no precision (or more than SQL Server's 38) gets this many decimals;
# a value with more stops the load instead of being rounded.
DEFAULT_SCALE = 10
MAX_NVARCHAR = 4000  # longer declared strings are nvarchar(max)

FLOAT_NUMBERS = "float"  # a plain JSON number lands in float when a float keeps it, else stops the load
DECIMAL_NUMBERS = "decimal"  # decimal(38,10): stops on a value with more digits
ROUNDED_NUMBERS = "float_rounded"  # float, rounding what it cannot keep (lossy)
NUMBER_MODES = (FLOAT_NUMBERS, DECIMAL_NUMBERS, ROUNDED_NUMBERS)
OFFSET_TIMESTAMPS = "datetimeoffset"
UTC_TIMESTAMPS = "datetime2"
TIMESTAMP_MODES = (OFFSET_TIMESTAMPS, UTC_TIMESTAMPS)

_SIMPLE = {
    Logical.BOOLEAN: "bit",
    Logical.DATE: "date",
    Logical.TIME: "time(6)",
    Logical.UUID: "uniqueidentifier",
    Logical.OBJECT: JSON_TYPE,
    Logical.ARRAY: JSON_TYPE,
    Logical.JSON: JSON_TYPE,
}


def decimal_type(precision: int | None, scale: int | None) -> str:
    if precision and precision <= MAX_PRECISION:
        return f"decimal({precision},{min(scale or 0, precision)})"
    return f"decimal({MAX_PRECISION},{min(scale if scale is not None else DEFAULT_SCALE, MAX_PRECISION)})"


def mssql_type(column: ColumnType, numbers: str = FLOAT_NUMBERS, timestamps: str = OFFSET_TIMESTAMPS) -> str:
    match column.logical:
        case Logical.STRING:
            if column.binary:
                return "varbinary(max)"  # base64 text of bytes: stored as the bytes
            n = column.max_length
            return f"nvarchar({n})" if n and n <= MAX_NVARCHAR else "nvarchar(max)"
        case Logical.INTEGER:
            return "bigint"  # schemas' integer limits are rarely trustworthy; bigint costs little
        case Logical.NUMBER:
            if column.bits or numbers != DECIMAL_NUMBERS:
                return "float"
            return decimal_type(None, None)
        case Logical.DECIMAL:
            return decimal_type(column.precision, column.scale)
        case Logical.TIMESTAMP:
            return "datetimeoffset(6)" if timestamps == OFFSET_TIMESTAMPS else "datetime2(6)"
    return _SIMPLE[column.logical]


_INTS = ["tinyint", "smallint", "int", "bigint"]
_INT_DIGITS = {"tinyint": (3, 0), "smallint": (5, 0), "int": (10, 0), "bigint": INT64_DIGITS}
_SIZED = re.compile(r"(\w+)\((max|\d+)(?:,\s*(\d+))?\)")
_LENGTH_TYPES = ("nvarchar", "varchar", "nchar", "char", "varbinary", "binary")
_FRACTION_TYPES = ("datetimeoffset", "datetime2", "time")


def normalize(name: str, max_length: int, precision: int, scale: int) -> str:
    """A column's type as sys.columns describes it, written as this module writes types."""
    name = name.lower()
    if name in _LENGTH_TYPES:
        if max_length == -1:
            return f"{name}(max)"
        return f"{name}({max_length // 2 if name.startswith('n') else max_length})"
    if name in ("decimal", "numeric"):
        return f"decimal({precision},{scale})"
    if name in _FRACTION_TYPES:
        return f"{name}({scale})"
    if name == "float":
        return "real" if precision == 24 else "float"
    return name


def _shape(type_: str) -> tuple[str, str | None, int | None]:
    match = _SIZED.fullmatch(type_)
    if match is None:
        return type_, None, None
    return match.group(1), match.group(2), int(match.group(3)) if match.group(3) else None


def _decimal(type_: str) -> tuple[int, int] | None:
    if type_ in _INT_DIGITS:
        return _INT_DIGITS[type_]
    base, size, scale = _shape(type_)
    return (int(size), scale or 0) if base == "decimal" and size else None


def _length(size: str | None) -> float:
    return float("inf") if size == "max" else float(size or 0)


def holds(existing: str, incoming: str) -> bool:
    """True when every value of `incoming` fits unchanged into an `existing` column."""
    if existing == incoming:
        return True
    if existing in _INTS and incoming in _INTS:
        return _INTS.index(existing) >= _INTS.index(incoming)
    if existing == "float":
        return incoming in ("real", "tinyint", "smallint", "int")  # a bigint beyond 2^53 would be rounded
    old, new = _decimal(existing), _decimal(incoming)
    if old and new and existing not in _INT_DIGITS:
        return decimal_holds(old, new)
    (base, size, _), (in_base, in_size, _) = _shape(existing), _shape(incoming)
    if base == "nvarchar" and in_base in ("nvarchar", "nchar", "varchar", "char"):
        return _length(size) >= _length(in_size)
    if base == "varbinary" and in_base in ("varbinary", "binary"):
        return _length(size) >= _length(in_size)
    if base in _FRACTION_TYPES and in_base == base:
        return int(size or 0) >= int(in_size or 0)
    return base == "nvarchar" and size == "max" and incoming == "uniqueidentifier"


def widens(existing: str, incoming: str) -> bool:
    """Altering an `existing` column to `incoming` keeps every stored value (SQL Server converts in place)."""
    return holds(incoming, existing) and existing != "uniqueidentifier"


# Types whose stored values SQL Server writes out as text in full (not float: CONVERT keeps only
# six significant digits of it).
_TEXT_CASTABLE = ("tinyint", "smallint", "int", "bigint", "bit", "date", "uniqueidentifier")


def casts(existing: str, incoming: str) -> bool:
    """Converting stored `existing` values to `incoming` keeps every one (on_type_change: cast)."""
    if incoming != "nvarchar(max)":
        return widens(existing, incoming)
    base = _shape(existing)[0]
    return existing in _TEXT_CASTABLE or base in ("decimal", "nvarchar", "varchar", "nchar", "char", *_FRACTION_TYPES)


@functools.cache
def dialect(numbers: str = FLOAT_NUMBERS, timestamps: str = OFFSET_TIMESTAMPS) -> Dialect:
    return Dialect(
        column_type=functools.partial(mssql_type, numbers=numbers, timestamps=timestamps),
        holds=holds,
        widens=widens,
        casts=casts,
        # SQL Server compares names without case (the default collations): Id and id are one column.
        column_key=str.lower,
        # A name beyond SQL Server's limit is cut and given a hash of the whole (never refused).
        column_name=SQL.fit_name,
    )
