"""One Kafka message into one record: JSON values passed through as bytes, Avro decoded, metadata added.

A JSON value that is an object goes out as its own bytes (checked by parsing, never re-encoded),
so its numbers keep every digit. Metadata columns (`metadata_columns`) are spliced in after the
object's last field. A tombstone (a null value) whose key is a JSON object, as target-kafka writes
keys, is a delete of that key: the key's fields and `_sdc_deleted_at` (the message's timestamp).
Anything else that does not decode raises `InvalidMessage`; the stream sends it to the dead letters
or stops, by setting.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from typing import Any

import orjson

from dpone.taps.framework.stream import EncodedRecord
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC

METADATA_PROPERTIES: dict[str, dict[str, Any]] = {
    "_kafka_topic": {"type": ["null", "string"]},
    "_kafka_partition": {"type": ["null", "integer"]},
    "_kafka_offset": {"type": ["null", "integer"]},
    "_kafka_timestamp": {"type": ["null", "string"], "format": "date-time"},
    "_kafka_key": {"type": ["null", "string"]},
}
DELETED_AT = {"_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"}}


class InvalidMessage(ValueError):
    """A message that is not a record: its value does not decode, or is not an object."""


class FetchedMessage:
    """A message the compiled Reader hands back for this module to decide about (a tombstone, a value
    it does not pass): what the decoders and the dead letters read of a confluent_kafka.Message."""

    __slots__ = ("_headers", "_key", "_offset", "_partition", "_timestamp", "_topic", "_value")

    def __init__(self, topic: str, fields: tuple[Any, ...]) -> None:
        # (partition, offset, key, value, timestamp type, timestamp ms, headers): Reader.read()'s stop.
        self._topic = topic
        self._partition, self._offset, self._key, self._value, kind, millis, self._headers = fields
        self._timestamp = (kind, millis)

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return int(self._partition)

    def offset(self) -> int:
        return int(self._offset)

    def key(self) -> bytes | None:
        return self._key  # type: ignore[no-any-return]

    def value(self) -> bytes | None:
        return self._value  # type: ignore[no-any-return]

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers  # type: ignore[no-any-return]

    def error(self) -> None:
        return None


def timestamp_of(message: Any) -> str | None:
    kind, millis = message.timestamp()
    if not kind:  # TIMESTAMP_NOT_AVAILABLE
        return None
    return dt.datetime.fromtimestamp(millis / 1000, dt.UTC).isoformat(timespec="milliseconds")


def json_object(value: bytes, *, exact: bool = False) -> dict[str, Any]:
    """The value as a JSON object. orjson checks it strictly (UTF-8, no byte-order mark), but reads
    wide integers and long decimals as floats: `exact` decodes them exactly, for values that are
    encoded again; a value passed through as bytes only needs the check."""
    try:
        parsed = orjson.loads(value)
        if exact:
            parsed = EXACT_CODEC.loads(value)
    except ValueError as exc:
        # Avro in the Confluent wire format opens with byte 0 and a schema id: a likely mix-up.
        hint = "; it looks like Avro (Confluent wire format): set value_format: avro" if value[:1] == b"\x00" else ""
        raise InvalidMessage(f"the value is not JSON ({exc}){hint}") from None
    if parsed.__class__ is not dict:
        raise InvalidMessage(f"the value is a JSON {_JSON_KINDS.get(type(parsed), 'value')}, not an object")
    return parsed


_JSON_KINDS = {type(None): "null", str: "string", int: "number", float: "number", bool: "boolean", list: "array"}


def _metadata(message: Any) -> dict[str, Any]:
    key = message.key()
    return {
        "_kafka_topic": message.topic(),
        "_kafka_partition": message.partition(),
        "_kafka_offset": message.offset(),
        "_kafka_timestamp": timestamp_of(message),
        # Keys are text to most producers; bytes that are not UTF-8 keep their value as \x escapes.
        "_kafka_key": None if key is None else key.decode("utf-8", "backslashreplace"),
    }


def _tombstone(message: Any) -> dict[str, Any]:
    key = message.key()
    if key is None:
        raise InvalidMessage("a tombstone (null value) without a key")
    try:
        fields = json_object(key, exact=True)
    except InvalidMessage:
        raise InvalidMessage("a tombstone (null value) whose key is not a JSON object: no record to delete") from None
    fields["_sdc_deleted_at"] = timestamp_of(message) or dt.datetime.now(dt.UTC).isoformat()
    return fields


def json_decoder(metadata: bool, selected: Collection[str] | None = None) -> Callable[[Any], EncodedRecord]:
    """Message -> record for JSON values; `selected`: the only properties to keep, when the
    catalog deselects some (the value is then decoded and encoded again)."""
    dumps = DEFAULT_CODEC.dumps

    def decode(message: Any) -> EncodedRecord:
        value = message.value()
        if value is None:
            record = _tombstone(message)
            if metadata:
                record.update(_metadata(message))
            return EncodedRecord(dumps(_only(record, selected)))
        if selected is not None:
            record = json_object(value, exact=True)
            if metadata:
                record.update(_metadata(message))
            return EncodedRecord(dumps(_only(record, selected)))
        parsed = json_object(value)
        if b"\n" in value or b"\r" in value:
            # A pretty-printed value: outside strings these are whitespace, inside they are escaped.
            value = value.replace(b"\r", b" ").replace(b"\n", b" ")
        if not metadata:
            return EncodedRecord(value)
        extra = _metadata(message)
        if not parsed or any(k in parsed for k in extra):
            return EncodedRecord(dumps({**json_object(value, exact=True), **extra}))
        body = value.rstrip()
        return EncodedRecord(body[:-1] + b"," + dumps(extra)[1:])

    return decode


def _only(record: dict[str, Any], selected: Collection[str] | None) -> dict[str, Any]:
    return record if selected is None else {k: v for k, v in record.items() if k in selected}


def avro_decoder(decoder: Any, metadata: bool) -> Callable[[Any], dict[str, Any]]:
    """Message -> record for Avro values in the Confluent wire format (the tap projects dicts itself)."""

    def decode(message: Any) -> dict[str, Any]:
        value = message.value()
        if value is None:
            record = _tombstone(message)
        else:
            try:
                record = decoder.decode(value)
            except ValueError as exc:
                raise InvalidMessage(f"the value is not Avro in the Confluent wire format ({exc})") from None
        if metadata:
            record.update(_metadata(message))
        return record

    return decode
