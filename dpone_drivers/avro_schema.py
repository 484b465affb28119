"""Avro schemas for the Kafka connectors: a Singer stream's JSON schema -> an Avro record schema (target),
and an Avro schema -> a Singer JSON schema (tap).

The target maps a stream's properties through json_schema.py's logical types, so Avro agrees with
every other target on what a property is. Every field is `["null", T]` with a null default, so an
added column is a BACKWARD-compatible new version. Values Avro has no type for travel as text:

- objects, arrays of anything but one scalar type, untyped and mixed-type properties: a string
  holding the value's compact JSON text (strings included, quoted), the field marked
  `"dpone.text": "json"`;
- exact decimals with a known precision and scale are Avro `decimal` bytes; without one (an integer
  wider than 64 bits, singer.decimal without precision) a string of the digits, `"dpone.text": "decimal"`.

Avro names allow only [A-Za-z_][A-Za-z0-9_]*: other characters become `_`, a leading digit gets a
`_` before it, and a name already taken gets `_2`, `_3`... in declaration order (so appending a
property never renames an earlier one). A renamed field carries `"dpone.property"` with the original
name, which the encoder reads from and the decoder and json_schema_for give back.
"""

from __future__ import annotations

import math
import re
from typing import Any

from dpone_protocol.errors import ConfigError
from dpone_protocol.json_schema import ColumnType, Logical, stream_columns

PROPERTY_ATTR = "dpone.property"
TEXT_ATTR = "dpone.text"
_NAME_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*\Z")
_SIMPLE: dict[Logical, Any] = {
    Logical.INTEGER: "long",
    Logical.NUMBER: "double",
    Logical.BOOLEAN: "boolean",
    Logical.TIMESTAMP: {"type": "long", "logicalType": "timestamp-micros"},
    Logical.DATE: {"type": "int", "logicalType": "date"},
    Logical.TIME: {"type": "long", "logicalType": "time-micros"},
    Logical.UUID: {"type": "string", "logicalType": "uuid"},
}


def avro_name(text: str) -> str:
    name = re.sub(r"[^A-Za-z0-9_]", "_", text)
    return name if name and not name[0].isdigit() else f"_{name}"


def avro_schema_for(stream: str, schema: dict[str, Any], *, namespace: str = "dpone") -> dict[str, Any]:
    """The Avro record schema of a Singer stream; the same input always gives the same output."""
    if not all(_NAME_RE.match(part) for part in namespace.split(".")):
        raise ConfigError(f"Avro namespace {namespace!r} must be dot-separated names of [A-Za-z0-9_]")
    properties = schema.get("properties")
    taken: set[str] = set()
    fields: list[dict[str, Any]] = []
    for prop, column in stream_columns(schema, stream).items():
        name = base = avro_name(prop)
        suffix = 2
        while name in taken:
            name, suffix = f"{base}_{suffix}", suffix + 1
        taken.add(name)
        avro_type, text = _field_type(properties[prop] if isinstance(properties, dict) else {}, column)
        field: dict[str, Any] = {"name": name, "type": ["null", avro_type], "default": None}
        if name != prop:
            field[PROPERTY_ATTR] = prop
        if text:
            field[TEXT_ATTR] = text
        fields.append(field)
    return {"type": "record", "name": avro_name(stream), "namespace": namespace, "fields": fields}


def _field_type(prop: dict[str, Any], column: ColumnType) -> tuple[Any, str | None]:
    scalar = _scalar(prop, column)
    if scalar is not None:
        return scalar, None
    if column.logical in (Logical.DECIMAL, Logical.INTEGER):
        return "string", "decimal"
    if column.logical is Logical.ARRAY and column.items is not None:
        items = prop.get("items")
        item = _scalar(items, column.items) if isinstance(items, dict) else None
        if item is not None:
            return {"type": "array", "items": ["null", item]}, None
    return "string", "json"


def _scalar(prop: dict[str, Any], column: ColumnType) -> Any:
    if column.logical is Logical.STRING:
        # json_schema.py folds mixed scalars (["string", "integer"]) into STRING; their values are not all text.
        return "string" if _json_types(prop) == {"string"} else None
    if column.logical is Logical.DECIMAL:
        p, s = column.precision, column.scale
        if isinstance(p, int) and isinstance(s, int) and 0 <= s <= p and p >= 1:
            return {"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}
        return None
    if column.logical is Logical.INTEGER and column.bits is None:
        return None  # bounds wider than a long: the digits as text
    return _SIMPLE.get(column.logical)


def _json_types(prop: dict[str, Any]) -> set[str]:
    declared = prop.get("type")
    found = {declared} if isinstance(declared, str) else {t for t in declared or () if isinstance(t, str)}
    for alt in prop.get("anyOf") or prop.get("oneOf") or ():
        if isinstance(alt, dict):
            found |= _json_types(alt)
    return found - {"null"}


# --- Avro -> Singer JSON schema, for the tap ---------------------------------------------------

_PRIMITIVE_JSON: dict[str, dict[str, Any]] = {
    "null": {"type": "null"},
    "boolean": {"type": "boolean"},
    "int": {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1},
    "long": {"type": "integer"},
    # json_schema.py reads these formats as "a binary float: a float column loses nothing".
    "float": {"type": "number", "format": "float"},
    "double": {"type": "number", "format": "double"},
    "bytes": {"type": "string", "contentEncoding": "base64"},
    "string": {"type": "string"},
}
# What fastavro reads as a Python value of its own; other logical types fall back to the base type.
_LOGICAL_JSON: dict[str, dict[str, Any]] = {
    "long-timestamp-millis": {"type": "string", "format": "date-time"},
    "long-timestamp-micros": {"type": "string", "format": "date-time"},
    "long-local-timestamp-millis": {"type": "string", "format": "date-time"},
    "long-local-timestamp-micros": {"type": "string", "format": "date-time"},
    "int-date": {"type": "string", "format": "date"},
    "int-time-millis": {"type": "string", "format": "time"},
    "long-time-micros": {"type": "string", "format": "time"},
    "string-uuid": {"type": "string", "format": "uuid"},
}


def json_schema_for(avro_schema: dict[str, Any]) -> dict[str, Any]:
    """The Singer schema of the records AvroDecoder makes from data written with `avro_schema`.

    Decimals become numbers with multipleOf (and bounds giving their precision), not singer.decimal
    strings: the decoder hands out decimal.Decimal, which the codec writes as an exact JSON number.
    """
    if not isinstance(avro_schema, dict) or avro_schema.get("type") not in ("record", "error"):
        raise ConfigError("the Avro schema must be a record to map it to a stream")
    return _JsonSchemaMaker().convert(avro_schema, "", avro_schema.get("namespace") or "")


class _JsonSchemaMaker:
    def __init__(self) -> None:
        self.named: dict[str, tuple[dict[str, Any], str]] = {}
        self.open: set[str] = set()  # records being converted: a reference to one is recursion

    def convert(self, t: Any, path: str, ns: str) -> dict[str, Any]:
        if isinstance(t, list):
            branches = [b for b in t if b != "null"]
            alts = [self.convert(b, path, ns) for b in branches]
            if len(alts) == 1:
                return _nullable(alts[0]) if len(branches) < len(t) else alts[0]
            if len(branches) < len(t):
                alts.append({"type": "null"})
            return {"anyOf": alts} if alts else {"type": "null"}
        if isinstance(t, str):
            if t in _PRIMITIVE_JSON:
                return dict(_PRIMITIVE_JSON[t])
            full = t if "." in t or not ns else f"{ns}.{t}"
            found = self.named.get(full) or self.named.get(t)
            if found is None:
                raise ConfigError(f"field {path!r}: unknown Avro type {t!r}")
            if full in self.open or t in self.open:
                raise ConfigError(f"field {path!r}: a recursive Avro type has no Singer schema")
            return self.convert(found[0], path, found[1])
        if not isinstance(t, dict) or "type" not in t:
            raise ConfigError(f"field {path!r}: not an Avro type")
        kind = t["type"]
        if kind in ("record", "error", "enum", "fixed"):
            name = str(t.get("name"))
            space = t.get("namespace", ns) if "." not in name else name.rpartition(".")[0]
            full = name if "." in name or not space else f"{space}.{name}"
            self.named[full] = (t, space)
            if kind == "enum":
                return {"type": "string", "enum": list(t.get("symbols") or [])}
            if kind == "fixed":
                return self._logical(t, "fixed")
            self.open.add(full)
            properties = {}
            for field in t.get("fields") or []:
                if not isinstance(field, dict) or not isinstance(field.get("name"), str):
                    raise ConfigError(f"record {full!r}: a field without a name")
                where = f"{path}.{field['name']}" if path else field["name"]
                properties[field.get(PROPERTY_ATTR) or field["name"]] = self._field(field, where, space)
            self.open.discard(full)
            return {"type": "object", "properties": properties}
        if kind == "array":
            return {"type": "array", "items": self.convert(t.get("items"), path, ns)}
        if kind == "map":
            return {"type": "object", "additionalProperties": self.convert(t.get("values"), path, ns)}
        if isinstance(kind, str) and kind in _PRIMITIVE_JSON:
            return self._logical(t, kind)
        return self.convert(kind, path, ns)

    def _field(self, field: dict[str, Any], path: str, ns: str) -> dict[str, Any]:
        declared = field.get("type")
        made = self.convert(declared, path, ns)
        text = field.get(TEXT_ATTR)
        if text == "json":
            made = {}  # any JSON value: the decoder parses the text back
        elif text == "decimal":
            made = {"type": "string", "format": "singer.decimal"}
            if isinstance(declared, list) and "null" in declared:
                made = _nullable(made)
        if isinstance(field.get("doc"), str):
            made["description"] = field["doc"]
        return made

    @staticmethod
    def _logical(t: dict[str, Any], base: str) -> dict[str, Any]:
        logical = t.get("logicalType")
        if logical == "decimal" and base in ("bytes", "fixed"):
            p, s = t.get("precision"), t.get("scale", 0)
            if isinstance(p, int) and isinstance(s, int) and 0 <= s <= p and p >= 1:
                return _decimal_json(p, s)
        made = _LOGICAL_JSON.get(f"{base}-{logical}")
        if made is not None:
            return dict(made)
        return dict(_PRIMITIVE_JSON["bytes" if base == "fixed" else base])


def _nullable(made: dict[str, Any]) -> dict[str, Any]:
    kind = made.get("type")
    if isinstance(kind, str) and kind != "null":
        made = {**made, "type": ["null", kind]}
        if "enum" in made:
            made["enum"] = [*made["enum"], None]
    return made


def _decimal_json(p: int, s: int) -> dict[str, Any]:
    """A number json_schema.py reads back as decimal(p, s): multipleOf for the scale, bounds for the
    integer digits. The bound is a plain JSON number (catalogs are written without a Decimal hook): exact
    where a float or int holds it, else the float just below 10**digits (same digit count)."""
    digits = p - s
    bound: int | float
    if s == 0 and digits <= 18:
        bound = 10**digits - 1
    elif p <= 15:
        bound = float(f"{'9' * digits or '0'}.{'9' * s}")
    else:
        bound = math.nextafter(10.0**digits, 0.0)
    return {"type": "number", "multipleOf": float(f"1e-{s}") if s else 1, "minimum": -bound, "maximum": bound}
