"""CSV text <-> JSON Schema: inferring a column's type from samples, and parsing values."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable
from typing import Any

from dpone_protocol.errors import DataError

_TRUE = {"true", "t", "yes", "y"}
_FALSE = {"false", "f", "no", "n"}


# Plain decimal notation only: "1_000", "+7" or "1e5" are text in a CSV, and a leading zero
# ("02134", a zip code) means the digits are an identifier, not a number.
_INT_RE = re.compile(r"-?(0|[1-9][0-9]*)")
_FLOAT_RE = re.compile(r"-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][-+]?[0-9]+)?")


def _is_int(text: str) -> bool:
    return _INT_RE.fullmatch(text) is not None


def _is_float(text: str) -> bool:
    return _FLOAT_RE.fullmatch(text) is not None


def _is_date(text: str) -> bool:
    if len(text) != 10:
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_datetime(text: str) -> bool:
    if len(text) < 16 or text[10] not in "T ":
        return False
    try:
        dt.datetime.fromisoformat(text)
    except ValueError:
        return False
    return True


# Most specific first: a column takes the first kind every sample satisfies.
_KINDS: tuple[tuple[dict[str, Any], Callable[[str], bool]], ...] = (
    ({"type": "integer"}, _is_int),
    ({"type": "number"}, _is_float),
    ({"type": "boolean"}, lambda t: t.lower() in _TRUE | _FALSE),
    ({"type": "string", "format": "date"}, _is_date),
    ({"type": "string", "format": "date-time"}, _is_datetime),
)


def infer_property(samples: Iterable[str]) -> dict[str, Any]:
    values = [s for s in samples if s != ""]
    if values:
        for schema, test in _KINDS:
            if all(test(v) for v in values):
                kind = schema["type"]
                return {**schema, "type": [kind, "null"]}
    return {"type": ["string", "null"]}


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError(f"not a boolean: {text!r}")


def _parse_number(text: str) -> int | float:
    # Integral values stay ints, so "3" in a number column does not become 3.0.
    return int(text) if _is_int(text) else float(text)


def parser_for(prop: dict[str, Any]) -> Callable[[str], Any]:
    declared = prop.get("type", "string")
    kinds = [declared] if isinstance(declared, str) else [t for t in declared if t != "null"]
    kind = kinds[0] if kinds else "string"
    if kind == "integer":
        return int
    if kind == "number":
        return _parse_number
    if kind == "boolean":
        return _parse_bool
    return str


def make_converter(
    columns: list[str], properties: dict[str, Any], empty_as_null: bool, source: str
) -> Callable[[list[str], int], dict[str, Any]]:
    parsers = [parser_for(properties.get(c, {})) for c in columns]
    plan = list(zip(columns, parsers, strict=True))

    def convert(row: list[str], line: int) -> dict[str, Any]:
        if len(row) != len(plan):
            raise DataError(f"{source} line {line}: expected {len(plan)} fields, found {len(row)}")
        record: dict[str, Any] = {}
        for (name, parse), text in zip(plan, row, strict=True):
            if text == "" and empty_as_null:
                record[name] = None
            elif parse is str:
                record[name] = text
            else:
                try:
                    record[name] = parse(text)
                except ValueError:
                    raise DataError(
                        f"{source} line {line}: column {name!r} value {text!r} does not match its type "
                        f"{properties.get(name, {}).get('type')}"
                    ) from None
        return record

    return convert
