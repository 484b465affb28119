"""tap-kafka: topics as streams, each read from its committed offsets up to the end offsets fixed at start.

A stream's schema is declared in `streams`, derived from the Schema Registry (Avro values), or
inferred from a sample of the topic's newest messages (JSON values).
"""

from __future__ import annotations

import contextlib
import logging
import math
import re
import time
from collections.abc import Callable, Collection, Mapping
from typing import Any, ClassVar

import orjson

from dpone.taps.framework.schema_inference import SchemaInferrer
from dpone.taps.framework.stream import Stream
from dpone.taps.framework.tap import Tap
from dpone.taps.kafka.messages import (
    DELETED_AT,
    METADATA_PROPERTIES,
    InvalidMessage,
    avro_decoder,
    json_decoder,
    json_object,
)
from dpone.taps.kafka.stream import KafkaStream
from dpone_drivers import kafka
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError
from dpone_protocol.settings import Setting

log = logging.getLogger(__name__)
METADATA_KEYS = ["_kafka_partition", "_kafka_offset"]


class KafkaTap(Tap):
    name = "tap-kafka"
    drivers: ClassVar[dict[str, str]] = {"confluent_kafka": "kafka"}
    description = "Reads Kafka topics as streams, bounded by the end offsets at start; offsets per partition in STATE."
    replication_methods: ClassVar[tuple[str, ...]] = ("LOG_BASED",)  # a topic is read from its offsets
    settings: ClassVar[tuple[Setting, ...]] = (
        *kafka.CONNECTION_SETTINGS,
        Setting("topics", "array", 'Topics to read, each a stream of the same name: ["orders", "customers"].'),
        Setting(
            "topic_pattern", "string", r"Also read every topic whose whole name matches this regex, e.g. orders\..*"
        ),
        Setting(
            "streams",
            "array",
            'Per topic: its stream name, schema and key properties, e.g. [{"topic": "orders.v1", "stream": '
            '"orders", "key_properties": ["id"], "schema": {"type": "object", "properties": {...}}}].',
        ),
        Setting(
            "value_format",
            "string",
            "json, or avro (Confluent wire format; the schema from the registry's <topic>-value subject).",
            default="json",
            choices=("json", "avro"),
        ),
        Setting(
            "metadata_columns",
            "boolean",
            "Add _kafka_topic, _kafka_partition, _kafka_offset, _kafka_timestamp and _kafka_key to each record "
            "(and make partition + offset the key when the stream declares none).",
            default=False,
        ),
        Setting("schema_sample_size", "integer", "Messages read to infer a JSON topic's schema.", default=1000),
        Setting(
            "start_offset",
            "string",
            "Where a partition with no offset in the state starts: earliest, or latest (only new messages).",
            default="earliest",
            choices=("earliest", "latest"),
        ),
        Setting(
            "on_invalid_message",
            "string",
            "A message that does not decode: fail stops the run naming it; dead_letter sets it aside "
            "(dead_letter_topic, else dead_letter_path) and goes on.",
            default="fail",
            choices=("fail", "dead_letter"),
        ),
        Setting("dead_letter_path", "string", "Directory for <topic>.jsonl dead-letter files.", default="dead-letters"),
        Setting("dead_letter_topic", "string", "Topic to send dead letters to, as they were, instead of a file."),
        Setting("start_date", "string", "Not used: a topic is read from its offsets (see start_offset)."),
        Setting(
            "on_offset_gap",
            "string",
            "Messages after the state's offset already deleted by retention: fail, or skip them (lost).",
            default="fail",
            choices=("fail", "skip"),
        ),
        Setting("group_id", "string", "Consumer group id (for commits and broker quotas).", default="dpone-tap-kafka"),
        Setting(
            "commit_group_offsets",
            "boolean",
            "At start, commit the offsets of the state (what the last run's target committed) to group_id, so "
            "lag tools see it; never ahead of the state.",
            default=False,
        ),
        Setting("read_timeout_seconds", "integer", "Stop when no message arrives for this long.", default=60),
        Setting("consume_batch_size", "integer", "Messages taken from the client per call.", default=10_000),
        Setting("fetch_queue_mb", "integer", "Memory for messages fetched ahead of the reader.", default=8),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.redactor = Redactor()
        self.redactor.add_config(config, kafka.SECRET_KEYS)
        self._streams: list[Stream] | None = None
        self._registry: Any = None

    def _consumer_properties(self) -> dict[str, Any]:
        config = self.config
        return {
            "group.id": str(config.get("group_id") or "dpone-tap-kafka"),
            "enable.auto.commit": False,
            "enable.partition.eof": True,
            # An offset that vanished under the read (retention) is an error, never a silent jump.
            "auto.offset.reset": "error",
            "queued.max.messages.kbytes": int(config.get("fetch_queue_mb") or 8) * 1024,
            # Once the fetch queue is full, librdkafka waits this long before it looks again (1,000 ms by
            # default): a reader that empties it in a few ms would stand still for most of each second.
            "fetch.queue.backoff.ms": 20,
        }

    def consumer(self) -> Any:
        return kafka.consumer(self.config, self.redactor, **self._consumer_properties())

    def replay_plan(self, request: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        from dpone.taps.kafka.replay import replay_plan  # noqa: PLC0415 - only `--ops` asks

        return replay_plan(self, request, state)

    def reader_config(self) -> tuple[dict[str, str], dict[str, Any]]:
        """The consumer's librdkafka properties as text, for the compiled Reader, and its callbacks
        (keyword arguments): the same logger and error callback as the Python client's."""
        from confluent_kafka import KafkaError  # noqa: PLC0415 - lazy driver import

        conf = kafka.client_config(self.config, **self._consumer_properties())
        logger, on_error = conf.pop("logger"), conf.pop("error_cb")
        text = {k: ("true" if v else "false") if isinstance(v, bool) else str(v) for k, v in conf.items()}
        return text, {"logger": logger, "error_cb": lambda code, reason: on_error(KafkaError(code, reason))}

    def registry(self) -> Any:
        if self._registry is None:
            from dpone_drivers.schema_registry import SchemaRegistry  # noqa: PLC0415 - only for Avro

            url = self.config.get("schema_registry_url")
            if not url:
                raise ConfigError("value_format avro needs schema_registry_url")
            self._registry = SchemaRegistry(
                str(url),
                self.redactor,
                username=self.config.get("schema_registry_username"),
                password=self.config.get("schema_registry_password"),
            )
        return self._registry

    def decoder(self, selected: Collection[str] | None) -> Callable[[Any], Any]:
        """Message -> record; `selected` names the properties to keep when the catalog drops some."""
        metadata = bool(self.config.get("metadata_columns"))
        if self.config.get("value_format") == "avro":
            from dpone_drivers.avro import AvroDecoder  # noqa: PLC0415 - fastavro only for Avro

            return avro_decoder(AvroDecoder(self.registry()), metadata)
        return json_decoder(metadata, selected)

    def discover_streams(self) -> list[Stream]:
        if self._streams is None:  # sync asks for the streams and the catalog: one discovery per run
            self._streams = self._discover()
        return self._streams

    def _discover(self) -> list[Stream]:
        config = self.config
        declared = _declared_streams(config.get("streams") or [])
        wanted = [str(t) for t in config.get("topics") or []]
        pattern = config.get("topic_pattern")
        if not wanted and not declared and not pattern:
            raise ConfigError("tap-kafka needs topics, topic_pattern or streams to know what to read")
        for topic in (*wanted, *declared):
            kafka.check_topic(topic, "topics")
        consumer = self.consumer()
        try:
            existing = kafka.topic_partitions(consumer, None, config, self.redactor)
            topics = list(dict.fromkeys([*wanted, *declared]))
            if pattern:
                try:
                    regex = re.compile(str(pattern))
                except re.error as exc:
                    raise ConfigError(f"topic_pattern {pattern!r}: {exc}") from None
                topics += sorted(
                    t for t in existing if regex.fullmatch(t) and not t.startswith("__") and t not in topics
                )
            missing = [t for t in topics if t not in existing]
            if missing:
                raise ConfigError(f"topics {missing} do not exist (the cluster has {len(existing)} topics)")
            streams: list[Stream] = [self._stream(consumer, t, declared.get(t, {}), existing[t]) for t in topics]
        finally:
            consumer.close()
        names = [s.name for s in streams]
        if len(set(names)) != len(names):
            raise ConfigError(
                f"two topics give the same stream name: {sorted({n for n in names if names.count(n) > 1})}"
            )
        return streams

    def _stream(self, consumer: Any, topic: str, declared: Mapping[str, Any], partitions: int) -> KafkaStream:
        metadata = bool(self.config.get("metadata_columns"))
        schema = declared.get("schema")
        sampled_keys: list[str] = []
        if not declared.get("key_properties") or schema is None:
            avro = self.config.get("value_format") == "avro"
            sampled, sampled_keys = self._sample(consumer, topic, partitions, values=schema is None and not avro)
            if schema is None:
                schema = self._registry_schema(topic) if avro else sampled
                if not avro:
                    log.warning(
                        "stream %s: schema inferred from the newest messages (at most schema_sample_size); a property "
                        "only older messages have is not in it, and targets drop it: declare the schema in streams "
                        "for a topic that matters",
                        topic,
                    )
        properties = {**schema.get("properties", {}), **DELETED_AT, **(METADATA_PROPERTIES if metadata else {})}
        if any(k not in properties for k in sampled_keys):
            sampled_keys = []  # the message keys name fields the values do not have
        keys = list(declared.get("key_properties") or sampled_keys or (METADATA_KEYS if metadata else []))
        missing = [k for k in keys if k not in properties]
        if missing:
            raise ConfigError(f"streams: topic {topic!r}: key properties {missing} are not in its schema")
        name = str(declared.get("stream") or topic)
        return KafkaStream(self, topic, name, {**schema, "type": "object", "properties": properties}, keys)

    def _registry_schema(self, topic: str) -> dict[str, Any]:
        from dpone_drivers.avro_schema import json_schema_for  # noqa: PLC0415 - only for Avro
        from dpone_drivers.schema_registry import subject_for  # noqa: PLC0415

        latest = self.registry().latest(subject_for(topic))
        if latest is None:
            raise ConfigError(
                f"topic {topic!r}: no schema is registered under {subject_for(topic)}; declare one in streams"
            )
        return json_schema_for(latest[1])

    def _sample(self, consumer: Any, topic: str, partitions: int, *, values: bool) -> tuple[dict[str, Any], list[str]]:
        """Read the newest messages of every partition (at most schema_sample_size): the schema their
        JSON values give (with `values`), and the key properties their keys give: when every key is
        a JSON object with the same fields, as target-kafka writes them."""
        from confluent_kafka import TopicPartition  # noqa: PLC0415 - lazy driver import

        wanted = int(self.config.get("schema_sample_size") or 1000)
        timeout = float(self.config.get("connect_timeout") or 15)
        per_partition = max(1, math.ceil(wanted / max(partitions, 1)))
        assign, end = [], {}
        for p in range(partitions):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=timeout)
            except Exception as exc:  # KafkaException: the cluster stopped answering
                raise kafka.classify_exception(exc, self.redactor, f"topic {topic} partition {p}") from None
            if high > low:
                assign.append(TopicPartition(topic, p, max(low, high - per_partition)))
                end[p] = high
        inferrer = SchemaInferrer()
        keys = _KeyFields()
        if assign:
            consumer.assign(assign)
            deadline = time.monotonic() + timeout
            while end and time.monotonic() < deadline:
                for message in consumer.consume(1000, 0.1):
                    p = message.partition()
                    if message.error() is not None or message.offset() + 1 >= end.get(p, 0):
                        end.pop(p, None)
                    if message.error() is None and message.value() is not None:
                        keys.observe(message.key())
                        if values:
                            # A value that is not a record is left for the read to decide about.
                            with contextlib.suppress(InvalidMessage):
                                inferrer.observe(json_object(message.value(), exact=True))
            consumer.unassign()
        return inferrer.schema(), keys.names if keys.consistent and keys.names else []


def _declared_streams(entries: Any) -> dict[str, Mapping[str, Any]]:
    if not isinstance(entries, list) or not all(isinstance(e, Mapping) and e.get("topic") for e in entries):
        raise ConfigError('streams must be a list of objects with a "topic" each')
    declared: dict[str, Mapping[str, Any]] = {}
    for entry in entries:
        schema = entry.get("schema")
        if schema is not None and not (isinstance(schema, Mapping) and isinstance(schema.get("properties"), Mapping)):
            raise ConfigError(f"streams: topic {entry['topic']!r}: schema must be an object with properties")
        declared[str(entry["topic"])] = entry
    return declared


class _KeyFields:
    """The field names of JSON-object message keys, while every key seen has the same ones."""

    def __init__(self) -> None:
        self.names: list[str] | None = None
        self.consistent = True

    def observe(self, key: bytes | None) -> None:
        if not self.consistent:
            return
        try:
            parsed = orjson.loads(key) if key is not None else None
        except orjson.JSONDecodeError:
            parsed = None
        names = list(parsed) if isinstance(parsed, dict) and parsed else None
        if names is None or (self.names is not None and names != self.names):
            self.consistent = False
        self.names = names
