"""A page of an API's answer: its JSON document, its records, and each record's own JSON text.

Every number is read exactly (non-integers as Decimal, integers of any width), so nothing is
rounded on its way through. When `records_path` is a plain path (`$`, `$.data`, `$.result.items[*]`)
the page is walked once: the records array's elements are decoded one by one, and the text of each
is kept, so a record can be written out as the API sent it, without being encoded again. Any other
JSONPath (filters, recursive descent, several wildcards) goes through the `python-jsonpath` library
on the decoded document; its records are then encoded from their values.

A match that is an array gives its elements as records, an object is one record, null or no match
gives none; anything else, or an element that is not an object, is a data error naming the page.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, cast

from dpone_protocol.codec import exact_int, reject_constant
from dpone_protocol.errors import ConfigError, DataError

# Exact: for records handed on as values. Plain: for records written as the API's own text, whose
# values only order bookmarks (integers are exact either way; the C scanner is faster without hooks).
_EXACT = json.JSONDecoder(parse_float=Decimal, parse_int=exact_int, parse_constant=reject_constant, strict=True)
_PLAIN = json.JSONDecoder(parse_constant=reject_constant, strict=True)
Scan = Callable[[str, int], tuple[Any, int]]
# The decoders' C scanners, called straight: JSONDecoder.raw_decode costs as much again around them.
_SCANS: Final[dict[bool, Scan]] = {True: _EXACT.scan_once, False: _PLAIN.scan_once}  # type: ignore[attr-defined]
_scanstring: Callable[[str, int], tuple[str, int]] = json.decoder.scanstring  # type: ignore[attr-defined]
_WS = re.compile(r"[ \t\n\r]*")
_SURROGATE_RE: Final = re.compile(r"\\u[dD][89a-fA-F]")
_WHITESPACE: Final = frozenset(" \t\n\r")
_skip = cast(Callable[[str, int], re.Match[str]], _WS.match)  # always matches, if only nothing
# $ then .name / ['name'] / ["name"] steps, and at most a final [*] or .*
_STEP = r"(?:\.[A-Za-z_][A-Za-z0-9_-]*|\['[^'\\]*'\]|\[\"[^\"\\]*\"\])"
_SIMPLE_RE = re.compile(rf"^\$(?P<steps>{_STEP}*)(?P<all>\[\*\]|\.\*)?$")
_STEP_RE = re.compile(_STEP)


@dataclass(slots=True)
class Page:
    url: str  # secrets masked, for messages
    document: Any
    records: list[dict[str, Any]]
    texts: list[str] | None  # each record's JSON as sent, on one line; None when not kept
    matched: bool = True  # False: nothing in the document is at records_path (a typo?)


def is_plain_path(path: str) -> bool:
    """Whether the page walker follows this path itself (no JSONPath library needed)."""
    return _SIMPLE_RE.match(path) is not None


class RecordsPath:
    """A compiled `records_path`."""

    def __init__(self, path: str) -> None:
        self.path = path
        simple = _SIMPLE_RE.match(path)
        self.steps: list[str] | None = None
        self.members = False
        self._query: Any = None
        if simple is not None:
            self.steps = [_step_name(s) for s in _STEP_RE.findall(simple.group("steps"))]
            self.members = simple.group("all") is not None  # [*] or .*: an object's members are the records
        else:
            self._query = compile_jsonpath(path, "records_path")

    def parse(self, content: bytes, url: str, exact: bool = True) -> Page:
        """The page's records; `exact=False` when they will be written from their text (numbers
        that are not integers may then be floats: only replication keys are read from them)."""
        text = _text(content, url)
        try:
            if self.steps is not None:
                walker = _Walker(text, self.steps, _SCANS[exact], self.members)
                document = walker.document()
                records, texts = _checked(walker.found, walker.texts, url, text)
                return Page(url, document, records, texts, walker.reached)
            document, end = _EXACT.raw_decode(text, _skip(text, 0).end())
            if _skip(text, end).end() != len(text):
                raise json.JSONDecodeError("Extra data", text, _skip(text, end).end())
        except json.JSONDecodeError as exc:
            raise _malformed(exc, text, url) from None
        except ValueError as exc:  # NaN/Infinity, refused by reject_constant
            raise DataError(f"page {url} is not valid JSON: {exc}") from None
        found: list[Any] = []
        matches = self._query.findall(document)
        for match in matches:
            found.extend(match if isinstance(match, list) else [] if match is None else [match])
        return Page(url, document, *_checked(found, None, url, text), bool(matches))


class _PlainQuery:
    """A plain path ($.a.b, $['a']) read by dict lookups: what the library would find, at a fraction
    of its cost per page (a cursor or next link is read on every page)."""

    def __init__(self, steps: list[str]) -> None:
        self.steps = steps

    def findall(self, document: Any) -> list[Any]:
        value = document
        for step in self.steps:
            if not isinstance(value, dict) or step not in value:
                return []
            value = value[step]
        return [value]


def compile_jsonpath(path: str, setting: str) -> Any:
    """A compiled JSONPath query (python-jsonpath, or dict lookups for a plain path without a
    wildcard); a ConfigError names the setting when it is not one."""
    simple = _SIMPLE_RE.match(path)
    if simple is not None and simple.group("all") is None:
        return _PlainQuery([_step_name(s) for s in _STEP_RE.findall(simple.group("steps"))])
    import jsonpath  # noqa: PLC0415 - only for paths beyond the plain ones

    try:
        return jsonpath.compile(path)
    except jsonpath.JSONPathError as exc:
        raise ConfigError(f"tap-rest: {setting} {path!r} is not a valid JSONPath: {exc}") from None


def first_match(query: Any, document: Any) -> Any:
    """The first value a compiled JSONPath finds in a document, or None."""
    for value in query.findall(document):
        return value
    return None


def _step_name(step: str) -> str:
    return step[1:] if step.startswith(".") else step[2:-2]


def _text(content: bytes, url: str) -> str:
    try:
        text = content.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DataError(f"page {url} is not UTF-8 JSON: byte {exc.start} cannot be decoded") from None
    return text[1:] if text.startswith("\ufeff") else text


def _malformed(exc: json.JSONDecodeError, text: str, url: str) -> DataError:
    start = max(0, exc.pos - 40)
    around = " ".join(text[start : exc.pos + 40].split())
    if not text.strip():
        return DataError(f"page {url} is empty, not JSON")
    if text.lstrip()[:1] == "<":
        return DataError(
            f"page {url} is HTML, not JSON (a login page, or a proxy's error page?): "
            f"the body starts {' '.join(text[:80].split())!r}; check api_url, the path and the credentials"
        )
    return DataError(
        f"page {url} is not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno} (near {around!r}); "
        f"the body starts {' '.join(text[:80].split())!r}"
    )


def _checked(
    found: list[Any], texts: list[str] | None, url: str, text: str
) -> tuple[list[dict[str, Any]], list[str] | None]:
    for record in found:
        if record.__class__ is not dict:
            raise DataError(
                f"page {url}: records_path found {_json_kind(record)} where a record (a JSON object) belongs; "
                "check records_path"
            )
    # \ud83d alone decodes to a string no UTF-8 encoder takes: stop here, naming the page, not later.
    if _SURROGATE_RE.search(text) and any(_lone_surrogate(record) for record in found):
        raise DataError(
            f"page {url}: a string holds a lone UTF-16 surrogate escape (\\uD800-\\uDFFF without its pair), "
            "which is not a character"
        )
    return found, texts


def _lone_surrogate(value: Any) -> bool:
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            return True
        return False
    if isinstance(value, dict):
        return any(_lone_surrogate(k) or _lone_surrogate(v) for k, v in value.items())
    if isinstance(value, list):
        return any(_lone_surrogate(v) for v in value)
    return False


def _json_kind(value: Any) -> str:
    if value is None:
        return "null"
    kinds = {bool: "a boolean", str: "a string", list: "an array", int: "a number", float: "a number"}
    return kinds.get(type(value), "a number")


class _Walker:
    """Walks a document down `steps`, decoding what it passes and keeping each record's text."""

    __slots__ = ("found", "members", "reached", "scan_once", "steps", "text", "texts")

    def __init__(self, text: str, steps: list[str], scan_once: Scan, members: bool) -> None:
        self.text = text
        self.steps = steps
        self.scan_once = scan_once
        self.members = members
        self.reached = False  # the path's end was in the document
        self.found: list[Any] = []
        self.texts: list[str] = []

    def document(self) -> Any:
        text = self.text
        value, end = self._value(_skip(text, 0).end(), 0)
        end = _skip(text, end).end()
        if end != len(text):
            raise json.JSONDecodeError("Extra data", text, end)
        return value

    def _value(self, at: int, depth: int) -> tuple[Any, int]:
        """The value at `at` (decoded), where it ends; records are collected when `depth` is the path's end."""
        text = self.text
        if depth == len(self.steps):
            self.reached = True
            return self._records(at)
        if text.startswith("{", at):
            return self._object(at, depth)
        return self._scan(at)  # not an object: the path finds nothing below it

    def _object(self, at: int, depth: int) -> tuple[dict[str, Any], int]:
        wanted = self.steps[depth]

        def member(key: str, at: int) -> tuple[Any, int]:
            if key != wanted:
                return self._scan(at)
            self.found, self.texts = [], []  # a repeated key: the last one counts, as for any decoder
            return self._value(at, depth + 1)

        return self._each_member(at, member)

    def _each_member(self, at: int, member: Callable[[str, int], tuple[Any, int]]) -> tuple[dict[str, Any], int]:
        """The object at `at`, each member's value read by `member(key, where)`; where it ends."""
        text = self.text
        out: dict[str, Any] = {}
        at = _skip(text, at + 1).end()
        if text.startswith("}", at):
            return out, at + 1
        while True:
            if not text.startswith('"', at):
                raise json.JSONDecodeError("Expecting property name enclosed in double quotes", text, at)
            key, at = _scanstring(text, at + 1)
            at = _skip(text, at).end()
            if not text.startswith(":", at):
                raise json.JSONDecodeError("Expecting ':' delimiter", text, at)
            out[key], at = member(key, _skip(text, at + 1).end())
            at = _skip(text, at).end()
            if text.startswith(",", at):
                at = _skip(text, at + 1).end()
                continue
            if text.startswith("}", at):
                return out, at + 1
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)

    def _members(self, at: int) -> tuple[dict[str, Any], int]:
        """An object whose member values are the records (`$.data[*]` on {"k1": {...}, "k2": {...}})."""

        def record(key: str, at: int) -> tuple[Any, int]:
            value, end = self._scan(at)
            self.found.append(value)
            self.texts.append(_one_line(self.text[at:end]))
            return value, end

        return self._each_member(at, record)

    def _scan(self, at: int) -> tuple[Any, int]:
        try:
            return self.scan_once(self.text, at)
        except StopIteration as stop:
            raise json.JSONDecodeError("Expecting value", self.text, stop.value) from None

    def _records(self, at: int) -> tuple[Any, int]:
        text = self.text
        if self.members and text.startswith("{", at):
            return self._members(at)
        if not text.startswith("[", at):
            value, end = self._scan(at)
            if value is not None:
                self.found.append(value)
                self.texts.append(_one_line(text[at:end]))
            return value, end
        found, texts = self.found, self.texts
        at = _skip(text, at + 1).end()
        if text.startswith("]", at):
            return found, at + 1
        scan, skip = self.scan_once, _skip
        while True:
            try:
                value, end = scan(text, at)
            except StopIteration as stop:
                raise json.JSONDecodeError("Expecting value", text, stop.value) from None
            found.append(value)
            texts.append(text[at:end])
            follows = text[end : end + 1]
            if follows == ",":
                at = end + 1
                if text[at : at + 1] in _WHITESPACE:
                    at = skip(text, at).end()
                continue
            at = skip(text, end).end()
            if text.startswith(",", at):
                at = skip(text, at + 1).end()
                continue
            if text.startswith("]", at):
                break
            raise json.JSONDecodeError("Expecting ',' delimiter", text, at)
        if "\n" in text or "\r" in text:
            # A pretty-printed page: each record on one line.
            self.texts = texts = [_one_line(t) for t in texts]
        return found, at + 1


# A line break and the indentation after it. Only whitespace between tokens can hold one (inside a
# string JSON escapes it), and no two JSON tokens need whitespace to stay apart: dropping it is safe.
_LINE_BREAK_RE: Final = re.compile(r"[\r\n][ \t\r\n]*")


def _one_line(text: str) -> str:
    return _LINE_BREAK_RE.sub("", text) if "\n" in text or "\r" in text else text
