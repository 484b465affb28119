"""Airbyte destination input as the Singer stream the target loop already reads, and back.

:class:`AirbyteInput` turns each Airbyte line into exactly one Singer line (a blank one for
messages a destination ignores), so line numbers in errors are those of the Airbyte input.
Airbyte STATEs travel through the loop inside one Singer state value that accumulates the
newest state per stream (and the newest GLOBAL or LEGACY one); the loop's commit-then-echo
logic holds it back until its records are committed, then :class:`StateEcho` sends out, as
they came, the Airbyte states that changed since the last echo.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any

from dpone.targets.framework.capabilities import APPEND, OVERWRITE, UPSERT
from dpone_protocol.airbyte import plain_json_schema, shown
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC, decode_line
from dpone_protocol.errors import ConfigError, ProtocolError
from dpone_protocol.messages import SchemaMessage

SYNC_MODES = {"append": APPEND, "overwrite": OVERWRITE, "append_dedup": UPSERT}
STATES_KEY = "airbyte_states"  # where the Singer state value carries the Airbyte states
_IGNORED = frozenset(("LOG", "TRACE", "CONTROL"))


@dataclass(frozen=True, slots=True)
class ConfiguredStream:
    namespace: str | None
    name: str
    singer_stream: str  # namespace-name, as Singer database taps name streams
    schema: dict[str, Any]
    key_properties: list[str]
    load_method: str

    def schema_message(self) -> SchemaMessage:
        return SchemaMessage(self.singer_stream, self.schema, self.key_properties)


def _paths(value: Any, what: str, stream: str) -> list[str]:
    if not value:
        return []
    if not isinstance(value, list) or not all(isinstance(p, list) and len(p) == 1 for p in value):
        raise ConfigError(f"configured catalog, stream {stream!r}: {what} must name top-level fields")
    return [str(p[0]) for p in value]


def configured_streams(catalog: Any, supported: Iterable[str]) -> list[ConfiguredStream]:
    """The streams of a ConfiguredAirbyteCatalog, with the load method each destination_sync_mode means."""
    if not isinstance(catalog, dict) or not isinstance(catalog.get("streams"), list):
        raise ConfigError("configured catalog must be a JSON object with a 'streams' list")
    supported = tuple(supported)
    modes = [m for m, method in SYNC_MODES.items() if method in supported]
    out: list[ConfiguredStream] = []
    for position, item in enumerate(catalog["streams"]):
        stream = item.get("stream") if isinstance(item, dict) else None
        if not isinstance(stream, dict) or not isinstance(stream.get("name"), str):
            raise ConfigError(f"configured catalog: streams[{position}] needs stream.name")
        label = shown(stream)
        schema = plain_json_schema(stream.get("json_schema") or {})
        if not isinstance(schema, dict) or not isinstance(schema.get("properties", {}), dict):
            raise ConfigError(f"configured catalog, stream {label!r}: json_schema must be an object schema")
        mode = item.get("destination_sync_mode", "append")
        method = SYNC_MODES.get(mode)
        if method is None or method not in supported:
            raise ConfigError(
                f"configured catalog, stream {label!r}: destination_sync_mode {mode!r} is not supported "
                f"(supported: {', '.join(modes)})"
            )
        keys = _paths(item.get("primary_key") or stream.get("source_defined_primary_key"), "primary_key", label)
        if method == UPSERT and not keys:
            raise ConfigError(f"configured catalog, stream {label!r}: append_dedup needs a primary_key")
        namespace = stream.get("namespace") if isinstance(stream.get("namespace"), str) else None
        singer = f"{namespace}-{stream['name']}" if namespace else stream["name"]
        if any(s.singer_stream == singer for s in out):
            raise ConfigError(f"configured catalog: two streams would both load into {singer!r}")
        out.append(ConfiguredStream(namespace, stream["name"], singer, schema, keys, method))
    return out


def _iso(ms: Any) -> str | None:
    if not isinstance(ms, (int, float)) or isinstance(ms, bool):
        return None
    return dt.datetime.fromtimestamp(ms / 1000, dt.UTC).isoformat()


class AirbyteInput:
    """Airbyte messages in, one Singer line per input line out."""

    def __init__(self, source: IO[bytes] | Iterable[bytes], streams: list[ConfiguredStream]) -> None:
        self.source = source
        self.streams = {(s.namespace, s.name): s.singer_stream for s in streams}
        self.states: dict[str, Any] = {}

    def lines(self) -> Iterator[bytes]:
        for number, raw in enumerate(self.source, 1):
            line = raw.strip()
            yield self._translate(line, number) if line else b"\n"

    def _translate(self, line: bytes, number: int) -> bytes:
        # Exact decoding: a number reaches the target loop with every digit it had.
        obj = decode_line(line, number, EXACT_CODEC)
        kind = obj.get("type")
        if kind == "RECORD":
            return self._record(obj.get("record"), number)
        if kind == "STATE":
            return self._state(obj.get("state"), number)
        if kind in _IGNORED:
            return b"\n"
        if kind is None:
            raise ProtocolError("Airbyte message has no 'type'", line=number)
        raise ProtocolError(f"Airbyte message type {kind!r} has no place in a destination's input", line=number)

    def _record(self, record: Any, number: int) -> bytes:
        if not isinstance(record, dict) or not isinstance(record.get("stream"), str):
            raise ProtocolError("Airbyte RECORD needs record.stream and record.data", line=number)
        namespace = record.get("namespace") if isinstance(record.get("namespace"), str) else None
        stream = self.streams.get((namespace, record["stream"]))
        if stream is None:
            raise ProtocolError(
                f"RECORD for stream {shown({**record, 'name': record['stream']})!r}, "
                "which the configured catalog does not have",
                line=number,
            )
        data = record.get("data")
        if not isinstance(data, dict):
            raise ProtocolError("Airbyte RECORD needs record.stream and record.data", line=number, stream=stream)
        singer: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": data}
        extracted = _iso(record.get("emitted_at"))
        if extracted is not None:
            singer["time_extracted"] = extracted
        return DEFAULT_CODEC.dumps(singer) + b"\n"

    def _state(self, state: Any, number: int) -> bytes:
        if not isinstance(state, dict):
            raise ProtocolError("Airbyte STATE needs a 'state' object", line=number)
        kind = state.get("type", "LEGACY")
        if kind == "STREAM":
            descriptor = (state.get("stream") or {}).get("stream_descriptor")
            if not isinstance(descriptor, dict) or not isinstance(descriptor.get("name"), str):
                raise ProtocolError("Airbyte STREAM state needs stream.stream_descriptor.name", line=number)
            key = DEFAULT_CODEC.dumps(["STREAM", descriptor.get("namespace"), descriptor["name"]]).decode()
        elif kind == "GLOBAL":
            if not isinstance(state.get("global"), dict):
                raise ProtocolError("Airbyte GLOBAL state needs a 'global' object", line=number)
            key = "GLOBAL"
        elif kind == "LEGACY":
            key = "LEGACY"
        else:
            raise ProtocolError(f"unknown Airbyte state type {kind!r}", line=number)
        # Moved to the end: states echo in the order they last arrived. The line tells a repeated
        # state (the same value again, after more records) from the one already echoed.
        self.states.pop(key, None)
        self.states[key] = {"line": number, "state": state}
        return DEFAULT_CODEC.dumps({"type": "STATE", "value": {STATES_KEY: dict(self.states)}}) + b"\n"


class StateEcho:
    """Where the target loop writes its STATE lines: Airbyte STATEs go out on `out`."""

    def __init__(self, out: IO[bytes]) -> None:
        self.out = out
        self._pending = b""
        self._sent: dict[str, int] = {}  # state key -> input line of the state last echoed
        self._lock = threading.Lock()
        self.echoed = 0

    def write(self, data: bytes) -> int:
        buffer = self._pending + data
        end = buffer.rfind(b"\n")
        self._pending = buffer[end + 1 :]
        for line in buffer[: max(end, 0)].split(b"\n"):
            if line.strip():
                self._echo(decode_line(line.strip(), 0, EXACT_CODEC))
        return len(data)

    def _echo(self, message: dict[str, Any]) -> None:
        value = message.get("value") if message.get("type") == "STATE" else message
        states = (value or {}).get(STATES_KEY) or {}
        for key, held in states.items():
            if self._sent.get(key) == held["line"]:
                continue
            self._sent[key] = held["line"]
            self.emit({"type": "STATE", "state": held["state"]})
            self.echoed += 1

    def emit(self, message: dict[str, Any]) -> None:
        with self._lock:
            self.out.write(DEFAULT_CODEC.dumps(message) + b"\n")

    def flush(self) -> None:
        self.out.flush()
