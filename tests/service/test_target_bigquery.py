"""target-bigquery beyond the shared suite, on the BigQuery emulator: every type exact, names made
valid, schema changes, partitioning and clustering, job errors named, transient errors retried
without moving a batch twice, state held when the final job fails, API calls per batch."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Callable
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from google.api_core import exceptions as api_errors

from dpone.targets.bigquery.loader import BigQueryLoader
from dpone.targets.bigquery.target import BigQueryTarget
from dpone.targets.bigquery.type_map import standard
from dpone.targets.framework.loader import Loader, StreamPlan
from dpone_protocol.batch_manifest import BatchFile, BatchManifest
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.config import Redactor
from dpone_protocol.errors import DataError
from dpone_protocol.json_schema import ColumnType, Logical
from tests.conftest import Run, record, schema, state
from tests.service.bigquery_dest import BigQueryDest

pytestmark = pytest.mark.service

RunTarget = Callable[..., Run]
TYPES = {
    "id": {"type": "integer"},
    "big": {"type": ["null", "integer"]},
    "dec": {"type": ["null", "string"], "format": "singer.decimal", "precision": 38, "scale": 9},
    "money": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1e9},
    "plain": {"type": ["null", "number"]},
    "f": {"type": ["null", "number"], "format": "double"},
    "ok": {"type": ["null", "boolean"]},
    "s": {"type": ["null", "string"]},
    "ts": {"type": ["null", "string"], "format": "date-time"},
    "d": {"type": ["null", "string"], "format": "date"},
    "t": {"type": ["null", "string"], "format": "time"},
    "u": {"type": ["null", "string"], "format": "uuid"},
    "o": {"type": ["null", "object"]},
    "tags": {"type": ["null", "array"], "items": {"type": "string"}},
    "mixed": {"type": ["null", "array"]},
}
FULL = {
    "id": 1,
    "big": -9223372036854775808,
    "dec": "12345678901234567890123456789.123456789",
    "money": Decimal("999999999.99"),
    "plain": Decimal("1.10000000000000000000000001"),
    "f": 0.30000000000000004,
    "ok": True,
    "s": 'caf\u00e9 "quoted" \n tab\t \u2713 \U0001f600',
    "ts": "2024-02-29T23:59:59.123456+05:30",
    "d": "0001-01-01",
    "t": "23:59:59.999999",
    "u": "0b6c3b3e-8f4e-4c3a-9a55-7d2f7a3c1e10",
    "o": {"a": [1, {"b": None}], "c": "x", "n": Decimal("1.5")},
    "tags": ["a", "", "b"],
    "mixed": [1, "two", {"three": 3}],
}


def lines(*messages: dict[str, Any]) -> bytes:
    return b"".join(DEFAULT_CODEC.dumps(m) + b"\n" for m in messages)  # exact numbers as bare JSON numbers


@pytest.fixture
def dest(bigquery_emulator: Any) -> BigQueryDest:
    return BigQueryDest(bigquery_emulator)


def ok(result: Run) -> Run:
    assert result.rc == 0, result.stderr
    return result


@pytest.mark.certifies("types", connector="target-bigquery")
def test_every_type_round_trips_exactly(dest: BigQueryDest, run_target: RunTarget) -> None:
    data = lines(schema("types", TYPES), record("types", FULL), record("types", {"id": 2}), state({"s": 1}))
    assert ok(run_target(BigQueryTarget, dest.config(), data)).states == [{"s": 1}]
    columns = {f.name: (standard(f.field_type), f.mode) for f in dest.table("types").schema}
    assert columns["id"] == ("INT64", "NULLABLE")
    assert columns["dec"][0] == "NUMERIC" and columns["money"][0] == "NUMERIC"
    assert columns["plain"][0] == "STRING"  # unbounded_numbers: string in the emulator's config
    assert columns["f"][0] == "FLOAT64" and columns["ok"][0] == "BOOL"
    assert columns["ts"][0] == "TIMESTAMP" and columns["d"][0] == "DATE" and columns["t"][0] == "TIME"
    assert columns["o"][0] == "JSON" and columns["mixed"][0] == "JSON"
    assert columns["tags"] == ("STRING", "REPEATED")
    rows = {r["id"]: r for r in dest.rows("types") or []}
    full = rows[1]
    assert full["big"] == -9223372036854775808
    assert full["dec"] == Decimal("12345678901234567890123456789.123456789")
    assert full["money"] == Decimal("999999999.99")
    assert Decimal(full["plain"]) == Decimal("1.10000000000000000000000001")
    assert full["f"] == 0.30000000000000004 and full["ok"] is True and full["s"] == FULL["s"]
    assert full["ts"] == dt.datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=dt.UTC)
    assert full["d"] == dt.date(1, 1, 1) and full["t"] == dt.time(23, 59, 59, 999999)
    assert full["u"] == FULL["u"] and full["tags"] == ["a", "", "b"]
    assert _json(full["o"]) == {"a": [1, {"b": None}], "c": "x", "n": 1.5}
    assert _json(full["mixed"]) == [1, "two", {"three": 3}]
    empty = rows[2]
    assert all(empty[c] is None for c in TYPES if c not in ("id", "tags")) and empty["tags"] == []


def _json(value: Any) -> Any:
    import json

    return json.loads(value) if isinstance(value, str) else value


@pytest.mark.parametrize(
    ("prop", "value", "says"),
    [
        ("big", 2**63, "beyond INT64"),
        ("big", 1.5, "is not an integer"),
        ("dec", Decimal("1.0000000001"), "does not fit"),
    ],
)
def test_a_value_the_column_cannot_hold_stops_naming_it(
    dest: BigQueryDest, run_target: RunTarget, prop: str, value: Any, says: str
) -> None:
    bad = {"id": 7, prop: value}
    data = lines(schema("types", TYPES), record("types", {"id": 1}), record("types", bad), state({"s": 1}))
    result = run_target(BigQueryTarget, dest.config(), data)
    assert result.rc == 65, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert "stream 'types'" in last and f"column {prop!r}" in last and says in last, last
    assert result.states == []
    assert dest.tables() == set()  # the first batch failed: no table, no staging


def test_names_are_made_valid_and_case_insensitive(dest: BigQueryDest, run_target: RunTarget) -> None:
    props = {
        "id": {"type": "integer"},
        "Hello World!": {"type": "string"},
        "1st": {"type": "string"},
        "_TABLE_x": {"type": "string"},
        "x" * 310: {"type": "string"},
    }
    row = {"id": 1, "Hello World!": "a", "1st": "b", "_TABLE_x": "c", "x" * 310: "d"}
    ok(run_target(BigQueryTarget, dest.config(), lines(schema("names", props), record("names", row))))
    got = (dest.rows("names") or [])[0]
    long = next(k for k in got if k.startswith("xxx"))
    assert len(long) == 300
    assert {k: got[k] for k in ("Hello_World_", "_1st", "_dpone_TABLE_x")} == {
        "Hello_World_": "a",
        "_1st": "b",
        "_dpone_TABLE_x": "c",
    }
    assert got[long] == "d"
    clash = {"id": {"type": "integer"}, "Name": {"type": "string"}, "name": {"type": "string"}}
    result = run_target(BigQueryTarget, dest.config(), lines(schema("clash", clash), record("clash", {"id": 1})))
    assert result.rc == 65 and "'Name' and 'name' would both be column" in result.stderr
    assert "clash" not in dest.tables()


def test_a_required_column_the_stream_no_longer_sends_is_relaxed(dest: BigQueryDest, run_target: RunTarget) -> None:
    dest.client.create_dataset(dest.dataset)
    dest.query(f"CREATE TABLE `{dest.dataset}`.`people` (id INT64, legacy STRING NOT NULL)")
    props = {"id": {"type": "integer"}}
    result = ok(run_target(BigQueryTarget, dest.config(), lines(schema("people", props), record("people", {"id": 1}))))
    assert "made nullable" in result.stderr
    assert [(r["id"], r["legacy"]) for r in dest.rows("people") or []] == [(1, None)]


def test_table_options_partition_and_cluster(dest: BigQueryDest, run_target: RunTarget) -> None:
    options = {"ev*": {"partition_by": "ts", "partition_type": "MONTH", "cluster_by": ["s", "id"]}}
    data = lines(schema("events", TYPES), record("events", FULL))
    ok(run_target(BigQueryTarget, dest.config(table_options=options), data))
    table = dest.table("events")
    assert (table.time_partitioning.field, table.time_partitioning.type_) == ("ts", "MONTH")
    assert table.clustering_fields == ["s", "id"]
    bad = {"other": {"partition_by": "s"}}
    result = run_target(BigQueryTarget, dest.config(table_options=bad), lines(schema("other", TYPES)))
    assert result.rc == 78 and "partition_by: 's' must be a TIMESTAMP or DATE column" in result.stderr


def test_overwrite_copies_the_shadow_in_and_keeps_the_layout(dest: BigQueryDest, run_target: RunTarget) -> None:
    options = {"events": {"partition_by": "ts", "cluster_by": ["s"]}}
    config = dest.config(table_options=options, load_method="overwrite")
    ok(run_target(BigQueryTarget, config, lines(schema("events", TYPES), record("events", FULL))))
    again = {**FULL, "id": 2, "s": "new"}
    ok(run_target(BigQueryTarget, config, lines(schema("events", TYPES), record("events", again))))
    assert [(r["id"], r["s"]) for r in dest.rows("events") or []] == [(2, "new")]
    assert dest.table("events").time_partitioning.field == "ts" and dest.tables() == {"events"}


def test_an_overwrite_keeps_an_existing_tables_layout(dest: BigQueryDest, run_target: RunTarget) -> None:
    """table_options apply when a table is created: a full refresh of an unpartitioned table whose
    stream is now given a partitioning keeps the table's (a copy job refuses another one)."""
    plain = dest.config(load_method="overwrite")
    ok(run_target(BigQueryTarget, plain, lines(schema("events", TYPES), record("events", FULL))))
    assert dest.table("events").time_partitioning is None
    later = dest.config(table_options={"events": {"partition_by": "ts"}}, load_method="overwrite")
    again = {**FULL, "id": 2}
    ok(run_target(BigQueryTarget, later, lines(schema("events", TYPES), record("events", again))))
    assert [r["id"] for r in dest.rows("events") or []] == [2]
    assert dest.table("events").time_partitioning is None


def _loader(dest: BigQueryDest, **extra: Any) -> BigQueryLoader:
    return BigQueryLoader(dest.config(**extra), Redactor())


def test_a_failed_job_is_named_by_its_id_and_reason(dest: BigQueryDest) -> None:
    loader = _loader(dest)
    try:
        with pytest.raises(DataError) as caught:
            loader.execute("SELECT ERROR('boom')")
    finally:
        loader.close()
    assert "invalidQuery" in str(caught.value) and "boom" in str(caught.value)
    assert str(caught.value).split("job ", 1)[1].split(":")[0]  # the job's id


class _Faulty:
    """The real client, with faults injected into chosen calls (the emulator does the rest)."""

    def __init__(self, client: Any, faults: dict[str, list[Callable[[], Exception] | None]]) -> None:
        self._client = client
        self._faults = faults
        self._job_ids: set[str] = set()

    def query(self, sql: str, **kwargs: Any) -> Any:
        # BigQuery refuses a job id it has seen (409); the emulator runs the job again.
        job_id = kwargs.get("job_id")
        if job_id in self._job_ids:
            raise api_errors.Conflict(f"Already Exists: Job {job_id}")
        plan = self._faults.get("query")
        if job_id and not (plan and plan[0] is not None and not getattr(plan[0], "after", False)):
            self._job_ids.add(job_id)  # the job reaches the server (a fault raised before it: it does not)
        return self.__getattr__("query")(sql, **kwargs)

    def __getattr__(self, name: str) -> Any:
        real = getattr(self._client, name)
        plan = self._faults.get(name)
        if not plan:
            return real

        def call(*args: Any, **kwargs: Any) -> Any:
            fault = plan.pop(0) if plan else None
            if fault is None:
                return real(*args, **kwargs)
            if getattr(fault, "after", False):
                job = real(*args, **kwargs)
                job.result()  # the job ran; only its answer is lost
            raise fault()

        return call


def _lost_answer() -> Exception:
    return ConnectionResetError("connection reset by peer")


_lost_answer.after = True  # type: ignore[attr-defined]


class FaultyTarget(BigQueryTarget):
    faults: ClassVar[dict[str, list[Any]]] = {}

    def make_loader(self) -> Loader:
        loader = super().make_loader()
        assert isinstance(loader, BigQueryLoader)
        faulty = _Faulty(loader.client, self.faults)
        loader.client = faulty
        reconnect = loader.reconnect

        def reconnect_faulty() -> None:  # a fresh client, still behind the same faults
            reconnect()
            faulty._client = loader.client
            loader.client = faulty

        loader.reconnect = reconnect_faulty  # type: ignore[method-assign]
        return loader


PEOPLE = {"id": {"type": "integer"}, "name": {"type": ["null", "string"]}}


def _people(*ids: int) -> list[dict[str, Any]]:
    return [record("people", {"id": i, "name": f"p{i}"}) for i in ids]


@pytest.mark.parametrize("method", ["append-only", "upsert"])
@pytest.mark.parametrize(
    "fault",
    [
        pytest.param(("load_table_from_file", lambda: api_errors.ServiceUnavailable("backend down")), id="load-503"),
        pytest.param(("query", lambda: api_errors.TooManyRequests("rateLimitExceeded")), id="move-429"),
        pytest.param(("query", _lost_answer), id="move-answer-lost"),
    ],
)
def test_a_transient_error_retries_the_batch_once_only(
    dest: BigQueryDest, run_target: RunTarget, monkeypatch: pytest.MonkeyPatch, method: str, fault: Any
) -> None:
    monkeypatch.setattr("time.sleep", lambda _s: None)
    call, error = fault
    monkeypatch.setattr(FaultyTarget, "faults", {call: [error]})
    data = lines(schema("people", PEOPLE), *_people(1, 2), state({"s": 1}))
    result = ok(run_target(FaultyTarget, dest.config(load_method=method), data))
    assert result.states == [{"s": 1}] and "transient error" in result.stderr
    assert sorted(r["id"] for r in dest.rows("people") or []) == [1, 2]  # each row once


def test_state_is_not_echoed_when_the_final_job_fails(
    dest: BigQueryDest, run_target: RunTarget, monkeypatch: pytest.MonkeyPatch
) -> None:
    ok(run_target(BigQueryTarget, dest.config(), lines(schema("people", PEOPLE), *_people(1))))
    refused = api_errors.BadRequest("invalid", errors=[{"reason": "invalidQuery", "message": "no"}])
    monkeypatch.setattr(FaultyTarget, "faults", {"query": [lambda: refused]})
    result = run_target(FaultyTarget, dest.config(), lines(schema("people", PEOPLE), *_people(2), state({"s": 2})))
    assert result.rc == 65 and result.states == []
    assert "invalidQuery" in result.stderr.strip().splitlines()[-1]
    assert [r["id"] for r in dest.rows("people") or []] == [1]
    assert dest.tables() == {"people"}


def test_two_jobs_per_batch(dest: BigQueryDest, run_target: RunTarget, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[str] = []

    class Counting(BigQueryTarget):
        def make_loader(self) -> Loader:
            loader = super().make_loader()
            assert isinstance(loader, BigQueryLoader)
            real = loader.client

            class Proxy:
                def __getattr__(self, name: str) -> Any:
                    attr = getattr(real, name)
                    if callable(attr) and not name.startswith("_"):
                        calls.append(name)
                    return attr

            loader.client = Proxy()
            return loader

    data = lines(schema("people", PEOPLE), *_people(*range(1, 10)), state({"s": 1}))
    ok(run_target(Counting, dest.config(batch_size_rows=3), data))
    per_batch = [c for c in calls if c in ("load_table_from_file", "query")]
    assert per_batch.count("load_table_from_file") == 3 and per_batch.count("query") == 3
    # Per run, not per batch: the dataset check, the table's description and creation, one staging expiry and drop.
    assert len(calls) - len(per_batch) <= 6, calls


def test_gs_files_are_loaded_in_place_only_when_they_can_be(dest: BigQueryDest) -> None:
    loader = _loader(dest)
    plan = StreamPlan("people", "people", {"id": ColumnType(Logical.INTEGER)}, ["id"], "upsert")
    files = [BatchFile("gs://bucket/a.jsonl.gz", 10, "x", "y", 2)]
    try:
        assert loader.accepts_files(plan, BatchManifest("people", "jsonl", "gzip", files))
        assert not loader.accepts_files(plan, BatchManifest("people", "parquet", None, files))
        local = [BatchFile("file:///tmp/a.jsonl", 10, "x", "y", 2)]
        assert not loader.accepts_files(plan, BatchManifest("people", "jsonl", None, local))
        plan.renames = {"Id": "id"}
        assert not loader.accepts_files(plan, BatchManifest("people", "jsonl", "gzip", files))
    finally:
        loader.close()


def test_a_missing_dataset_without_create_dataset_is_a_config_error(dest: BigQueryDest, run_target: Any) -> None:
    config = {**dest.config(), "dataset": f"missing_{uuid.uuid4().hex[:8]}", "create_dataset": False}
    data = lines(schema("people", {"id": {"type": "integer"}}), record("people", {"id": 1}), state({"n": 1}))
    result = run_target(BigQueryTarget, config, data)
    assert result.rc == 78, result.stderr
    assert "does not exist (create_dataset is false)" in result.stderr
    assert result.states == []


@pytest.mark.parametrize("text", ["12345", '["x"]', '"key"'])
def test_credentials_json_that_is_not_an_object_is_a_config_error(text: str, run_target: Any) -> None:
    config = {"project": "p", "dataset": "d", "credentials_json": text}
    data = lines(schema("people", {"id": {"type": "integer"}}), record("people", {"id": 1}))
    result = run_target(BigQueryTarget, config, data)
    assert result.rc == 78, result.stderr
    assert "is not a service account key" in result.stderr


def test_a_malformed_raw_line_is_named_by_its_input_line(dest: BigQueryDest, run_target: Any) -> None:
    head = lines(schema("people", {"id": {"type": "integer"}, "n": {"type": ["null", "integer"]}}))
    body = b'{"type":"RECORD","stream":"people","record":{"id":1,"n":2}}\n'
    body += b'{"type":"RECORD","stream":"people","record":{"id":2,\n'
    body += b'{"type":"RECORD","stream":"people","record":[1,2]}\n'
    result = run_target(BigQueryTarget, dest.config(), head + body)
    assert result.rc == 65, result.stderr
    assert "line 3" in result.stderr and "malformed JSON" in result.stderr
    assert dest.rows("people") in (None, [])


def test_a_wide_integer_is_not_blamed_for_another_value(dest: BigQueryDest, run_target: Any) -> None:
    props = {"id": {"type": "integer"}, "imax": {"type": ["null", "integer"]}, "b": {"type": ["null", "boolean"]}}
    data = lines(
        schema("types", props),
        record("types", {"id": 30, "imax": 9223372036854775807}),
        record("types", {"id": 31, "b": "notabool"}),
    )
    result = run_target(BigQueryTarget, dest.config(), data)
    assert result.rc == 65, result.stderr
    assert "column 'b'" in result.stderr and "column 'imax'" not in result.stderr


def test_an_endpoint_that_refuses_is_transient_and_says_so(run_target: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from dpone_drivers import bigquery as drivers

    monkeypatch.setattr(drivers, "PROBE_DEADLINE_SECONDS", 2.0)  # the client would retry a minute
    config = {"project": "p", "dataset": "d", "api_endpoint": "http://127.0.0.1:1"}
    data = lines(schema("people", {"id": {"type": "integer"}}), record("people", {"id": 1}))
    result = run_target(BigQueryTarget, config, data)
    assert result.rc == 75, result.stderr
    assert "Connection refused" in result.stderr
