"""Partitioned loads run by Dagster's real engine: its multiprocess executor, one process per step.

A source table of 3,000 rows is planned in 4 ranges by a nullable integer column (its NULL keys go
to the first range), PostgreSQL to PostgreSQL, with the SQLite state store of a project directory.
Dagster then loads the ranges through dpone_runner.orchestrators.dagster_assets, either all in one
run (`ranges_asset`, the loads fanned out in parallel) or one run per partition
(`partitioned_asset`, as a backfill runs them). Each test ends on what a user relies on: the
destination equals the source (EXCEPT both ways), how often each range was attempted, and the
stream's bookmark, which moves once every range is in and not before.

Failures come from the destination: a trigger on its table refuses a row of one range, once with a
serialization failure (transient: the RetryPolicy retries the range) or always with a check
violation (data: the step fails without retries, the bookmark stays).
"""

from __future__ import annotations

import io
import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import orjson
import psycopg
import pytest
import yaml

from dpone.state.store import open_store
from dpone_runner import cli
from dpone_runner.orchestrators.dagster_assets import asset_name, partitioned_asset
from tests.tools.dagster_partitions import reconstructable

pytestmark = [pytest.mark.service, pytest.mark.slow]

ROWS = 3000
NULL_KEYS = 30
PIPELINE = "orders"
RANGES = 4
BOOKMARK = {"replication_key": "updated_at", "replication_key_value": "2024-06-01T00:50:00+00:00"}
COLUMNS = "id, k, name, updated_at"

SOURCE = f"""
CREATE TABLE big (id bigint PRIMARY KEY, k int, name text, updated_at timestamptz NOT NULL);
INSERT INTO big
SELECT i, CASE WHEN i % 100 = 0 THEN NULL ELSE i END, 'row ' || i,
       '2024-06-01 00:00+00'::timestamptz + i * interval '1 second'
FROM generate_series(1, {ROWS}) AS i;
CREATE INDEX ON big (k);
ANALYZE big;
"""


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Project:
    """A project directory whose pipeline loads one table of a schema of its own into another schema."""

    def __init__(self, dsn: str, config: dict[str, Any], root: Path) -> None:
        self.dsn, self.root = dsn, root
        self.schema = f"dg_{uuid.uuid4().hex[:10]}"
        self.dest = f"{self.schema}_dst"
        self.sql(f"CREATE SCHEMA {q(self.schema)}; SET search_path TO {q(self.schema)};" + SOURCE)
        tap = {**config, "include": [f"{self.schema}.big"]}
        metadata = {"replication-method": "INCREMENTAL", "replication-key": "updated_at"}
        loader = {**config, "default_target_schema": self.dest, "load_method": "upsert"}
        plugins = {
            "extractors": [{"name": "tap-postgres", "config": tap, "metadata": {self.stream: metadata}}],
            "loaders": [{"name": "target-postgres", "config": loader}],
        }
        (root / "meltano.yml").write_text(yaml.safe_dump({"version": 1, "plugins": plugins}))
        pipelines = {PIPELINE: {"tap": "tap-postgres", "targets": ["target-postgres"]}}
        (root / "dpone.yml").write_text(yaml.safe_dump({"pipelines": pipelines}))

    @property
    def stream(self) -> str:
        return f"{self.schema}-big"

    @property
    def table(self) -> str:
        return f"{q(self.dest)}.{q(self.schema + '_big')}"

    def sql(self, statement: str) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement)  # type: ignore[arg-type]
            return cur.fetchall() if cur.description else []

    def dpone(self, *argv: str) -> str:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run([*argv, "--project", str(self.root)], stdout=out, stderr=err)
        assert rc == 0, out.getvalue() + err.getvalue()
        return out.getvalue()

    def plan(self) -> list[dict[str, Any]]:
        self.dpone("partitions", "plan", PIPELINE, "--stream", self.stream, "--by", "k", "--ranges", str(RANGES))
        return self.ranges()

    def ranges(self) -> list[dict[str, Any]]:
        shown = self.dpone("partitions", "status", PIPELINE, "--stream", self.stream, "--format", "json")
        (plan,) = orjson.loads(shown)
        return list(plan["ranges"])

    def differences(self) -> tuple[int, int]:
        """Rows of the source missing from the destination, and rows of the destination not in the source."""
        src, dst = f"SELECT {COLUMNS} FROM {q(self.schema)}.big", f"SELECT {COLUMNS} FROM {self.table}"
        missing = self.sql(f"SELECT count(*) FROM ({src} EXCEPT {dst}) d")
        extra = self.sql(f"SELECT count(*) FROM ({dst} EXCEPT {src}) d")
        return int(missing[0][0]), int(extra[0][0])

    def dest_rows(self) -> int:
        return int(self.sql(f"SELECT count(*) FROM {self.table}")[0][0])

    def bookmark(self) -> Any:
        store = open_store(f"sqlite:///{self.root / '.dpone' / 'state.db'}")
        try:
            found = store.get(PIPELINE)
        finally:
            store.close()
        return None if found is None else found.value.get("bookmarks", {}).get(self.stream)

    def _within(self, r: dict[str, Any]) -> str:
        """The rows of range `r`: low <= k < high, and the NULL keys in the first range."""
        low, high = r["low"], r["high"]
        bounded = " AND ".join([f"k >= {int(low)}"] * (low is not None) + [f"k < {int(high)}"] * (high is not None))
        return f"({bounded}) OR k IS NULL" if low is None else bounded

    def key_in(self, r: dict[str, Any]) -> int:
        """A non-NULL key of the source in range `r`."""
        return int(self.sql(f"SELECT min(k) FROM {q(self.schema)}.big WHERE {self._within(r)}")[0][0])

    def rows_in(self, r: dict[str, Any]) -> int:
        return int(self.sql(f"SELECT count(*) FROM {q(self.schema)}.big WHERE {self._within(r)}")[0][0])

    def refuse(self, key: int, *, sqlstate: str, times: int) -> None:
        """The destination table refuses the row with k = `key` the first `times` times it is inserted.

        The count is a sequence, which a rolled-back transaction does not roll back."""
        self.sql(
            f"""
            CREATE SEQUENCE {q(self.dest)}.refusals;
            CREATE FUNCTION {q(self.dest)}.refuse() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
              IF NEW.k = {key} THEN
                IF nextval('{q(self.dest)}.refusals') <= {times} THEN
                  RAISE EXCEPTION 'row k = % refused by the test', NEW.k USING ERRCODE = '{sqlstate}';
                END IF;
              END IF;
              RETURN NEW;
            END $$;
            CREATE TRIGGER refuse BEFORE INSERT ON {self.table} FOR EACH ROW EXECUTE FUNCTION {q(self.dest)}.refuse();
            """
        )

    def inserts_of_refused_row(self) -> int:
        return int(self.sql(f"SELECT last_value FROM {q(self.dest)}.refusals")[0][0])

    def close(self) -> None:
        self.sql(f"DROP SCHEMA IF EXISTS {q(self.schema)} CASCADE; DROP SCHEMA IF EXISTS {q(self.dest)} CASCADE")


@pytest.fixture
def project(server: Any, database: str, tmp_path: Path) -> Iterator[Project]:
    root = tmp_path / "project"
    root.mkdir()
    found = Project(server.dsn(database), server.config(database), root)
    try:
        yield found
    finally:
        found.close()


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    """A Dagster instance of the test's own: run storage, event log and step outputs in a temp dir."""
    with tempfile.TemporaryDirectory(prefix="dagster-") as home:
        found = dg.DagsterInstance.local_temp(home, overrides={"telemetry": {"enabled": False}})
        try:
            yield found
        finally:
            found.dispose()


def execute(
    instance: dg.DagsterInstance, job: str, project: Project, *, partition: str | None = None, retries: int = 0
) -> dg.JobExecutionResult:
    tags = {"dagster/partition": partition} if partition else None
    rebuilt = reconstructable(job, project.root, PIPELINE, project.stream, retries)
    return dg.execute_job(rebuilt, instance=instance, tags=tags)


def steps_with(result: dg.JobExecutionResult, event: str) -> list[str]:
    return sorted(str(e.step_key) for e in result.all_events if e.event_type_value == event)


def materialized(result: dg.JobExecutionResult, node: str) -> list[dict[str, Any]]:
    return [{k: v.value for k, v in m.metadata.items()} for m in result.asset_materializations_for_node(node)]


def test_ranges_asset_loads_every_range_in_parallel_steps_of_one_run(
    project: Project, instance: dg.DagsterInstance
) -> None:
    ranges = project.plan()
    assert [r["status"] for r in ranges] == ["pending"] * RANGES
    assert ranges[0]["low"] is None  # the NULL keys' range
    assert project.bookmark() is None

    result = execute(instance, "ranges_job", project)

    assert result.success
    name = asset_name(project.stream)
    loads = [f"{name}.{name}__load_range[r{i:04d}]" for i in range(RANGES)]
    assert steps_with(result, "STEP_SUCCESS") == sorted([f"{name}.{name}__ranges", f"{name}.{name}__finalize", *loads])
    assert steps_with(result, "STEP_UP_FOR_RETRY") == []
    # The multiprocess executor ran each load in a process of its own, none in the test's.
    pids = {e.step_key: e.pid for e in result.all_events if e.event_type_value == "STEP_START"}
    assert len({pids[step] for step in loads} | {os.getpid()}) == RANGES + 1
    assert project.differences() == (0, 0)
    assert project.dest_rows() == ROWS
    ranges = project.ranges()
    assert [(r["status"], r["attempts"]) for r in ranges] == [("success", 1)] * RANGES
    assert {r["worker"] for r in ranges} == {f"dagster-{result.run_id}"}
    assert sum(r["rows_loaded"] for r in ranges) == ROWS
    assert project.bookmark() == BOOKMARK
    (meta,) = materialized(result, name)
    assert meta == {"ranges": RANGES, "rows_extracted": ROWS, "rows_loaded": ROWS, "retried_ranges": []}


def test_partitioned_asset_loads_a_range_per_run_and_the_last_run_moves_the_bookmark(
    project: Project, instance: dg.DagsterInstance
) -> None:
    project.plan()
    keys = [f"r{i:04d}" for i in range(RANGES)]
    name = asset_name(project.stream)
    asset = partitioned_asset(PIPELINE, project.stream, project_dir=project.root)
    assert asset.key == dg.AssetKey(name)
    assert asset.partitions_def is not None and asset.partitions_def.get_partition_keys() == keys

    for key in keys:
        result = execute(instance, "partition_job", project, partition=key)
        assert result.success
        (meta,) = materialized(result, name)
        last = key == keys[-1]
        assert meta["key"] == key and meta["attempts"] == 1 and not meta["already_loaded"]
        assert meta["finalized"] is last
        assert project.bookmark() == (BOOKMARK if last else None)

    assert project.differences() == (0, 0)
    assert project.dest_rows() == ROWS
    assert [(r["status"], r["attempts"]) for r in project.ranges()] == [("success", 1)] * RANGES

    # Materializing a loaded partition again loads nothing: the range is in the destination already.
    again = execute(instance, "partition_job", project, partition=keys[1])
    (meta,) = materialized(again, name)
    assert meta["already_loaded"] and meta["attempts"] == 1 and meta["finalized"]
    assert project.dest_rows() == ROWS


def test_a_range_the_destination_refuses_once_is_retried_by_the_retry_policy(
    project: Project, instance: dg.DagsterInstance
) -> None:
    ranges = project.plan()
    project.refuse(project.key_in(ranges[2]), sqlstate="40001", times=1)  # serialization failure: transient

    result = execute(instance, "ranges_job", project, retries=2)

    assert result.success
    name = asset_name(project.stream)
    assert steps_with(result, "STEP_UP_FOR_RETRY") == [f"{name}.{name}__load_range[r0002]"]
    assert project.inserts_of_refused_row() == 2
    assert project.differences() == (0, 0)
    assert project.dest_rows() == ROWS
    assert [(r["status"], r["attempts"]) for r in project.ranges()] == [
        ("success", 1),
        ("success", 1),
        ("success", 2),
        ("success", 1),
    ]
    assert project.bookmark() == BOOKMARK
    (meta,) = materialized(result, name)
    assert meta["retried_ranges"] == ["r0002"]


def test_a_range_the_destination_refuses_for_good_fails_at_once_and_the_bookmark_stays(
    project: Project, instance: dg.DagsterInstance
) -> None:
    ranges = project.plan()
    project.refuse(project.key_in(ranges[1]), sqlstate="23514", times=1000)  # check violation: data

    result = execute(instance, "ranges_job", project, retries=2)

    assert not result.success
    name = asset_name(project.stream)
    assert steps_with(result, "STEP_UP_FOR_RETRY") == []
    assert steps_with(result, "STEP_FAILURE") == [f"{name}.{name}__load_range[r0001]"]
    assert project.inserts_of_refused_row() == 1
    found = project.ranges()
    assert [(r["status"], r["attempts"]) for r in found] == [
        ("success", 1),
        ("failed", 1),
        ("success", 1),
        ("success", 1),
    ]
    assert found[1]["error_kind"] == "data"
    assert project.differences() == (project.rows_in(found[1]), 0)
    assert project.bookmark() is None
    assert materialized(result, name) == []
