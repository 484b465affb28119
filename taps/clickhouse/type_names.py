"""ClickHouse type names (as system.columns spells them) parsed into a tree the type map walks.

`Nullable(Array(Tuple(a Int32, b LowCardinality(String))))` becomes nested :class:`TypeName`s;
arguments that are not types (a Decimal's precision, a DateTime's zone, an Enum's labels) stay
text. The same top-level split reads a table's sorting key from system.tables.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

# Types whose arguments are types (Tuple and Nested elements may be named).
_TYPE_ARGS = {
    "Nullable",
    "LowCardinality",
    "Array",
    "Map",
    "Tuple",
    "Nested",
    "Variant",
}
_QUOTES = "'\"`"
_ENUM_ITEM = re.compile(r"\s*'((?:[^'\\]|\\.)*)'\s*=\s*-?\d+\s*")
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


@dataclass(frozen=True, slots=True)
class TypeName:
    name: str  # Nullable, Array, Decimal, DateTime64, Enum8, ...
    text: str  # the whole type as the server spells it
    args: tuple[TypeName, ...] = ()  # element types (Nullable, Array, Map, Tuple, ...)
    params: tuple[str, ...] = ()  # other arguments as text: precision and scale, zone, enum items
    field: str | None = None  # its name as an element of a named Tuple or Nested

    @property
    def inner(self) -> TypeName:
        return self.args[0]


def split_top(text: str) -> list[str]:
    """`text` cut at the commas outside parentheses and quotes, each part stripped."""
    parts: list[str] = []
    depth, quote, start, i = 0, "", 0, 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in _QUOTES:
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append(text[start:i].strip())
            start = i + 1
        i += 1
    last = text[start:].strip()
    return [*parts, last] if last or parts else []


def unquote_name(text: str) -> str | None:
    """A bare or back-quoted identifier as the name it stands for; None for any other expression."""
    if _IDENTIFIER.fullmatch(text):
        return text
    if len(text) >= 2 and text[0] == text[-1] and text[0] in '`"':
        return _unescape(text[1:-1])
    return None


def _unescape(text: str) -> str:
    # ClickHouse escapes quotes and backslashes in names and literals with a backslash, as C does.
    return codecs.escape_decode(text.encode())[0].decode("utf-8", "replace") if "\\" in text else text


def _named(text: str) -> tuple[str | None, str]:
    """A Tuple element `name Type` as (name, type); an unnamed one as (None, type)."""
    if text[:1] in '`"':
        end = 1
        while end < len(text) and text[end] != text[0]:
            end += 2 if text[end] == "\\" else 1
        return _unescape(text[1:end]), text[end + 1 :].strip()
    head, *rest = text.split(None, 1)
    if rest and _IDENTIFIER.fullmatch(head):
        return head, rest[0].strip()
    return None, text


def parse(text: str, field: str | None = None) -> TypeName:
    text = text.strip()
    open_at = text.find("(")
    if open_at < 0 or not text.endswith(")"):
        return TypeName(text, text, field=field)
    name = text[:open_at].strip()
    inside = split_top(text[open_at + 1 : -1])
    if name not in _TYPE_ARGS:
        return TypeName(name, text, params=tuple(inside), field=field)
    if name in ("Tuple", "Nested"):
        args = tuple(parse(t, n) for n, t in map(_named, inside))
    else:
        args = tuple(parse(t) for t in inside)
    return TypeName(name, text, args, field=field)


def enum_labels(t: TypeName) -> list[str]:
    """An Enum8/Enum16's labels, in the order the type declares them."""
    labels = []
    for item in t.params:
        match = _ENUM_ITEM.fullmatch(item)
        if match:
            labels.append(_unescape(match.group(1)))
    return labels


def bare(t: TypeName) -> TypeName:
    """The type without the Nullable and LowCardinality wrappers that do not change its values."""
    while t.name in ("Nullable", "LowCardinality") and t.args:
        t = t.inner
    return t
