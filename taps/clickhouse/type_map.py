"""ClickHouse column types -> JSON Schema, and the SQL that renders each value as its JSON text.

The server writes every value itself, with functions whose output no session setting changes
(toString, toDecimalString; toJSONString of a string, where a setting only chooses between a slash
and its equivalent escape): integers of any width as JSON numbers, decimals as `singer.decimal`
strings with their scale's digits, floats as the shortest text that
reads back the same (NaN and infinities as the strings tap-postgres sends), date-times in UTC with
`+00:00` and the column's sub-second digits. Arrays, maps and tuples are rendered element by element
with the same rules, so a value looks the same at any depth.

A key's JSON (the bookmark) is the row's, except integers wider than 64 bits: those go as strings,
which a bookmark keeps exactly (a JSON number that wide would come back rounded).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from dpone.taps.clickhouse.type_names import TypeName, bare, enum_labels, parse
from dpone.taps.framework.sql_discovery import SqlColumn
from dpone_drivers.sql_names import BACKTICKS

STRICT_UTF8, REPLACE_UTF8 = "fail", "replace"
UTF8_POLICIES = (STRICT_UTF8, REPLACE_UTF8)
VALUE = "{value}"  # in ClickHouseColumn.bookmark_sql: where the bookmark's text goes
# How the server's own JSON writer renders a value (JSON, Dynamic, Variant, newer types): session
# settings decide some of its output, so a query holding this sets them.
SERVER_JSON = "ifNull(toJSONString("

_INT_BITS = {"Int8": 8, "Int16": 16, "Int32": 32, "Int64": 64, "Int128": 128, "Int256": 256}
_INTS = {
    **{name: (-(2 ** (bits - 1)), 2 ** (bits - 1) - 1) for name, bits in _INT_BITS.items()},
    **{"U" + name: (0, 2**bits - 1) for name, bits in _INT_BITS.items()},
}
_WIDE_INTS = {"Int128", "Int256", "UInt128", "UInt256"}
_FLOATS = {"Float32": "real", "BFloat16": "real", "Float64": "double precision"}
# Rendered by toString and quoted; the JSON Schema format, if any.
_TEXT_FORMATS: dict[str, str | None] = {
    "UUID": "uuid",
    "Date": "date",
    "Date32": "date",
    "IPv4": "ipv4",
    "IPv6": "ipv6",
    "Time": None,  # may be negative or past 24 hours: not a time of day
    "Time64": None,
}
_STRINGS = {"String", "FixedString"}
_ENUMS = {"Enum8", "Enum16", "Enum"}
_DATE_TIMES = {"DateTime", "DateTime64"}
_DECIMAL_PRECISION = {"Decimal32": 9, "Decimal64": 18, "Decimal128": 38, "Decimal256": 76}
_GEO = {
    "Point": "Tuple(Float64, Float64)",
    "Ring": "Array(Point)",
    "LineString": "Array(Point)",
    "MultiLineString": "Array(LineString)",
    "Polygon": "Array(Ring)",
    "MultiPolygon": "Array(Polygon)",
}
_JSON_ANY = ["object", "array", "string", "number", "boolean", "null"]
# `-0` would read as the integer 0: send -0.0, as tap-postgres does; NaN and infinities as its strings.
_FLOAT = (
    "transform(toString({x}), ['nan', 'inf', '-inf', '-0'], "
    "['\"NaN\"', '\"Infinity\"', '\"-Infinity\"', '-0.0'], toString({x}))"
)
_UTC = "concat('\"', replaceOne(toString({x}, 'UTC'), ' ', 'T'), '+00:00\"')"


class UnsupportedType(Exception):
    """A column the tap cannot render (an aggregate function's state): left out of the stream."""


@dataclass(frozen=True, slots=True)
class ClickHouseColumn(SqlColumn):
    key_expression: str = ""  # the value's JSON in a key array, over the quoted column name
    bookmark_sql: str = ""  # SQL turning a bookmark's text (at VALUE) into the column's type; "" = not a key


def _literal(text: str) -> str:
    return BACKTICKS.literal(text)


def json_key(name: str, prefix: str = "") -> str:
    """`"name":` (after `prefix`) as a SQL literal: a property name in a JSON object the server builds."""
    return _literal(prefix + orjson.dumps(name).decode() + ":")


class _Renderer:
    """The SQL that renders one column's values, and their JSON Schema."""

    def __init__(self, column: str, utf8: str) -> None:
        self.utf8 = utf8
        self.not_utf8 = _literal(
            f"column {column!r} holds bytes that are not UTF-8 text "
            "(set invalid_utf8: replace to send U+FFFD in their place)"
        )

    def value(self, t: TypeName, x: str, depth: int = 0, key: bool = False) -> str:
        t = _decimal(t)
        name = t.name
        if name == "Nullable":
            inner = self.value(t.inner, f"assumeNotNull({x})", depth, key)
            return f"if(isNull({x}), 'null', {inner})"
        if name == "LowCardinality":
            return self.value(t.inner, x, depth, key)
        if name == "SimpleAggregateFunction" and t.params:
            return self.value(parse(t.params[-1]), x, depth, key)
        if name in _GEO:
            return self.value(parse(_GEO[name]), x, depth, key)
        if name in _INTS:
            return f"concat('\"', toString({x}), '\"')" if key and name in _WIDE_INTS else f"toString({x})"
        if name in _FLOATS:
            return _FLOAT.format(x=x)
        if name == "Bool":
            return f"if({x}, 'true', 'false')"
        if name == "Decimal":
            return f"concat('\"', toDecimalString({x}, {int(t.params[1])}), '\"')"
        if name in _DATE_TIMES:
            return _UTC.format(x=x)
        if name in _TEXT_FORMATS:
            return f"concat('\"', toString({x}), '\"')"
        if name in _STRINGS:
            if self.utf8 == REPLACE_UTF8:
                return f"toJSONString(toValidUTF8(toString({x})))"
            return f"if(throwIf(NOT isValidUTF8({x}), {self.not_utf8}) = 0, toJSONString({x}), '')"
        if name in _ENUMS:
            return f"toJSONString(toString({x}))"
        if name in ("Array", "Nested"):
            item = _tuple_of(t) if name == "Nested" else t.inner
            e = f"_dpone_e{depth}"
            each = self.value(item, e, depth + 1)
            return f"concat('[', arrayStringConcat(arrayMap({e} -> {each}, {x}), ','), ']')"
        if name == "Map":
            k, v = f"_dpone_k{depth}", f"_dpone_v{depth}"
            key_text = self._map_key(t.args[0], k, depth + 1)
            each = f"concat({key_text}, ':', {self.value(t.args[1], v, depth + 1)})"
            pairs = f"arrayMap(({k}, {v}) -> {each}, mapKeys({x}), mapValues({x}))"
            return f"concat('{{', arrayStringConcat({pairs}, ','), '}}')"
        if name == "Tuple":
            return self._tuple(t, x, depth)
        if name == "Nothing":
            return "'null'"
        if name == "AggregateFunction":
            raise UnsupportedType(t.text)
        # JSON, Object('json'), Dynamic, Variant and anything newer: the server's own JSON text.
        return f"{SERVER_JSON}{x}), 'null')"

    def _map_key(self, t: TypeName, x: str, depth: int) -> str:
        # JSON object keys are strings: a key of another type goes as its text.
        if bare(t).name in _STRINGS:
            return self.value(t, x, depth)
        return f"toJSONString(toString({x}))"

    def _tuple(self, t: TypeName, x: str, depth: int) -> str:
        if not t.args:
            return "'[]'"
        named = all(a.field is not None for a in t.args)
        parts: list[str] = []
        for i, element in enumerate(t.args, 1):
            prefix = "" if i == 1 else ","
            if named:
                parts.append(json_key(element.field or "", prefix))
            elif prefix:
                parts.append("','")
            parts.append(self.value(element, f"tupleElement({x}, {i})", depth))
        opening, closing = ("'{'", "'}'") if named else ("'['", "']'")
        return f"concat({opening}, {', '.join(parts)}, {closing})"

    def schema(self, t: TypeName) -> dict[str, Any]:
        t = _decimal(t)
        name = t.name
        if name == "Nullable":
            return _with_null(self.schema(t.inner))
        if name == "LowCardinality":
            return self.schema(t.inner)
        if name == "SimpleAggregateFunction" and t.params:
            return self.schema(parse(t.params[-1]))
        if name in _GEO:
            return self.schema(parse(_GEO[name]))
        if name in _INTS:
            lo, hi = _INTS[name]
            if name in _WIDE_INTS:
                # Messages are written with orjson, which cannot write an integer wider than 64 bits:
                # the bounds go as floats (powers of two, so the maximum is looser by one), which still
                # tell a target that the values do not fit 64 bits.
                return {"type": "integer", "minimum": float(lo) if lo else 0, "maximum": float(hi)}
            return {"type": "integer", "minimum": lo, "maximum": hi}
        if name in _FLOATS:
            # Marked as a float: a target may keep it in a float column (a plain number means exact).
            return {"type": "number", "x-sql-datatype": _FLOATS[name]}
        if name == "Bool":
            return {"type": "boolean"}
        if name == "Decimal":
            return {
                "type": "string",
                "format": "singer.decimal",
                "precision": int(t.params[0]),
                "scale": int(t.params[1]),
            }
        if name in _DATE_TIMES:
            return {"type": "string", "format": "date-time"}
        if name in _TEXT_FORMATS:
            fmt = _TEXT_FORMATS[name]
            return {"type": "string", "format": fmt} if fmt else {"type": "string"}
        if name == "FixedString":
            return {"type": "string", "maxLength": int(t.params[0])}
        if name == "String":
            return {"type": "string"}
        if name in _ENUMS:
            return {"type": "string", "enum": enum_labels(t)}
        if name == "Array":
            return {"type": "array", "items": self.schema(t.inner)}
        if name == "Nested":
            return {"type": "array", "items": self.schema(_tuple_of(t))}
        if name == "Map":
            return {"type": "object", "additionalProperties": self.schema(t.args[1])}
        if name == "Tuple":
            return _tuple_schema([self.schema(a) for a in t.args], [a.field for a in t.args])
        if name == "Nothing":
            return {"type": "null"}
        if name in ("JSON", "Object"):
            return {"type": "object"}
        return {"type": list(_JSON_ANY)}


def _decimal(t: TypeName) -> TypeName:
    """Decimal32(S) and its kin as Decimal(P, S), the way current servers name them."""
    if t.name in _DECIMAL_PRECISION and t.params:
        return TypeName("Decimal", t.text, params=(str(_DECIMAL_PRECISION[t.name]), t.params[0]), field=t.field)
    return t


def _tuple_of(nested: TypeName) -> TypeName:
    """A Nested column's element: a named tuple of its fields."""
    return TypeName("Tuple", nested.text, nested.args)


def _tuple_schema(items: list[dict[str, Any]], fields: list[str | None]) -> dict[str, Any]:
    if items and all(f is not None for f in fields):
        return {"type": "object", "properties": {f: s for f, s in zip(fields, items, strict=True) if f is not None}}
    distinct = [s for i, s in enumerate(items) if s not in items[:i]]
    if not distinct:
        return {"type": "array", "maxItems": 0}
    return {"type": "array", "items": distinct[0] if len(distinct) == 1 else {"anyOf": distinct}}


def _with_null(schema: dict[str, Any]) -> dict[str, Any]:
    declared = schema.get("type")
    if declared is None:
        return schema
    types = [declared] if isinstance(declared, str) else list(declared)
    schema = {**schema, "type": types if "null" in types else [*types, "null"]}
    if "enum" in schema:
        schema["enum"] = [*schema["enum"], None]
    return schema


def _bookmark_sql(t: TypeName) -> str:
    """SQL reading a bookmark's text back as a value of the column's type; "" for a type no key can have."""
    core = _decimal(bare(t))
    if core.name == "DateTime":
        return f"parseDateTimeBestEffort({VALUE}, 'UTC')"
    if core.name == "DateTime64":
        return f"parseDateTime64BestEffort({VALUE}, {int(core.params[0])}, 'UTC')"
    scalar = {"Bool", "Decimal", *_INTS, *_FLOATS, *_TEXT_FORMATS, *_STRINGS, *_ENUMS}
    return f"CAST({VALUE} AS {core.text})" if core.name in scalar else ""


def column_spec(name: str, type_text: str, utf8: str = STRICT_UTF8) -> ClickHouseColumn:
    """The column as a stream property: its schema, its value's JSON, its key JSON and bookmark SQL.
    Raises UnsupportedType for a column no JSON can carry."""
    t = parse(type_text)
    quoted = BACKTICKS.q(name)
    renderer = _Renderer(name, utf8)
    return ClickHouseColumn(
        name,
        renderer.schema(t),
        renderer.value(t, quoted),
        key_expression=renderer.value(t, quoted, key=True),
        bookmark_sql=_bookmark_sql(t),
    )
