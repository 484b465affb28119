"""tap-kafka runs the shared tap suite (tests/kit/tap_suite.py) on the mock Kafka cluster: one topic of two
partitions per stream, each row a JSON message keyed by `{"id": ...}` as target-kafka writes it, so the
schema and the key come from discovery's sample.

A topic is a log read from its offsets: there is no replication key to read INCREMENTAL with, and the
stream's one method (LOG_BASED, forced in the catalog) is the one the suite selects.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.kafka.tap import KafkaTap
from tests.kit.kit import TapKit
from tests.kit.tap_suite import TapSuite
from tests.tools.kafka_mock import MockKafka

pytestmark = pytest.mark.service

PARTITIONS = 2


class TestTapKafka(TapSuite):
    @pytest.fixture
    def tap_kit(self, kafka_cluster: MockKafka, kafka_prefix: str, tmp_path: Path) -> TapKit:
        from confluent_kafka import Producer

        streams = (f"{kafka_prefix}items", f"{kafka_prefix}others")
        for topic in streams:
            kafka_cluster.create_topic(topic, PARTITIONS)
        producer = Producer({"bootstrap.servers": kafka_cluster.bootstrap})

        def put_rows(stream: str, rows: list[dict[str, Any]]) -> None:
            for row in rows:
                key = orjson.dumps({"id": row["id"]})
                producer.produce(stream, orjson.dumps(row), key, partition=row["id"] % PARTITIONS)
            assert producer.flush(10) == 0

        return TapKit(
            tap=KafkaTap,
            # A small consume batch: a read of a few messages does not wait for a full one.
            config=kafka_cluster.config(topics=list(streams), consume_batch_size=1, connect_timeout=5),
            streams=streams,
            put_rows=put_rows,
            workdir=tmp_path,
            read_method="LOG_BASED",
            added_properties=("_sdc_deleted_at",),
            lacks={
                "incremental": "a topic has no replication key: it is read from its offsets",
                "full_table_resume": "a topic is read from its offsets, never as a FULL_TABLE",
            },
        )
