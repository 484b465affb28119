"""A Singer JSON schema inferred from a sample of records, for sources that declare none.

A tap feeds :meth:`SchemaInferrer.observe` each decoded record of its sample (dicts, lists, str,
int, float, bool, None, and Decimal from exact decoding) and sends :meth:`SchemaInferrer.schema`.
The rules, as `dpone_protocol.json_schema.column_type` then reads the result:

- Every property, nested property and array item is nullable (`"null"` first in its type list):
  the next page or message may lack a field the sample always had. Declare key properties to say
  which fields are never null.
- A bool is a `boolean`, never an `integer`. Integer and number widen to `number`. Other scalar
  mixes keep every type seen (`["null", "integer", "string"]`): the records stay valid against
  their schema, and our targets store such a union as text (a string column).
- An object or array mixed with any other type, a field that was only ever null, and the items of
  an array whose items are unrelated (anything but integer and number) become `{}`: any JSON,
  which our targets store in a JSON column.
- A string gets `format: date-time` when every string of the field is an ISO 8601 date-time
  (`YYYY-MM-DD`, `T` or a space, at least `HH:MM`, optional seconds with up to 6 fractional
  digits, optional `Z` or `+HH:MM` offset); `format: date` when every one is `YYYY-MM-DD`. One
  value that is neither, or a mix of dates and date-times, leaves a plain string.
- A Decimal with a fraction or exponent is a `number`; one from integer text is an `integer`.
  An integer without bounds maps to a 64-bit column, so an integer field whose sample holds a
  value beyond 64 bits gets `minimum`/`maximum` of -/+1e38 (more digits if the sample has
  them; floats, as the codec writes no wider integer): a target then uses an exact decimal.
- Objects are inferred recursively, to `max_depth` levels below the record (default 3; an
  array's items are one level below the array); an object deeper than that has no `properties`
  and is stored as JSON. Arrays get the merged schema of all their items (`{}` when every array
  seen was empty); an array deeper than the limit has no `items`.
- Properties keep the order they were first seen in. The same records in the same order always
  give the same schema; in another order, only the order of properties may differ.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Final

from dpone_protocol.errors import DataError

DEFAULT_MAX_DEPTH: Final = 3

_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_WIDE_DIGITS, _FLOAT_DIGITS = 38, 308  # bounds of a wide integer: 1e38, at most what a float holds
_TYPE_ORDER: Final = ("null", "boolean", "integer", "number", "string", "object", "array")
_CONTAINERS: Final = frozenset({"object", "array"})

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_DATETIME_RE = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(?::[0-9]{2}(?:\.[0-9]{1,6})?)?(?:Z|[+-][0-9]{2}:?[0-9]{2})?"
)


def _is_date(text: str) -> bool:
    if len(text) != 10 or _DATE_RE.fullmatch(text) is None:
        return False
    try:
        dt.date.fromisoformat(text)
    except ValueError:
        return False
    return True


def _is_datetime(text: str) -> bool:
    if _DATETIME_RE.fullmatch(text) is None:
        return False
    try:
        dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        return False
    return True


_FORMAT_TESTS: Final = {"date-time": _is_datetime, "date": _is_date}


def _format_of(text: str) -> str | None:
    for name, test in _FORMAT_TESTS.items():
        if test(text):
            return name
    return None


# JSON kinds by exact class: the fast path (a bool is not an int here, unlike isinstance).
_KIND_BY_CLASS: Final[dict[type, str]] = {
    type(None): "null",
    bool: "boolean",
    int: "integer",
    float: "number",
    str: "string",
    dict: "object",
    list: "array",
}


def _kind_of(value: Any) -> str:
    """The JSON kind of a value whose class is not one of the plain ones."""
    if isinstance(value, Decimal):
        return "integer" if value.as_tuple().exponent == 0 else "number"
    for cls, kind in _KIND_BY_CLASS.items():
        if isinstance(value, cls):
            return kind
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, tuple):
        return "array"
    raise DataError(f"cannot infer a JSON schema type for a {type(value).__name__} value")


_UNSEEN: Final = "?"  # a node's string format before its first string


class _Node:
    """What the sample says about one position (a property or the items of an array)."""

    __slots__ = ("depth_left", "fmt", "items", "kinds", "properties", "wide_digits")

    def __init__(self, depth_left: int) -> None:
        self.depth_left = depth_left  # >= 0: this node's object properties and array items are inferred
        self.kinds: set[str] = set()
        self.fmt: str | None = _UNSEEN
        self.wide_digits = 0  # digits of the widest integer beyond 64 bits, 0 if none
        self.properties: dict[str, _Node] = {}
        self.items: _Node | None = None

    def add(self, value: Any) -> None:
        kind = _KIND_BY_CLASS.get(value.__class__) or _kind_of(value)
        if kind == "null":
            return
        self.kinds.add(kind)
        if kind == "string":
            fmt = self.fmt
            if fmt == _UNSEEN:
                self.fmt = _format_of(value)
            elif fmt is not None and not _FORMAT_TESTS[fmt](value):
                self.fmt = None
        elif kind == "integer":
            if not _INT64_MIN <= value <= _INT64_MAX:
                self.wide_digits = max(self.wide_digits, len(str(abs(int(value)))))
        elif self.depth_left < 0:
            return  # past the depth limit: the kind is all that counts
        elif kind == "object":
            self.add_fields(value)
        elif kind == "array":
            items = self.items
            if items is None:
                items = self.items = _Node(self.depth_left - 1)
            for item in value:
                items.add(item)

    def add_fields(self, record: Mapping[str, Any]) -> None:
        properties = self.properties
        for name, value in record.items():
            node = properties.get(name)
            if node is None:
                node = properties[name] = _Node(self.depth_left - 1)
            node.add(value)

    def schema(self, as_items: bool = False) -> dict[str, Any]:
        kinds = self.kinds
        if "integer" in kinds and "number" in kinds:
            kinds = kinds - {"integer"}
        if not kinds or (len(kinds) > 1 and (as_items or kinds & _CONTAINERS)):
            return {}  # nothing known, or unrelated types: any JSON
        types = ["null", *(t for t in _TYPE_ORDER if t in kinds)]
        out: dict[str, Any] = {"type": types}
        if len(kinds) > 1:
            return out
        (kind,) = kinds
        if kind == "string" and self.fmt in _FORMAT_TESTS:
            out["format"] = self.fmt
        elif kind == "integer" and self.wide_digits:
            bound = 10.0 ** min(max(self.wide_digits, _WIDE_DIGITS), _FLOAT_DIGITS)
            out["minimum"], out["maximum"] = -bound, bound
        elif self.depth_left < 0:
            pass  # an object or array past the depth limit: no properties or items
        elif kind == "object":
            out["properties"] = {name: node.schema() for name, node in self.properties.items()}
        elif kind == "array":
            out["items"] = {} if self.items is None else self.items.schema(as_items=True)
        return out


class SchemaInferrer:
    """Accumulates what a sample of records says about their fields; see the module's rules."""

    def __init__(self, max_depth: int = DEFAULT_MAX_DEPTH) -> None:
        if max_depth < 0:
            raise ValueError(f"max_depth must be 0 or more, got {max_depth}")
        self._root = _Node(max_depth)
        self.count = 0

    def observe(self, record: Mapping[str, Any]) -> None:
        """Take one record into account (cheap: no copy is made)."""
        if not isinstance(record, Mapping):
            raise DataError(f"a record must be a JSON object, got {type(record).__name__}")
        self._root.add_fields(record)
        self.count += 1

    def schema(self) -> dict[str, Any]:
        """The stream's schema for the records seen so far: an object with one property per field."""
        return {
            "type": "object",
            "properties": {name: node.schema() for name, node in self._root.properties.items()},
        }


def infer_schema(records: Iterable[Mapping[str, Any]], max_depth: int = DEFAULT_MAX_DEPTH) -> dict[str, Any]:
    """The schema :class:`SchemaInferrer` infers from `records`."""
    inferrer = SchemaInferrer(max_depth)
    for record in records:
        inferrer.observe(record)
    return inferrer.schema()
