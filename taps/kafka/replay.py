"""What rewinding Kafka streams to earlier offsets would re-deliver, or why the topic cannot.

A stream's committed state is the next offset to read per partition (stream.py). `--to` is an offset
(the same for every partition), `earliest` (the oldest offset each partition still keeps), or an ISO
8601 time (the first offset at or after it, as the broker's time index tells). A partition whose
wanted offset is below its low watermark can no longer serve it (retention or compaction deleted
those messages); an offset past the committed one is no rewind (it would skip messages). Nothing is
consumed or committed: only watermarks and offsets are asked of the brokers.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from dpone.state.records import KafkaOffsets
from dpone.taps.framework.bookmarks import positions_to_rewind
from dpone_drivers import kafka
from dpone_protocol.errors import ConfigError
from dpone_protocol.replay import COMMITTED, PIPELINE, StreamReplay, replay_body, resync_hint

if TYPE_CHECKING:
    from dpone.taps.kafka.tap import KafkaTap

EARLIEST = "earliest"
GONE, RETENTION, AHEAD = "gone", "retention", "ahead"  # why a partition cannot be rewound, worst first


@dataclass(frozen=True, slots=True)
class Rewind:
    """Where to rewind: an offset, the earliest kept, or a time (epoch milliseconds)."""

    offset: int | None = None
    earliest: bool = False
    at_ms: int | None = None


def parse_target(value: Any) -> Rewind:
    text = str(value).strip() if value is not None else ""
    if text.lower() == EARLIEST:
        return Rewind(earliest=True)
    if text.lower() == COMMITTED:
        return Rewind()  # each partition at its committed offset
    if text.isdigit():
        return Rewind(offset=int(text))
    try:
        when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"--to {text!r}: give an offset (a whole number, the same for every partition), earliest, or an ISO "
            "8601 time such as 2024-05-01T12:00:00Z"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)  # a time without a zone is UTC, as Kafka's timestamps are
    return Rewind(at_ms=int(when.timestamp() * 1000))


def _streams(state: Mapping[str, Any], wanted: str | None) -> list[KafkaOffsets]:
    return positions_to_rewind(
        state,
        wanted,
        lambda p: isinstance(p, KafkaOffsets) and bool(p.partitions),
        "stream {stream} has no Kafka offsets in the state ({found})",
        "the state holds no Kafka offsets: there is no position to rewind",
    )


def _topic(tap: KafkaTap, position: KafkaOffsets) -> str:
    if position.topic:
        return position.topic
    for entry in tap.config.get("streams") or []:  # a stream named apart from its topic
        if isinstance(entry, Mapping) and entry.get("stream") == position.stream and entry.get("topic"):
            return str(entry["topic"])
    return position.stream


class _Broker:
    """Watermarks and offsets for times, each call bounded by the tap's connect_timeout."""

    def __init__(self, tap: KafkaTap, consumer: Any) -> None:
        self.tap = tap
        self.consumer = consumer
        self.timeout = float(tap.config.get("connect_timeout") or 15)

    def partitions(self, topic: str) -> int | None:
        found = kafka.topic_partitions(self.consumer, [topic], self.tap.config, self.tap.redactor)
        return found.get(topic)

    def watermarks(self, topic: str, partition: int) -> tuple[int, int]:
        from confluent_kafka import TopicPartition  # noqa: PLC0415 - lazy driver import

        try:
            low, high = self.consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=self.timeout)
        except Exception as exc:  # KafkaException: the cluster stopped answering
            raise kafka.classify_exception(exc, self.tap.redactor, f"topic {topic} partition {partition}") from None
        return int(low), int(high)

    def offsets_at(self, topic: str, partitions: list[int], at_ms: int) -> dict[int, int]:
        """The first offset at or after the time per partition; -1 where no message is that new."""
        from confluent_kafka import TopicPartition  # noqa: PLC0415 - lazy driver import

        asked = [TopicPartition(topic, p, at_ms) for p in partitions]
        try:
            answered = self.consumer.offsets_for_times(asked, timeout=self.timeout)
        except Exception as exc:
            raise kafka.classify_exception(exc, self.tap.redactor, f"offsets of topic {topic} by time") from None
        for tp in answered:
            if tp.error is not None:
                raise kafka.classify(tp.error, self.tap.redactor, f"topic {topic} partition {tp.partition} by time")
        return {tp.partition: int(tp.offset) for tp in answered}


def _plan(broker: _Broker, position: KafkaOffsets, target: Rewind) -> StreamReplay:
    topic = _topic(broker.tap, position)
    committed = position.offsets()
    plan = StreamReplay(position.stream, {str(p): o for p, o in sorted(committed.items())}, None)
    if broker.partitions(topic) is None:
        return plan.refuse(f"topic {topic!r} does not exist any more: its messages are gone", resync_hint(plan.stream))
    marks = {p: broker.watermarks(topic, p) for p in sorted(committed)}
    by_time = broker.offsets_at(topic, sorted(committed), target.at_ms) if target.at_ms is not None else {}
    wanted: dict[int, int] = {}
    problems: dict[str, list[str]] = {GONE: [], RETENTION: [], AHEAD: []}
    notes: list[str] = []
    for p, offset in sorted(committed.items()):
        low, high = marks[p]
        if target.earliest:
            want = low
        elif target.at_ms is not None:
            found = by_time.get(p, -1)
            # No message that new (-1): the partition has not reached that time; one not yet read
            # by the committed offset is no rewind either. Both keep their offset.
            want = offset if found < 0 or found > offset else found
            if want == offset:
                notes.append(f"partition {p} keeps offset {offset} (nothing read there since that time)")
        else:
            want = target.offset if target.offset is not None else offset
        if offset > high:
            problems[GONE].append(
                f"partition {p} ends at offset {high}, before the committed offset {offset} (was the topic re-created?)"
            )
        elif offset < low:
            problems[GONE].append(
                f"retention expired: partition {p} keeps offsets from {low} on, past the committed offset {offset}: "
                f"messages {offset} to {low - 1} are gone"
            )
        elif want < low:
            problems[RETENTION].append(f"retention expired: the oldest offset still kept in partition {p} is {low}")
        elif want > offset:
            problems[AHEAD].append(
                f"offset {want} is after the committed offset {offset} in partition {p}: that is no rewind, and "
                f"messages {offset} to {want - 1} would be skipped"
            )
        wanted[p] = want
    plan.rewind_to = {str(p): o for p, o in sorted(wanted.items())}
    found_problems = [m for kind in (GONE, RETENTION, AHEAD) for m in problems[kind]]
    if found_problems:
        kind = next(k for k in (GONE, RETENTION, AHEAD) if problems[k])
        hints = {
            GONE: resync_hint(plan.stream),
            RETENTION: f"rewind no further than the oldest offsets kept: `dpone state replay-plan {PIPELINE} --to "
            "earliest`",
            AHEAD: "rewind to the committed offsets or earlier",
        }
        return plan.refuse(f"topic {topic}: " + "; ".join(found_problems), hints[kind])
    per_partition = {str(p): committed[p] - wanted[p] for p in sorted(committed)}
    total = sum(per_partition.values())
    plan.redeliver = {"messages": total, "partitions": per_partition}
    plan.bookmark = KafkaOffsets(position.stream, plan.rewind_to, topic, position.extra).to_dict()
    spans = [
        f"partition {p} offsets {wanted[p]}..{committed[p] - 1} ({n:,})" if n else f"partition {p} nothing"
        for p, n in ((int(k), v) for k, v in per_partition.items())
    ]
    # Compaction and transaction markers leave gaps in the offsets: a count by offsets is an upper bound.
    plan.summary = f"re-delivers at most {total:,} message{'s' * (total != 1)} of topic {topic}: " + "; ".join(spans)
    if notes:
        plan.summary += "; " + "; ".join(notes)
    return plan


def replay_plan(tap: KafkaTap, request: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
    target = parse_target(request.get("to"))
    streams = _streams(state, request.get("stream"))
    consumer = tap.consumer()
    try:
        broker = _Broker(tap, consumer)
        return replay_body([_plan(broker, position, target) for position in streams])
    finally:
        consumer.close()
