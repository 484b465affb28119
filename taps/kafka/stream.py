"""One topic as a stream: a bounded read from the committed offsets up to the end offsets fixed at start.

At start the stream takes every partition's high watermark; it reads each partition from the offset
its bookmark says is next (or the earliest, or the latest, for a partition it has none for) up to
that watermark, and stops: a run is bounded even while producers keep writing. The bookmark is
`{"topic": ..., "partitions": {"0": next_offset, ...}}` and moves with every record written, so a
STATE covers exactly the messages before it; the runner stores it once the target committed them.

JSON values with no metadata columns and no projection are read by the compiled Reader
(dpone_drivers/kafkafast/consumer.c) where it is built: it writes whole RECORD lines in blocks, and
hands back, in order, the messages it leaves to this module (tombstones, values it does not pass) and
consumer errors. The rules are the same either way; DPONE_PURE_PYTHON=1 takes the Python path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

from dpone.state.records import Bookmark, KafkaOffsets, bookmarks_of, read_kafka_offsets
from dpone.taps.framework.stream import EncodedLines, ReadContext, Stream
from dpone.taps.kafka.dead_letters import DeadLetters
from dpone.taps.kafka.messages import FetchedMessage, InvalidMessage
from dpone_drivers import kafka
from dpone_protocol.errors import ConfigError, DataError, TransientError
from dpone_protocol.replay import pipeline_word

if TYPE_CHECKING:
    from dpone.taps.kafka.tap import KafkaTap

log = logging.getLogger(__name__)

_PARTITION_EOF = -191  # librdkafka's RD_KAFKA_RESP_ERR__PARTITION_EOF


class KafkaStream(Stream):
    def __init__(self, tap: KafkaTap, topic: str, name: str, schema: dict[str, Any], keys: list[str]) -> None:
        self.tap = tap
        self.topic = topic
        self.name = name
        self.schema = schema
        self.key_properties = keys  # type: ignore[misc]  # per topic
        self.next: dict[int, int] = {}
        self._since_state = 0  # records yielded since the last position(): the compiled path's blocks end at a STATE

    def discovery_metadata(self) -> dict[str, Any]:
        # Offsets are the only way to read a topic; the catalog says so, whatever it is given.
        return {"replication-method": "LOG_BASED", "forced-replication-method": "LOG_BASED", "kafka-topic": self.topic}

    def position(self, final: bool) -> Bookmark | None:
        self._since_state = 0
        if self.dead_letters is not None:
            self.dead_letters.flush()  # a dead letter is durable before the offset passes it
        return KafkaOffsets(self.name, {str(p): o for p, o in sorted(self.next.items())}, self.topic)

    dead_letters: DeadLetters | None = None

    def records(self, ctx: ReadContext) -> Iterator[Any]:
        tap, config = self.tap, self.tap.config
        committed = read_kafka_offsets(self.name, bookmarks_of(tap.input_state).get(self.name))
        if committed.topic not in (None, self.topic):
            raise ConfigError(
                f"stream {self.name!r}: the state holds offsets of topic {committed.topic!r}, and the stream now "
                f"reads {self.topic!r}; clear the stream's bookmark to read it from the start "
                f"(dpone state clear {pipeline_word()} --stream {self.name})"
            )
        consumer = tap.consumer()
        try:
            yield from self._read(consumer, committed.offsets(), config, ctx)
        finally:
            consumer.close()
            if self.dead_letters is not None:
                self.dead_letters.close()

    def _bounds(self, consumer: Any, stored: dict[int, int], config: Mapping[str, Any]) -> dict[int, tuple[int, int]]:
        """Partition -> (first offset to read, end offset fixed now)."""
        from confluent_kafka import TopicPartition  # noqa: PLC0415 - lazy driver import

        partitions = kafka.topic_partitions(consumer, [self.topic], config, self.tap.redactor)
        if self.topic not in partitions:
            raise ConfigError(f"stream {self.name!r}: topic {self.topic!r} does not exist")
        timeout = float(config.get("connect_timeout") or 15)
        latest = config.get("start_offset") == "latest"
        bounds: dict[int, tuple[int, int]] = {}
        for p in range(partitions[self.topic]):
            try:
                low, high = consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=timeout)
            except Exception as exc:
                raise kafka.classify_exception(exc, self.tap.redactor, f"topic {self.topic} partition {p}") from None
            start = stored.get(p)
            if start is None:
                start = high if latest else low
            elif start < low:
                gap = (
                    f"topic {self.topic} partition {p}: offsets {start} to {low - 1} are gone (retention or compaction)"
                )
                if config.get("on_offset_gap") != "skip":
                    raise DataError(
                        f"stream {self.name!r}: {gap} since the last run; set on_offset_gap: skip to go on from "
                        f"offset {low} and lose them, or reload the stream"
                    )
                log.warning("stream %s: %s; skipped (on_offset_gap: skip)", self.name, gap)
                start = low
            elif start > high:
                raise ConfigError(
                    f"stream {self.name!r}: the state says partition {p} of topic {self.topic} is read up to offset "
                    f"{start}, but it ends at {high}: was the topic re-created? Clear the stream's bookmark to "
                    "read it from the start"
                )
            bounds[p] = (start, high)
        return bounds

    def _read(
        self, consumer: Any, stored: dict[int, int], config: Mapping[str, Any], ctx: ReadContext
    ) -> Iterator[Any]:
        from confluent_kafka import TopicPartition  # noqa: PLC0415 - lazy driver import

        bounds = self._bounds(consumer, stored, config)
        self.next = {p: start for p, (start, _) in bounds.items()}
        if config.get("commit_group_offsets") and stored:
            # Follows our state, never leads it: the offsets the last run's target committed.
            offsets = [TopicPartition(self.topic, p, o) for p, o in stored.items()]
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except Exception as exc:
                raise kafka.classify_exception(
                    exc, self.tap.redactor, f"committing the group's offsets of {self.topic}"
                ) from None
        end = {p: high for p, (start, high) in bounds.items() if start < high}
        total = sum(high - self.next[p] for p, high in end.items())
        log.info(
            "stream %s: topic %s, %d partitions, up to %d messages to read", self.name, self.topic, len(bounds), total
        )
        if not end:
            return
        invalid = config.get("on_invalid_message") or "fail"
        if invalid == "dead_letter":
            self.dead_letters = DeadLetters(config, self.topic, self.tap.redactor)
        # JSON values go out as they came unless the catalog drops some of their properties.
        everything = list(self.schema.get("properties", {}))
        projected = ctx.selected != everything
        decode = self.tap.decoder(set(ctx.selected) if projected else None)
        # The compiled Reader writes JSON values as they came, in the envelope of the framework's lines.
        envelope = ctx.envelope
        as_they_came = not (projected or config.get("metadata_columns") or config.get("value_format") == "avro")
        fast = kafka.fast_module() if envelope is not None and as_they_came else None
        if fast is not None and envelope is not None:
            yield from self._read_compiled(fast, end, config, envelope, decode)
            return
        consumer.assign([TopicPartition(self.topic, p, self.next[p]) for p in end])
        consume = consumer.consume
        nxt = self.next
        wait = float(config.get("read_timeout_seconds") or 60)
        quiet_since = time.monotonic()
        batch = int(config.get("consume_batch_size") or 10_000)
        while end:
            # consume() returns when the batch is full or the timeout ends: a short one keeps the
            # last, partial batch of a partition from waiting.
            messages = consume(batch, 0.1)
            if not messages:
                if time.monotonic() - quiet_since > wait:
                    raise self._quiet(wait, sorted(end))
                continue
            quiet_since = time.monotonic()
            for message in messages:
                p = message.partition()
                if message.error() is not None:
                    self._on_error(message, end)
                    continue
                offset = message.offset()
                high = end.get(p)
                if high is None or offset >= high:
                    continue  # written after the run started: the next run reads it
                record = self._decode(decode, message)
                # Moved before the yield: a STATE written while the record is out covers it.
                nxt[p] = offset + 1
                if offset + 1 >= high:
                    del end[p]
                if record is not None:
                    yield record

    def _read_compiled(
        self,
        fast: Any,
        end: dict[int, int],
        config: Mapping[str, Any],
        envelope: tuple[bytes, bytes],
        decode: Callable[[Any], Any],
    ) -> Iterator[Any]:
        """The same read with the compiled Reader: blocks of whole RECORD lines, and one by one the
        messages it leaves to `decode` (tombstones, values it does not pass), in offset order."""
        conf, callbacks = self.tap.reader_config()
        nxt = self.next
        try:
            assignment = [(p, nxt[p], high) for p, high in end.items()]
            reader = fast.Reader(conf, self.topic, assignment, envelope[0], envelope[1], **callbacks)
        except ValueError as exc:
            raise ConfigError(f"Kafka consumer settings: {self.tap.redactor(str(exc))}") from None
        batch = int(config.get("consume_batch_size") or 10_000)
        every = int(config.get("state_every_rows") or 10_000)
        wait = float(config.get("read_timeout_seconds") or 60)
        quiet_since = time.monotonic()
        remaining = len(end)
        self._since_state = 0
        try:
            while remaining:
                # A block ends where the framework writes a STATE (every state_every_rows records), so
                # the STATEs fall where the Python path's do.
                lines, count, moved, left, stop = reader.read(max(1, min(batch, every - self._since_state)), 0.1)
                # Moved before the yield: a STATE written while the lines are out covers them.
                nxt.update(moved)
                if count:
                    self._since_state += count
                    yield EncodedLines(lines, count)
                if stop is not None:
                    if len(stop) == 4:  # (code, name, text, partition): a consumer error
                        raise self._classified(stop[0], stop[2], stop[3])
                    message = FetchedMessage(self.topic, stop)
                    record = self._decode(decode, message)
                    nxt[message.partition()] = message.offset() + 1
                    if record is not None:
                        self._since_state += 1
                        yield record
                elif not count and left == remaining:
                    if time.monotonic() - quiet_since > wait:
                        raise self._quiet(wait, reader.open_partitions())
                    continue
                quiet_since = time.monotonic()
                remaining = left
        finally:
            reader.close()

    def _decode(self, decode: Callable[[Any], Any], message: Any) -> Any:
        """The message's record, or None once a message that does not decode is set aside."""
        try:
            return decode(message)
        except InvalidMessage as exc:
            if self.dead_letters is None:
                raise DataError(
                    f"stream {self.name!r}: topic {self.topic} partition {message.partition()} offset "
                    f"{message.offset()}: {exc}; set on_invalid_message: dead_letter to set such messages aside "
                    "and go on"
                ) from None
            self.dead_letters.put(message, str(exc))
            return None

    def _quiet(self, wait: float, partitions: list[int]) -> TransientError:
        return TransientError(
            f"stream {self.name!r}: no message from topic {self.topic} for {wait:.0f} s while partitions "
            f"{partitions} have more before their end offsets; are the brokers reachable?"
        )

    def _classified(self, code: int, text: str, partition: int | None) -> Exception:
        from confluent_kafka import KafkaError  # noqa: PLC0415 - lazy driver import

        # As confluent_kafka makes a consumed message's error: one place classifies them all.
        error = KafkaError(code, text)
        return kafka.classify(error, self.tap.redactor, f"reading topic {self.topic} partition {partition}")

    def _on_error(self, message: Any, end: dict[int, int]) -> None:
        error = message.error()
        if error.code() == _PARTITION_EOF:
            # The end of what the partition has now; past the end offset only when the last messages
            # before it were transaction markers, which are never delivered.
            if message.offset() >= end.get(message.partition(), 0):
                end.pop(message.partition(), None)
            return
        raise kafka.classify(error, self.tap.redactor, f"reading topic {self.topic} partition {message.partition()}")
