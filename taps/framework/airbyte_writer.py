"""Singer messages in, Airbyte messages out: the byte stream a tap writes to under `read`.

The tap's sync loop is unchanged: it writes Singer lines into :class:`AirbyteOutput`, which
turns each complete line into Airbyte messages on the real stdout. RECORD payloads are
spliced as bytes when the line has the framework's own shape, so numbers keep every digit
and nothing is decoded twice; other lines are decoded exactly.
"""

from __future__ import annotations

import threading
import time
from typing import IO, Any

from dpone_protocol.airbyte import (
    StreamNames,
    stream_state_message,
    stream_status_message,
)
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC, decode_line
from dpone_protocol.errors import ConfigError
from dpone_protocol.wire import airbyte_record, airbyte_record_head, split_record


def now_ms() -> int:
    return int(time.time() * 1000)


class AirbyteOutput:
    """A binary sink for Singer lines that writes their Airbyte translation to `out`."""

    def __init__(self, out: IO[bytes], names: StreamNames, input_bookmarks: dict[str, Any] | None = None) -> None:
        self.out = out
        self.names = names
        self._pending = b""
        self._lock = threading.Lock()  # log lines may come from other threads
        # Per Singer stream: the JSON prefix of its Airbyte RECORD, the last state sent, records since.
        self._heads: dict[bytes, bytes] = {}
        self._sent: dict[str, Any] = dict(input_bookmarks or {})
        self._counts: dict[str, int] = {}
        self.started: list[str] = []
        self.records = 0

    # -- the file-like side the tap writes to -----------------------------------------------------
    def write(self, data: bytes) -> int:
        buffer = self._pending + data if self._pending else data
        end = buffer.rfind(b"\n")
        if end < 0:
            self._pending = buffer
            return len(data)
        self._pending = buffer[end + 1 :]
        for line in buffer[:end].split(b"\n"):
            if line.strip():
                self._translate(line.strip())
        return len(data)

    def flush(self) -> None:
        self.out.flush()

    # -- direct emission -----------------------------------------------------------------------------
    def emit(self, message: dict[str, Any]) -> None:
        line = DEFAULT_CODEC.dumps(message) + b"\n"
        with self._lock:
            self.out.write(line)

    def finish(self, status: str) -> None:
        """Close the status of every stream that started (COMPLETE or INCOMPLETE)."""
        for sid in self.started:
            self.emit(stream_status_message(self.names.descriptor(sid), status, now_ms()))
        self.started = []
        self.flush()

    # -- translation ---------------------------------------------------------------------------------
    def _translate(self, line: bytes) -> None:
        own = split_record(line)
        if own is not None:
            # The framework's own layout: the record's bytes go on as they are, digits and all.
            self._record(own[0].decode(), own[1])
            return
        obj = decode_line(line, 0, EXACT_CODEC)
        kind = obj.get("type")
        if kind == "RECORD":
            self._record(str(obj["stream"]), DEFAULT_CODEC.dumps(obj["record"]))
        elif kind == "STATE":
            self._state(obj.get("value") or {})
        elif kind == "SCHEMA":
            sid = str(obj["stream"])
            if sid not in self.started:
                self.started.append(sid)
                self.emit(stream_status_message(self.names.descriptor(sid), "STARTED", now_ms()))
        elif kind == "BATCH":
            raise ConfigError("batch_config is Singer-only: Airbyte `read` sends RECORD messages; remove it")
        # ACTIVATE_VERSION has no Airbyte counterpart: a destination's overwrite mode does its job.

    def _record(self, sid: str, data: bytes) -> None:
        key = sid.encode()
        head = self._heads.get(key)
        if head is None:
            descriptor = self.names.descriptor(sid)
            head = self._heads[key] = airbyte_record_head(descriptor["name"], descriptor.get("namespace"))
        self._counts[sid] = self._counts.get(sid, 0) + 1
        self.records += 1
        with self._lock:
            self.out.write(airbyte_record(head, now_ms(), data))

    def _state(self, value: dict[str, Any]) -> None:
        """One per-stream STATE for each bookmark that moved, or whose stream sent records since."""
        for sid, bookmark in (value.get("bookmarks") or {}).items():
            count = self._counts.pop(sid, 0)
            if sid in self._sent and self._sent[sid] == bookmark and not count:
                continue
            self._sent[sid] = bookmark
            message = stream_state_message(self.names.descriptor(sid), bookmark)
            message["state"]["sourceStats"] = {"recordCount": float(count)}
            self.emit(message)
