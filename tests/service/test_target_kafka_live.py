"""target-kafka against a real Kafka cluster you give it: DPONE_TEST_KAFKA_BOOTSTRAP (host:port,...), and
for Avro a Confluent-compatible Schema Registry: DPONE_TEST_SCHEMA_REGISTRY_URL. Security settings, if
the cluster needs them, go in DPONE_TEST_KAFKA_PROPERTIES as a JSON object of librdkafka properties
(the target gets them as kafka_properties, the test's reader as they are).

Each test creates its topics (3 partitions) under a prefix of its own and deletes them afterwards,
and deletes the registry subjects it registered.

    export DPONE_TEST_KAFKA_BOOTSTRAP=localhost:9092
    export DPONE_TEST_SCHEMA_REGISTRY_URL=http://localhost:8081
    pytest tests/service/test_target_kafka_live.py
"""

from __future__ import annotations

import contextlib
import json
import os
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import pytest

from dpone.targets.kafka.target import KafkaTarget
from tests.conftest import lines, record, schema, state
from tests.kit.kit import TargetKit
from tests.kit.target_checks import ok
from tests.service.kafka_dest import KafkaDest
from tests.service.test_target_kafka import (
    DELETED_AT,
    PROPS,
    decode_avro,
    java_partition,
    registry_get,
    run_with_interleaved_states,
)

BOOTSTRAP = os.environ.get("DPONE_TEST_KAFKA_BOOTSTRAP", "")
REGISTRY = os.environ.get("DPONE_TEST_SCHEMA_REGISTRY_URL", "")
PROPERTIES: dict[str, Any] = json.loads(os.environ.get("DPONE_TEST_KAFKA_PROPERTIES") or "{}")
PARTITIONS = 3

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not BOOTSTRAP, reason="DPONE_TEST_KAFKA_BOOTSTRAP is not set: no live Kafka cluster"),
]


class Live:
    """The test's topics on the live cluster: created up front with exact partition counts, deleted after."""

    def __init__(self, workdir: Path) -> None:
        from confluent_kafka.admin import AdminClient

        self.admin = AdminClient({"bootstrap.servers": BOOTSTRAP, **PROPERTIES})
        self.dest = KafkaDest(BOOTSTRAP, f"dpone_live_{uuid.uuid4().hex[:10]}_", **PROPERTIES)
        config = self.dest.config(**({"kafka_properties": PROPERTIES} if PROPERTIES else {}))
        self.kit = TargetKit(
            target=KafkaTarget,
            config=config,
            read_table=self.dest.rows,
            tables=self.dest.tables,
            workdir=workdir,
            has_tables=False,
            table_for=self.dest.topic_for,
        )
        self.created: list[str] = []
        self.subjects: list[str] = []

    def create(self, *streams: str) -> None:
        from confluent_kafka.cimpl import NewTopic

        topics = [self.dest.topic_for(s) for s in streams]
        futures = self.admin.create_topics(
            [NewTopic(t, num_partitions=PARTITIONS, replication_factor=-1) for t in topics]
        )
        for topic, future in futures.items():
            future.result(timeout=30)
            self.created.append(topic)

    def close(self) -> None:
        if self.created:
            for future in self.admin.delete_topics(self.created).values():
                with contextlib.suppress(Exception):  # a topic left behind is no test failure
                    future.result(timeout=30)
        for subject in self.subjects:
            for suffix in ("", "?permanent=true"):
                request = urllib.request.Request(
                    f"{REGISTRY}/subjects/{quote(subject, safe='')}{suffix}", method="DELETE"
                )
                with contextlib.suppress(OSError):
                    urllib.request.urlopen(request, timeout=10).close()


@pytest.fixture
def live(tmp_path: Path) -> Iterator[Live]:
    helper = Live(tmp_path)
    try:
        yield helper
    finally:
        helper.close()


def test_live_round_trip_keys_headers_and_order(live: Live) -> None:
    live.create("people")
    sent = [record("people", {"id": i % 7, "name": f"v{i}"}) for i in range(60)]
    deleted = record("people", {"id": 3, "name": "gone", "_sdc_deleted_at": DELETED_AT})
    data = lines(schema("people", PROPS), *sent[:30], state({"n": 30}), *sent[30:], deleted, state({"n": 61}))
    result = ok(live.kit.run(data, batch_size_rows=10))
    assert result.states[-1] == {"n": 61}
    found = live.dest.messages(live.dest.topic_for("people"))
    assert found is not None and len(found) == 61
    per_key: dict[bytes, list[str]] = {}
    for m in found:
        assert m.key is not None
        assert m.partition == java_partition(m.key, PARTITIONS)
        assert m.header("dpone-stream") == "people"
        per_key.setdefault(m.key, []).append(m.json()["name"])
        assert m.header("dpone-op") == ("delete" if m.json()["name"] == "gone" else "insert")
    expected: dict[bytes, list[str]] = {}
    for r in [*sent, deleted]:
        expected.setdefault(b'{"id":%d}' % r["record"]["id"], []).append(r["record"]["name"])
    assert per_key == expected


def test_live_every_echoed_state_covers_acknowledged_messages(live: Live) -> None:
    live.create("a", "b")
    got = run_with_interleaved_states(live.kit, live.dest, every=3, batch=4)
    assert got[-1] == 30


@pytest.mark.skipif(not REGISTRY, reason="DPONE_TEST_SCHEMA_REGISTRY_URL is not set: no live schema registry")
def test_live_avro_through_the_registry(live: Live) -> None:
    live.create("av")
    subject = f"{live.dest.topic_for('av')}-value"
    live.subjects.append(subject)
    v2 = {**PROPS, "age": {"type": ["integer", "null"]}}
    data = lines(
        schema("av", PROPS),
        record("av", {"id": 1, "name": "a"}),
        state({"s": 1}),
        schema("av", v2),
        record("av", {"id": 2, "name": "b", "age": 30}),
        state({"s": 2}),
    )
    result = ok(live.kit.run(data, value_format="avro", schema_registry_url=REGISTRY))
    assert result.states[-1] == {"s": 2}
    found = live.dest.messages(live.dest.topic_for("av"))
    assert found is not None
    decoded = sorted((decode_avro(m.value, REGISTRY) for m in found), key=lambda d: d[1]["id"])
    assert [(r["id"], r["name"]) for _, r in decoded] == [(1, "a"), (2, "b")]
    assert decoded[1][1]["age"] == 30 and decoded[0][0] != decoded[1][0]
    latest = registry_get(REGISTRY, f"/subjects/{quote(subject, safe='')}/versions/latest")
    assert latest["id"] == decoded[1][0]
