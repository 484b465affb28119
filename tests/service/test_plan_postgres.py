"""`dpone plan PIPELINE` on a real pipeline: tap-postgres into target-postgres and target-duckdb.

A project directory declares the pipeline `orders` (dpone.yml) over a schema of its own on the session
PostgreSQL server: an INCREMENTAL table, a FULL_TABLE table without a primary key (upsert appends), a
partitioned table and a column left out by `select`. Before the first run the plan shows every
selected column, no state, the tables the targets would create, and row estimates only once the source
was analysed; after a run it shows each stream's bookmark and "no changes", and a column added in the
source as an added column in both targets. Planning changes nothing: not the state, not the tables.

Also: JSON for tools, `--stream`, a locked pipeline, a tap that cannot estimate (tap-csv) and a target
that has no tables to plan (target-jsonl), the errors of a wrong pipeline name, and the installed
`dpone` driven as a user would.

`dpone` runs in-process (dpone_runner.cli.run) except where said; its connectors are subprocesses.
"""

from __future__ import annotations

import io
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import psycopg
import pytest
import yaml

from dpone.state.store import new_lock, open_store
from dpone_runner import cli
from tests.service.conftest import PostgresServer

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
DPONE = str(BIN / "dpone")
EXIT_CONFIG = 78
PASSWORD = "plan-pw-Zq81"  # trust authentication accepts any: here only to be kept out of the output


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


@dataclass
class Result:
    rc: int
    out: str
    err: str

    def ok(self) -> Result:
        assert self.rc == 0, self.out + self.err
        return self

    def json(self) -> Any:
        return orjson.loads(self.ok().out)


class Project:
    """A project directory: tap-postgres on a schema of its own, target-postgres into another schema of the
    same database, target-duckdb into a file; more plugins as a test needs."""

    def __init__(self, server: PostgresServer, database: str, root: Path, **tap_config: Any) -> None:
        self.server = server
        self.database = database
        self.root = root
        self.schema = f"src_{uuid.uuid4().hex[:8]}"
        self.dest = f"{self.schema}_dest"
        self.duckdb = root / "warehouse.duckdb"
        self.conn = psycopg.connect(self.dsn, autocommit=True)
        self.conn.execute(f"CREATE SCHEMA {q(self.schema)}")
        self.conn.execute(f"SET search_path TO {q(self.schema)}")
        connection = {**server.config(database), "password": PASSWORD}
        self.extractors: list[dict[str, Any]] = [
            {
                "name": "tap-postgres",
                "config": {**connection, "include": [f"{self.schema}.*"], **tap_config},
                "select": [f"{self.schema}-*.*", f"!{self.schema}-customers.email"],
                "metadata": {
                    f"{self.schema}-customers": {"replication-method": "INCREMENTAL", "replication-key": "updated_at"},
                    f"{self.schema}-notes": {"replication-method": "FULL_TABLE"},
                    f"{self.schema}-readings": {"replication-method": "FULL_TABLE"},
                },
            }
        ]
        self.loaders: list[dict[str, Any]] = [
            {"name": "target-postgres", "config": {**connection, "default_target_schema": self.dest}},
            {"name": "target-duckdb", "config": {"filepath": str(self.duckdb)}},
        ]
        self.pipelines: dict[str, Any] = {
            "orders": {"tap": "tap-postgres", "targets": ["target-postgres", "target-duckdb"]}
        }
        self.write()

    @property
    def dsn(self) -> str:
        return f"postgresql://{self.server.user}@{self.server.host}:{self.server.port}/{self.database}"

    def stream(self, table: str) -> str:
        return f"{self.schema}-{table}"

    def write(self) -> None:
        plugins = {"extractors": self.extractors, "loaders": self.loaders}
        (self.root / "meltano.yml").write_text(yaml.safe_dump({"version": 1, "plugins": plugins}))
        (self.root / "dpone.yml").write_text(yaml.safe_dump({"pipelines": self.pipelines}))

    def sql(self, *statements: str) -> None:
        for statement in statements:
            self.conn.execute(statement)  # type: ignore[arg-type]

    def dpone(self, *argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run([*argv, "--project", str(self.root)], stdout=out, stderr=err)
        return Result(rc, out.getvalue(), err.getvalue())

    def run(self, *targets: str, pipeline: str = "orders", tap: str = "tap-postgres") -> dict[str, Any]:
        wanted = targets or tuple(self.pipelines[pipeline]["targets"])
        res = self.dpone("run", tap, *wanted, "--pipeline-id", pipeline, "--no-progress", "--format", "json")
        assert res.rc == 0, res.out + res.err
        report: dict[str, Any] = orjson.loads(res.out)
        return report

    def state(self, pipeline: str = "orders") -> dict[str, Any] | None:
        store = open_store(f"sqlite:///{self.root / '.dpone' / 'state.db'}")
        try:
            found = store.get(pipeline)
            return None if found is None else found.value
        finally:
            store.close()

    def destination(self) -> dict[str, Any]:
        """Every destination table's columns and row count, in both targets."""
        found: dict[str, Any] = {}
        rows = self.conn.execute(
            "SELECT table_name, array_agg(column_name::text ORDER BY ordinal_position) FROM information_schema.columns "
            "WHERE table_schema = %s GROUP BY table_name",
            (self.dest,),
        ).fetchall()
        for table, columns in rows:
            count = self.conn.execute(f"SELECT count(*) FROM {q(self.dest)}.{q(table)}").fetchone()
            found[f"postgres/{table}"] = (columns, count[0] if count else None)
        if self.duckdb.exists():
            with duckdb.connect(str(self.duckdb), read_only=True) as conn:
                for (table,) in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall():
                    columns = [r[0] for r in conn.execute(f'DESCRIBE "{table}"').fetchall()]
                    count = conn.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                    found[f"duckdb/{table}"] = (columns, count[0] if count else None)
        return found

    def close(self) -> None:
        self.conn.execute(f"DROP SCHEMA IF EXISTS {q(self.schema)} CASCADE")
        self.conn.execute(f"DROP SCHEMA IF EXISTS {q(self.dest)} CASCADE")
        self.conn.close()


def create_tables(project: Project) -> None:
    project.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, email text, updated_at timestamptz NOT NULL)",
        "INSERT INTO customers VALUES (1, 'Ada', 'ada@example.com', '2024-01-01 10:00+00'), "
        "(2, 'Bob', 'bob@example.com', '2024-01-02 10:00+00'), (3, 'Cy', NULL, '2024-01-03 10:00+00')",
        "CREATE TABLE notes (body text, at date)",  # no primary key: upsert has nothing to merge on
        "INSERT INTO notes SELECT 'note ' || n, DATE '2024-01-01' + n FROM generate_series(1, 5) AS n",
        "CREATE TABLE readings (id int, at date, value numeric, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
        "CREATE TABLE readings_2023 PARTITION OF readings FOR VALUES FROM ('2023-01-01') TO ('2024-01-01')",
        "CREATE TABLE readings_2024 PARTITION OF readings FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "INSERT INTO readings SELECT n, DATE '2023-06-01' + n * 30, n * 1.5 FROM generate_series(1, 12) AS n",
    )


@pytest.fixture
def project(postgres_server: PostgresServer, database: str, tmp_path: Path) -> Iterator[Project]:
    found = Project(postgres_server, database, tmp_path)
    create_tables(found)
    try:
        yield found
    finally:
        found.close()


def streams_of(plan: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {s["stream"]: s for s in plan["streams"]}


def target_of(stream: dict[str, Any], target: str) -> dict[str, Any]:
    (found,) = [t for t in stream["targets"] if t["target"] == target]
    return found


class TestBeforeTheFirstRun:
    def test_text_names_every_stream_its_columns_method_and_what_the_targets_would_create(self, project: Project):
        text = project.dpone("plan", "orders").ok().out
        customers, notes = project.stream("customers"), project.stream("notes")
        assert text.startswith("pipeline orders: tap-postgres -> target-postgres, target-duckdb\n")
        assert "state: no saved state: a first run, every stream from the start\n" in text
        assert "lock: not locked\n" in text
        block = text.split(f"\nstream {customers}\n")[1].split("\nstream ")[0]
        assert "  columns (3): id, name, updated_at\n" in block  # email is left out by select
        assert "  key properties: id\n" in block
        assert "  replication: INCREMENTAL on updated_at\n" in block
        assert "  next run: no bookmark: the run reads this stream from the start\n" in block
        assert "  target-postgres: load upsert (target-postgres default; merges on id)\n" in block
        assert "  target-duckdb: load upsert (target-duckdb default; merges on id)\n" in block
        assert block.count("      + create the table\n") == 2
        notes_block = text.split(f"\nstream {notes}\n")[1].split("\nstream ")[0]
        assert "  replication: FULL_TABLE\n" in notes_block
        assert "load append-only (target-postgres default is upsert; the stream has no key properties" in notes_block
        assert PASSWORD not in text

    def test_json_has_the_same_plan_for_tools(self, project: Project):
        plan = project.dpone("plan", "orders", "--format", "json").json()
        assert set(plan) == {
            "pipeline", "tap", "targets", "state", "lock", "estimates", "estimated", "streams", "other_schema_plans",
            "failures",
        }  # fmt: skip
        assert plan["failures"] == []
        assert (plan["pipeline"], plan["tap"], plan["targets"]) == (
            "orders",
            "tap-postgres",
            ["target-postgres", "target-duckdb"],
        )
        assert plan["state"] == {
            "saved": False,
            "starts_from": "no saved state: a first run, every stream from the start",
        }
        assert plan["lock"] is None
        streams = streams_of(plan)
        assert sorted(streams) == sorted(project.stream(t) for t in ("customers", "notes", "readings"))
        customers = streams[project.stream("customers")]
        assert customers["columns"] == ["id", "name", "updated_at"]
        assert (customers["key_properties"], customers["replication_method"], customers["replication_key"]) == (
            ["id"],
            "INCREMENTAL",
            "updated_at",
        )
        assert customers["bookmark"] is None
        for target in ("target-postgres", "target-duckdb"):
            found = target_of(customers, target)
            assert found["load_method"] == "upsert"
            assert found["schema_plan"]["status"] == "change"
            assert [c["action"] for c in found["schema_plan"]["changes"]] == ["create_table"]
            assert found["schema_plan"]["table"] == f"{project.schema}_customers"
        assert target_of(streams[project.stream("notes")], "target-duckdb")["load_method"] == "append-only"
        assert PASSWORD not in orjson.dumps(plan).decode()

    def test_estimates_are_unknown_until_the_source_is_analysed_then_reltuples(self, project: Project):
        before = streams_of(project.dpone("plan", "orders", "--format", "json").json())
        assert {s: v["estimated_rows"] for s, v in before.items()} == dict.fromkeys(before)
        text = project.dpone("plan", "orders").ok().out
        assert text.count("  estimated rows: unknown (no statistics: a view, or a table never analyzed)\n") == 3
        project.sql("ANALYZE customers", "ANALYZE notes", "ANALYZE readings")
        plan = project.dpone("plan", "orders", "--format", "json").json()
        assert plan["estimated"] is True
        assert plan["estimates"] == "by tap-postgres, from the source's statistics (no scan: as fresh as they are)"
        after = {s: v["estimated_rows"] for s, v in streams_of(plan).items()}
        # A partitioned table is the sum of its partitions.
        assert after == {project.stream("customers"): 3, project.stream("notes"): 5, project.stream("readings"): 12}

    def test_a_never_analysed_partition_keeps_the_partitioned_table_unknown(self, project: Project):
        project.sql("ANALYZE readings_2023")
        plan = project.dpone("plan", "orders", "--stream", "*-readings", "--format", "json").json()
        assert [(s["stream"], s["estimated_rows"]) for s in plan["streams"]] == [(project.stream("readings"), None)]

    def test_a_view_keeps_no_statistics(self, project: Project):
        project.sql("CREATE VIEW recent AS SELECT * FROM customers WHERE id > 1", "ANALYZE customers")
        plan = project.dpone("plan", "orders", "--stream", "*-recent", "--stream", "*-customers", "--format", "json")
        rows = {s["stream"]: s["estimated_rows"] for s in plan.json()["streams"]}
        assert rows == {project.stream("customers"): 3, project.stream("recent"): None}

    def test_planning_changes_nothing(self, project: Project):
        project.dpone("plan", "orders").ok()
        assert project.state() is None
        assert project.destination() == {}
        assert not project.duckdb.exists() or project.destination() == {}


class TestAfterARun:
    def test_bookmarks_show_where_each_stream_resumes_and_the_tables_match(self, project: Project):
        report = project.run()
        assert report["status"] == "success"
        plan = project.dpone("plan", "orders", "--format", "json").json()
        assert plan["state"]["saved"] is True
        assert plan["state"]["starts_from"] == f"the state saved at {plan['state']['updated_at']}"
        customers = streams_of(plan)[project.stream("customers")]
        assert customers["bookmark"]["replication_key"] == "updated_at"
        assert customers["bookmark"]["replication_key_value"].startswith("2024-01-03T10:00:00")
        assert customers["resumes"].startswith('updated_at >= "2024-01-03T10:00:00')
        notes = streams_of(plan)[project.stream("notes")]
        assert notes["resumes"].startswith("full table version ") and notes["resumes"].endswith(", complete")
        for stream in plan["streams"]:
            for target in stream["targets"]:
                assert target["schema_plan"]["status"] == "unchanged", (stream["stream"], target)
        text = project.dpone("plan", "orders").ok().out
        assert "state: the state saved at " in text
        assert text.count("no changes: the table matches the stream") == 6
        assert '  next run: updated_at >= "2024-01-03T10:00:00' in text

    def test_a_column_added_in_the_source_is_planned_in_both_targets_and_nothing_changes(self, project: Project):
        project.run()
        state, tables = project.state(), project.destination()
        project.sql("ALTER TABLE customers ADD COLUMN tier text")
        plan = project.dpone("plan", "orders", "--stream", "*-customers", "--format", "json").json()
        (customers,) = plan["streams"]
        assert "tier" in customers["columns"]
        for target in customers["targets"]:
            changes = target["schema_plan"]["changes"]
            assert [(c["action"], c["column"]) for c in changes] == [("add_column", "tier")], target
            assert target["schema_plan"]["status"] == "change"
        text = project.dpone("plan", "orders", "--stream", "*-customers").ok().out
        assert text.count("+ add column 'tier'") == 2
        assert (project.state(), project.destination()) == (state, tables)


class TestWhatElseAPlanShows:
    def test_a_locked_pipeline_says_who_holds_the_lock(self, project: Project):
        store = open_store(f"sqlite:///{project.root / '.dpone' / 'state.db'}")
        try:
            store.acquire_lock(new_lock("orders", "run-abc123"))
            plan = project.dpone("plan", "orders", "--format", "json").json()
            text = project.dpone("plan", "orders").ok().out
        finally:
            store.release_lock("orders", "run-abc123")
            store.close()
        assert plan["lock"]["owner"] == "run-abc123"
        assert plan["lock"]["pid"] == os.getpid()
        assert plan["lock"]["stale"] is False
        assert f"lock: locked by run run-abc123 (pid {os.getpid()} on " in text

    def test_a_tap_without_estimates_and_a_target_without_tables(self, project: Project):
        (project.root / "items.csv").write_text("sku,qty\na,1\nb,2\n")
        project.extractors.append(
            {"name": "tap-csv", "config": {"files": [{"entity": "items", "path": "items.csv", "keys": ["sku"]}]}}
        )
        project.loaders.append({"name": "target-jsonl", "config": {"destination_path": "out"}})
        project.pipelines["files"] = {"tap": "tap-csv", "targets": ["target-jsonl", "target-duckdb"]}
        project.write()
        plan = project.dpone("plan", "files", "--format", "json").json()
        assert (plan["estimates"], plan["estimated"]) == ("unknown: tap-csv cannot estimate rows", False)
        (items,) = plan["streams"]
        assert (items["stream"], items["columns"], items["estimated_rows"]) == ("items", ["sku", "qty"], None)
        jsonl, duck = items["targets"]
        assert jsonl["load_method"] == "append-only"  # target-jsonl's own default
        assert jsonl["schema_plan"] is None
        assert jsonl["schema_note"] == "no schema plan: target-jsonl keeps no tables (nothing to create or change)"
        assert plan["failures"] == []
        assert duck["schema_plan"]["changes"][0]["action"] == "create_table"
        text = project.dpone("plan", "files").ok().out
        assert "row estimates: unknown: tap-csv cannot estimate rows\n" in text
        assert "  estimated rows: unknown\n" in text

    def test_the_implied_pipeline_name_and_the_configured_load_method(self, project: Project):
        project.loaders[1]["config"]["load_method"] = "overwrite"
        project.write()
        plan = project.dpone("plan", "tap-postgres-to-target-duckdb", "--stream", "*-customers", "--format", "json")
        (customers,) = plan.json()["streams"]
        (duck,) = customers["targets"]
        assert (duck["load_method"], duck["load_method_source"]) == ("overwrite", "target-duckdb config")


class TestBadInput:
    def test_an_unknown_pipeline_is_a_config_error(self, project: Project):
        res = project.dpone("plan", "nope")
        assert res.rc == EXIT_CONFIG
        assert "unknown pipeline 'nope'" in res.err
        assert "Traceback" not in res.err

    def test_a_stream_pattern_that_matches_nothing(self, project: Project):
        res = project.dpone("plan", "orders", "--stream", "*-missing")
        assert res.rc == EXIT_CONFIG
        assert res.err.strip().endswith("tap-postgres has no selected stream matching *-missing: check select in "
                                        "meltano.yml (or --stream)")  # fmt: skip

    def test_an_unreachable_source_fails_with_its_kind_and_no_password(self, project: Project):
        project.extractors[0]["config"]["port"] = 1
        project.write()
        res = project.dpone("plan", "orders")
        assert res.rc == 75, res.err
        assert "tap-postgres --discover failed" in res.err
        assert PASSWORD not in res.err + res.out

    def test_a_target_that_cannot_answer_fails_the_plan_with_its_kind_after_printing_it(self, project: Project):
        # A run would fail the same way: the plan says so by its exit code, not only in its text.
        project.loaders[0]["config"]["user"] = "no_such_role"  # the test server trusts any password
        project.write()
        res = project.dpone("plan", "orders")
        assert res.rc == EXIT_CONFIG, res.err
        assert "target-postgres: load " in res.out  # the plan is printed all the same
        assert "no schema plan: target-postgres --schema-plan failed (exit 78)" in res.out
        assert 'role "no_such_role" does not exist' in res.err
        assert PASSWORD not in res.out + res.err


def test_the_installed_dpone_plans_from_a_subprocess(project: Project):
    project.run("target-duckdb", pipeline="tap-postgres-to-target-duckdb")
    proc = subprocess.run(
        [DPONE, "plan", "tap-postgres-to-target-duckdb", "--project", str(project.root), "--stream", "*-customers"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        env={**os.environ, "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"},
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("pipeline tap-postgres-to-target-duckdb: tap-postgres -> target-duckdb\n")
    assert "state: the state saved at " in proc.stdout
    assert "no changes: the table matches the stream" in proc.stdout
    assert PASSWORD not in proc.stdout + proc.stderr
