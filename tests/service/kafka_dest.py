"""A Kafka destination for tests: read back every message of a topic, as a reader of the log sees it.

Each read is a throwaway consumer that assigns every partition of the topic from its low watermark
up to its high watermark (fixed when the read starts) and takes exactly that many messages, so a
read never waits for more and never joins a group. Topics are looked up in the cluster's full
metadata, never by name: a metadata request for one unknown topic makes the mock cluster (and a
broker with auto-creation on) create it.
"""

from __future__ import annotations

import json
import re
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from confluent_kafka import Consumer, TopicPartition

# What encoding.topic_for does to a stream name: characters a topic cannot have become "_".
_NOT_IN_TOPICS = re.compile(r"[^A-Za-z0-9._-]")


@dataclass(frozen=True)
class Message:
    topic: str
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes], ...]

    def header(self, name: str) -> str | None:
        found = [v for k, v in self.headers if k == name]
        assert len(found) <= 1, (name, self.headers)
        return found[0].decode() if found else None

    def json(self) -> Any:
        assert self.value is not None, f"a tombstone at {self.topic}[{self.partition}]@{self.offset}"
        return _loads(self.value)


class KafkaDest:
    """The topics of one test (those starting with `prefix`) on a cluster."""

    def __init__(self, bootstrap: str, prefix: str = "", **client: Any) -> None:
        self.bootstrap = bootstrap
        self.prefix = prefix
        self.client = client  # extra librdkafka properties (a real broker's security settings)

    def topic_for(self, stream: str) -> str:
        return self.prefix + _NOT_IN_TOPICS.sub("_", stream)

    @contextmanager
    def consumer(self) -> Iterator[Any]:
        consumer = Consumer(
            {
                "bootstrap.servers": self.bootstrap,
                "group.id": f"dpone-test-reader-{uuid.uuid4().hex[:8]}",
                "enable.auto.commit": False,
                "allow.auto.create.topics": False,
                "log_level": 0,
                **self.client,
            }
        )
        try:
            yield consumer
        finally:
            consumer.close()

    def topics(self) -> dict[str, int]:
        """Every topic of the cluster with its partition count."""
        with self.consumer() as consumer:
            return _topics(consumer)

    def tables(self) -> set[str]:
        return {t for t in self.topics() if t.startswith(self.prefix)}

    def end_offsets(self, topic: str) -> dict[int, int]:
        """Partition -> high watermark (the offset the next message will get)."""
        with self.consumer() as consumer:
            count = _topics(consumer).get(topic, 0)
            return {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(count)}

    def messages(self, topic: str, timeout: float = 20.0) -> list[Message] | None:
        """Every message of the topic in (partition, offset) order; None when there is no such topic."""
        with self.consumer() as consumer:
            count = _topics(consumer).get(topic)
            if count is None:
                return None
            ends: dict[int, int] = {}
            start: list[TopicPartition] = []
            for p in range(count):
                low, high = consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)
                if high > low:
                    ends[p] = high
                    start.append(TopicPartition(topic, p, low))
            got: dict[int, list[Message]] = {p: [] for p in ends}
            if start:
                consumer.assign(start)
                left = set(ends)
                remaining = sum(ends[tp.partition] - tp.offset for tp in start)
                deadline = time.monotonic() + timeout
                while left:
                    assert time.monotonic() < deadline, f"{topic}: not every message arrived within {timeout} s"
                    # consume() returns at once when it has that many: ask for no more than are left.
                    for m in consumer.consume(max(1, min(remaining, 10_000)), timeout=0.2):
                        remaining -= 1
                        if m.error() is not None:
                            raise AssertionError(f"reading {topic}: {m.error()}")
                        p = m.partition()
                        if p not in left:
                            continue
                        got[p].append(Message(topic, p, m.offset(), m.key(), m.value(), tuple(m.headers() or ())))
                        if m.offset() + 1 >= ends[p]:
                            left.discard(p)
            return [m for p in sorted(got) for m in got[p]]

    def rows(self, topic: str) -> list[dict[str, Any]] | None:
        """The JSON values of the topic's messages, tombstones left out."""
        found = self.messages(topic)
        return None if found is None else [m.json() for m in found if m.value is not None]

    def config(self, **extra: Any) -> dict[str, Any]:
        """target-kafka settings writing the test's topics."""
        return {"bootstrap_servers": self.bootstrap, "topic": self.prefix + "{stream}", **extra}


def _topics(consumer: Any) -> dict[str, int]:
    metadata = consumer.list_topics(timeout=10)
    return {name: len(meta.partitions) for name, meta in metadata.topics.items() if meta.error is None}


def by_partition(messages: list[Message]) -> Mapping[int, list[Message]]:
    out: dict[int, list[Message]] = {}
    for m in messages:
        out.setdefault(m.partition, []).append(m)
    return out


class SentOrder:
    """The records fed to a target, per stream and in input order, to read a topic back in that order.

    Kafka keeps order within a partition only: a stream's messages spread over partitions come back
    in partition order. `arrange` checks that each partition kept the input order (what Kafka
    promises, and target-kafka with it), then puts the messages back in input order, so a scenario
    written for tables can compare the rows with what it sent."""

    def __init__(self) -> None:
        self.sent: dict[str, list[str]] = {}

    def note(self, data: bytes) -> None:
        for line in data.splitlines():
            try:
                message = json.loads(line)
            except ValueError:
                continue
            if (
                isinstance(message, dict)
                and message.get("type") == "RECORD"
                and isinstance(message.get("record"), dict)
            ):
                self.sent.setdefault(str(message.get("stream")), []).append(_canonical(message["record"]))

    def arrange(self, streams: list[str], messages: list[Message]) -> list[Message]:
        sent = [c for s in streams for c in self.sent.get(s, [])]
        unused: dict[str, list[int]] = {}
        for at, text in enumerate(sent):
            unused.setdefault(text, []).append(at)
        placed: list[tuple[int, int, Message]] = []
        for partition, found in by_partition(messages).items():
            last = -1
            for m in found:
                if m.value is None:
                    continue  # a tombstone has no record to place; its order is checked with its key's
                free = unused.get(_canonical(_loads(m.value)), [])
                later = [i for i in free if i > last]
                if later:
                    free.remove(later[0])
                    last = later[0]
                    placed.append((last, 0, m))
                elif free:
                    raise AssertionError(
                        f"{m.topic}[{partition}]@{m.offset}: {m.value!r} came after a record sent later than it"
                    )
                else:
                    placed.append((len(sent) + len(placed), 1, m))  # never sent in a run the kit saw
        return [m for _, _, m in sorted(placed, key=lambda p: (p[1], p[0]))]


def _loads(value: bytes) -> Any:
    # json, not orjson: integers beyond 64 bits come back whole.
    return json.loads(value)


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))
