"""The stream-map filters that ship with the runner: select, rename, drop and hash (keyed or not) properties."""

from __future__ import annotations

import fnmatch
import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from dpone_protocol.config import expand_env
from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import (
    ActivateVersionMessage,
    BatchMessage,
    Message,
    RecordMessage,
    SchemaMessage,
)

log = logging.getLogger("dpone.filters")
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


MIN_KEY_LENGTH = 16


def hash_key(spec: dict[str, Any], environ: Mapping[str, str] | None = None) -> str | None:
    """The secret of a keyed hash: `key_env: VAR` (the variable's value) or `key:` (a string,
    `${VAR}` expanded); None when the spec asks for neither (the unkeyed SHA-256)."""
    env = os.environ if environ is None else environ
    if "key_env" in spec and "key" in spec:
        raise ConfigError("filters: hash takes 'key' or 'key_env', not both")
    if "key_env" in spec:
        name = str(spec["key_env"])
        key = env.get(name, "")
        if not key:
            raise ConfigError(f"filters: hash key_env: environment variable {name} is not set or empty")
        where = f"environment variable {name}"
    elif "key" in spec:
        key = expand_env(spec["key"], env, where="filters: hash key")
        if not isinstance(key, str) or not key:
            raise ConfigError("filters: hash key must be a non-empty string (or use key_env: VAR)")
        where = "key"
    else:
        return None
    if len(key) < MIN_KEY_LENGTH:
        # A short key is guessed as easily as the values it should protect.
        raise ConfigError(f"filters: hash {where} must be at least {MIN_KEY_LENGTH} characters")
    return key


@dataclass(frozen=True, slots=True)
class HashProperties:
    """Replace values with a hex digest: joinable, not readable.

    With a key (HMAC-SHA256) only holders of the key can compute the digest of a given value.
    Without one (plain SHA-256) anyone can: hash every candidate (all emails of a customer list,
    all phone numbers of a country) and look the digests up.
    """

    stream: str
    properties: tuple[str, ...]
    key: bytes | None = field(default=None, repr=False)

    def applies(self, stream: str) -> bool:
        return fnmatch.fnmatchcase(stream, self.stream)

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> HashProperties:
        key = hash_key(spec)
        if key is None:
            log.warning(
                "filters: hash of %s without a key is plain SHA-256: anyone with a list of candidate values "
                "can reverse it; for personal data set key_env (a keyed HMAC-SHA256, see docs/runner.md)",
                ", ".join(_list(spec, "properties")),
            )
        return cls(str(spec.get("stream", "*")), tuple(_list(spec, "properties")), key.encode() if key else None)

    def secrets(self) -> list[str]:
        """What the run must mask in its output."""
        return [self.key.decode()] if self.key else []

    def digest(self, value: Any) -> str:
        data = str(value).encode()
        if self.key is None:
            return hashlib.sha256(data).hexdigest()
        return hmac.new(self.key, data, hashlib.sha256).hexdigest()

    def __call__(self, message: Message) -> Iterable[Message]:
        if isinstance(message, SchemaMessage) and self.applies(message.stream):
            props = dict(message.schema.get("properties", {}))
            for prop in self.properties:
                if prop in props:
                    props[prop] = {"type": ["string", "null"]}
            return (replace(message, schema={**message.schema, "properties": props}),)
        if isinstance(message, RecordMessage) and self.applies(message.stream):
            record = message.record
            digest = self.digest
            for prop in self.properties:
                value = record.get(prop)
                if value is not None:
                    record[prop] = digest(value)
        return (message,)
