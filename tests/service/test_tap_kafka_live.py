"""tap-kafka against a real Kafka broker you give it: DPONE_TEST_KAFKA_BOOTSTRAP (host:port, PLAINTEXT,
allowed to create and delete topics). Each test creates its topics with the AdminClient under a prefix of
its own and deletes them after.

    export DPONE_TEST_KAFKA_BOOTSTRAP=localhost:9092
    pytest tests/service/test_tap_kafka_live.py
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Run
from tests.service.kafka_source import (
    Hooked,
    KafkaLab,
    LiveKafka,
    by_partition,
    first_record,
    offsets,
    records,
)

BOOTSTRAP = os.environ.get("DPONE_TEST_KAFKA_BOOTSTRAP", "")

pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not BOOTSTRAP, reason="DPONE_TEST_KAFKA_BOOTSTRAP is not set: no live Kafka broker to read"),
]

SCHEMA = {
    "type": "object",
    "properties": {"p": {"type": "integer"}, "n": {"type": "integer"}, "late": {"type": ["null", "boolean"]}},
}


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[KafkaLab]:
    broker = LiveKafka(BOOTSTRAP)
    # A real broker answers slower than the mock: room for a leader election after a topic is created.
    lab = KafkaLab(broker, f"dpone_{uuid.uuid4().hex[:10]}_", tmp_path, base={"connect_timeout": 30})
    try:
        yield lab
    finally:
        lab.close()
        broker.close()


def ok(run: Run) -> Run:
    assert run.rc == 0, run.stderr
    return run


def test_a_bounded_read_ends_at_its_start_offsets_and_the_next_run_gets_the_rest(lab: KafkaLab) -> None:
    topic = lab.topic("bounded", 3)
    lab.fill(topic, {0: 50, 1: 0, 2: 30}, batch_each=True)
    config: dict[str, Any] = {"streams": [{"topic": topic, "schema": SCHEMA}], "metadata_columns": True}
    more = first_record(lambda: lab.fill(topic, {0: 5, 2: 5}, start=1000, batch_each=True))
    with lab.writing(topic, [0, 2]) as writer:
        writer.wait_for(20)
        before = lab.ends(topic, 3)
        first = ok(lab.run_within(120, stdout=Hooked(more), **config))
        writer.wait_for(20)
    after = lab.ends(topic, 3)
    end = offsets(first.states[-1], topic)
    assert all(before[p] <= end[p] <= after[p] for p in range(3)), (before, end, after)
    assert end[1] == 0 and sum(after.values()) > sum(end.values())
    found = by_partition(records(first))
    assert {p: found.get(p, []) for p in range(3)} == {p: list(range(end[p])) for p in range(3)}

    second = ok(lab.run(state=first.states[-1], **config))
    found = by_partition(records(second))
    assert {p: found.get(p, []) for p in range(3)} == {p: list(range(end[p], after[p])) for p in range(3)}
    assert offsets(second.states[-1], topic) == after


def test_every_state_of_a_run_resumes_exactly_after_it(lab: KafkaLab) -> None:
    topic = lab.topic("resume", 2)
    counts = {0: 7, 1: 5}
    lab.fill(topic, counts, batch_each=True)
    config: dict[str, Any] = {
        "streams": [{"topic": topic, "schema": SCHEMA}],
        "metadata_columns": True,
        "state_every_rows": 4,
    }
    first = ok(lab.run(**config))
    assert offsets(first.states[-1], topic) == counts
    for state in first.states:
        at = offsets(state, topic)
        resumed = ok(lab.run(state=state, **config))
        found = by_partition(records(resumed))
        assert {p: found.get(p, []) for p in counts} == {p: list(range(at.get(p, 0), counts[p])) for p in counts}
