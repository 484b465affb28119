"""Partitioned loads, PostgreSQL to PostgreSQL, driven through the installed `dpone` as a user would.

Each test has its own source schema (a table `big` with an integer key, a text column, NULL keys
in a nullable `grp` column and an `updated_at` replication key), its own destination schema and
project directory with the SQLite state store. What every test ends on: the destination equals
the source (EXCEPT both ways, on every column), no row is loaded twice, and the stream's bookmark
moved exactly when every range succeeded.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest
import yaml

from dpone.state.store import open_store

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
DPONE = str(BIN / "dpone")
ROWS = 3000
PIPELINE = "orders"
PROVES = pytest.mark.certifies("partitions", connector=("tap-postgres", "target-postgres"))
LAST_UPDATE = {"replication_key": "updated_at", "replication_key_value": "2024-06-01T00:50:00+00:00"}

SOURCE = f"""
CREATE TABLE big (
  id bigint PRIMARY KEY, grp int, name text, amount numeric(12, 2), at timestamptz, updated_at timestamptz, doc jsonb);
INSERT INTO big
SELECT i, CASE WHEN i % 10 = 0 THEN NULL ELSE i % 7 END, 'row ' || i || ' é', i * 1.25,
       '2024-01-01 00:00+00'::timestamptz + i * interval '1 minute',
       '2024-06-01 00:00+00'::timestamptz + i * interval '1 second', jsonb_build_object('i', i)
FROM generate_series(1, {ROWS}) AS i;
CREATE INDEX ON big (grp);
ANALYZE big;
"""


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Scenario:
    def __init__(self, dsn: str, config: dict[str, Any], root: Path) -> None:
        self.dsn = dsn
        self.schema = f"pt_{uuid.uuid4().hex[:10]}"
        self.dest = f"{self.schema}_dst"
        self.root = root
        self.config = config
        self.state_backend = f"sqlite:///{root / '.dpone' / 'state.db'}"
        self.workers: list[subprocess.Popen[str]] = []  # killed, with what they left, when the test ends
        self.sql(f"CREATE SCHEMA {q(self.schema)}; SET search_path TO {q(self.schema)};" + SOURCE)
        self.write_project()

    @property
    def stream(self) -> str:
        return f"{self.schema}-big"

    def write_project(
        self, target: dict[str, Any] | None = None, method: str = "INCREMENTAL", tap: dict[str, Any] | None = None
    ) -> None:
        tap = {**self.config, "include": [f"{self.schema}.big"], **(tap or {})}
        dest = {**self.config, "default_target_schema": self.dest, "load_method": "upsert", **(target or {})}
        metadata = {
            "replication-method": method,
            **({"replication-key": "updated_at"} if method == "INCREMENTAL" else {}),
        }
        project = {
            "version": 1,
            "plugins": {
                "extractors": [
                    {
                        "name": "tap-postgres",
                        "executable": "tap-postgres",
                        "config": tap,
                        "metadata": {self.stream: metadata},
                    }
                ],
                "loaders": [{"name": "target-postgres", "executable": "target-postgres", "config": dest}],
            },
        }
        (self.root / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))
        pipelines = {
            "state_backend": self.state_backend,
            "pipelines": {PIPELINE: {"tap": "tap-postgres", "targets": ["target-postgres"]}},
        }
        (self.root / "dpone.yml").write_text(yaml.safe_dump(pipelines))

    def sql(self, statement: str, params: Any = None) -> list[tuple[Any, ...]]:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            cur = conn.execute(statement, params)
            return cur.fetchall() if cur.description else []

    def dpone(
        self, *args: str, expect: int | None = 0, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        done = subprocess.run(
            [DPONE, *args],
            cwd=self.root,
            capture_output=True,
            text=True,
            check=False,
            env={**os.environ, **(env or {})},
        )
        if expect is not None:
            assert done.returncode == expect, done.stdout + done.stderr
        return done

    def plan(self, *extra: str, ranges: int = 4) -> dict[str, Any]:
        self.dpone(
            "partitions", "plan", PIPELINE, "--stream", self.stream, "--by", "id", "--ranges", str(ranges), *extra
        )
        return self.status()

    def status(self) -> dict[str, Any]:
        shown = self.dpone("partitions", "status", PIPELINE, "--stream", self.stream, "--format", "json")
        docs = orjson.loads(shown.stdout)
        assert len(docs) == 1
        return dict(docs[0])

    def differences(self) -> tuple[int, int]:
        """Rows of the source missing in the destination, and the other way round (every column)."""
        cols = "id, grp, name, amount, at, updated_at, doc::text"
        src, dst = f"{q(self.schema)}.big", self.dest_table
        missing = self.sql(f"SELECT count(*) FROM (SELECT {cols} FROM {src} EXCEPT SELECT {cols} FROM {dst}) d")
        extra = self.sql(f"SELECT count(*) FROM (SELECT {cols} FROM {dst} EXCEPT SELECT {cols} FROM {src}) d")
        return int(missing[0][0]), int(extra[0][0])

    def dest_rows(self) -> int:
        return int(self.sql(f"SELECT count(*) FROM {self.dest_table}")[0][0])

    @property
    def dest_table(self) -> str:
        return f"{q(self.dest)}.{q(self.schema + '_big')}"

    def bookmark(self) -> Any:
        store = open_store(self.state_backend)
        try:
            found = store.get(PIPELINE)
        finally:
            store.close()
        return None if found is None else found.value.get("bookmarks", {}).get(self.stream)

    def ledger(self) -> list[tuple[Any, ...]]:
        return self.sql(f"SELECT token, records FROM {q(self.dest)}._dpone_ranges ORDER BY token")


@pytest.fixture
def scenario(server: Any, database: str, tmp_path: Path) -> Iterator[Scenario]:
    made = Scenario(server.dsn(database), server.config(database), tmp_path)
    try:
        yield made
    finally:
        for proc in made.workers:
            kill_group(proc, made.root)


@PROVES
def test_one_worker_loads_every_range_and_moves_the_bookmark_last(scenario: Scenario) -> None:
    plan = scenario.plan()
    assert plan["column"] == "id" and plan["column_type"] == "bigint" and plan["method"] == "statistics"
    assert [r["status"] for r in plan["ranges"]] == ["pending"] * 4
    assert plan["ranges"][0]["low"] is None and plan["ranges"][-1]["high"] is None
    assert scenario.dest_rows() == 0  # the table exists (made by the plan), empty
    assert scenario.bookmark() is None
    done = scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream, "--worker", "w1")
    assert "plan 4/4 loaded" in done.stdout and "bookmark moved" in done.stdout
    assert scenario.differences() == (0, 0)
    assert scenario.dest_rows() == ROWS
    status = scenario.status()
    assert status["complete"] and status["finalized_at"]
    assert sum(r["rows_loaded"] for r in status["ranges"]) == ROWS
    assert all(r["attempts"] == 1 and r["worker"] == "w1" for r in status["ranges"])
    assert scenario.bookmark() == LAST_UPDATE
    assert len(scenario.ledger()) == 4


# -- helpers for the tests below ---------------------------------------------------------------------
REPO = Path(__file__).resolve().parents[2]


def install_faults(scenario: Scenario, target: dict[str, Any] | None = None) -> None:
    """The project's tap and target become tests/tools/range_faults.py wrappers (inert until a marker).
    The tap checkpoints often, so what it read reaches the target before it pauses."""
    for role in ("tap", "target"):
        script = scenario.root / f"fault-{role}"
        script.write_text(
            f'#!/bin/sh\nPYTHONPATH={REPO} exec {sys.executable} -m tests.tools.range_faults {role} "$@"\n'
        )
        script.chmod(0o755)
    scenario.write_project(target, tap={"state_every_rows": 100})
    project = yaml.safe_load((scenario.root / "meltano.yml").read_text())
    project["plugins"]["extractors"][0]["executable"] = "./fault-tap"
    project["plugins"]["loaders"][0]["executable"] = "./fault-target"
    (scenario.root / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))


def worker(scenario: Scenario, name: str, *extra: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [DPONE, "partitions", "run", PIPELINE, "--stream", scenario.stream, "--worker", name, "--no-progress", *extra],
        cwd=scenario.root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    scenario.workers.append(proc)
    return proc


def wait_for(condition: Any, what: str, seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def kill_group(proc: subprocess.Popen[str], root: Path) -> None:
    """The worker, and what it left running: the paused tap wrapper leads a process group of its own
    (the runner starts each connector in a new session), with tap-postgres in it."""
    paused = root / "paused"
    groups = [proc.pid] + ([int(paused.read_text())] if paused.exists() else [])
    for group in groups:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(group, signal.SIGKILL)
    proc.communicate()


# -- concurrency -------------------------------------------------------------------------------------
@PROVES
@pytest.mark.parametrize(
    ("load_method", "store"),
    # The JSON store's claims race in tests/unit/test_partition_manifest.py.
    [("append-only", "sqlite"), ("upsert", "sqlite"), ("append-only", "postgresql")],
)
def test_four_workers_share_the_ranges_and_no_range_is_loaded_twice(
    scenario: Scenario, load_method: str, store: str
) -> None:
    if store == "postgresql":  # the store for workers on several machines
        scenario.state_backend = f"{scenario.dsn}?schema={scenario.schema}_state"
    scenario.write_project({"load_method": load_method, "batch_size_rows": 200})
    plan = scenario.plan(ranges=8)
    assert len(plan["ranges"]) == 8
    workers = [worker(scenario, f"w{n}") for n in range(4)]
    outputs = [w.communicate(timeout=300) for w in workers]
    assert [w.returncode for w in workers] == [0] * 4, outputs
    status = scenario.status()
    assert status["complete"] and status["finalized_at"]
    ranges = status["ranges"]
    assert all(r["status"] == "success" and r["attempts"] == 1 for r in ranges)
    # Ranges went to several workers, each range to exactly one.
    assert len({r["worker"] for r in ranges}) >= 2
    assert sum(r["rows_loaded"] for r in ranges) == ROWS
    assert scenario.differences() == (0, 0)
    assert scenario.dest_rows() == ROWS  # append-only: a range loaded twice would show here
    assert [records for _, records in scenario.ledger()] == [r["rows_loaded"] for r in ranges]


# -- a worker killed ---------------------------------------------------------------------------------
@PROVES
def test_a_worker_killed_mid_range_loses_its_lease_and_the_range_is_loaded_once(scenario: Scenario) -> None:
    install_faults(scenario, {"load_method": "append-only", "batch_size_rows": 100})
    scenario.plan(ranges=4)
    (scenario.root / "pause-tap").touch()
    first = worker(scenario, "doomed", "--lease-seconds", "5")
    wait_for(lambda: (scenario.root / "paused").exists(), "the first range to be half read")
    # Batches of the range reached the destination inside its open transaction; nothing is visible.
    wait_for(
        lambda: scenario.sql("SELECT count(*) FROM pg_stat_activity WHERE state = 'idle in transaction'")[0][0] > 0,
        "the range's transaction",
    )
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    assert scenario.dest_rows() == 0
    held = next(r for r in scenario.status()["ranges"] if r["status"] == "running")
    assert held["worker"] == "doomed" and held["attempts"] == 1
    kill_group(first, scenario.root)  # the paused tap; the target saw its input cut and rolled back
    wait_for(lambda: "lost" in scenario.dpone("partitions", "status", PIPELINE).stdout, "the lease to expire", 30)
    second = worker(scenario, "rescuer")
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, out + err
    status = scenario.status()
    retried = status["ranges"][held["index"]]
    assert retried["status"] == "success" and retried["attempts"] == 2 and retried["worker"] == "rescuer"
    assert "lost its lease" in retried["last_error"]
    assert scenario.dest_rows() == ROWS
    assert scenario.differences() == (0, 0)
    assert status["finalized_at"]


@PROVES
def test_a_worker_killed_after_the_commit_is_not_loaded_again(scenario: Scenario) -> None:
    install_faults(scenario, {"load_method": "append-only"})
    scenario.plan(ranges=3)
    (scenario.root / "kill-after-commit").touch()
    first = worker(scenario, "doomed", "--lease-seconds", "5")
    first.communicate(timeout=120)
    assert first.returncode == -signal.SIGKILL
    committed = scenario.ledger()
    assert len(committed) == 1  # the first range is in the destination, the manifest does not know
    assert scenario.status()["ranges"][0]["status"] == "running"
    wait_for(lambda: "lost" in scenario.dpone("partitions", "status", PIPELINE).stdout, "the lease to expire", 30)
    done = scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream, "--worker", "rescuer")
    assert "r0000: already loaded" in done.stdout
    first_range = scenario.status()["ranges"][0]
    assert first_range["status"] == "success" and first_range["attempts"] == 2
    assert first_range["rows_loaded"] == committed[0][1]
    assert scenario.dest_rows() == ROWS  # append-only: not loaded twice
    assert scenario.differences() == (0, 0)


# -- a failed range ----------------------------------------------------------------------------------
@PROVES
def test_a_failed_range_leaves_the_bookmark_where_it_was_until_it_is_reset_and_loaded(scenario: Scenario) -> None:
    scenario.plan(ranges=4)
    check = f"ALTER TABLE {scenario.dest_table} ADD CONSTRAINT no_1500 CHECK (id <> 1500)"
    scenario.sql(check)
    done = scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream, expect=65)
    assert "failed" in done.stdout and "no_1500" in done.stdout
    status = scenario.status()
    failed = [r for r in status["ranges"] if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["error_kind"] == "data"
    assert failed[0]["low"] is not None and int(failed[0]["low"]) <= 1500
    assert not status["finalized_at"] and scenario.bookmark() is None
    # The failed range committed nothing: the destination holds exactly the other ranges.
    loaded = sum(r["rows_loaded"] for r in status["ranges"] if r["status"] == "success")
    assert scenario.dest_rows() == loaded < ROWS
    # A second worker does not retry a data error by itself, and does not end green while it waits.
    again = scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream, expect=65)
    assert "0 ranges" in again.stdout and scenario.bookmark() is None
    # An ordinary run of the pipeline leaves the stream out meanwhile.
    ordinary = scenario.dpone("run", PIPELINE)
    assert "left out" in ordinary.stderr and scenario.bookmark() is None
    scenario.sql(f"ALTER TABLE {scenario.dest_table} DROP CONSTRAINT no_1500")
    reset = scenario.dpone("partitions", "reset", PIPELINE, "--stream", scenario.stream)
    assert f"1 ranges back to pending: {failed[0]['index']:04d}" in reset.stdout.replace("r0", "0")
    scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream)
    assert scenario.differences() == (0, 0)
    assert scenario.bookmark() is not None


# -- every replication method: the bookmark, and the changes made while the ranges loaded ------------
@pytest.mark.parametrize("method", ["FULL_TABLE", "INCREMENTAL", "XMIN", "LOG_BASED"])
def test_the_next_ordinary_run_picks_up_what_changed_during_the_partitioned_load(
    scenario: Scenario, method: str
) -> None:
    slot = f"dpone_{scenario.schema}"
    tap = {"replication_slot": slot} if method == "LOG_BASED" else {}
    scenario.write_project(method=method, tap=tap)
    try:
        scenario.plan(ranges=3)
        if method == "LOG_BASED":
            # The plan made the slot: changes from here on are kept for the stream's first log-based run.
            assert scenario.sql("SELECT count(*) FROM pg_replication_slots WHERE slot_name = %s", (slot,)) == [(1,)]
            refused = scenario.dpone("run", PIPELINE, expect=78)
            assert "unfinished partitioned load" in refused.stderr and "slot" in refused.stderr
        scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream, "--range", "r0000")
        assert scenario.bookmark() is None  # two ranges to go
        # Changes while the load runs: a loaded row updated, a row inserted into a range not yet loaded,
        # and one into the loaded range.
        scenario.sql(
            f"UPDATE {q(scenario.schema)}.big SET name = 'changed', updated_at = '2030-01-01+00' WHERE id = 5;"
            f"INSERT INTO {q(scenario.schema)}.big VALUES (5000, 1, 'new', 1.5, now(), '2030-01-02+00', '{{}}');"
            f"INSERT INTO {q(scenario.schema)}.big VALUES (-1, 1, 'new low', 2.5, now(), '2030-01-03+00', '[]')"
        )
        scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream)
        bookmark = scenario.bookmark()
        if method == "FULL_TABLE":
            assert bookmark is None
        elif method == "INCREMENTAL":
            assert bookmark == LAST_UPDATE
        elif method == "XMIN":
            assert isinstance(bookmark["xmin"], int)
        else:
            assert isinstance(bookmark["lsn"], int)
        scenario.dpone("run", PIPELINE)
        assert scenario.differences() == (0, 0)
    finally:
        if method == "LOG_BASED":
            scenario.sql(
                "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = %s", (slot,)
            )


# -- how ranges are planned ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("args", "method", "ranges"),
    [
        (["--by", "grp", "--ranges", "4"], "scan", None),  # nullable, 7 values (no histogram): NULLs in r0000
        (["--by", "name", "--ranges", "3", "--method", "scan"], "scan", 3),  # text, no index
        (["--by", "at", "--ranges", "5"], "statistics", 5),  # timestamptz
        (["--by", "id", "--rows-per-range", "1000", "--method", "even"], "even", 3),
        (["--by", "id", "--rows-per-range", "700", "--method", "scan"], "scan", 5),
    ],
    ids=["nullable-int", "text-scan", "timestamptz", "even-rows-per-range", "scan-rows-per-range"],
)
def test_ranges_of_any_key_cover_every_row_exactly_once(
    scenario: Scenario, args: list[str], method: str, ranges: int | None
) -> None:
    scenario.write_project({"load_method": "append-only"})
    scenario.dpone("partitions", "plan", PIPELINE, "--stream", scenario.stream, *args)
    plan = scenario.status()
    assert plan["method"] == method
    if ranges is not None:
        assert len(plan["ranges"]) == ranges
    if "name" in args:
        assert any("no index starts with 'name'" in note for note in plan["notes"])
    bounds = [r["high"] for r in plan["ranges"][:-1]]
    assert bounds == [r["low"] for r in plan["ranges"][1:]]
    scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream)
    assert scenario.dest_rows() == ROWS
    assert scenario.differences() == (0, 0)


# -- what is refused, and how ----------------------------------------------------------------------------
def test_mistakes_are_refused_with_what_to_do(scenario: Scenario) -> None:
    stream = scenario.stream
    usage = scenario.dpone("partitions", "plan", PIPELINE, "--stream", stream, "--by", "id", expect=2)
    assert "--ranges" in usage.stderr
    assert "no partition plan" in scenario.dpone("partitions", "run", PIPELINE, "--stream", stream, expect=78).stderr
    bad = scenario.dpone("partitions", "plan", PIPELINE, "--stream", stream, "--by", "nope", "--ranges", "2", expect=78)
    assert "'nope' is not a column" in bad.stderr
    even = ("partitions", "plan", PIPELINE, "--stream", stream, "--by", "name", "--ranges", "2", "--method", "even")
    assert "integer keys" in scenario.dpone(*even, expect=78).stderr
    other = ("partitions", "plan", PIPELINE, "--stream", "public-nope", "--by", "id", "--ranges", "2")
    assert "not selected" in scenario.dpone(*other, expect=78).stderr
    scenario.plan(ranges=2)
    again = scenario.dpone("partitions", "plan", PIPELINE, "--stream", stream, "--by", "id", "--ranges", "3", expect=78)
    assert "unfinished partition plan (0 of 2 ranges loaded)" in again.stderr and "--replace" in again.stderr
    scenario.dpone("partitions", "plan", PIPELINE, "--stream", stream, "--by", "id", "--ranges", "3", "--replace")
    assert len(scenario.status()["ranges"]) == 3
    skipped = scenario.dpone("partitions", "reset", PIPELINE, "--stream", stream, "--range", "r0002", "--skip")
    assert "1 ranges skipped" in skipped.stdout
    scenario.dpone("partitions", "run", PIPELINE, "--stream", stream)
    assert scenario.bookmark() is None  # a skipped range: the bookmark never moves for this plan
    dropped = scenario.dpone("partitions", "drop", PIPELINE, "--stream", stream)
    assert "2 of 3 ranges were loaded" in dropped.stdout
    assert scenario.dpone("partitions", "status", PIPELINE).stdout == "no partition plans\n"
    scenario.write_project({"load_method": "overwrite"})
    overwrite = scenario.dpone(
        "partitions", "plan", PIPELINE, "--stream", stream, "--by", "id", "--ranges", "2", expect=78
    )
    assert "overwrite" in overwrite.stderr
    assert scenario.dpone("partitions", "status", PIPELINE).stdout == "no partition plans\n"


def test_a_source_that_refuses_the_worker_holds_no_range(scenario: Scenario) -> None:
    scenario.plan(ranges=2)
    scenario.write_project(tap={"database": "no_such_database"})
    refused = scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream, expect=78)
    assert "no_such_database" in refused.stderr
    ranges = scenario.status()["ranges"]
    assert [(r["status"], r["attempts"]) for r in ranges] == [("pending", 0), ("pending", 0)]
    scenario.write_project()
    scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream)
    assert scenario.differences() == (0, 0)


def test_a_connector_killed_mid_range_is_a_transient_failure_retried_after_a_pause(scenario: Scenario) -> None:
    """What the OOM killer does: the biggest process of a worker, its tap or target, gets SIGKILL."""
    install_faults(scenario, {"load_method": "append-only", "batch_size_rows": 100})
    scenario.plan(ranges=2)
    (scenario.root / "pause-tap").touch()
    started = time.monotonic()
    proc = worker(scenario, "w1", "--retry-backoff-seconds", "3")
    wait_for(lambda: (scenario.root / "paused").exists(), "the first range to be half read")
    os.kill(int((scenario.root / "paused").read_text()), signal.SIGKILL)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, out + err
    assert "failed, 0 rows, attempt 1" in out and "success" in out
    first = scenario.status()["ranges"][0]
    assert first["status"] == "success" and first["attempts"] == 2
    assert "SIGKILL" in first["last_error"] and first["error_kind"] is None
    assert time.monotonic() - started >= 3  # the retry waited its backoff
    assert scenario.dest_rows() == ROWS and scenario.differences() == (0, 0)


def test_reset_all_loads_the_loaded_ranges_again(scenario: Scenario) -> None:
    scenario.plan(ranges=2)
    scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream)
    scenario.sql(f"DELETE FROM {scenario.dest_table} WHERE id % 2 = 0")
    reset = scenario.dpone("partitions", "reset", PIPELINE, "--stream", scenario.stream, "--all")
    assert "2 ranges back to pending" in reset.stdout
    again = scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream)
    assert "already loaded" not in again.stdout
    assert scenario.differences() == (0, 0)
    assert len(scenario.ledger()) == 4  # a new token per reloaded range


def test_a_worker_stopped_with_sigterm_gives_its_range_back_and_stops(scenario: Scenario) -> None:
    install_faults(scenario, {"load_method": "append-only", "batch_size_rows": 100})
    scenario.plan(ranges=2)
    (scenario.root / "pause-tap").touch()
    proc = worker(scenario, "w1", "--retry-backoff-seconds", "0")
    wait_for(lambda: (scenario.root / "paused").exists(), "the first range to be half read")
    os.kill(proc.pid, signal.SIGTERM)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 128 + signal.SIGTERM, out + err
    ranges = scenario.status()["ranges"]
    assert [(r["status"], r["error_kind"]) for r in ranges] == [("failed", "transient"), ("pending", None)]
    assert scenario.dest_rows() == 0
    scenario.dpone("partitions", "run", PIPELINE, "--stream", scenario.stream)
    assert scenario.dest_rows() == ROWS and scenario.differences() == (0, 0)
