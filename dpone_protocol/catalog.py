"""Singer catalog: streams, their metadata, and the rules for what is selected."""

from __future__ import annotations

import copy
import fnmatch
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from dpone_protocol.errors import ConfigError

Breadcrumb = tuple[str, ...]

FULL_TABLE = "FULL_TABLE"
INCREMENTAL = "INCREMENTAL"
LOG_BASED = "LOG_BASED"


@dataclass(slots=True)
class CatalogEntry:
    tap_stream_id: str
    schema: dict[str, Any]
    stream: str | None = None
    key_properties: list[str] = field(default_factory=list)
    replication_method: str | None = None
    replication_key: str | None = None
    metadata: dict[Breadcrumb, dict[str, Any]] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.stream or self.tap_stream_id

    # -- metadata ---------------------------------------------------------
    def stream_metadata(self) -> dict[str, Any]:
        return self.metadata.setdefault((), {})

    def effective_replication_method(self) -> str:
        md = self.stream_metadata()
        method = md.get("replication-method") or self.replication_method
        if method:
            return str(method).upper()
        return INCREMENTAL if self.effective_replication_key() else FULL_TABLE

    def effective_replication_key(self) -> str | None:
        md = self.stream_metadata()
        key = md.get("replication-key") or self.replication_key
        return str(key) if key else None

    def effective_key_properties(self) -> list[str]:
        md = self.stream_metadata()
        keys = md.get("table-key-properties")
        return list(keys) if keys is not None else list(self.key_properties)

    # -- selection ----------------------------------------------------------
    def is_selected(self) -> bool:
        md = self.stream_metadata()
        if "selected" in md:
            return bool(md["selected"])
        return bool(md.get("selected-by-default", False))

    def is_property_selected(self, name: str) -> bool:
        md = self.metadata.get(("properties", name), {})
        inclusion = md.get("inclusion")
        if inclusion == "automatic":
            return True
        if inclusion == "unsupported":
            return False
        if name in self.effective_key_properties() or name == self.effective_replication_key():
            return True  # a stream cannot be loaded or resumed without these
        if "selected" in md:
            return bool(md["selected"])
        return bool(md.get("selected-by-default", True))

    def selected_properties(self) -> list[str]:
        return [p for p in self.schema.get("properties", {}) if self.is_property_selected(p)]

    def selected_schema(self) -> dict[str, Any]:
        """The stream schema narrowed to the selected properties."""
        props = self.schema.get("properties", {})
        narrowed = {k: props[k] for k in self.selected_properties()}
        out = dict(self.schema)
        out["properties"] = narrowed
        if "required" in out:
            out["required"] = [r for r in out["required"] if r in narrowed]
        return out

    # -- wire form -------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "tap_stream_id": self.tap_stream_id,
            "stream": self.name,
            "schema": self.schema,
            "key_properties": self.key_properties,
            "metadata": [{"breadcrumb": list(b), "metadata": m} for b, m in self.metadata.items()],
        }
        if self.replication_method:
            out["replication_method"] = self.replication_method
        if self.replication_key:
            out["replication_key"] = self.replication_key
        return out

    @classmethod
    def from_dict(cls, obj: dict[str, Any]) -> CatalogEntry:
        if not isinstance(obj, dict):
            raise ConfigError(f"catalog stream must be a JSON object, got {type(obj).__name__}")
        try:
            tap_stream_id = obj.get("tap_stream_id") or obj["stream"]
            schema = obj["schema"]
        except KeyError as exc:
            raise ConfigError(f"catalog stream is missing {exc.args[0]!r}") from None
        metadata: dict[Breadcrumb, dict[str, Any]] = {}
        for item in obj.get("metadata") or []:
            if not isinstance(item, dict):
                raise ConfigError(f"catalog stream {tap_stream_id!r}: metadata items must be objects")
            metadata[tuple(item.get("breadcrumb", []))] = dict(item.get("metadata", {}))
        return cls(
            tap_stream_id=tap_stream_id,
            schema=schema,
            stream=obj.get("stream"),
            key_properties=list(obj.get("key_properties") or []),
            replication_method=obj.get("replication_method"),
            replication_key=obj.get("replication_key"),
            metadata=metadata,
        )


@dataclass(slots=True)
class Catalog:
    streams: list[CatalogEntry] = field(default_factory=list)

    def __iter__(self) -> Iterator[CatalogEntry]:
        return iter(self.streams)

    def get(self, tap_stream_id: str) -> CatalogEntry | None:
        for entry in self.streams:
            if entry.tap_stream_id == tap_stream_id:
                return entry
        return None

    def selected(self) -> list[CatalogEntry]:
        return [e for e in self.streams if e.is_selected()]

    def to_dict(self) -> dict[str, Any]:
        return {"streams": [e.to_dict() for e in self.streams]}

    @classmethod
    def from_dict(cls, obj: Any) -> Catalog:
        if not isinstance(obj, dict) or not isinstance(obj.get("streams"), list):
            raise ConfigError("catalog must be a JSON object with a 'streams' list")
        return cls([CatalogEntry.from_dict(s) for s in obj["streams"]])


def standard_metadata(
    schema: dict[str, Any],
    key_properties: Iterable[str],
    replication_key: str | None = None,
    valid_replication_keys: Iterable[str] = (),
    selected_by_default: bool = True,
) -> dict[Breadcrumb, dict[str, Any]]:
    """Discovery metadata as Singer taps write it."""
    keys = list(key_properties)
    root: dict[str, Any] = {
        "inclusion": "available",
        "selected-by-default": selected_by_default,
        "table-key-properties": keys,
    }
    valid = list(valid_replication_keys)
    if valid:
        root["valid-replication-keys"] = valid
    if replication_key:
        root["replication-key"] = replication_key
        root["replication-method"] = INCREMENTAL
    metadata: dict[Breadcrumb, dict[str, Any]] = {(): root}
    for prop in schema.get("properties", {}):
        automatic = prop in keys or prop == replication_key
        metadata[("properties", prop)] = {
            "inclusion": "automatic" if automatic else "available",
            "selected-by-default": True,
        }
    return metadata


def _split_pattern(pattern: str) -> tuple[bool, str, str]:
    exclude = pattern.startswith("!")
    body = pattern[1:] if exclude else pattern
    stream, _, prop = body.partition(".")
    return exclude, stream, prop or "*"


def apply_selection(catalog: Catalog, patterns: Iterable[str]) -> Catalog:
    """Select streams and properties with Meltano-style `stream.property` glob patterns.

    `orders.*` selects every property of `orders`; `!orders.notes` removes one; a stream is
    selected when any include pattern names it. Returns a new catalog.
    """
    rules = [_split_pattern(p) for p in patterns]
    out = copy.deepcopy(catalog)
    for entry in out.streams:
        sid = entry.tap_stream_id
        includes = [(s, p) for ex, s, p in rules if not ex and fnmatch.fnmatchcase(sid, s)]
        excludes = [(s, p) for ex, s, p in rules if ex and fnmatch.fnmatchcase(sid, s)]
        stream_selected = bool(includes) and not any(p == "*" for _, p in excludes)
        entry.stream_metadata()["selected"] = stream_selected
        for prop in entry.schema.get("properties", {}):
            md = entry.metadata.setdefault(("properties", prop), {})
            chosen = any(fnmatch.fnmatchcase(prop, p) for _, p in includes) and not any(
                fnmatch.fnmatchcase(prop, p) for _, p in excludes
            )
            md["selected"] = stream_selected and chosen
    return out
