"""Stream maps: the safe subset of the Meltano Singer SDK `stream_maps` setting, applied by every tap.

Supported, with the SDK's meaning::

    stream_maps:
      customers: {__alias__: clients}          # rename the stream
      orders: {notes: null}                    # drop a property
      users: {__else__: null, id: id, email: email}   # keep only the listed (and key) properties
      events: {__key_properties__: [event_id]} # override the key properties
      audit_log: null                          # drop a whole stream
      "raw_*": {ssn: null}                     # a glob names several streams; the last match wins
      __else__: null                           # drop every stream no map names

A property's value is `null` (drop it) or the name of a source property (copy it under the
map's key). Anything else is an expression, and expressions are never evaluated: a filter
(`__filter__`), a computed property or an alias expression stops the run with a ConfigError
that names it. `stream_map_config` is accepted; with no expressions it has nothing to feed.

State stays keyed by the source stream, as in the SDK: renaming a stream does not reset it.
"""

from __future__ import annotations

import copy
import dataclasses
import fnmatch
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from dpone.taps.framework.bookmarks import BookmarkTracker
from dpone.taps.framework.stream import EncodedRecord
from dpone_protocol.codec import EXACT_CODEC
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import ActivateVersionMessage

NULL = "__NULL__"  # the SDK's spelling of null where YAML or env vars cannot say null
ALIAS = "__alias__"
ELSE = "__else__"
KEY_PROPERTIES = "__key_properties__"
UNSUPPORTED_OPTIONS = {
    "__filter__": "a filter expression",
    "__source__": "a second projection of a stream (__source__)",
}
SUPPORTED = (
    "null (drop the stream or property), a source property name (copy it), "
    "__alias__ (a literal name), __key_properties__ (a list) and __else__: null"
)
Row = dict[str, Any] | EncodedRecord | Any


def _is_null(value: Any) -> bool:
    return value is None or value == NULL


def _unsupported(where: str, what: str, value: Any) -> ConfigError:
    return ConfigError(
        f"{where}: {what} {value!r} is not supported: dpone taps evaluate no stream map expressions; "
        f"supported: {SUPPORTED}"
    )


@dataclass(frozen=True, slots=True)
class _StreamRule:
    """One stream's entry in `stream_maps`, checked for shape but not yet against a schema."""

    key: str
    removed: bool = False
    alias: str | None = None
    key_properties: list[str] | None = None
    keep_unlisted: bool = True
    drops: tuple[str, ...] = ()
    copies: tuple[tuple[str, str], ...] = ()  # (output property, source property)

    @classmethod
    def parse(cls, key: str, value: Any) -> _StreamRule:
        where = f"stream_maps.{key}"
        if _is_null(value):
            return cls(key, removed=True)
        if not isinstance(value, Mapping):
            raise _unsupported(where, "stream definition", value)
        alias: str | None = None
        keys: list[str] | None = None
        keep_unlisted = True
        drops: list[str] = []
        copies: list[tuple[str, str]] = []
        for name, item in value.items():
            if name in UNSUPPORTED_OPTIONS:
                raise _unsupported(f"{where}.{name}", UNSUPPORTED_OPTIONS[name], item)
            if name == ALIAS:
                if not isinstance(item, str) or not item or "__stream_name__" in item:
                    raise _unsupported(f"{where}.{name}", "alias", item)
                alias = item
            elif name == KEY_PROPERTIES:
                if item is None:
                    keys = []
                elif isinstance(item, list) and all(isinstance(k, str) for k in item):
                    keys = list(item)
                else:
                    raise ConfigError(f"{where}.{name}: must be a list of property names or null, got {item!r}")
            elif name == ELSE:
                if not _is_null(item):
                    raise _unsupported(f"{where}.{name}", "default expression", item)
                keep_unlisted = False
            elif name.startswith("__") and name.endswith("__"):
                raise ConfigError(f"{where}: unknown option {name!r}; supported: {SUPPORTED}")
            elif _is_null(item):
                drops.append(name)
            elif isinstance(item, str):
                copies.append((name, item))  # checked against the schema in bind()
            else:
                raise _unsupported(f"{where}.{name}", "property definition", item)
        return cls(key, False, alias, keys, keep_unlisted, tuple(drops), tuple(copies))


@dataclass(slots=True)
class StreamMap:
    """How one source stream leaves the tap: its name, SCHEMA, key properties and records."""

    source: str
    name: str
    schema: dict[str, Any]
    key_properties: list[str]
    removed: bool = False
    identity: bool = True  # nothing changes: the tap's fast path runs untouched
    keep_unlisted: bool = True
    drops: frozenset[str] = frozenset()
    copies: tuple[tuple[str, str], ...] = ()
    changes_records: bool = False
    _keys_kept: tuple[str, ...] = field(default=())

    def transform(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.keep_unlisted:
            out = {k: v for k, v in record.items() if k not in self.drops} if self.drops else dict(record)
        else:
            out = {k: record[k] for k in self._keys_kept if k in record}
        for target, source in self.copies:
            if source in record:
                out[target] = record[source]
        return out

    def rows(self, rows: Iterable[Row], selected: list[str] | None, tracker: BookmarkTracker | None) -> Iterator[Row]:
        """The stream's rows as they leave the tap.

        Projection to the selected properties and the bookmark both see the source record,
        so a map may drop or rename the replication key without losing the bookmark.
        """
        changes = self.changes_records
        for row in rows:
            if isinstance(row, dict):
                record = {k: row[k] for k in selected if k in row} if selected is not None else row
                if tracker is not None:
                    tracker.observe(record)
                yield self.transform(record) if changes else record
            elif isinstance(row, EncodedRecord):
                # Exact decoding: a pre-encoded numeric column keeps every digit when re-encoded.
                yield self.transform(EXACT_CODEC.loads(row.json)) if changes else row
            elif isinstance(row, ActivateVersionMessage):
                yield dataclasses.replace(row, stream=self.name)
            else:
                yield row


@dataclass(slots=True)
class StreamMaps:
    """The parsed `stream_maps` setting."""

    rules: list[_StreamRule] = field(default_factory=list)
    drop_unmapped: bool = False

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> StreamMaps:
        raw = config.get("stream_maps")
        map_config = config.get("stream_map_config")
        if map_config is not None and not isinstance(map_config, Mapping):
            raise ConfigError("stream_map_config must be an object")
        if not raw:
            return cls()
        if not isinstance(raw, Mapping):
            raise ConfigError(f"stream_maps must be an object of stream name -> map, got {type(raw).__name__}")
        maps = cls()
        for key, value in raw.items():
            if key == ELSE:
                if not _is_null(value):
                    raise _unsupported("stream_maps.__else__", "default stream map", value)
                maps.drop_unmapped = True
            elif key.startswith("__"):
                raise ConfigError(f"stream_maps: unknown option {key!r}; only __else__: null is supported there")
            else:
                maps.rules.append(_StreamRule.parse(key, value))
        return maps

    def _rule_for(self, stream: str) -> _StreamRule | None:
        found: _StreamRule | None = None
        for rule in self.rules:  # later entries override earlier ones, as in the SDK
            if rule.key == stream or fnmatch.fnmatchcase(stream, rule.key):
                found = rule
        return found

    def bind(self, stream: str, schema: dict[str, Any], key_properties: list[str]) -> StreamMap:
        """The map of one stream, checked against the schema it is about to send."""
        rule = self._rule_for(stream)
        if rule is None:
            return StreamMap(stream, stream, schema, list(key_properties), removed=self.drop_unmapped)
        if rule.removed:
            return StreamMap(stream, stream, schema, list(key_properties), removed=True)
        where = f"stream_maps.{rule.key}"
        source_props: dict[str, Any] = schema.get("properties") or {}
        keys = list(key_properties) if rule.key_properties is None else list(rule.key_properties)
        for name in rule.drops:
            if name in keys:
                raise ConfigError(
                    f"{where}.{name}: cannot drop key property {name!r}; override the keys with "
                    "__key_properties__ first (a list, or null for none)"
                )
        for target, source in rule.copies:
            if source not in source_props:
                raise _unsupported(f"{where}.{target}", "expression", source)
        if rule.keep_unlisted:
            props = {k: v for k, v in source_props.items() if k not in rule.drops}
        else:
            props = {k: source_props[k] for k in keys if k in source_props}
        for target, source in rule.copies:
            props[target] = copy.deepcopy(source_props[source])
        missing = [k for k in keys if k not in props]
        if missing:
            raise ConfigError(f"{where}: key properties {missing} are not in the mapped stream's properties")
        out_schema = {**schema, "properties": props}
        if "required" in schema:
            out_schema["required"] = [r for r in schema["required"] if r in props]
        changes = bool(rule.drops or rule.copies or not rule.keep_unlisted)
        return StreamMap(
            source=stream,
            name=rule.alias or stream,
            schema=out_schema,
            key_properties=keys,
            identity=not changes and (rule.alias or stream) == stream and keys == list(key_properties),
            keep_unlisted=rule.keep_unlisted,
            drops=frozenset(rule.drops),
            copies=rule.copies,
            changes_records=changes,
            _keys_kept=tuple(keys),
        )


def check_unique_names(maps: Iterable[StreamMap]) -> None:
    """Two streams mapped to one name would interleave two schemas in one target table."""
    seen: dict[str, str] = {}
    for m in maps:
        if m.removed:
            continue
        if m.name in seen:
            raise ConfigError(
                f"stream_maps: streams {seen[m.name]!r} and {m.source!r} would both be sent as {m.name!r}"
            )
        seen[m.name] = m.source
