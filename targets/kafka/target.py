"""target-kafka: every record one message on its stream's topic; STATE once the brokers acknowledged it.

A topic is an append-only event log: the only load method is append-only, and nothing replaces
a topic (overwrite, ACTIVATE_VERSION) or removes a message from it (a delete is another message).
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping
from typing import Any, ClassVar

from dpone.targets.framework.capabilities import APPEND, TargetCapabilities
from dpone.targets.framework.encoded_rows import ADDED, ADDED_FULL, NOT_HANDLED
from dpone.targets.framework.sink import Sink
from dpone.targets.framework.target import Target
from dpone.targets.kafka.delivery import Delivery
from dpone.targets.kafka.encoding import (
    DELETE_MODES,
    KEY_FORMATS,
    VALUE_FORMATS,
    headers_for,
    key_encoder,
    schema_fingerprint,
    topic_for,
)
from dpone_drivers import kafka
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError
from dpone_protocol.json_schema import Logical
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.settings import Setting
from dpone_protocol.wire import split_compact_record

log = logging.getLogger(__name__)

ACTIVATE_VERSION_MODES = ("fail", "ignore")


class KafkaSink(Sink):
    """One stream's messages. Records are handed to the producer as they come (it batches them), so
    a sink holds no rows of its own: what is not acknowledged yet is the Delivery's to track."""

    stamp_load_times = True

    def __init__(self, target: KafkaTarget, schema: SchemaMessage) -> None:
        self.target = target
        self.delivery = target.shared_delivery()
        config = target.config
        self.topic = topic_for(schema.stream, str(config.get("topic") or "{stream}"), config.get("topic_map"))
        self.delete_mode = str(config.get("delete_mode") or DELETE_MODES[0])
        self.value_format = str(config.get("value_format") or VALUE_FORMATS[0])
        self.key_format = str(config.get("key_format") or "json")
        self.encode_value = DEFAULT_CODEC.dumps
        self.loads = DEFAULT_CODEC.loads
        self.produced_since_flush = 0
        self.bytes_since_flush = 0
        super().__init__(config, schema, target.policy)
        target.check_topic(self.topic, self.stream)

    def on_schema(self) -> None:
        self.key_of = key_encoder(self.key_properties, self.key_format, self.stream)
        fingerprint = schema_fingerprint(self.schema, self.key_properties)
        self.insert_headers, self.delete_headers = headers_for(self.stream, fingerprint)
        if self.value_format == "avro":
            self.encode_value = self.target.avro_encoder(self.topic, self.stream, self.schema)
        else:
            # A record the framework decodes is encoded again as the value: with every digit.
            self.exact_numbers = True
        # Keys are decoded from the record's bytes; a number key that is not a 64-bit int again exactly.
        self.float_keys = any(
            self.columns[k].logical not in (Logical.STRING, Logical.UUID) for k in self.key_properties
        )
        # JSON values pass through as they came, unless metadata fields must go into them.
        if self.value_format == "json" and not self.add_metadata:
            self.target.line_router.register(self.stream, self)
        else:
            self.target.line_router.unregister(self.stream)

    def add_record(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int
    ) -> bool:
        self.check_keys(record, line)
        if self.add_metadata:
            self.stamp(record, version, time_extracted)
        try:
            key = self.key_of(record)
            deleted = record.get("_sdc_deleted_at") is not None
            produce = self.delivery.produce
            if not deleted:
                produce(self.topic, self.encode_value(record), key, self.insert_headers)
            else:
                self._delete(record, key)
        except DataError as exc:
            raise DataError(f"line {line}, stream {self.stream!r}: {exc}") from None
        except DponeError:
            raise
        except Exception as exc:  # KafkaException from produce(): too large, unknown partition...
            raise kafka.classify_exception(exc, self.target.redactor, f"line {line}, stream {self.stream!r}") from None
        self.produced_since_flush += 1
        self.bytes_since_flush += size
        policy = self.policy
        return self.produced_since_flush >= policy.max_rows or self.bytes_since_flush >= policy.max_bytes

    def feed_record(self, body: bytes, size: int) -> int:
        """A record object's bytes as they came in its RECORD line (see KafkaRouter): they are the
        message's value, so every digit is kept and nothing is encoded again; the record is decoded
        only for its key. NOT_HANDLED leaves the line to the decoded path, which names any problem."""
        try:
            record = self.loads(body)
            if self.float_keys and any(record[k].__class__ is float for k in self.key_properties):
                record = EXACT_CODEC.loads(body)  # orjson reads wide integers and long decimals as floats
        except (ValueError, KeyError, TypeError):
            return NOT_HANDLED
        if record.__class__ is not dict or any(record.get(k) is None for k in self.key_properties):
            return NOT_HANDLED
        try:
            key = self.key_of(record)
            if record.get("_sdc_deleted_at") is None:
                self.delivery.produce(self.topic, body, key, self.insert_headers)
            else:
                self._delete(record, key, body)
        except Exception:
            self.delivery.raise_failure()  # an earlier message's failure is the run's error
            # This record's own problem (a delete that cannot be a tombstone, a message produce()
            # refuses): the decoded path meets it again and names the input line.
            return NOT_HANDLED
        self.produced_since_flush += 1
        self.bytes_since_flush += size
        policy = self.policy
        if self.produced_since_flush >= policy.max_rows or self.bytes_since_flush >= policy.max_bytes:
            return ADDED_FULL
        return ADDED

    def _delete(self, record: dict[str, Any], key: bytes | None, body: bytes | None = None) -> None:
        mode = self.delete_mode
        if mode != "record" and key is None:
            raise DataError("a delete cannot be a tombstone: the stream has no key properties (use delete_mode record)")
        if mode != "tombstone":
            value = body if body is not None else self.encode_value(record)
            self.delivery.produce(self.topic, value, key, self.delete_headers)
        if mode != "record":
            self.delivery.produce(self.topic, None, key, self.delete_headers)

    def write_batch(self, records: list[dict[str, Any]]) -> None:
        raise AssertionError("KafkaSink produces records as they come")  # pragma: no cover

    def is_full(self) -> bool:
        return self.produced_since_flush >= self.policy.max_rows or self.bytes_since_flush >= self.policy.max_bytes

    def has_rows(self) -> bool:
        return False  # every record is with the producer already: a STATE waits on its mark instead

    def batch_age(self) -> float:
        return self.delivery.age()

    def drain(self) -> None:
        self.delivery.flush()
        self.produced_since_flush = self.bytes_since_flush = 0

    def commit_mark(self) -> int:
        return self.delivery.produced

    def is_committed(self, mark: int) -> bool:
        return self.delivery.is_acked(mark)

    def activate_version(self, version: int) -> None:
        if str(self.config.get("activate_version") or "fail") == "ignore":
            log.info("stream %s: ACTIVATE_VERSION %d ignored (activate_version: ignore)", self.stream, version)
            return
        raise ConfigError(
            f"stream {self.stream!r} sent ACTIVATE_VERSION (a full-table sync replacing the table): a Kafka topic "
            "is an event log and is never replaced. Replicate the stream INCREMENTAL or LOG_BASED, or set "
            "activate_version: ignore to append each full sync's records and drop the marker"
        )

    def close(self) -> None:
        # A run stopping on an error: the messages in flight may still be acknowledged, and then the
        # state before the error goes out (Target._emit_after_failure asks is_committed next).
        self.delivery.settle_quietly(5.0)


class KafkaRouter:
    """Hands compact RECORD lines of a registered stream to its sink without decoding the envelope."""

    def __init__(self) -> None:
        self.sinks: dict[bytes, KafkaSink] = {}

    def register(self, stream: str, sink: KafkaSink) -> None:
        self.sinks[stream.encode()] = sink

    def unregister(self, stream: str) -> None:
        self.sinks.pop(stream.encode(), None)

    def feed(self, line: bytes) -> int:
        parts = split_compact_record(line)
        if parts is None:
            return NOT_HANDLED
        sink = self.sinks.get(parts[0])
        return NOT_HANDLED if sink is None else sink.feed_record(parts[1], len(line))


class FastKafkaRouter(KafkaRouter):
    """With the compiled producer (dpone_drivers/kafkafast/producer.c), registered streams' lines go
    to it: whole runs of them from the input block (`feed_run`, called by the framework's block
    reader), or a line at a time from the line loop (`feed`). It produces each record's bytes as
    they came, keyed and headed as the sink would. A line it is unsure of (a delete, an escaped
    key, another layout, bad JSON) comes back and takes the sink's own path (`feed_record`), then
    the decoded one, which names any problem with its line number."""

    def __init__(self, delivery: Delivery) -> None:
        super().__init__()
        self.delivery = delivery
        self.fast: dict[str, KafkaSink] = {}  # the streams the compiled producer takes

    def register(self, stream: str, sink: KafkaSink) -> None:
        super().register(stream, sink)
        keys = tuple(sink.key_properties)
        self.delivery.producer.register(stream, sink.topic, keys, sink.key_format, sink.insert_headers)
        self.fast[stream] = sink

    def unregister(self, stream: str) -> None:
        super().unregister(stream)
        if self.fast.pop(stream, None) is not None:
            self.delivery.producer.unregister(stream)

    def feed_run(self, block: bytes, at: int, line: int) -> tuple[int, int, bool]:
        """The run of one stream's RECORD lines at `at`: (where it ends, lines taken, batch full)."""
        fast = self.fast
        if not fast:
            return at, 0, False
        # A call takes one stream's lines, which one is known after it: the least room any batch
        # has left is the limit, so that no batch passes its size.
        rows = bytes_left = sys.maxsize
        for sink in fast.values():
            policy = sink.policy
            rows = min(rows, policy.max_rows - sink.produced_since_flush)
            bytes_left = min(bytes_left, policy.max_bytes - sink.bytes_since_flush)
        end, count, size, stream = self.delivery.feed_run(block, at, max(rows, 1), max(bytes_left, 1))
        if not count:
            return at, 0, False
        assert stream is not None  # it took lines: they were this stream's
        sink = fast[stream]
        sink.produced_since_flush += count
        sink.bytes_since_flush += size
        return end, count, sink.is_full()

    def feed(self, line: bytes) -> int:
        if self.fast:
            _, count, size, stream = self.delivery.feed_run(line, 0, 1, sys.maxsize)
            if count:
                assert stream is not None
                sink = self.fast[stream]
                sink.produced_since_flush += 1
                sink.bytes_since_flush += size
                return ADDED_FULL if sink.is_full() else ADDED
        return super().feed(line)


class KafkaTarget(Target):
    name = "target-kafka"
    drivers: ClassVar[dict[str, str]] = {"confluent_kafka": "kafka"}
    description = "Sends each stream to a Kafka topic, one message per record; STATE once the brokers acknowledged."
    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities(load_methods=(APPEND,))
    settings: ClassVar[tuple[Setting, ...]] = (
        *kafka.CONNECTION_SETTINGS,
        Setting("topic", "string", "Topic per stream; {stream} is the stream name.", default="{stream}"),
        Setting("topic_map", "object", 'Topic per stream, over the template: {"public-orders": "orders.v1"}.'),
        Setting(
            "key_format",
            "string",
            'Message key from the key properties: json ({"id":42}) or string (the one key\'s value as text).',
            default="json",
            choices=KEY_FORMATS,
        ),
        Setting(
            "value_format",
            "string",
            "json, or avro (Confluent wire format; needs schema_registry_url; subject <topic>-value).",
            default="json",
            choices=VALUE_FORMATS,
        ),
        Setting(
            "delete_mode",
            "string",
            "A record with _sdc_deleted_at: record (the record, header dpone-op=delete), tombstone (the key with "
            "a null value, for compacted topics), or record_and_tombstone.",
            default="record",
            choices=DELETE_MODES,
        ),
        Setting(
            "activate_version",
            "string",
            "ACTIVATE_VERSION (a full-table sync): fail (a topic is never replaced), or ignore (append the records).",
            default="fail",
            choices=ACTIVATE_VERSION_MODES,
        ),
        Setting(
            "load_method",
            "string",
            "append-only: a topic is an event log; overwrite is refused.",
            default=APPEND,
        ),
        Setting(
            "compression_type",
            "string",
            "Compression of message batches (none, as librdkafka's default: lz4 or zstd trade CPU for network).",
            default="none",
            choices=("none", "gzip", "snappy", "lz4", "zstd"),
        ),
        Setting("linger_ms", "integer", "Milliseconds to wait to fill a batch before sending it.", default=20),
        Setting("producer_batch_bytes", "integer", "Largest message batch sent to a partition.", default=1_048_576),
        Setting(
            "queue_max_mb", "integer", "Memory for messages not yet acknowledged (the producer waits).", default=64
        ),
        Setting("idempotence", "boolean", "Idempotent producer: no duplicates or reordering on retries.", default=True),
        Setting(
            "delivery_timeout_seconds",
            "integer",
            "Give up on a message not acknowledged by then (the run stops; its state is not echoed).",
            default=120,
        ),
        Setting(
            "batch_size_rows",
            "integer",
            "Wait for the brokers to acknowledge everything sent (and echo the newest STATE) every this many records.",
            default=500_000,
        ),
        Setting(
            "batch_size_bytes",
            "integer",
            "... or this many bytes of input (the producer's memory is queue_max_mb, whatever these are).",
            default=256 * 1024 * 1024,
        ),
        Setting("add_record_metadata", "boolean", "Add _sdc_* metadata fields to each message.", default=False),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        if config.get("load_method") not in (None, APPEND):
            raise ConfigError(
                f"load_method {config.get('load_method')!r}: target-kafka only appends (a topic is an event log and "
                "is never replaced); use load_method append-only"
            )
        super().__init__(config)
        self.redactor = Redactor()
        self.redactor.add_config(config, kafka.SECRET_KEYS)
        self.delivery: Delivery | None = None
        self.registry: Any = None
        self._topics: set[str] | None = None
        self._stream_of_topic: dict[str, str] = {}  # the cluster's, read at the first SCHEMA
        self.line_router = KafkaRouter()
        self.router = self.line_router

    def make_sink(self, schema: SchemaMessage) -> Sink:
        return KafkaSink(self, schema)

    def shared_delivery(self) -> Delivery:
        if self.delivery is None:
            config = self.config
            timeout = int(config.get("delivery_timeout_seconds") or 120)
            delivery: Delivery
            properties: dict[str, Any] = {
                "enable.idempotence": bool(config.get("idempotence", True)),
                "acks": "all",
                "compression.type": str(config.get("compression_type") or "none"),
                "linger.ms": int(config.get("linger_ms", 20)),
                "batch.size": int(config.get("producer_batch_bytes") or 1_048_576),
                "queue.buffering.max.kbytes": int(config.get("queue_max_mb") or 64) * 1024,
                "message.timeout.ms": timeout * 1000,
                # A topic the brokers neither have nor create fails its messages after this long.
                "topic.metadata.propagation.max.ms": int(config.get("connect_timeout") or 15) * 1000,
                # Java's default partitioner: a key lands where a Java producer would put it.
                "partitioner": "murmur2_random",
                "delivery.report.only.error": True,
            }
            # The compiled producer where it is built (the same librdkafka, its own callbacks). Its
            # delivery reports cost no Python, so it takes them all: an acknowledged message is then
            # freed in poll() on this thread, not in librdkafka's broker thread, which has the
            # compression and the requests to do (one thread a broker: the one that bounds throughput).
            producer = kafka.fast_producer(config, self.redactor, **{**properties, "delivery.report.only.error": False})
            if producer is None:
                producer = kafka.producer(
                    config,
                    self.redactor,
                    **properties,
                    # The Delivery needs the producer: the callbacks find it when they run.
                    on_delivery=lambda err, msg: delivery.on_delivery(err, msg),  # noqa: PLW0108
                    error_cb=lambda err: delivery.on_error(err),  # noqa: PLW0108
                )
            delivery = self.delivery = Delivery(producer, self.redactor, timeout + 30.0)
            if delivery.fast:
                self.router = self.line_router = FastKafkaRouter(delivery)
        return self.delivery

    def check_topic(self, topic: str, stream: str) -> None:
        """At a stream's SCHEMA, the cluster answers (a wrong address fails before any record, within
        connect_timeout). The whole cluster's metadata is read: asking for one topic would make brokers
        that create topics on demand create it, and a run that stops before its first record creates nothing."""
        other = self._stream_of_topic.setdefault(topic, stream)
        if other != stream and not (self.config.get("topic_map") or {}).get(stream):
            # The template made two names one ({stream} turns / into _): their records would mix.
            raise ConfigError(
                f"streams {other!r} and {stream!r} both go to topic {topic!r}; give one its own topic in "
                "topic_map (a topic_map entry may share a topic on purpose)"
            )
        if self._topics is None:
            assert self.delivery is not None
            producer = self.delivery.producer
            try:
                self._topics = set(kafka.topic_partitions(producer, None, self.config, self.redactor))
            finally:
                self.delivery.collect()  # librdkafka's lines on the connection come before its error
            if self.config.get("idempotence", True):
                # librdkafka drops its bootstrap connection once the metadata names the brokers, and
                # the idempotent producer asks for its producer id when a broker is up, else 500 ms
                # later: the first messages would wait that long. Another request connects one now.
                kafka.topic_partitions(producer, None, self.config, self.redactor)
        if topic not in self._topics:
            log.info(
                "topic %s does not exist yet: the first message creates it where the brokers allow "
                "(auto.create.topics.enable), else the run stops with an unknown-topic error",
                topic,
            )
            self._topics.add(topic)

    def avro_encoder(self, topic: str, stream: str, schema: Mapping[str, Any]) -> Any:
        """Register the stream's schema (as Avro) under `<topic>-value`; the encoder of its records."""
        from dpone_drivers.avro import AvroEncoder  # noqa: PLC0415 - fastavro only for Avro
        from dpone_drivers.avro_schema import avro_schema_for  # noqa: PLC0415
        from dpone_drivers.schema_registry import SchemaRegistry, subject_for  # noqa: PLC0415

        if self.registry is None:
            url = self.config.get("schema_registry_url")
            if not url:
                raise ConfigError("value_format avro needs schema_registry_url")
            self.registry = SchemaRegistry(
                str(url),
                self.redactor,
                username=self.config.get("schema_registry_username"),
                password=self.config.get("schema_registry_password"),
            )
        avro_schema = avro_schema_for(stream, dict(schema))
        schema_id = self.registry.register(subject_for(topic), avro_schema)
        return AvroEncoder(avro_schema, schema_id).encode

    def check(self) -> None:
        """Airbyte `check`: the cluster answers within connect_timeout (no message is sent)."""
        delivery = self.shared_delivery()
        try:
            kafka.topic_partitions(delivery.producer, None, self.config, self.redactor)
        finally:
            delivery.collect()

    def close(self) -> None:
        self.delivery = None
