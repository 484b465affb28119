"""BigQuery column types -> JSON Schema, and each value as the JSON the schema promises.

The two read paths hand over the same Python values (the REST client's row values, or a Storage
Read API Arrow batch's `to_pylist()`), and one converter per column turns them into what a RECORD
carries: INT64 as an exact integer, NUMERIC and BIGNUMERIC as `singer.decimal` strings with every
digit (never a float), FLOAT64 as a number with NaN and the infinities as the strings tap-postgres
sends, BYTES as base64, TIMESTAMP in UTC with `+00:00` and its microseconds (when it has any),
DATETIME without an offset (it has no zone, as tap-postgres's `timestamp without time zone`),
JSON as the JSON value, ARRAY and STRUCT element by element with the same rules.

A bookmark comes back from the state as JSON text or a number; `parameter` reads it as a query
parameter of the column's own type, so the comparison runs in BigQuery on typed values.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import math
from collections.abc import Callable, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any

from dpone_protocol.errors import ConfigError

Converter = Callable[[Any], Any]

_JSON_ANY = ["object", "array", "string", "number", "boolean", "null"]
# BigQuery's legacy (REST) names and the standard SQL names of the same types.
_ALIASES = {"INTEGER": "INT64", "FLOAT": "FLOAT64", "BOOLEAN": "BOOL", "STRUCT": "RECORD"}
# The precision and scale of the unparameterized types: BIGNUMERIC holds 76.76 digits, so some
# 77-digit values (38 of them after the point).
_DECIMALS = {"NUMERIC": (38, 9), "BIGNUMERIC": (77, 38)}
_SCALARS: dict[str, dict[str, Any]] = {
    "INT64": {"type": "integer", "minimum": -(2**63), "maximum": 2**63 - 1},
    # Marked as a float: a target may keep it in a float column (a plain number means exact).
    "FLOAT64": {"type": "number", "x-sql-datatype": "double precision"},
    "BOOL": {"type": "boolean"},
    "STRING": {"type": "string"},
    "BYTES": {"type": "string", "contentEncoding": "base64"},
    "DATE": {"type": "string", "format": "date"},
    "TIME": {"type": "string", "format": "time"},
    "DATETIME": {"type": "string", "format": "date-time"},
    "TIMESTAMP": {"type": "string", "format": "date-time"},
    "GEOGRAPHY": {"type": "string"},  # WKT text
    "INTERVAL": {"type": "string"},  # canonical `Y-M D H:M:S.F`
}
# Types a query parameter (a bookmark) can be read in, and how.
_ORDERED = ("INT64", "NUMERIC", "BIGNUMERIC", "FLOAT64", "DATE", "DATETIME", "TIMESTAMP", "STRING")


def type_of(field: Any) -> str:
    """The field's type in standard SQL words (INT64, FLOAT64, BOOL, RECORD, ...)."""
    name = str(field.field_type).upper()
    return _ALIASES.get(name, name)


def _nullable(schema: dict[str, Any]) -> dict[str, Any]:
    declared = schema.get("type")
    if declared is None:
        return schema
    return {**schema, "type": [declared, "null"]}


def field_schema(field: Any) -> dict[str, Any]:
    """The JSON Schema of a google.cloud.bigquery SchemaField (REQUIRED fields are not nullable)."""
    kind = type_of(field)
    if kind == "RECORD":
        item: dict[str, Any] = {
            "type": "object",
            "properties": {f.name: field_schema(f) for f in field.fields},
        }
    elif kind in _DECIMALS:
        precision, scale = _DECIMALS[kind]
        # A parameterized NUMERIC(P, S) says its own.
        if getattr(field, "precision", None) is not None:
            precision = int(field.precision)
            scale = int(field.scale or 0)
        item = {"type": "string", "format": "singer.decimal", "precision": precision, "scale": scale}
    elif kind == "JSON":
        item = {"type": list(_JSON_ANY)}
    elif kind == "STRING" and getattr(field, "max_length", None):
        item = {"type": "string", "maxLength": int(field.max_length)}
    else:
        item = dict(_SCALARS.get(kind, {"type": list(_JSON_ANY)}))
    mode = str(field.mode or "NULLABLE").upper()
    if mode == "REPEATED":
        # A repeated field is never NULL in BigQuery: an empty array at most.
        return {"type": "array", "items": _nullable(item) if kind == "JSON" else item}
    if mode == "REQUIRED" or kind == "JSON":
        return item
    return _nullable(item)


def stream_schema(fields: Sequence[Any]) -> dict[str, Any]:
    return {"type": "object", "properties": {f.name: field_schema(f) for f in fields}}


def replication_key_candidate(field: Any) -> bool:
    """A column INCREMENTAL can bookmark: a scalar whose values BigQuery orders and we compare exactly."""
    return str(field.mode or "NULLABLE").upper() != "REPEATED" and type_of(field) in _ORDERED


# -- values ------------------------------------------------------------------------------------


def _decimal(value: Decimal) -> str:
    # "f": never an exponent (`1E-9` from the client is `0.000000001`), every digit kept.
    return format(value, "f")


def _float(value: float) -> float | str:
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return "NaN"
    return "Infinity" if value > 0 else "-Infinity"


def _bytes(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _iso(value: dt.date | dt.time) -> str:
    return value.isoformat()


def _timestamp(value: dt.datetime) -> str:
    # Both read paths give UTC values; a zone the client chose (zoneinfo UTC) is spelt +00:00 all the same.
    return value.astimezone(dt.UTC).isoformat() if value.utcoffset() else value.replace(tzinfo=dt.UTC).isoformat()


def _json(text: Any) -> Any:
    # Fractions as Decimal: every digit of the JSON text goes out as written. (A small query result
    # the client library turned into Arrow itself holds the value it parsed already.)
    return json.loads(text, parse_float=Decimal) if isinstance(text, str) else text


def interval_text(value: Any) -> str:
    """An INTERVAL in BigQuery's canonical form `[-]Y-M [-]D [-]H:M:S[.F]`, from either read path."""
    if isinstance(value, str):
        return value
    months = getattr(value, "months", 0) or 0
    days = getattr(value, "days", 0) or 0
    if hasattr(value, "nanoseconds"):  # Arrow's month_day_nano
        micros = int(value.nanoseconds) // 1000
    else:  # the REST client's dateutil relativedelta
        months += 12 * (value.years or 0)
        micros = (((value.hours or 0) * 60 + (value.minutes or 0)) * 60 + (value.seconds or 0)) * 1_000_000
        micros += value.microseconds or 0
    ym_sign = "-" if months < 0 else ""
    years, month = divmod(abs(months), 12)
    t_sign = "-" if micros < 0 else ""
    seconds, fraction = divmod(abs(micros), 1_000_000)
    minutes, second = divmod(seconds, 60)
    hours, minute = divmod(minutes, 60)
    text = f"{ym_sign}{years}-{month} {days} {t_sign}{hours}:{minute}:{second}"
    return f"{text}.{fraction:06d}".rstrip("0") if fraction else text


_SCALAR_CONVERTERS: dict[str, Converter] = {
    "NUMERIC": _decimal,
    "BIGNUMERIC": _decimal,
    "FLOAT64": _float,
    "BYTES": _bytes,
    "DATE": _iso,
    "TIME": _iso,
    "DATETIME": _iso,
    "TIMESTAMP": _timestamp,
    "INTERVAL": interval_text,
}


def converter(field: Any, arrow: bool = False) -> Converter | None:
    """The function turning one value of `field` into its JSON form; None when the value goes as it is.

    `arrow`: the value comes from a Storage Read API batch, where a JSON column is its text (the REST
    client has parsed it already, and a str there is a JSON string)."""
    kind = type_of(field)
    one: Converter | None
    if kind == "RECORD":
        one = _record([(f.name, converter(f, arrow)) for f in field.fields])
    elif kind == "JSON":
        one = _json if arrow else None
    else:
        one = _SCALAR_CONVERTERS.get(kind)
    if str(field.mode or "").upper() == "REPEATED":
        # Never NULL in BigQuery; a read session may give None for an empty one.
        if one is None:
            return lambda values: [] if values is None else values
        each = one
        return lambda values: [] if values is None else [None if v is None else each(v) for v in values]
    if one is None:
        return None
    inner = one
    return lambda value: None if value is None else inner(value)


def _record(parts: list[tuple[str, Converter | None]]) -> Converter:
    def convert(value: Any) -> dict[str, Any]:
        return {name: (value.get(name) if fn is None else fn(value.get(name))) for name, fn in parts}

    return convert


# -- bookmarks ---------------------------------------------------------------------------------


def _instant(text: str) -> dt.datetime:
    parsed = dt.datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace(" ", "T", 1))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def parameter_value(kind: str, value: Any, stream: str) -> Any:
    """A bookmark (or start_date) as a value of the column's type, for a query parameter."""
    try:
        if kind == "INT64":
            return int(value)
        if kind in _DECIMALS:
            return Decimal(str(value))
        if kind == "FLOAT64":
            return float(value)
        if kind == "TIMESTAMP":
            return _instant(str(value))
        if kind == "DATETIME":
            return dt.datetime.fromisoformat(str(value).strip().replace("Z", "+00:00")).replace(tzinfo=None)
        if kind == "DATE":
            return dt.date.fromisoformat(str(value).strip()[:10])
        return str(value)
    except (ValueError, TypeError, InvalidOperation):
        raise ConfigError(
            f"stream {stream!r}: the bookmark or start_date {value!r} is not a {kind} value; "
            "fix start_date, or clear the stream's state"
        ) from None


def bookmark_order(value: Any) -> tuple[int, Any]:
    """A sort key for bookmark values: date-times by instant, numbers by value, other text as text.

    The framework builds its tracker before a stream knows its replication key, so the key goes by
    the value; the rank keeps kinds from being compared with each other."""
    if isinstance(value, bool) or value is None:
        return (3, str(value))
    if isinstance(value, (int, float, Decimal)):
        return (1, Decimal(str(value)))
    text = str(value)
    try:
        return (0, _instant(text))
    except ValueError:
        pass
    try:
        return (1, Decimal(text))
    except InvalidOperation:
        return (2, text)
