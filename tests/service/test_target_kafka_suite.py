"""target-kafka runs the shared target suite (tests/kit/target_suite.py) on librdkafka's mock cluster.

A topic is an event log, not a table: the kit reads every message of a stream's topic back (JSON
values, tombstones left out), and the scenarios of typed tables (merge, overwrite, deletes, versions,
schema drift, bad values) skip by capability. Kafka orders messages within a partition only, so the
kit checks that every partition kept the input order and hands the rows back in input order.

One scenario is the event log's own: a run stopped by bad input has sent the records before the bad
line (each record goes to the brokers as it comes, there is no batch to roll back), so the topic
may hold them past the last echoed state; the next run, resuming from that state, sends them again
(at-least-once). Its override below checks the same state and error, and the rows up to the state.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from dpone.targets.kafka.target import KafkaTarget
from tests.conftest import Run
from tests.kit.kit import TargetKit
from tests.kit.target_suite import TargetSuite
from tests.service.kafka_dest import KafkaDest, SentOrder
from tests.tools.kafka_mock import MockKafka

pytestmark = pytest.mark.service


@dataclass
class KafkaKit(TargetKit):
    """A TargetKit that remembers what it fed, to read a topic back in input order."""

    sent: SentOrder = field(default_factory=SentOrder)

    def run_hooked(self, *parts: bytes | Callable[[bytes], None], **config: Any) -> Run:
        for part in parts:
            if isinstance(part, bytes):
                self.sent.note(part)
        return super().run_hooked(*parts, **config)


def kafka_kit(dest: KafkaDest, workdir: Path) -> KafkaKit:
    def read_table(topic: str) -> list[dict[str, Any]] | None:
        found = dest.messages(topic)
        if found is None:
            return None
        streams = [s for s in kit.sent.sent if dest.topic_for(s) == topic]
        return [m.json() for m in kit.sent.arrange(streams, found) if m.value is not None]

    kit = KafkaKit(
        target=KafkaTarget,
        config=dest.config(),
        read_table=read_table,
        tables=dest.tables,
        workdir=workdir,
        has_tables=False,
        table_for=dest.topic_for,
        stdin_file=True,
        sends_as_it_reads=True,
    )
    return kit


class TestTargetKafka(TargetSuite):
    @pytest.fixture
    def target_kit(self, tmp_path: Path, kafka_cluster: MockKafka, kafka_prefix: str) -> TargetKit:
        return kafka_kit(KafkaDest(kafka_cluster.bootstrap, kafka_prefix), tmp_path)
