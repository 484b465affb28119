"""LoaderSink on its own: the order of the loader's steps, schema changes handed to the load that
runs them, retries, the full-refresh state machine and the commit marks, against a loader that
keeps its tables in memory and records every call."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.committer import Committer
from dpone.targets.framework.loader import Loader, SchemaQueue, StreamPlan
from dpone.targets.framework.loader_sink import LoaderSink
from dpone.targets.framework.schema_evolution import DestinationColumn, SchemaPlan
from dpone.targets.postgres.type_map import POSTGRES
from dpone_protocol.errors import DataError, TransientError
from dpone_protocol.messages import SchemaMessage


class MemoryLoader(Loader):
    """Tables are lists of rows; DDL is recorded, a CREATE makes the table. `fail` maps a step name
    to the errors its next calls raise, one per call."""

    dialect = POSTGRES

    def __init__(self) -> None:
        self.tables: dict[str, list[dict[str, Any]]] = {}
        self.columns: dict[str, dict[str, DestinationColumn]] = {}
        self.staged: dict[str, list[dict[str, Any]]] = {}
        self.calls: list[tuple[Any, ...]] = []
        self.fail: dict[str, list[Exception]] = {}
        self.reconnects = 0

    def _step(self, name: str, *args: Any) -> None:
        self.calls.append((name, *args))
        errors = self.fail.get(name)
        if errors:
            raise errors.pop(0)

    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        return self.columns.get(table)

    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        if schema.creates:
            return [f"create {table} {','.join(schema.table_columns)}"]
        return [f"alter {table} {change.column}" for change in schema.ddl]

    def _run_ddl(self, table: str, statements: list[str]) -> None:
        for sql in statements:
            verb, name, columns = sql.split()
            if verb == "create":
                self.tables.setdefault(name, [])
            self.columns.setdefault(name, {}).update({c: DestinationColumn("text") for c in columns.split(",")})

    def apply_schema(self, table: str, statements: list[str]) -> None:
        self._step("apply_schema", table, list(statements))
        self._run_ddl(table, statements)

    def prepare_staging(self, plan: StreamPlan) -> str:
        self._step("prepare_staging", plan.table)
        self.staged[plan.table] = []
        return plan.table

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        self._step("bulk_load", staging, len(records))
        self.staged[staging] = [dict(r) for r in records]

    def finalize(self, plan: StreamPlan, staging: str, table: str, schema: list[str]) -> None:
        self._step("finalize", table, list(schema))
        self._run_ddl(table, schema)
        rows = self.staged.pop(staging) if staging in self.staged else list(self.tables.get(staging, []))
        kept = self.tables[table]
        if plan.merges:
            keys = {r["id"] for r in rows}
            kept[:] = [r for r in kept if r["id"] not in keys]
        kept.extend(rows)

    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        self.calls.append(("cleanup", staging))

    def begin_replace(self, plan: StreamPlan) -> str:
        self._step("begin_replace", plan.table)
        shadow = plan.table + "__new"
        self.tables[shadow] = []
        self.columns[shadow] = {"id": DestinationColumn("bigint"), "_sdc_table_version": DestinationColumn("bigint")}
        return shadow

    def swap(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        self._step("swap", shadow, list(schema))
        self.tables[plan.table] = self.tables.pop(shadow)
        self.columns[plan.table] = self.columns.pop(shadow)

    def merge_shadow(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        self._step("merge_shadow", shadow)
        self.finalize(plan, shadow, plan.table, schema)
        del self.tables[shadow]

    def table_version(self, table: str) -> int | None:
        versions = [r.get("_sdc_table_version") for r in self.tables.get(table, [])]
        known = [v for v in versions if v is not None]
        return max(known) if known else None

    def activate_version(self, plan: StreamPlan, version: int) -> None:
        self._step("activate_version", plan.table, version)

    def reconnect(self) -> None:
        self.reconnects += 1

    def steps(self, *names: str) -> list[tuple[Any, ...]]:
        return [c for c in self.calls if not names or c[0] in names]


CREATE = "create s id,_sdc_extracted_at,_sdc_received_at,_sdc_batched_at,_sdc_deleted_at,_sdc_table_version"
SCHEMA = SchemaMessage("s", {"type": "object", "properties": {"id": {"type": "integer"}}}, ["id"])
WIDER = SchemaMessage(
    "s", {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}}, ["id"]
)


def sink(loader: MemoryLoader, committer: Committer | None = None, **config: Any) -> LoaderSink:
    settings = {"max_retries": 2, **config}
    return LoaderSink(settings, SCHEMA, BatchPolicy(max_rows=2), loader, SchemaQueue(), committer)


def feed(s: LoaderSink, *ids: int, version: int | None = None) -> None:
    for line, i in enumerate(ids, 1):
        if s.add_record({"id": i}, version, None, 10, line):
            s.drain()


@pytest.fixture(autouse=True)
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("dpone.targets.framework.loader_sink.time.sleep", lambda _: None)


def test_each_batch_runs_staging_load_finalize_cleanup_in_order_with_the_table_created_in_its_transaction():
    loader = MemoryLoader()
    s = sink(loader)
    feed(s, 1, 2, 3)
    s.drain()
    s.finish()
    names = [c[0] for c in loader.calls]
    assert names == ["prepare_staging", "bulk_load", "finalize", "cleanup"] * 2
    finalizes = loader.steps("finalize")
    assert finalizes[0][2] == [CREATE]  # the CREATE commits with the first rows, or not at all
    assert finalizes[1][2] == []
    assert [r["id"] for r in loader.tables["s"]] == [1, 2, 3]


def test_a_stream_without_rows_still_gets_its_table_at_the_end():
    loader = MemoryLoader()
    sink(loader).finish()
    assert loader.calls == [("apply_schema", "s", [CREATE])]
    assert loader.tables == {"s": []}


def test_a_schema_change_is_handed_to_the_next_load_of_the_table():
    loader = MemoryLoader()
    s = sink(loader)
    feed(s, 1, 2)
    s.set_schema(WIDER)
    feed(s, 3, 4)
    assert loader.steps("finalize")[1][2] == ["alter s v"]
    assert not loader.steps("apply_schema")


def test_a_schema_queued_for_a_table_without_rows_runs_before_the_next_plan():
    loader = MemoryLoader()
    queue = SchemaQueue()
    first = LoaderSink({}, SCHEMA, BatchPolicy(), loader, queue)
    # A second stream loading into the same table plans against the table it will really meet.
    LoaderSink({"table_name_map": {"t": "s"}}, SchemaMessage("t", SCHEMA.schema, ["id"]), BatchPolicy(), loader, queue)
    assert loader.steps("apply_schema") == [("apply_schema", "s", [CREATE])]
    feed(first, 1)
    first.drain()
    assert loader.steps("finalize")[0][2] == []


def test_a_transient_error_is_retried_after_a_reconnect_with_the_schema_change_handed_again():
    loader = MemoryLoader()
    loader.fail["finalize"] = [TransientError("connection reset")]
    s = sink(loader)
    feed(s, 1, 2)
    assert loader.reconnects == 1
    finalizes = loader.steps("finalize")
    assert [f[2] for f in finalizes] == [[CREATE], [CREATE]]
    assert [r["id"] for r in loader.tables["s"]] == [1, 2]
    assert s.is_committed(s.commit_mark())


def test_retries_stop_at_max_retries_and_the_failed_batch_never_counts_as_committed():
    loader = MemoryLoader()
    loader.fail["bulk_load"] = [TransientError("down")] * 3
    s = sink(loader, max_retries=2)
    with pytest.raises(TransientError):
        feed(s, 1, 2)
    assert len(loader.steps("bulk_load")) == 3
    assert not s.is_committed(s.commit_mark())


def test_an_error_that_is_not_transient_is_not_retried():
    loader = MemoryLoader()
    loader.fail["finalize"] = [DataError("value too long")]
    s = sink(loader)
    with pytest.raises(DataError):
        feed(s, 1, 2)
    assert loader.reconnects == 0 and len(loader.steps("finalize")) == 1


def test_overwrite_fills_a_shadow_that_is_not_committed_until_activate_version_swaps_it():
    loader = MemoryLoader()
    loader.tables["s"] = [{"id": 9, "_sdc_table_version": 1}]
    loader.columns["s"] = {"id": DestinationColumn("bigint")}
    s = sink(loader, load_method="overwrite")
    feed(s, 1, 2, 3, version=5)
    s.drain()
    assert loader.steps("begin_replace") == [("begin_replace", "s")]
    assert not s.is_committed(s.commit_mark())  # rows are in the shadow: not visible yet
    s.activate_version(5)
    assert loader.steps("swap") == [("swap", "s__new", [])]
    assert [r["id"] for r in loader.tables["s"]] == [1, 2, 3]
    assert s.is_committed(s.commit_mark())
    s.activate_version(5)  # the same version again: already in place
    s.finish()
    assert len(loader.steps("swap", "begin_replace")) == 2


def test_overwrite_activate_version_before_the_rows_opens_the_refresh_and_the_end_swaps_it():
    loader = MemoryLoader()
    s = sink(loader, load_method="overwrite")
    s.activate_version(7)
    feed(s, 1, version=7)
    s.drain()
    s.finish()
    assert [c[0] for c in loader.steps("begin_replace", "swap")] == ["begin_replace", "swap"]
    assert [r["id"] for r in loader.tables["s"]] == [1]


def test_overwrite_without_rows_or_activate_version_swaps_in_an_empty_table():
    loader = MemoryLoader()
    loader.tables["s"] = [{"id": 9}]
    s = sink(loader, load_method="overwrite")
    s.finish()
    assert loader.tables["s"] == []


def test_a_resumed_refresh_whose_version_is_live_is_merged_not_swapped():
    loader = MemoryLoader()
    loader.tables["s"] = [{"id": i, "_sdc_table_version": 5} for i in (1, 2, 3)]
    loader.columns["s"] = {"id": DestinationColumn("bigint"), "_sdc_table_version": DestinationColumn("bigint")}
    s = sink(loader, load_method="overwrite")
    feed(s, 3, 4, version=5)  # the tail of version 5, re-sent after a lost final STATE
    s.activate_version(5)
    assert not loader.steps("swap") and loader.steps("merge_shadow")
    assert sorted(r["id"] for r in loader.tables["s"]) == [1, 2, 3, 4]


def test_activate_version_without_the_version_column_is_ignored_with_a_warning(caplog):
    loader = MemoryLoader()
    s = sink(loader, add_record_metadata=False)
    with caplog.at_level(logging.WARNING):
        s.activate_version(3)
    assert not loader.steps("activate_version")
    assert "add_record_metadata is off" in caplog.text


def test_activate_version_of_an_upsert_stream_runs_queued_changes_first():
    loader = MemoryLoader()
    s = sink(loader)
    s.activate_version(3)
    assert [c[0] for c in loader.calls] == ["apply_schema", "activate_version"]


def test_background_batches_commit_in_order_and_marks_follow_them():
    loader = MemoryLoader()
    committer = Committer("test", lanes=2)
    s = sink(loader, committer)
    feed(s, 1, 2, 3, 4)
    mark = s.commit_mark()
    assert mark == 2
    s.settle()
    assert s.is_committed(mark)
    assert [r["id"] for r in loader.tables["s"]] == [1, 2, 3, 4]


def test_a_failed_background_batch_is_raised_at_the_next_use_and_later_marks_never_commit():
    loader = MemoryLoader()
    loader.fail["finalize"] = [DataError("refused")]
    committer = Committer("test", lanes=1)
    s = sink(loader, committer)
    feed(s, 1, 2)
    mark = s.commit_mark()
    with pytest.raises(DataError):
        s.settle()
    assert not s.is_committed(mark)


def test_a_resumed_refresh_that_brought_a_new_column_adds_it_to_the_live_table_in_the_merge():
    loader = MemoryLoader()
    loader.tables["s"] = [{"id": 1, "_sdc_table_version": 5}]
    loader.columns["s"] = {c: DestinationColumn("text") for c in CREATE.split()[2].split(",")}
    s = LoaderSink({"load_method": "overwrite"}, WIDER, BatchPolicy(max_rows=2), loader, SchemaQueue())
    feed(s, 2, version=5)
    s.drain()
    s.activate_version(5)
    ((_, _, schema),) = [c for c in loader.calls if c[0] == "finalize" and c[1] == "s"]
    assert schema == ["alter s v"]
