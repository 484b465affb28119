"""Messages that do not decode: kept where a person can look at them, before their offsets are passed.

`dead_letter_topic` sends each one, as it was (key, value, headers) plus `dpone-error` and its origin
in headers, to another Kafka topic; otherwise `dead_letter_path/<topic>.jsonl` gets a line with the
origin, the error and the key and value in base64. Either is durable (acknowledged, or fsynced)
before the STATE that passes the message's offset is written.
"""

from __future__ import annotations

import base64
import datetime as dt
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import orjson

from dpone.taps.kafka.messages import timestamp_of
from dpone_drivers import kafka
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, TransientError

log = logging.getLogger(__name__)


class DeadLetters:
    def __init__(self, config: Mapping[str, Any], topic: str, redactor: Redactor) -> None:
        self.config = config
        self.topic = topic
        self.redactor = redactor
        self.count = 0
        self.dlq_topic = config.get("dead_letter_topic")
        if self.dlq_topic:
            kafka.check_topic(str(self.dlq_topic), "dead_letter_topic")
        self.path = Path(str(config.get("dead_letter_path") or "dead-letters")) / f"{topic}.jsonl"
        self._file: IO[bytes] | None = None
        self._producer: Any = None
        self._failure: str | None = None

    def put(self, message: Any, reason: str) -> None:
        if self.dlq_topic:
            self._send(message, reason)
        else:
            self._write(message, reason)
        self.count += 1

    def _write(self, message: Any, reason: str) -> None:
        if self._file is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._file = self.path.open("ab")
            except OSError as exc:
                raise ConfigError(f"dead_letter_path: cannot write {self.path}: {exc.strerror}") from None
        key, value = message.key(), message.value()
        line = {
            "topic": message.topic(),
            "partition": message.partition(),
            "offset": message.offset(),
            "timestamp": timestamp_of(message),
            "error": reason,
            "key_base64": None if key is None else base64.b64encode(key).decode(),
            "value_base64": None if value is None else base64.b64encode(value).decode(),
            "dead_lettered_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        self._file.write(orjson.dumps(line) + b"\n")
        # Rare by nature, and the offset moves past the message right after: made durable at once.
        self._file.flush()
        os.fsync(self._file.fileno())

    def _send(self, message: Any, reason: str) -> None:
        if self._producer is None:
            self._producer = kafka.producer(
                self.config,
                self.redactor,
                **{
                    "enable.idempotence": True,
                    "acks": "all",
                    "partitioner": "murmur2_random",  # as target-kafka: a key's partition as Java puts it
                    "on_delivery": self._on_delivery,
                },
            )
        headers = list(message.headers() or [])
        headers += [
            ("dpone-error", reason.encode()),
            ("dpone-source", f"{message.topic()}/{message.partition()}/{message.offset()}".encode()),
        ]
        self._producer.produce(str(self.dlq_topic), message.value(), message.key(), headers=headers)
        self._producer.poll(0)

    def _on_delivery(self, error: Any, message: Any) -> None:
        if error is not None and self._failure is None:
            self._failure = str(kafka.classify(error, self.redactor, f"sending to dead_letter_topic {self.dlq_topic}"))

    def flush(self) -> None:
        """Before a checkpoint: every dead letter so far is acknowledged (the file is synced as written)."""
        if self._producer is not None:
            left = self._producer.flush(float(self.config.get("connect_timeout") or 15) * 4)
            if self._failure is not None or left:
                raise TransientError(self._failure or f"{left} dead letters not acknowledged by {self.dlq_topic}")

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
        if self.count:
            where = f"topic {self.dlq_topic}" if self.dlq_topic else str(self.path)
            log.warning("topic %s: %d messages did not decode; they are in %s", self.topic, self.count, where)
