"""PostgreSQL column types -> JSON Schema, and the SQL expression that renders each value losslessly.

Values are serialized to JSON by the server (row_to_json); the expression makes each one
land in the form the schema promises: numeric as a `singer.decimal` string (every digit),
bytea as base64, enums/intervals/network types as text.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

_INT_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_TEXT_RE = re.compile(r"(?:character varying|character|varchar|char)\((\d+)\)")
_NUMERIC_RE = re.compile(r"numeric\((\d+),(\d+)\)")
_JSON_ANY = ["object", "array", "string", "number", "boolean", "null"]


@dataclass(frozen=True, slots=True)
class ColumnSpec:
    name: str
    schema: dict[str, Any]
    expression: str  # renders the value; `{col}` is the quoted column name


def _nullable(kind: str, nullable: bool) -> str | list[str]:
    return [kind, "null"] if nullable else kind


def _scalar(type_name: str, nullable: bool, kind: str, enum: list[str] | None) -> tuple[dict[str, Any], str]:
    if kind == "e":
        return {
            "type": _nullable("string", nullable),
            "enum": [*(enum or []), *([None] if nullable else [])],
        }, "{col}::text"
    if type_name in _INT_RANGES:
        lo, hi = _INT_RANGES[type_name]
        return {"type": _nullable("integer", nullable), "minimum": lo, "maximum": hi}, "{col}"
    if type_name.startswith("numeric") or type_name in ("money",):
        schema: dict[str, Any] = {"type": _nullable("string", nullable), "format": "singer.decimal"}
        match = _NUMERIC_RE.fullmatch(type_name.replace(" ", ""))
        if match:
            schema["precision"], schema["scale"] = int(match.group(1)), int(match.group(2))
        return schema, ("{col}::numeric::text" if type_name == "money" else "{col}::text")
    if type_name in ("real", "double precision"):
        return {"type": _nullable("number", nullable)}, "{col}"
    if type_name == "boolean":
        return {"type": _nullable("boolean", nullable)}, "{col}"
    if type_name in ("timestamp with time zone", "timestamp without time zone"):
        return {"type": _nullable("string", nullable), "format": "date-time"}, "{col}"
    if type_name == "date":
        return {"type": _nullable("string", nullable), "format": "date"}, "{col}"
    if type_name == "time without time zone":
        return {"type": _nullable("string", nullable), "format": "time"}, "{col}"
    if type_name == "uuid":
        return {"type": _nullable("string", nullable), "format": "uuid"}, "{col}"
    if type_name == "json":
        # json keeps its text as written, line breaks included; outside strings they are whitespace, and
        # a raw one would split the RECORD line. Only json pays for this (jsonb and row_to_json never emit one).
        return {"type": _JSON_ANY}, "replace(replace({col}::text, E'\\n', ' '), E'\\r', ' ')::json"
    if type_name == "jsonb":
        return {"type": _JSON_ANY}, "{col}"
    if type_name == "bytea":
        return (
            {"type": _nullable("string", nullable), "contentEncoding": "base64"},
            "translate(encode({col}, 'base64'), E'\\n', '')",
        )
    match = _TEXT_RE.fullmatch(type_name)
    if match:
        return {"type": _nullable("string", nullable), "maxLength": int(match.group(1))}, "{col}::text"
    # text, citext, interval, inet, cidr, macaddr, time with time zone, xml, bit, geometric, ...
    return {"type": _nullable("string", nullable)}, "{col}::text"


def column_spec(
    name: str,
    type_name: str,
    nullable: bool,
    kind: str = "b",
    enum: list[str] | None = None,
    element_type: str | None = None,
) -> ColumnSpec:
    """`type_name` is format_type(); `kind` is pg_type.typtype (e = enum); domains arrive resolved."""
    quoted = '"' + name.replace('"', '""') + '"'
    if type_name.endswith("[]") or element_type:
        base = element_type or type_name[:-2]
        item_schema, item_expr = _scalar(base, True, kind, enum)
        schema = {"type": _nullable("array", nullable), "items": item_schema}
        # Elements that need a text rendering (numeric, bytea, ...) go through to_json per element.
        per_item = (
            f"CASE WHEN {{col}} IS NULL THEN NULL ELSE coalesce((SELECT json_agg({item_expr.format(col='e')} "
            f"ORDER BY n) FROM unnest({{col}}) WITH ORDINALITY AS u(e, n)), '[]') END"
        )
        expression = "{col}" if item_expr == "{col}" else per_item
        return ColumnSpec(name, schema, expression.format(col=quoted))
    schema, expression = _scalar(type_name, nullable, kind, enum)
    return ColumnSpec(name, schema, expression.format(col=quoted))
