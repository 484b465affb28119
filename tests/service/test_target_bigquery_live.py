"""target-bigquery against BigQuery itself, for each emulator gap the other tests work around.

Runs when DPONE_TEST_BIGQUERY_PROJECT names a project the credentials may create datasets in
(DPONE_TEST_BIGQUERY_CREDENTIALS: a service account key file; else Application Default Credentials).
Each test uses a dataset of its own, deleted after.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from decimal import Decimal
from typing import Any

import pytest

from dpone.targets.bigquery.target import BigQueryTarget
from dpone_drivers import bigquery as bq
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.config import Redactor
from tests.conftest import Run, record, schema, state
from tests.service.test_target_bigquery import FaultyTarget, _lost_answer

PROJECT = os.environ.get("DPONE_TEST_BIGQUERY_PROJECT")
pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not PROJECT, reason="set DPONE_TEST_BIGQUERY_PROJECT to run against BigQuery"),
]


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(DEFAULT_CODEC.dumps(m) + b"\n" for m in messages)


class Live:
    def __init__(self) -> None:
        self.dataset = f"dpone_test_{uuid.uuid4().hex[:10]}"
        self.base: dict[str, Any] = {"project": PROJECT, "dataset": self.dataset}
        if os.environ.get("DPONE_TEST_BIGQUERY_CREDENTIALS"):
            self.base["credentials_path"] = os.environ["DPONE_TEST_BIGQUERY_CREDENTIALS"]
        self.client = bq.client(self.base, Redactor())

    def config(self, **extra: Any) -> dict[str, Any]:
        return {**self.base, **extra}  # the defaults: gzip, bignumeric

    def rows(self, table: str) -> list[dict[str, Any]]:
        result = self.client.query(f"SELECT * FROM `{PROJECT}.{self.dataset}.{table}`").result()
        return [dict(r.items()) for r in result]


@pytest.fixture
def live() -> Iterator[Live]:
    found = Live()
    try:
        yield found
    finally:
        found.client.delete_dataset(f"{PROJECT}.{found.dataset}", delete_contents=True, not_found_ok=True)


RunTarget = Callable[..., Run]
NUMBERS = {
    "id": {"type": "integer"},
    "plain": {"type": ["null", "number"]},
    "ts": {"type": ["null", "string"], "format": "date-time"},
}


def test_gzip_and_bignumeric_round_trip(live: Live, run_target: RunTarget) -> None:
    value = Decimal("12345678901234567890123456789012345678.12345678901234567890123456789012345678")
    data = lines(
        schema("n", NUMBERS), record("n", {"id": 1, "plain": value, "ts": "2024-01-01T00:00:00.5-02:00"}), state(1)
    )
    result = run_target(BigQueryTarget, live.config(), data)
    assert result.rc == 0 and result.states == [1], result.stderr
    (row,) = live.rows("n")
    assert row["plain"] == value
    column = {f.name: f.field_type for f in live.client.get_table(f"{PROJECT}.{live.dataset}.n").schema}["plain"]
    assert column in ("BIGNUMERIC", "BIGDECIMAL")


def test_invalid_timestamp_text_stops_naming_the_column(live: Live, run_target: RunTarget) -> None:
    data = lines(schema("n", NUMBERS), record("n", {"id": 1, "ts": "not a time"}), state(1))
    result = run_target(BigQueryTarget, live.config(), data)
    assert result.rc == 65 and result.states == []
    assert "column 'ts'" in result.stderr.strip().splitlines()[-1]


def test_a_widening_is_seen_by_the_next_run(live: Live, run_target: RunTarget) -> None:
    narrow = {"id": {"type": "integer"}, "v": {"type": "integer"}}
    wide = {"id": {"type": "integer"}, "v": {"type": "string", "format": "singer.decimal", "precision": 38, "scale": 9}}
    for props, value in ((narrow, 5), (wide, "1.25"), (wide, "2.5")):
        result = run_target(
            BigQueryTarget, live.config(), lines(schema("m", props), record("m", {"id": 1, "v": value}))
        )
        assert result.rc == 0, result.stderr
    assert {f.name: f.field_type for f in live.client.get_table(f"{PROJECT}.{live.dataset}.m").schema}["v"] == "NUMERIC"
    assert [r["v"] for r in live.rows("m")] == [Decimal("2.5")]


def test_a_lost_answer_is_answered_409_and_the_rows_move_once(
    live: Live, run_target: RunTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)
    monkeypatch.setattr(FaultyTarget, "faults", {"query": [_lost_answer]})
    people = {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}
    data = lines(schema("p", people), record("p", {"id": 1, "name": "a"}), state(1))
    result = run_target(FaultyTarget, live.config(load_method="append-only"), data)
    assert result.rc == 0 and result.states == [1], result.stderr
    assert [r["id"] for r in live.rows("p")] == [1]


def test_partitioned_overwrite_by_copy_job(live: Live, run_target: RunTarget) -> None:
    options = {"n": {"partition_by": "ts", "cluster_by": ["id"]}}
    config = live.config(load_method="overwrite", table_options=options)
    for n in (1, 2):
        data = lines(schema("n", NUMBERS), record("n", {"id": n, "ts": "2024-01-01T00:00:00Z"}))
        assert run_target(BigQueryTarget, config, data).rc == 0
    assert [r["id"] for r in live.rows("n")] == [2]
    table = live.client.get_table(f"{PROJECT}.{live.dataset}.n")
    assert table.time_partitioning.field == "ts" and table.clustering_fields == ["id"]
