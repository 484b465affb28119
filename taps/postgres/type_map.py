"""PostgreSQL column types -> JSON Schema, and the SQL expressions that render each value losslessly.

On the JSON path the server serializes values (row_to_json); the expression makes each one
land in the form the schema promises: numeric as a `singer.decimal` string (every digit),
bytea as base64, enums/intervals/network types as text. The compiled path (copy_lines.py) reads
the column's COPY text instead and needs to know only its kind (SqlColumn.native).
"""

from __future__ import annotations

import re
from typing import Any

from dpone.taps.framework.sql_discovery import SqlColumn
from dpone_drivers.sql_names import ANSI

_INT_RANGES = {"smallint": (-(2**15), 2**15 - 1), "integer": (-(2**31), 2**31 - 1), "bigint": (-(2**63), 2**63 - 1)}
_TEXT_RE = re.compile(r"(?:character varying|character|varchar|char)\((\d+)\)")
_NUMERIC_RE = re.compile(r"numeric\((\d+),(\d+)\)")
_JSON_ANY = ["object", "array", "string", "number", "boolean", "null"]
# A float's -0 would print as `-0`, which JSON readers take for the integer 0: send -0.0.
_FLOAT = "CASE WHEN {col} = 0 AND {col}::text = '-0' THEN '-0.0'::json ELSE to_json({col}) END"
_MAX_DIMS = 6  # PostgreSQL's limit on array dimensions
# Elements rendered one by one into nested JSON arrays, whatever the number of dimensions: element n
# (row-major, from 1) opens one bracket per dimension whose block starts at it, and closes one per
# block it ends. A block of dimension d holds the product of the lengths of dimensions d and up.
# Aliases unlikely to clash with a column name (a column "d" would be the alias d inside).
_BLOCK = " * ".join(
    f"(CASE WHEN _dpone_d <= {k} THEN coalesce(array_length({{col}}, {k}), 1) ELSE 1 END)::bigint"
    for k in range(1, _MAX_DIMS + 1)
)
_NESTED = (
    "CASE WHEN {col} IS NULL THEN NULL ELSE coalesce((SELECT string_agg(repeat('[', _dpone_b.opens::int) || "
    "coalesce(to_json({item})::text, 'null') || repeat(']', _dpone_b.closes::int), ',' ORDER BY _dpone_u.n) "
    "FROM unnest({col}) WITH ORDINALITY AS _dpone_u(e, n) CROSS JOIN LATERAL ("
    "SELECT count(*) FILTER (WHERE mod(_dpone_u.n - 1, _dpone_s.size) = 0) AS opens, "
    "count(*) FILTER (WHERE mod(_dpone_u.n, _dpone_s.size) = 0) AS closes "
    f"FROM (SELECT {_BLOCK} AS size FROM generate_series(1, array_ndims({{col}})) AS _dpone_d) AS _dpone_s) "
    "AS _dpone_b)::json, '[]') END"
)


def _nullable(kind: str, nullable: bool) -> str | list[str]:
    return [kind, "null"] if nullable else kind


def _scalar(type_name: str, nullable: bool, kind: str, enum: list[str] | None) -> tuple[dict[str, Any], str, str]:
    """The schema, the expression row_to_json renders, and the kind of the column's COPY text in the
    compiled path (taps/postgres/copy_lines.py) when the plain column is selected."""
    if kind == "e":
        return (
            {"type": _nullable("string", nullable), "enum": [*(enum or []), *([None] if nullable else [])]},
            "{col}::text",
            "text",
        )
    if type_name in _INT_RANGES:
        lo, hi = _INT_RANGES[type_name]
        return {"type": _nullable("integer", nullable), "minimum": lo, "maximum": hi}, "{col}", "int"
    if type_name.startswith("numeric") or type_name in ("money",):
        schema: dict[str, Any] = {"type": _nullable("string", nullable), "format": "singer.decimal"}
        match = _NUMERIC_RE.fullmatch(type_name.replace(" ", ""))
        if match:
            schema["precision"], schema["scale"] = int(match.group(1)), int(match.group(2))
        if type_name == "money":
            return schema, "{col}::numeric::text", ""  # money's text is in the locale's currency format
        return schema, "{col}::text", "text"
    if type_name in ("real", "double precision"):
        # Marked as a float: a target may keep it in a float column (a plain number means exact).
        return {"type": _nullable("number", nullable), "x-sql-datatype": type_name}, _FLOAT, "float"
    if type_name == "boolean":
        return {"type": _nullable("boolean", nullable)}, "{col}", "bool"
    if type_name in ("timestamp with time zone", "timestamp without time zone"):
        return {"type": _nullable("string", nullable), "format": "date-time"}, "{col}", "timestamp"
    if type_name == "date":
        return {"type": _nullable("string", nullable), "format": "date"}, "{col}", "date"
    if type_name == "time without time zone":
        return {"type": _nullable("string", nullable), "format": "time"}, "{col}", "text"
    if type_name == "uuid":
        return {"type": _nullable("string", nullable), "format": "uuid"}, "{col}", "text"
    if type_name == "json":
        # json keeps its text as written, line breaks included; outside strings they are whitespace, and
        # a raw one would split the RECORD line. Only json pays for this (jsonb and row_to_json never emit one).
        return {"type": _JSON_ANY}, "replace(replace({col}::text, E'\\n', ' '), E'\\r', ' ')::json", "json_doc"
    if type_name == "jsonb":
        return {"type": _JSON_ANY}, "{col}", "json_doc"
    if type_name == "bytea":
        return (
            {"type": _nullable("string", nullable), "contentEncoding": "base64"},
            "translate(encode({col}, 'base64'), E'\\n', '')",
            "bytea",
        )
    match = _TEXT_RE.fullmatch(type_name)
    if match:
        # character(n)'s text cast drops the padding its output keeps: only varchar is selected as it is.
        same = type_name.startswith(("character varying", "varchar"))
        return (
            {"type": _nullable("string", nullable), "maxLength": int(match.group(1))},
            "{col}::text",
            ("text" if same else ""),
        )
    if type_name in ("text", "character varying", "citext", "interval"):
        return {"type": _nullable("string", nullable)}, "{col}::text", "text"
    # time with time zone, inet, cidr, macaddr, xml, bit, geometric, ...: a text cast is not always the
    # type's output (inet's shows the netmask), so the compiled path selects the cast too.
    return {"type": _nullable("string", nullable)}, "{col}::text", ""


def _nested_items(item: dict[str, Any]) -> dict[str, Any]:
    """Items of an array column: elements, or arrays of them (a column holds any number of dimensions)."""
    schema = item
    for _ in range(_MAX_DIMS - 1):
        schema = {"anyOf": [item, {"type": "array", "items": schema}]}
    return schema


def _array_expression(base: str, item_expr: str) -> str:
    """An array rendered with its dimensions nested, each element as its scalar type renders it."""
    if item_expr == "{col}":
        return "{col}"  # row_to_json renders these elements (and dimensions) as they are
    if item_expr == "{col}::text":
        return "to_json({col}::text[])"  # the cast keeps the dimensions
    if item_expr == "{col}::numeric::text":
        return "to_json({col}::numeric[]::text[])"
    if base == "json":
        # Raw line breaks (whitespace between JSON tokens) would split the RECORD line, as in json.
        return "replace(replace(to_json({col})::text, E'\\n', ' '), E'\\r', ' ')::json"
    return _NESTED.replace("{item}", item_expr.format(col="_dpone_u.e"))


def column_spec(
    name: str,
    type_name: str,
    nullable: bool,
    kind: str = "b",
    enum: list[str] | None = None,
    element_type: str | None = None,
) -> SqlColumn:
    """`type_name` is format_type(); `kind` is pg_type.typtype (e = enum); domains arrive resolved."""
    quoted = ANSI.q(name)
    if type_name.endswith("[]") or element_type:
        base = element_type or type_name[:-2]
        item_schema, item_expr, _ = _scalar(base, True, kind, enum)
        schema = {"type": _nullable("array", nullable), "items": _nested_items(item_schema)}
        expression = _array_expression(base, item_expr).format(col=quoted)
        # Arrays stay the server's JSON: their text form would need the element types' rules again.
        native = expression if expression != quoted else f"to_json({quoted})"
        return SqlColumn(name, schema, expression, (native, "json"))
    schema, expression, copy_kind = _scalar(type_name, nullable, kind, enum)
    if copy_kind:
        return SqlColumn(name, schema, expression.format(col=quoted), (quoted, copy_kind))
    # The expression's text (a cast to text) is what row_to_json would quote.
    return SqlColumn(name, schema, expression.format(col=quoted), (expression.format(col=quoted), "text"))
