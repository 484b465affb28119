"""Singer messages as slotted dataclasses, and their wire-dict form.

The wire form follows singer-python and the Meltano Singer SDK exactly, so our
output is read by their targets and theirs by ours.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Any

from dpone_protocol.errors import ProtocolError


class MessageType(enum.StrEnum):
    SCHEMA = "SCHEMA"
    RECORD = "RECORD"
    STATE = "STATE"
    BATCH = "BATCH"
    ACTIVATE_VERSION = "ACTIVATE_VERSION"


@dataclass(slots=True)
class SchemaMessage:
    stream: str
    schema: dict[str, Any]
    key_properties: list[str] = field(default_factory=list)
    bookmark_properties: list[str] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "type": "SCHEMA",
            "stream": self.stream,
            "schema": self.schema,
            "key_properties": self.key_properties,
        }
        if self.bookmark_properties:
            out["bookmark_properties"] = self.bookmark_properties
        return out


@dataclass(slots=True)
class RecordMessage:
    stream: str
    record: dict[str, Any]
    version: int | None = None
    time_extracted: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": "RECORD", "stream": self.stream, "record": self.record}
        if self.version is not None:
            out["version"] = self.version
        if self.time_extracted is not None:
            out["time_extracted"] = self.time_extracted
        return out


@dataclass(slots=True)
class StateMessage:
    value: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {"type": "STATE", "value": self.value}


@dataclass(slots=True, frozen=True)
class BatchEncoding:
    format: str = "jsonl"  # jsonl | parquet
    compression: str | None = "gzip"  # gzip | None

    def to_dict(self) -> dict[str, Any]:
        return {"format": self.format, "compression": self.compression}


@dataclass(slots=True)
class BatchMessage:
    stream: str
    encoding: BatchEncoding
    manifest: list[str]
    # dpone's manifest (batch_manifest.BatchManifest.to_dict(): each file's size, SHA-256 and rows,
    # the cleanup policy), under a key of its own: Singer SDK targets read `manifest` and ignore it.
    checked: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {
            "type": "BATCH",
            "stream": self.stream,
            "encoding": self.encoding.to_dict(),
            "manifest": self.manifest,
        }
        if self.checked is not None:
            out["dpone_manifest"] = self.checked
        return out


@dataclass(slots=True)
class ActivateVersionMessage:
    stream: str
    version: int

    def to_dict(self) -> dict[str, Any]:
        return {"type": "ACTIVATE_VERSION", "stream": self.stream, "version": self.version}


Message = SchemaMessage | RecordMessage | StateMessage | BatchMessage | ActivateVersionMessage


def _require(obj: dict[str, Any], key: str, kind: type | tuple[type, ...], line: int | None) -> Any:
    try:
        value = obj[key]
    except KeyError:
        raise ProtocolError(f"{obj.get('type')} message has no {key!r}", line=line, stream=_stream_of(obj)) from None
    if not isinstance(value, kind):
        names = kind.__name__ if isinstance(kind, type) else " or ".join(k.__name__ for k in kind)
        raise ProtocolError(
            f"{obj.get('type')} message field {key!r} must be {names}, got {type(value).__name__}",
            line=line,
            stream=_stream_of(obj),
        )
    return value


def _stream_of(obj: dict[str, Any]) -> str | None:
    stream = obj.get("stream")
    return stream if isinstance(stream, str) else None


def from_dict(obj: Any, line: int | None = None) -> Message:
    """Build a message from its decoded wire form, checking required fields."""
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}", line=line)
    mtype = obj.get("type")
    if mtype == "RECORD":
        stream, record = obj.get("stream"), obj.get("record")
        # The hot path: one check per field for the common well-formed case.
        if stream.__class__ is not str or record.__class__ is not dict:
            stream, record = _require(obj, "stream", str, line), _require(obj, "record", dict, line)
        version = obj.get("version")
        if version is not None and (version.__class__ is not int):
            version = None
        extracted = obj.get("time_extracted")
        return RecordMessage(stream, record, version, extracted if extracted.__class__ is str else None)
    if mtype == "STATE":
        return StateMessage(_require(obj, "value", dict, line))
    if mtype == "SCHEMA":
        keys = obj.get("key_properties") or []
        if not isinstance(keys, list) or not all(isinstance(k, str) for k in keys):
            raise ProtocolError("key_properties must be a list of strings", line=line, stream=_stream_of(obj))
        bookmarks = obj.get("bookmark_properties") or None
        if isinstance(bookmarks, str):
            bookmarks = [bookmarks]  # singer-python taps sometimes send a bare string
        return SchemaMessage(_require(obj, "stream", str, line), _require(obj, "schema", dict, line), keys, bookmarks)
    if mtype == "ACTIVATE_VERSION":
        return ActivateVersionMessage(_require(obj, "stream", str, line), _require(obj, "version", int, line))
    if mtype == "BATCH":
        enc = _require(obj, "encoding", dict, line)
        return BatchMessage(
            _require(obj, "stream", str, line),
            BatchEncoding(enc.get("format", "jsonl"), enc.get("compression")),
            _require(obj, "manifest", list, line),
            obj.get("dpone_manifest"),
        )
    if mtype is None:
        raise ProtocolError("message has no 'type'", line=line, stream=_stream_of(obj))
    raise ProtocolError(f"unknown message type {mtype!r}", line=line, stream=_stream_of(obj))
