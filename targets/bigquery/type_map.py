"""Logical column types -> BigQuery types, the safe widenings, and BigQuery's column-name rules.

Exact by construction (DESIGN rule 7): an integer is INT64; a decimal with a declared precision is
NUMERIC (up to 29 integer digits and 9 decimals) or BIGNUMERIC (38 and 38); a JSON number without a
declared float format, or a decimal wider than BIGNUMERIC, follows `unbounded_numbers` (BIGNUMERIC
by default: a value it cannot hold stops the load; STRING keeps every digit as text; FLOAT64 rounds
and must be chosen). Only a declared binary float is FLOAT64.
"""

from __future__ import annotations

import functools
import hashlib
import re

from dpone.targets.framework.schema_evolution import Dialect
from dpone_protocol.errors import ConfigError
from dpone_protocol.json_schema import ColumnType, Logical

NUMBER_MODES = ("bignumeric", "numeric", "string", "float64")
# (integer digits, decimals) each exact numeric type holds; INT64 as 19 integer digits.
SHAPES = {"INT64": (19, 0), "NUMERIC": (29, 9), "BIGNUMERIC": (38, 38)}
_SIMPLE = {
    Logical.STRING: "STRING",
    Logical.INTEGER: "INT64",
    Logical.BOOLEAN: "BOOL",
    Logical.TIMESTAMP: "TIMESTAMP",
    Logical.DATE: "DATE",
    Logical.TIME: "TIME",
    Logical.UUID: "STRING",
    Logical.OBJECT: "JSON",
    Logical.JSON: "JSON",
}
# What the tables API calls the types a table already has (the legacy names) -> standard SQL names.
_LEGACY = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "BIGDECIMAL": "BIGNUMERIC", "RECORD": "STRUCT"}
_SCALARS = frozenset({*SHAPES, "FLOAT64", "BOOL", "STRING", "TIMESTAMP", "DATE", "TIME"})


def standard(field_type: str) -> str:
    upper = field_type.upper()
    return _LEGACY.get(upper, upper)


def _unbounded(numbers: str) -> str:
    return {"bignumeric": "BIGNUMERIC", "numeric": "NUMERIC", "string": "STRING", "float64": "FLOAT64"}[numbers]


def bigquery_type(column: ColumnType, numbers: str = "bignumeric") -> str:
    """The column type of a logical type; an array of one non-null scalar type is ARRAY<T> (REPEATED)."""
    logical = column.logical
    if logical is Logical.NUMBER:
        return "FLOAT64" if column.bits else _unbounded(numbers)
    if logical is Logical.DECIMAL:
        if column.precision is not None:
            scale = max(column.scale or 0, 0)
            digits = max(column.precision - (column.scale or 0), 0)
            for name in ("NUMERIC", "BIGNUMERIC"):
                if digits <= SHAPES[name][0] and scale <= SHAPES[name][1]:
                    return name
        return _unbounded(numbers)
    if logical is Logical.ARRAY:
        item = column.items
        if item is not None and not item.nullable and item.logical not in (Logical.OBJECT, Logical.ARRAY):
            inner = bigquery_type(item, numbers)
            if inner in _SCALARS:
                return f"ARRAY<{inner}>"
        return "JSON"  # mixed, nested or nullable items: BigQuery arrays hold no NULL and no array
    return _SIMPLE[logical]


def array_item(type_: str) -> str | None:
    return type_[6:-1] if type_.startswith("ARRAY<") and type_.endswith(">") else None


def holds(existing: str, incoming: str) -> bool:
    """True when every value of `incoming` goes into an `existing` column unchanged."""
    if existing == incoming:
        return True
    old, new = array_item(existing), array_item(incoming)
    if old is not None and new is not None:
        return holds(old, new)
    if existing in SHAPES and incoming in SHAPES:
        have, want = SHAPES[existing], SHAPES[incoming]
        return have[0] >= want[0] and have[1] >= want[1]
    return False


def widens(existing: str, incoming: str) -> bool:
    """ALTER COLUMN SET DATA TYPE that BigQuery allows and that keeps every stored value:
    INT64 -> NUMERIC -> BIGNUMERIC. (INT64/NUMERIC -> FLOAT64 is allowed by BigQuery but rounds.)"""
    return existing != incoming and existing in SHAPES and incoming in SHAPES and holds(incoming, existing)


# -- names ------------------------------------------------------------------------------------------
MAX_NAME = 300
_INVALID = re.compile(r"[^A-Za-z0-9_]")
_RESERVED = ("_table_", "_file_", "_partition", "_row_timestamp", "__root__", "_colidentifier")


def column_name(name: str) -> str:
    """A valid BigQuery column name for a property: other characters become `_`, a leading digit
    (or nothing) gets `_` before it, a reserved prefix gets `_dpone` before it, and a name longer
    than 300 characters is cut and ends with 8 hex digits of its SHA-1 (two long names stay two)."""
    valid = _INVALID.sub("_", name)
    if not valid or valid[0].isdigit():
        valid = "_" + valid
    if valid.lower().startswith(_RESERVED):
        valid = "_dpone" + valid
    if len(valid) > MAX_NAME:
        digest = hashlib.sha1(name.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
        valid = f"{valid[: MAX_NAME - 9]}_{digest}"
    return valid


def column_key(name: str) -> str:
    """BigQuery column names are case-insensitive: `Id` and `id` are one column."""
    return column_name(name).lower()


@functools.cache
def dialect(numbers: str = "bignumeric") -> Dialect:
    if numbers not in NUMBER_MODES:
        raise ConfigError(f"unbounded_numbers must be one of {', '.join(NUMBER_MODES)}; got {numbers!r}")
    return Dialect(
        column_type=functools.partial(bigquery_type, numbers=numbers),
        holds=holds,
        widens=widens,
        casts=widens,  # a cast that keeps every value is a widening here; nothing more
        column_name=column_name,
        column_key=column_key,
    )
