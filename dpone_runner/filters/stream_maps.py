"""The stream-map filters that ship with the runner: select, rename, drop and hash properties."""

from __future__ import annotations

import fnmatch
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass, replace
from typing import Any

from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import (
    ActivateVersionMessage,
    BatchMessage,
    Message,
    RecordMessage,
    SchemaMessage,
)

_STREAM_MESSAGES = (SchemaMessage, RecordMessage, BatchMessage, ActivateVersionMessage)


def _list(spec: dict[str, Any], key: str) -> list[str]:
    value = spec.get(key)
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        raise ConfigError(f"filters: {spec.get('type')} needs a non-empty {key!r} list")
    return [str(v) for v in value]


@dataclass(frozen=True, slots=True)
class SelectStreams:
    """Keep only streams matching one of the glob patterns; STATE always passes."""

    patterns: tuple[str, ...]

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> SelectStreams:
        return cls(tuple(_list(spec, "streams")))

    def __call__(self, message: Message) -> Iterable[Message]:
        if isinstance(message, _STREAM_MESSAGES) and not any(
            fnmatch.fnmatchcase(message.stream, p) for p in self.patterns
        ):
            return ()
        return (message,)


@dataclass(frozen=True, slots=True)
class RenameStream:
    source: str
    target: str

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> RenameStream:
        if not spec.get("stream") or not spec.get("to"):
            raise ConfigError("filters: rename needs 'stream' and 'to'")
        return cls(str(spec["stream"]), str(spec["to"]))

    def __call__(self, message: Message) -> Iterable[Message]:
        if isinstance(message, _STREAM_MESSAGES) and message.stream == self.source:
            return (replace(message, stream=self.target),)
        return (message,)


@dataclass(frozen=True, slots=True)
class _PropertyFilter:
    stream: str
    properties: tuple[str, ...]

    def applies(self, stream: str) -> bool:
        return fnmatch.fnmatchcase(stream, self.stream)


class DropProperties(_PropertyFilter):
    """Remove properties from the schema and every record (e.g. free-text notes, PII)."""

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> DropProperties:
        return cls(str(spec.get("stream", "*")), tuple(_list(spec, "properties")))

    def __call__(self, message: Message) -> Iterable[Message]:
        if isinstance(message, SchemaMessage) and self.applies(message.stream):
            keys = [p for p in self.properties if p in message.key_properties]
            if keys:
                raise ConfigError(f"filters: cannot drop key properties {keys} of stream {message.stream!r}")
            props = {k: v for k, v in message.schema.get("properties", {}).items() if k not in self.properties}
            return (replace(message, schema={**message.schema, "properties": props}),)
        if isinstance(message, RecordMessage) and self.applies(message.stream):
            for prop in self.properties:
                message.record.pop(prop, None)
        return (message,)


class HashProperties(_PropertyFilter):
    """Replace values with their SHA-256 hex digest: joinable, not readable."""

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HashProperties:
        return cls(str(spec.get("stream", "*")), tuple(_list(spec, "properties")))

    def __call__(self, message: Message) -> Iterable[Message]:
        if isinstance(message, SchemaMessage) and self.applies(message.stream):
            props = dict(message.schema.get("properties", {}))
            for prop in self.properties:
                if prop in props:
                    props[prop] = {"type": ["string", "null"]}
            return (replace(message, schema={**message.schema, "properties": props}),)
        if isinstance(message, RecordMessage) and self.applies(message.stream):
            record = message.record
            for prop in self.properties:
                value = record.get(prop)
                if value is not None:
                    record[prop] = hashlib.sha256(str(value).encode()).hexdigest()
        return (message,)
