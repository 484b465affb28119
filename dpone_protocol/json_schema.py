"""The one place that turns a JSON Schema property into a logical column type.

Every target's type map starts from :class:`ColumnType`; no target reads JSON
Schema on its own.
"""

from __future__ import annotations

import dataclasses
import enum
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from dpone_protocol.errors import DataError


class Logical(enum.StrEnum):
    STRING = "string"
    INTEGER = "integer"
    NUMBER = "number"  # a JSON number: exact unless ColumnType.bits says the source is a binary float
    DECIMAL = "decimal"  # exact; singer.decimal strings or numbers with multipleOf
    BOOLEAN = "boolean"
    TIMESTAMP = "timestamp"  # format date-time; an offset is kept when present
    DATE = "date"
    TIME = "time"
    UUID = "uuid"
    OBJECT = "object"
    ARRAY = "array"
    JSON = "json"  # a union we cannot narrow: store the JSON value as is


@dataclass(frozen=True, slots=True)
class ColumnType:
    logical: Logical
    nullable: bool = True
    max_length: int | None = None  # strings
    bits: int | None = None  # integers: 16, 32, 64, or None when unbounded; numbers: 32/64 for a declared float
    precision: int | None = None  # decimals
    scale: int | None = None
    # arrays: the type of every item, where the schema gives one scalar `items` (Array(T) columns)
    items: ColumnType | None = None
    # strings: base64 text of bytes (`contentEncoding: base64`), for a destination with a binary type
    binary: bool = False


_SCALAR_TYPES = {"string", "integer", "number", "boolean"}
_FORMATS = {
    "date-time": Logical.TIMESTAMP,
    "date": Logical.DATE,
    "time": Logical.TIME,
    "uuid": Logical.UUID,
    "singer.decimal": Logical.DECIMAL,
}


def _types_of(schema: dict[str, Any]) -> list[str]:
    declared = schema.get("type")
    if declared is None:
        if "properties" in schema:
            return ["object"]
        if "items" in schema:
            return ["array"]
        return []
    return [declared] if isinstance(declared, str) else list(declared)


def _integer_bits(schema: dict[str, Any]) -> int | None:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if lo is None or hi is None:
        return 64
    for bits in (16, 32, 64):
        if -(2 ** (bits - 1)) <= lo and hi < 2 ** (bits - 1):
            return bits
    return None  # wider than 64 bits: an exact decimal


# Hints that a number comes from a binary float (so a float column loses nothing): OpenAPI's
# number formats and the source's SQL type. A number without one may carry any digits.
_FLOAT_FORMATS = {"float": 32, "double": 64}
_FLOAT_SQL_TYPES = {"real": 32, "float4": 32, "double precision": 64, "float8": 64, "double": 64, "float": 64}


def _float_bits(schema: dict[str, Any]) -> int | None:
    fmt, sql = schema.get("format"), schema.get("x-sql-datatype")
    if isinstance(fmt, str) and fmt.lower() in _FLOAT_FORMATS:
        return _FLOAT_FORMATS[fmt.lower()]
    if isinstance(sql, str):
        return _FLOAT_SQL_TYPES.get(sql.strip().lower())
    return None


def _decimal_from_limits(schema: dict[str, Any]) -> tuple[int | None, int | None]:
    """Precision and scale implied by multipleOf (scale) and maximum/minimum (integer digits)."""
    multiple = schema.get("multipleOf")
    if multiple is None:
        return None, None
    exponent = Decimal(str(multiple)).normalize().as_tuple().exponent
    scale = max(0, -int(exponent))
    bound = max(abs(Decimal(str(schema.get("maximum", 0)))), abs(Decimal(str(schema.get("minimum", 0)))))
    int_digits = len(str(int(bound))) if bound else None
    return ((int_digits + scale) if int_digits else None), scale


def _single(schema: dict[str, Any], kind: str) -> ColumnType:
    if kind == "string":
        fmt = schema.get("format")
        logical = _FORMATS.get(fmt, Logical.STRING) if isinstance(fmt, str) else Logical.STRING
        if logical is Logical.DECIMAL:
            return ColumnType(logical, precision=schema.get("precision"), scale=schema.get("scale"))
        if logical is not Logical.STRING:
            return ColumnType(logical)
        max_length = schema.get("maxLength")
        return ColumnType(
            logical,
            max_length=max_length if isinstance(max_length, int) else None,
            binary=schema.get("contentEncoding") == "base64",
        )
    if kind == "integer":
        bits = _integer_bits(schema)
        if bits is None:
            return ColumnType(Logical.DECIMAL, precision=None, scale=0)
        return ColumnType(Logical.INTEGER, bits=bits)
    if kind == "number":
        precision, scale = _decimal_from_limits(schema)
        if scale is not None:
            return ColumnType(Logical.DECIMAL, precision=precision, scale=scale)
        return ColumnType(Logical.NUMBER, bits=_float_bits(schema))
    if kind == "boolean":
        return ColumnType(Logical.BOOLEAN)
    if kind == "object":
        return ColumnType(Logical.OBJECT)
    if kind == "array":
        items = schema.get("items")
        item = column_type(items) if isinstance(items, dict) and _types_of(items) else None
        return ColumnType(Logical.ARRAY, items=item)
    return ColumnType(Logical.JSON)


def _widest(values: list[int | None]) -> int | None:
    """The largest limit, or None (unlimited) when any alternative has none."""
    return None if any(v is None for v in values) else max(v for v in values if v is not None)


def _merge(options: list[ColumnType]) -> ColumnType:
    """Narrowest logical type that holds every alternative of a union."""
    kinds = {o.logical for o in options}
    if len(kinds) == 1:
        if len(options) == 1:
            return options[0]
        scale = _widest([o.scale for o in options])
        digits = _widest([None if o.precision is None else o.precision - (o.scale or 0) for o in options])
        return ColumnType(
            options[0].logical,
            max_length=_widest([o.max_length for o in options]),
            bits=_widest([o.bits for o in options]),
            precision=None if digits is None else digits + (scale or 0),
            scale=scale,
            binary=all(o.binary for o in options),
        )
    if kinds <= {Logical.INTEGER, Logical.NUMBER}:
        return ColumnType(Logical.NUMBER)
    if kinds <= {Logical.INTEGER, Logical.DECIMAL}:
        return ColumnType(Logical.DECIMAL)
    if kinds <= {Logical.STRING, Logical.TIMESTAMP, Logical.DATE, Logical.TIME, Logical.UUID, Logical.DECIMAL}:
        # e.g. anyOf [date-time, plain string]: values may not parse, keep the text.
        return ColumnType(Logical.STRING)
    if Logical.OBJECT in kinds or Logical.ARRAY in kinds or Logical.JSON in kinds:
        return ColumnType(Logical.JSON)
    return ColumnType(Logical.STRING)  # mixed scalars: text holds them all losslessly


def column_type(schema: dict[str, Any]) -> ColumnType:
    """Logical column type for one property schema."""
    if not isinstance(schema, dict):
        raise DataError(f"property schema must be an object, got {type(schema).__name__}")
    alternatives = schema.get("anyOf") or schema.get("oneOf")
    if alternatives:
        nullable = False
        options: list[ColumnType] = []
        for alt in alternatives:
            sub = column_type(alt)
            types = _types_of(alt)
            if types == ["null"]:
                nullable = True
                continue
            nullable = nullable or sub.nullable
            options.append(sub)
        if not options:
            return ColumnType(Logical.JSON, nullable=True)
        return dataclasses.replace(_merge(options), nullable=nullable)
    types = _types_of(schema)
    nullable = "null" in types or not types
    concrete = [t for t in types if t != "null"]
    if not concrete:
        return ColumnType(Logical.JSON, nullable=True)
    options = [_single(schema, t) for t in concrete]
    merged = options[0] if len(options) == 1 else _merge(options)
    return dataclasses.replace(merged, nullable=nullable)


def stream_columns(schema: dict[str, Any], stream: str) -> dict[str, ColumnType]:
    """Columns of a stream's top-level object schema, in declaration order."""
    properties = schema.get("properties")
    if not isinstance(properties, dict):
        raise DataError(f"stream {stream!r}: SCHEMA has no 'properties' object; cannot map it to columns")
    return {name: column_type(prop) for name, prop in properties.items()}
