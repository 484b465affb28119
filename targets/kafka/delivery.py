"""What the brokers have acknowledged: the producer side of "STATE only after commit".

Messages go to librdkafka as they arrive; it batches and sends them in its own threads. A message
is committed when the brokers acknowledge it (acks=all with the idempotent producer). Nothing runs
in Python per acknowledged message (confluent-kafka's producer reports only failed deliveries,
`delivery.report.only.error`; the compiled one takes every report in C); instead, "everything
produced so far is acknowledged" is known when the producer's queue (which counts reports not yet
served) is empty with no failure reported, and `acked` moves up to `produced` then.
A STATE held at mark m goes out once acked >= m; after a failure, acked never moves again.

The producer is either the compiled one (dpone_drivers/kafkafast/producer.c), which also takes
whole runs of RECORD lines (`feed_run`), or confluent-kafka's. Confluent's calls `on_delivery` and
`on_error` from inside poll()/flush(); the compiled one keeps its first failure and its log lines
in C (its callbacks run without the GIL), and they are read here after each poll()/flush() and
before any decision that rests on "no failure".
"""

from __future__ import annotations

import logging
import time
from typing import Any

from dpone_drivers.kafka import ClientError, classify, note_client_error
from dpone_protocol.config import Redactor
from dpone_protocol.errors import DponeError, TransientError

log = logging.getLogger(__name__)
librdkafka_log = logging.getLogger("dpone.kafka.librdkafka")

# How often (in messages) the producer is polled for failure reports while producing.
_POLL_EVERY = 1023
# How often (in messages) the compiled producer's log lines are taken into logging while it takes runs.
_COLLECT_EVERY = 4096
# syslog levels (librdkafka's) as logging levels, as confluent-kafka maps them.
_LEVELS = (logging.CRITICAL,) * 3 + (logging.ERROR, logging.WARNING, logging.INFO, logging.INFO, logging.DEBUG)


class Delivery:
    def __init__(self, producer: Any, redactor: Redactor, timeout: float) -> None:
        self.producer = producer
        self.redactor = redactor
        self.timeout = timeout  # seconds a flush may take (the producer's own message timeout, and a margin)
        self.produced = 0
        self.acked = 0  # every message before this count is acknowledged
        self.failure: DponeError | None = None
        self.failed_at: int | None = None  # the produced count when the first failure was seen
        self._idle_check = 0.0
        self.oldest_unacked_at = 0.0
        self._next_collect = _COLLECT_EVERY
        self._produce = producer.produce
        # The compiled producer: reports are read from it, and it takes runs of lines.
        self.fast = hasattr(producer, "feed_run")
        self._feed_run = producer.feed_run if self.fast else None
        self.collect()  # what it logged while starting (a deprecated property, ...)

    # confluent-kafka's callbacks: they run inside poll()/flush(), on this thread.
    def on_delivery(self, error: Any, message: Any) -> None:
        if error is not None and self.failure is None:
            self._failed(error, message.topic(), message.partition())

    def on_error(self, error: Any) -> None:
        note_client_error(error)  # an authentication or TLS error names a connection failure
        if error.fatal() and self.failure is None:
            self._failed(error, None, None)
        else:
            log.warning("Kafka client: %s", self.redactor(str(error.str())))

    def _failed(self, error: Any, topic: str | None, partition: int | None) -> None:
        if topic is None:
            where = "the idempotent producer stopped"
        else:
            where = f"delivering a message to topic {topic}" + (
                f" partition {partition}" if isinstance(partition, int) and partition >= 0 else ""
            )
        self.failure = classify(error, self.redactor, where)
        self.failed_at = self.produced

    def collect(self) -> None:
        """The compiled producer's reports since the last look: its log lines into logging (and so
        through redaction), its first failure into `failure`."""
        if not self.fast:
            return
        producer = self.producer
        for level, facility, text in producer.logs():
            as_logging = _LEVELS[level] if 0 <= level < len(_LEVELS) else logging.DEBUG
            # As confluent-kafka writes them: facility, client name, text.
            librdkafka_log.log(as_logging, "%s [%s] %s", facility, producer.name, self.redactor(text))
        for code, name, text in producer.errors():
            self.on_error(ClientError(code, name, text))
        if self.failure is None:
            found = producer.failure()
            if found is not None:
                code, name, text, topic, partition, fatal = found
                self._failed(ClientError(code, name, text, fatal), topic, partition)

    def _poll(self, timeout: float) -> None:
        self.producer.poll(timeout)
        self.collect()

    def _starting(self) -> None:
        """Before producing: the marks of what is acknowledged so far."""
        if self.produced != self.acked and time.monotonic() - self._idle_check > 0.05:
            # What was acknowledged while the input was idle: the STATE waiting for it can go out now,
            # even if what comes next fails (checked at most every 50 ms: while records stream in,
            # some are always in flight anyway).
            self._idle_check = time.monotonic()
            self._poll(0)
            if self._all_acknowledged():
                self.acked = self.produced
        if self.produced == self.acked:
            self.oldest_unacked_at = time.monotonic()

    def produce(self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]) -> None:
        self._starting()
        try:
            self._produce(topic, value, key, headers=headers)
        except BufferError:
            # The local queue is full (queue_max_mb): wait for the brokers to take some of it.
            self._wait_for_room(topic, value, key, headers)
        self.produced += 1
        if not self.produced & _POLL_EVERY:
            self._poll(0)
            self.raise_failure()

    def feed_run(self, block: bytes, at: int, limit: int, byte_limit: int) -> tuple[int, int, int, str | None]:
        """The compiled producer takes the run of one stream's RECORD lines at `at` (see
        producer.c): (where it ended, lines taken, their bytes, the stream). It polls for failure
        reports as it goes and stops at one, which is raised here."""
        assert self._feed_run is not None
        self._starting()
        end, count, size, stream = self._feed_run(block, at, limit, byte_limit)
        self.produced += count
        if self.produced >= self._next_collect or (self.failure is None and self.producer.failure() is not None):
            self._next_collect = self.produced + _COLLECT_EVERY
            self.collect()
        if self.failure is not None:
            raise self.failure
        return end, count, size, stream

    def _wait_for_room(
        self, topic: str, value: bytes | None, key: bytes | None, headers: list[tuple[str, bytes]]
    ) -> None:
        while True:
            self._poll(0.05)
            self.raise_failure()
            try:
                self._produce(topic, value, key, headers=headers)
                return
            except BufferError:
                continue

    def raise_failure(self) -> None:
        if self.fast and self.failure is None:
            self.collect()
        if self.failure is not None:
            raise self.failure

    def is_acked(self, mark: int) -> bool:
        """True once every message produced before `mark` is acknowledged (polls, never waits)."""
        if self.acked >= mark:
            return True
        self._poll(0)
        if self._all_acknowledged():
            self.acked = self.produced
        return self.acked >= mark

    def _all_acknowledged(self) -> bool:
        """Every message produced so far is acknowledged, and none failed. The compiled producer counts
        acknowledgements; confluent's reports only failures, so there an empty queue says it (error
        events queue too, so a broker going down may keep it from saying so for a while)."""
        if self.failure is not None:
            return False
        delivered = getattr(self.producer, "delivered", None)
        return delivered >= self.produced if delivered is not None else not len(self.producer)

    def age(self) -> float:
        return time.monotonic() - self.oldest_unacked_at if self.produced > self.acked else 0.0

    def flush(self) -> None:
        """Wait until every message produced so far is acknowledged; raise the first failure."""
        deadline = time.monotonic() + self.timeout
        while len(self.producer) and time.monotonic() < deadline:
            self.producer.flush(1.0)  # in slices, so Ctrl-C is seen
            self.collect()
        self.raise_failure()
        left = len(self.producer)
        if left:
            raise TransientError(
                f"{left} messages were not acknowledged by the brokers within {self.timeout:.0f} s; "
                "no state past them was echoed"
            )
        self.acked = self.produced

    def settle_quietly(self, seconds: float) -> None:
        """After a failure elsewhere: give the messages in flight a short while to be acknowledged,
        so the state before the failure can still go out; report nothing."""
        self.collect()
        if self.failure is None and len(self.producer):
            self.producer.flush(seconds)
            self.collect()
        self.is_acked(self.produced)
