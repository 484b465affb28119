"""Parent fields carried into child records: where a field is in a record and in a schema (`a.b`
inside the object `a`), and how they go into a record's own text without encoding it again."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import orjson

from dpone_protocol.codec import DEFAULT_CODEC


def lookup(row: Mapping[str, Any], field: str) -> Any:
    """A field of a record; `a.b` looks inside the object `a`."""
    value: Any = row
    for part in field.split("."):
        if not isinstance(value, Mapping):
            return None
        value = value.get(part)
    return value


def property_schema(schema: Mapping[str, Any], field: str) -> dict[str, Any]:
    """The schema of a field (`a.b` inside the object `a`); {} (any JSON) when the schema does not say."""
    found: Any = schema
    for part in field.split("."):
        found = (found.get("properties") or {}).get(part) if isinstance(found, Mapping) else None
    return dict(found) if isinstance(found, Mapping) else {}


def carried_fields(carried: Mapping[str, Any]) -> str:
    """`"name":value,...` of the carried fields, to splice into a record's text."""
    return ",".join(orjson.dumps(k).decode() + ":" + DEFAULT_CODEC.dumps(v).decode() for k, v in carried.items())


def spliced(text: str, record: Mapping[str, Any], carried: Mapping[str, Any], fields: str) -> str:
    """The record's text with the carried fields first; a field the record has itself keeps its own value."""
    if any(name in record for name in carried):
        fields = carried_fields({k: v for k, v in carried.items() if k not in record})
        if not fields:
            return text
    return "{" + fields + ("}" if not record else "," + text[1:])
