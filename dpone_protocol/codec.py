"""Framing and decoding of the newline-delimited message stream.

The codec (bytes <-> Python objects) is swappable behind :class:`Codec`; orjson is
the default and the stdlib one exists for comparison and conformance tests.
The reader has two modes: :meth:`MessageReader.frames` hands out raw lines for code
that only routes messages, :meth:`MessageReader.messages` decodes and validates. What the
envelope's bytes look like (for peeks and splices that skip the codec) is in wire.py.
"""

from __future__ import annotations

import datetime as dt
import decimal
import json
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import IO, Any, Protocol

import orjson

from dpone_protocol.errors import ProtocolError
from dpone_protocol.messages import Message, RecordMessage, SchemaMessage, from_dict
from dpone_protocol.wire import peek_head


class Codec(Protocol):
    name: str

    def loads(self, data: bytes) -> Any: ...

    def dumps(self, obj: Any) -> bytes:
        """Serialize to one line of JSON, without the trailing newline."""
        ...


def _orjson_default(obj: Any) -> Any:
    if isinstance(obj, decimal.Decimal):
        # A JSON number with every digit kept; a float would round it.
        if not obj.is_finite():
            return str(obj)
        # Plain digits, unless that would take more than a thousand of them (1E+999999999).
        return orjson.Fragment(format(obj, "f") if -1000 < obj.adjusted() < 1000 else str(obj))
    if isinstance(obj, (bytes, bytearray, memoryview)):
        import base64  # noqa: PLC0415 - rare path

        return base64.b64encode(bytes(obj)).decode("ascii")
    if isinstance(obj, (set, frozenset, tuple)):
        return list(obj)
    raise TypeError(f"cannot serialize {type(obj).__name__}")


def reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


class OrjsonCodec:
    """The fast default. Numbers become float or 64-bit int: integers wider than 64 bits and
    decimals with more digits than a float holds are rounded; see :class:`ExactCodec`."""

    name = "orjson"

    def loads(self, data: bytes) -> Any:
        try:
            return orjson.loads(data)
        except orjson.JSONDecodeError:
            # orjson refuses a few valid documents (numbers beyond a double's range, e.g. 1e400);
            # the exact decoder reads them. Only failing lines pay for the second try.
            try:
                return _exact_loads(data)
            except ValueError:
                pass
            raise

    def dumps(self, obj: Any) -> bytes:
        try:
            return orjson.dumps(obj, default=_orjson_default)
        except TypeError:
            return _dumps_rare(obj, 0)

    def dumps_line(self, obj: Any) -> bytes:
        """One line with its newline, without copying the bytes to append it."""
        try:
            return orjson.dumps(obj, default=_orjson_default, option=orjson.OPT_APPEND_NEWLINE)
        except TypeError:
            return _dumps_rare(obj, orjson.OPT_APPEND_NEWLINE)


def _dumps_rare(obj: Any, option: int) -> bytes:
    """What orjson's fast call refused: non-string dict keys (the option costs ~60% on every call,
    so only on retry), or an integer wider than 64 bits (written with every digit)."""
    option |= orjson.OPT_NON_STR_KEYS
    try:
        return orjson.dumps(obj, default=_orjson_default, option=option)
    except TypeError:
        return orjson.dumps(_wide_ints(obj), default=_orjson_default, option=option)


def _wide_ints(obj: Any) -> Any:
    """`obj` with integers orjson cannot write (beyond 64 bits) as Decimal, which it writes exactly."""
    if type(obj) is int:
        return obj if -(2**63) <= obj < 2**64 else decimal.Decimal(obj)
    if isinstance(obj, dict):
        return {k: _wide_ints(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_wide_ints(v) for v in obj]
    return obj


class _StdlibEncoder(json.JSONEncoder):
    def default(self, o: Any) -> Any:
        if isinstance(o, decimal.Decimal):
            return str(o)
        if isinstance(o, (dt.datetime, dt.date, dt.time)):
            return o.isoformat()
        return super().default(o)


class StdlibCodec:
    name = "json"

    def loads(self, data: bytes) -> Any:
        return json.loads(data)

    def dumps(self, obj: Any) -> bytes:
        return json.dumps(obj, cls=_StdlibEncoder, ensure_ascii=False, separators=(",", ":")).encode()


def exact_int(text: str) -> int | decimal.Decimal:
    # Wider than int64 stays exact as a Decimal, which every encoder here writes as a bare number.
    return int(text) if len(text) < 19 else decimal.Decimal(text)


def _exact_loads(data: bytes) -> Any:
    return json.loads(data, parse_float=decimal.Decimal, parse_int=exact_int, parse_constant=reject_constant)


class ExactCodec(OrjsonCodec):
    """Every JSON number kept exactly: non-integers as Decimal, integers of any width.

    Several times slower to decode than orjson; targets use it only for streams that
    declare exact numeric columns (integers wider than 64 bits, numbers with multipleOf).
    """

    name = "exact"

    def loads(self, data: bytes) -> Any:
        return _exact_loads(data)


DEFAULT_CODEC: Codec = OrjsonCodec()
EXACT_CODEC: Codec = ExactCodec()


@dataclass(slots=True)
class Frame:
    """One raw line of the stream (without its newline) and where it came from."""

    line: int
    raw: bytes

    def peek(self, codec: Codec = DEFAULT_CODEC) -> tuple[str, str | None]:
        """The message type and stream, decoding the whole line only when needed."""
        head = peek_head(self.raw)
        if head is not None:
            return head
        obj = decode_line(self.raw, self.line, codec)
        mtype_value = obj.get("type")
        stream_value = obj.get("stream")
        if mtype_value == "STATE" or not isinstance(stream_value, str):
            return str(mtype_value), None
        return str(mtype_value), stream_value


def decode_line(raw: bytes, line: int, codec: Codec = DEFAULT_CODEC) -> dict[str, Any]:
    try:
        obj = codec.loads(raw)
    except ValueError as exc:
        snippet = raw[:80].decode("utf-8", "replace")
        raise ProtocolError(f"malformed JSON ({exc}): {snippet!r}", line=line) from None
    if not isinstance(obj, dict):
        raise ProtocolError(f"expected a JSON object, got {type(obj).__name__}", line=line)
    return obj


class MessageReader:
    """Reads messages from a binary stream, one JSON object per line."""

    def __init__(
        self, stream: IO[bytes] | Iterable[bytes], codec: Codec = DEFAULT_CODEC, *, require_schema: bool = True
    ) -> None:
        self._stream = stream
        self._codec = codec
        self._require_schema = require_schema
        self._schemas: set[str] = set()
        self.line = 0

    def frames(self) -> Iterator[Frame]:
        """Raw, undecoded lines: the pass-through mode. Blank lines are skipped."""
        for raw in self._stream:
            self.line += 1
            stripped = raw.strip()
            if stripped:
                yield Frame(self.line, stripped)

    def messages(self) -> Iterator[Message]:
        codec = self._codec
        require = self._require_schema
        schemas = self._schemas
        for frame in self.frames():
            msg = from_dict(decode_line(frame.raw, frame.line, codec), frame.line)
            if require:
                if isinstance(msg, RecordMessage):
                    if msg.stream not in schemas:
                        raise ProtocolError(
                            "RECORD received before any SCHEMA for this stream",
                            line=frame.line,
                            stream=msg.stream,
                        )
                elif isinstance(msg, SchemaMessage):
                    schemas.add(msg.stream)
            yield msg

    __iter__ = messages


class MessageWriter:
    """Writes messages as lines. Call :meth:`flush` where the reader must see them."""

    def __init__(self, stream: IO[bytes], codec: Codec = DEFAULT_CODEC) -> None:
        self.stream = stream
        self._stream = stream
        self._codec = codec
        dumps_line = getattr(codec, "dumps_line", None)
        self._line: Callable[[Any], bytes] = dumps_line or (lambda obj: codec.dumps(obj) + b"\n")

    def write(self, message: Message) -> None:
        self._stream.write(self._line(message.to_dict()))

    def write_record(self, stream: str, record: dict[str, Any], time_extracted: str | None = None) -> None:
        """Fast path for the hot loop: no message object per row."""
        obj: dict[str, Any] = {"type": "RECORD", "stream": stream, "record": record}
        if time_extracted is not None:
            obj["time_extracted"] = time_extracted
        self._stream.write(self._line(obj))

    def write_raw(self, line: bytes) -> None:
        self._stream.write(line if line.endswith(b"\n") else line + b"\n")

    def flush(self) -> None:
        self._stream.flush()
