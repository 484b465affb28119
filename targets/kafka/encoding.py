"""How a Singer record becomes a Kafka message: topic, key, headers and value.

* Topic: `topic_map[stream]`, else the `topic` template with `{stream}` replaced by the stream
  name (characters a topic name cannot have become `_`).
* Key (`key_format`): `json` is the key properties as a compact JSON object in key_properties order,
  `{"id":42}` or `{"tenant":"a","id":42}`; `string` is the one key property's value as text (a string
  as is, a number as its JSON text). The same record always gives the same bytes, so the default
  partitioner (murmur2, as the Java client) sends every version of a key to the same partition.
  A stream without key properties sends messages without a key.
* Headers: `dpone-stream` (the stream name), `dpone-schema` (a fingerprint of the stream's schema
  and key properties: 16 hex digits of a SHA-256), `dpone-op` (`insert`, or `delete` for a record
  with `_sdc_deleted_at`).
* Value: the record as compact JSON, or Avro in the Confluent wire format (schema registered under
  `<topic>-value`). A delete may also (or only) be sent as a tombstone: the key with a null value.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import orjson

from dpone_drivers.kafka import check_topic
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError

KEY_FORMATS = ("json", "string")
VALUE_FORMATS = ("json", "avro")
DELETE_MODES = ("record", "tombstone", "record_and_tombstone")
STREAM_HEADER = "dpone-stream"
SCHEMA_HEADER = "dpone-schema"
OP_HEADER = "dpone-op"
_NOT_IN_TOPICS = re.compile(r"[^A-Za-z0-9._-]")


def topic_for(stream: str, template: str, topic_map: Mapping[str, Any] | None) -> str:
    if topic_map and stream in topic_map:
        return check_topic(str(topic_map[stream]), f"topic_map[{stream!r}]")
    if "{stream}" not in template and template.count("{") != 0:
        raise ConfigError(f"topic {template!r}: the only placeholder is {{stream}}")
    return check_topic(template.replace("{stream}", _NOT_IN_TOPICS.sub("_", stream)), f"topic for stream {stream!r}")


def schema_fingerprint(schema: Mapping[str, Any], key_properties: Sequence[str]) -> str:
    canonical = orjson.dumps({"key_properties": list(key_properties), "schema": schema}, option=orjson.OPT_SORT_KEYS)
    return hashlib.sha256(canonical).hexdigest()[:16]


def key_encoder(
    key_properties: Sequence[str], key_format: str, stream: str
) -> Callable[[dict[str, Any]], bytes | None]:
    """The function from a record to its message key."""
    keys = list(key_properties)
    dumps = DEFAULT_CODEC.dumps
    if not keys:
        return lambda record: None
    if key_format == "string":
        if len(keys) != 1:
            raise ConfigError(
                f"stream {stream!r}: key_format string needs exactly one key property, it has {keys}; use json"
            )
        (only,) = keys

        def as_text(record: dict[str, Any]) -> bytes:
            value = record[only]
            return value.encode() if isinstance(value, str) else dumps(value)

        return as_text
    if len(keys) == 1:
        (only,) = keys
        return lambda record: dumps({only: record[only]})
    return lambda record: dumps({k: record[k] for k in keys})


def headers_for(stream: str, fingerprint: str) -> tuple[list[tuple[str, bytes]], list[tuple[str, bytes]]]:
    """The headers of an insert and of a delete."""
    base = [(STREAM_HEADER, stream.encode()), (SCHEMA_HEADER, fingerprint.encode())]
    return [*base, (OP_HEADER, b"insert")], [*base, (OP_HEADER, b"delete")]
