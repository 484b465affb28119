"""`dpone reconcile` after real runs: tap-postgres into target-postgres and into target-duckdb.

Each test gets a source schema of its own (orders: every column kind with edge values; lines: a
composite key; notes: no key) in the module's database, runs `dpone run` as a user would (the
installed command, in a project directory), changes one side, and reads `dpone reconcile`'s
report and exit code. The checksum itself is held to one rule on both databases by comparing
PostgreSQL's and DuckDB's canonical text and hashes row by row, for random and edge values of
every kind.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import random
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import yaml

from dpone.state.store import new_lock, open_store
from dpone.targets.duckdb.reconcile import WORDS as DUCKDB
from dpone_drivers.postgres_reconcile import WORDS as POSTGRES
from dpone_drivers.postgres_reconcile import query as pg_query
from dpone_drivers.reconcile_sql import Reconciler, Table
from dpone_protocol.reconcile import parse_request

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
DPONE = str(BIN / "dpone")
EXIT_DATA, EXIT_TRANSIENT, EXIT_CONFIG, EXIT_USAGE = 65, 75, 78, 2
DESTINATIONS = ("target-postgres", "target-duckdb")

SOURCE_TABLES = """
CREATE TABLE orders (
  id int PRIMARY KEY, customer text, amount numeric(12,2), ratio numeric, price float8, small real,
  at timestamptz, naive timestamp, day date, t time, ok boolean, ref uuid, big bigint, doc jsonb);
INSERT INTO orders
SELECT i, 'customer ' || i, i * 1.25, i / 8.0, i / 3.0, i / 4.0,
       '2024-01-01 00:00+00'::timestamptz + i * interval '1 hour 1.5 second',
       '2023-06-01'::timestamp + i * interval '1 minute', '2024-01-01'::date + i, '10:00'::time + i * interval '1 s',
       i % 2 = 0, md5(i::text)::uuid, i * 1000000000000, jsonb_build_object('i', i)
FROM generate_series(1, 200) AS i;
INSERT INTO orders VALUES
  (201, 'é e' || chr(769) || ' 😀 a:b - '' "', -0.00, 0.1, 1e20, 0.1, '1969-12-31 23:59:59.999999+00',
   '1970-01-01 00:00:00', '1969-12-31', '24:00:00', NULL, NULL, 9223372036854775807, '[1, {"a": null}]'),
  (202, '', 9999999999.99, 0.000001, 5e-324, -1.5, '0001-01-01 00:00:00+00', '9999-12-31 23:59:59.999999',
   '0001-01-01', '23:59:59.999999', false, '00000000-0000-0000-0000-000000000000', -9223372036854775808, 'null'),
  (203, NULL, NULL, NULL, -0.0, NULL, '2024-02-29 12:34:56.5+05:30', NULL, '9999-12-31', '00:00:00', true, NULL,
   0, NULL),
  (204, 'x', 0.5, 12345678901234.5, 0.30000000000000004, 3.4028235e38, NULL, '2024-02-29 23:59:59.000001', NULL,
   NULL, NULL, NULL, NULL, '"text"');
CREATE TABLE lines (order_id int, line int, sku text, qty numeric, PRIMARY KEY (order_id, line));
INSERT INTO lines SELECT i / 3, i % 3, 'sku-' || i, i * 0.5 FROM generate_series(3, 302) AS i;
CREATE TABLE notes (body text, at date);
INSERT INTO notes SELECT 'note ' || i, '2024-01-01'::date + i FROM generate_series(1, 5) AS i;
"""


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


class Scenario:
    """One test's source schema, destinations and project directory."""

    def __init__(self, dsn: str, config: dict[str, Any], root: Path) -> None:
        self.dsn = dsn
        self.schema = f"rs_{uuid.uuid4().hex[:10]}"
        self.dest_schema = f"{self.schema}_dst"
        self.root = root
        self.duckdb_file = root / "dest.duckdb"
        self.base_config = config
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {q(self.schema)}")
            conn.execute(f"SET search_path TO {q(self.schema)}")
            conn.execute(SOURCE_TABLES)
        self.write_project()

    def stream(self, table: str) -> str:
        return f"{self.schema}-{table}"

    def write_project(self, postgres: dict[str, Any] | None = None, **both: Any) -> None:
        """meltano.yml: the tap on this test's schema; `both` settings for the two database targets,
        `postgres` for target-postgres alone."""
        tap = {**self.base_config, "include": [f"{self.schema}.*"]}
        postgres = {**self.base_config, "default_target_schema": self.dest_schema, **both, **(postgres or {})}
        duck = {"filepath": str(self.duckdb_file), **both}
        project = {
            "version": 1,
            "plugins": {
                "extractors": [{"name": "tap-postgres", "executable": "tap-postgres", "config": tap}],
                "loaders": [
                    {"name": "target-postgres", "executable": "target-postgres", "config": postgres},
                    {"name": "target-duckdb", "executable": "target-duckdb", "config": duck},
                    {"name": "target-jsonl", "executable": "target-jsonl", "config": {"destination_path": "out"}},
                ],
            },
        }
        (self.root / "meltano.yml").write_text(yaml.safe_dump(project, sort_keys=False))

    def dpone(self, *args: str, expect: int = 0) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
        proc = subprocess.run(
            [DPONE, *args, "--project", str(self.root)], capture_output=True, text=True, env=env, timeout=300
        )
        assert proc.returncode == expect, f"dpone {' '.join(args)}: exit {proc.returncode}\n{proc.stdout}{proc.stderr}"
        return proc

    def run(self, target: str) -> None:
        self.dpone("run", "tap-postgres", target, "--no-progress")

    def reconcile(self, target: str, *options: str, expect: int = 0) -> dict[str, Any]:
        proc = self.dpone("reconcile", f"tap-postgres-to-{target}", "--format", "json", *options, expect=expect)
        return {s["stream"].removeprefix(self.schema + "-"): s for s in json.loads(proc.stdout)["streams"]}

    def source_sql(self, statement: str) -> None:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            conn.execute(f"SET search_path TO {q(self.schema)}")
            conn.execute(statement)

    def dest_table(self, target: str, table: str) -> str:
        schema = self.dest_schema if target == "target-postgres" else "main"
        return f"{q(schema)}.{q(f'{self.schema}_{table}')}"

    def dest_sql(self, target: str, statement: str) -> list[tuple[Any, ...]]:
        """Run `statement` ({orders}, {lines}, {notes} name the destination tables) in the destination."""
        sql = statement.format(**{t: self.dest_table(target, t) for t in ("orders", "lines", "notes")})
        if target == "target-postgres":
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                cur = conn.execute(sql)
                return cur.fetchall() if cur.description else []
        conn = duckdb.connect(str(self.duckdb_file))
        try:  # closed at once: the target's process must be able to open the file
            return conn.execute(sql).fetchall()
        finally:
            conn.close()


@pytest.fixture
def scenario(server: Any, database: str, tmp_path: Path) -> Iterator[Scenario]:
    found = Scenario(server.dsn(database), server.config(database), tmp_path)
    try:
        yield found
    finally:
        with psycopg.connect(server.dsn(database), autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA IF EXISTS {q(found.schema)} CASCADE")
            conn.execute(f"DROP SCHEMA IF EXISTS {q(found.dest_schema)} CASCADE")


def only_difference(stream: dict[str, Any]) -> dict[str, Any]:
    assert stream["status"] == "different", stream
    assert len(stream["differences"]) == 1, stream["differences"]
    return dict(stream["differences"][0])


def holds(difference: dict[str, Any], key: int, most_keys: int = 2) -> None:
    """The range holds `key` and no more than `most_keys` integer keys: narrowed to where it is."""
    lo, hi = difference["lo"], difference["hi"]
    assert lo is not None and hi is not None, difference
    assert lo <= key < hi, difference
    assert hi - lo <= most_keys, difference


@pytest.mark.parametrize("target", DESTINATIONS)
class TestEqualTables:
    def test_a_fresh_load_is_equal_by_counts_and_by_checksums(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        counted = scenario.reconcile(target)
        checked = scenario.reconcile(target, "--checksum")
        assert {s["status"] for s in [*counted.values(), *checked.values()]} == {"equal"}
        orders = checked["orders"]
        assert orders["source_rows"] == orders["destination_rows"] == 204
        assert orders["checksum"] is True and orders["ranges"] == 16
        assert orders["skipped"] == {"doc": "JSON values (objects, arrays, unions) are not checksummed"}
        assert counted["orders"]["checksum"] is False
        lines = checked["lines"]
        assert lines["keys"] == ["order_id", "line"] and lines["source_rows"] == lines["destination_rows"] == 300
        notes = checked["notes"]
        assert notes["keys"] == [] and notes["checksum"] is False and notes["ranges"] == 1
        assert "the stream has no key properties: row counts only (no ranges, no checksums)" in notes["notes"]

    def test_tables_are_found_as_the_target_named_them(self, scenario: Scenario, target: str) -> None:
        """A stream whose table name passes PostgreSQL's 63 bytes (target-postgres shortens it with a
        hash), and a table_name_map, are looked up the way the target named them when loading."""
        long_name = "events_" + "x" * 50
        scenario.source_sql(
            f"CREATE TABLE {long_name} (id int PRIMARY KEY, what text); "
            f"INSERT INTO {long_name} SELECT i, 'e' || i FROM generate_series(1, 40) i"
        )
        scenario.write_project(table_name_map={scenario.stream("notes"): "mapped_notes"})
        scenario.run(target)
        found = scenario.reconcile(target, "--checksum", "--stream", "*-events_*", "--stream", "*-notes")
        events = found[long_name]
        assert events["status"] == "equal" and events["destination_rows"] == 40
        stored = str(events["destination_table"]).split(".", 1)[1]
        if target == "target-postgres":
            assert len(stored.encode()) <= 63 and stored != f"{scenario.schema}_{long_name}"
        assert found["notes"]["destination_table"].endswith(".mapped_notes")
        assert found["notes"]["status"] == "equal"

    def test_the_text_report_says_equal_and_exits_0(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        text = scenario.dpone("reconcile", f"tap-postgres-to-{target}", "--checksum", "--stream", "*-orders").stdout
        assert f"{scenario.stream('orders')} -> {target}: equal" in text
        assert "ranges on id: 16, with checksums" in text
        assert text.rstrip().endswith("summary: 1 equal")


@pytest.mark.parametrize("target", DESTINATIONS)
class TestDifferences:
    def test_a_row_missing_in_the_destination_is_named_by_its_range(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        scenario.dest_sql(target, "DELETE FROM {orders} WHERE id = 137")
        found = scenario.reconcile(target, expect=EXIT_DATA)  # every stream: the others stay equal
        difference = only_difference(found["orders"])
        assert (difference["source_rows"], difference["destination_rows"]) == (1, 0)
        holds(difference, 137, most_keys=1)
        assert found["orders"]["destination_rows"] == 203
        assert found["lines"]["status"] == found["notes"]["status"] == "equal"

    def test_a_changed_value_takes_checksums_and_is_narrowed(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        scenario.dest_sql(target, "UPDATE {orders} SET amount = amount + 0.01 WHERE id = 42")
        orders = ("--stream", "*-orders")
        assert scenario.reconcile(target, *orders)["orders"]["status"] == "equal"  # counts cannot see it
        difference = only_difference(scenario.reconcile(target, *orders, "--checksum", expect=EXIT_DATA)["orders"])
        assert difference["source_rows"] == difference["destination_rows"] == 1
        assert difference["checksum"] == "different"
        holds(difference, 42, most_keys=1)

    def test_a_row_deleted_at_the_source_is_found_and_soft_deleted(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        scenario.source_sql("DELETE FROM orders WHERE id = 77")
        orders = ("--stream", "*-orders")
        found = scenario.reconcile(target, *orders, "--deletes", expect=EXIT_DATA)["orders"]
        difference = only_difference(found)
        assert (difference["source_rows"], difference["destination_rows"]) == (0, 1)
        assert found["deletes"]["destination_only"] == [[77]]
        assert found["deletes"]["applied"] is None
        assert scenario.dest_sql(target, "SELECT count(*) FROM {orders} WHERE _sdc_deleted_at IS NULL") == [(204,)]

        deletes = scenario.reconcile(target, *orders, "--apply-deletes", expect=EXIT_DATA)["orders"]["deletes"]
        table = f"{scenario.dest_schema if target == 'target-postgres' else 'main'}.{scenario.schema}_orders"
        assert deletes["applied"] == {"table": table, "deleted": 1, "mode": "soft"}
        rows = scenario.dest_sql(
            target, "SELECT id, _sdc_deleted_at IS NOT NULL FROM {orders} WHERE id IN (76, 77, 78)"
        )
        assert sorted(rows) == [(76, False), (77, True), (78, False)]
        assert scenario.reconcile(target, *orders, "--checksum")["orders"]["status"] == "equal"
        # Nothing left to delete: a second apply finds the destination equal and changes nothing.
        assert scenario.reconcile(target, *orders, "--apply-deletes")["orders"]["deletes"] is None

    def test_deletes_are_not_applied_while_a_run_holds_the_lock(self, scenario: Scenario, target: str) -> None:
        # A run loading between the key reads and the delete could have its new rows taken for
        # rows deleted at the source: applying waits for the pipeline's lock, as a run does.
        scenario.run(target)
        scenario.source_sql("DELETE FROM orders WHERE id = 77")
        pipeline = f"tap-postgres-to-{target}"
        store = open_store(f"sqlite:///{scenario.root / '.dpone' / 'state.db'}")
        try:
            store.acquire_lock(new_lock(pipeline, "run-in-progress"))
            proc = scenario.dpone("reconcile", pipeline, "--stream", "*-orders", "--apply-deletes", expect=75)
        finally:
            store.release_lock(pipeline, "run-in-progress")
            store.close()
        assert "is locked by run run-in-progress" in proc.stderr
        assert scenario.dest_sql(target, "SELECT count(*) FROM {orders} WHERE _sdc_deleted_at IS NULL") == [(204,)]

    def test_hard_delete_removes_the_row(self, scenario: Scenario, target: str) -> None:
        scenario.write_project(hard_delete=True)
        scenario.run(target)
        scenario.source_sql("DELETE FROM orders WHERE id IN (5, 150)")
        orders = ("--stream", "*-orders")
        found = scenario.reconcile(target, *orders, "--apply-deletes", expect=EXIT_DATA)["orders"]
        assert sorted(found["deletes"]["destination_only"]) == [[5], [150]]
        assert found["deletes"]["applied"]["mode"] == "hard"
        assert found["deletes"]["applied"]["deleted"] == 2
        assert scenario.dest_sql(target, "SELECT count(*) FROM {orders} WHERE id IN (5, 150)") == [(0,)]
        assert scenario.reconcile(target, *orders, "--checksum")["orders"]["status"] == "equal"

    def test_composite_keys_narrow_on_the_first_and_delete_by_all(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        scenario.dest_sql(target, "UPDATE {lines} SET sku = 'changed' WHERE order_id = 30 AND line = 1")
        scenario.source_sql("DELETE FROM lines WHERE order_id = 70 AND line = 2")
        lines = ("--stream", "*-lines")
        found = scenario.reconcile(target, *lines, "--checksum", "--apply-deletes", expect=EXIT_DATA)["lines"]
        changed, deleted = found["differences"]
        assert changed["source_rows"] == changed["destination_rows"] and changed["checksum"] == "different"
        holds(changed, 30, most_keys=1)
        assert (deleted["source_rows"], deleted["destination_rows"]) == (2, 3)
        holds(deleted, 70, most_keys=1)
        assert found["deletes"]["destination_only"] == [[70, 2]]
        assert found["deletes"]["applied"]["deleted"] == 1
        scenario.dest_sql(target, "UPDATE {lines} SET sku = 'sku-91' WHERE order_id = 30 AND line = 1")
        assert scenario.reconcile(target, *lines, "--checksum")["lines"]["status"] == "equal"

    def test_text_and_timestamp_keys_range_and_delete_alike(self, scenario: Scenario, target: str) -> None:
        """Text keys under a linguistic collation (PostgreSQL sorts 'b' < 'B' < 'Z', DuckDB 'B' < 'Z' < 'b')
        and date-time keys: both sides put each row in the same range, and deletes go by those keys."""
        scenario.source_sql(
            'CREATE TABLE tagged (code text COLLATE "und-x-icu" PRIMARY KEY, n int); '
            "INSERT INTO tagged SELECT chr(65 + i % 26) || chr(97 + i / 26) || i, i FROM generate_series(0, 199) i; "
            "INSERT INTO tagged VALUES ('é', 1), ('e', 2), ('', 3); "
            "CREATE TABLE ticks (at timestamptz PRIMARY KEY, n int); "
            "INSERT INTO ticks SELECT '2024-01-01 00:00+00'::timestamptz + i * interval '90 minutes 0.25 s', i "
            "FROM generate_series(0, 99) i"
        )
        scenario.run(target)
        streams = ("--stream", "*-tagged", "--stream", "*-ticks")
        found = scenario.reconcile(target, *streams, "--checksum")
        assert found["tagged"]["status"] == found["ticks"]["status"] == "equal"
        scenario.source_sql("DELETE FROM tagged WHERE code = 'Bb27'; DELETE FROM ticks WHERE n = 50")
        found = scenario.reconcile(target, *streams, "--checksum", "--apply-deletes", expect=EXIT_DATA)
        assert found["tagged"]["deletes"]["destination_only"] == [["Bb27"]]
        assert found["ticks"]["deletes"]["destination_only"] == [["2024-01-04T03:00:12.500000+00:00"]]
        assert found["tagged"]["deletes"]["applied"]["deleted"] == found["ticks"]["deletes"]["applied"]["deleted"] == 1
        found = scenario.reconcile(target, *streams, "--checksum")
        assert found["tagged"]["status"] == found["ticks"]["status"] == "equal"

    def test_a_column_missing_in_the_destination_differs_everywhere(self, scenario: Scenario, target: str) -> None:
        """A column the destination lost compares as NULL: every range differs, and narrowing stops
        instead of listing each row."""
        scenario.run(target)
        scenario.dest_sql(target, "ALTER TABLE {orders} DROP COLUMN customer")
        found = scenario.reconcile(target, "--stream", "*-orders", "--checksum", expect=EXIT_DATA)["orders"]
        assert "destination: no column customer in the table (compared as NULL)" in found["notes"]
        assert len(found["differences"]) == found["ranges"] == 16
        assert {d["checksum"] for d in found["differences"]} == {"different"}

    def test_a_stream_without_keys_compares_counts_and_says_why(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        scenario.dest_sql(target, "DELETE FROM {notes} WHERE body = 'note 3'")
        found = scenario.reconcile(target, "--stream", "*-notes", "--checksum", "--deletes", expect=EXIT_DATA)["notes"]
        assert (found["source_rows"], found["destination_rows"]) == (5, 4)
        assert found["differences"] == [
            {"lo": None, "hi": None, "source_rows": 5, "destination_rows": 4, "checksum": None}
        ]
        assert found["deletes"]["refused"] == "the stream has no key properties to tell rows apart"

    def test_the_text_report_names_ranges_and_keys(self, scenario: Scenario, target: str) -> None:
        scenario.run(target)
        scenario.source_sql("DELETE FROM orders WHERE id = 9")
        proc = scenario.dpone(
            "reconcile", f"tap-postgres-to-{target}", "--stream", "*-orders", "--deletes", expect=EXIT_DATA
        )
        lines = proc.stdout.splitlines()
        assert f"{scenario.stream('orders')} -> {target}: different" in lines
        assert "    [9, 10): source 0 rows, destination 1 row" in lines
        assert "  keys in the destination, not at the source (deleted at the source): 9" in lines
        assert lines[-1] == "summary: 1 different"


class TestBadInput:
    def test_an_unknown_pipeline_is_a_config_error(self, scenario: Scenario) -> None:
        proc = scenario.dpone("reconcile", "nope", expect=EXIT_CONFIG)
        assert "unknown pipeline 'nope'" in proc.stderr and "Traceback" not in proc.stderr

    def test_a_stream_pattern_matching_nothing_is_a_config_error(self, scenario: Scenario) -> None:
        proc = scenario.dpone("reconcile", "tap-postgres-to-target-duckdb", "--stream", "*-nothing", expect=EXIT_CONFIG)
        assert "no selected stream matching *-nothing" in proc.stderr

    def test_ranges_must_be_a_positive_number(self, scenario: Scenario) -> None:
        proc = scenario.dpone("reconcile", "tap-postgres-to-target-duckdb", "--ranges", "0", expect=EXIT_USAGE)
        assert "a whole number from 1 to 1000" in proc.stderr

    def test_a_target_without_reconcile_is_not_available(self, scenario: Scenario) -> None:
        proc = scenario.dpone("reconcile", "tap-postgres-to-target-jsonl", "--stream", "*-orders", expect=EXIT_CONFIG)
        assert f"{scenario.stream('orders')} -> target-jsonl: not available (not available for target-jsonl:" in (
            proc.stdout
        )
        assert "nothing could be compared" in proc.stderr

    def test_an_unreachable_destination_is_transient_and_keeps_its_password(self, scenario: Scenario) -> None:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])  # released: nothing listens there
        scenario.write_project(postgres={"port": port, "password": "s3cret-pw"})
        proc = scenario.dpone("reconcile", "tap-postgres-to-target-postgres", expect=EXIT_TRANSIENT)
        assert "target-postgres" in proc.stderr
        assert "s3cret-pw" not in proc.stdout + proc.stderr
        assert "Traceback" not in proc.stderr


# -- one canonical text, one hash: PostgreSQL and DuckDB agree on every kind ------------------------

KIND_TYPES = {  # kind -> (PostgreSQL type, DuckDB type as target-duckdb makes it)
    "integer": ("bigint", "BIGINT"),
    "number": ("numeric", "VARCHAR"),  # unbounded_numbers: varchar keeps the text
    "decimal": ("numeric(20,6)", "DECIMAL(20,6)"),
    "float": ("double precision", "DOUBLE"),
    "string": ("text", "VARCHAR"),
    "uuid": ("uuid", "UUID"),
    "date-time": ("timestamp with time zone", "TIMESTAMP WITH TIME ZONE"),
    "naive": ("timestamp without time zone", "TIMESTAMP WITH TIME ZONE"),  # a naive time lands as UTC
    "date": ("date", "DATE"),
    "time": ("time without time zone", "TIME"),
    "boolean": ("boolean", "BOOLEAN"),
}
WIRE_KIND = {"decimal": "number", "float": "number", "uuid": "string", "naive": "date-time"}
EDGES: dict[str, list[Any]] = {
    "integer": ["0", "-1", "9223372036854775807", "-9223372036854775808"],
    "number": ["0", "-0.000", "12.50", "1e20", "1.5E-7", "123456789012345678901234567890.123456789", "NaN", "-1"],
    "decimal": ["0", "-0.000001", "99999999999999.999999", "-12.5", "1"],
    "float": [
        "0",
        "-0.0",
        "1e20",
        "1.5e-07",
        "5e-324",
        "1.7976931348623157e308",
        "0.30000000000000004",
        "NaN",
        "Infinity",
        "-Infinity",
        "123456789012.5",
        "1e16",
        "1e15",
    ],
    "string": ["", "é", "e\u0301", "😀", "a:b", "-", "1:x", "'\"", "\t\n", "x" * 300],
    "uuid": ["00000000-0000-0000-0000-000000000000", "ffffffff-ffff-ffff-ffff-ffffffffffff"],
    "date-time": [
        "1970-01-01 00:00:00+00",
        "1969-12-31 23:59:59.999999+00",
        "0001-01-01 00:00:00+00",
        "9999-12-31 23:59:59.999999+00",
        "2024-02-29 12:34:56.5+05:30",
        "infinity",
        "-infinity",
    ],
    "naive": ["1970-01-01 00:00:00", "1969-12-31 23:59:59.999999", "2000-02-29 00:00:00.000001"],
    "date": ["1970-01-01", "1969-12-31", "0001-01-01", "9999-12-31", "infinity", "-infinity"],
    "time": ["00:00:00", "23:59:59.999999", "24:00:00", "12:34:56.5"],
    "boolean": ["true", "false"],
}


def _random_values(kind: str, rng: random.Random, n: int) -> list[str]:
    makers = {
        "integer": lambda: str(rng.randint(-(2**63), 2**63 - 1)),
        "number": lambda: f"{rng.randint(-(10**12), 10**12)}.{rng.randint(0, 10**9):09d}",
        "decimal": lambda: f"{rng.randint(-(10**13), 10**13)}.{rng.randint(0, 999999):06d}",
        "float": lambda: repr(rng.choice([rng.uniform(-1e6, 1e6), rng.random() * 10 ** rng.randint(-40, 40)])),
        "string": lambda: "".join(
            chr(rng.choice([rng.randint(32, 126), rng.randint(0xA0, 0x2FF), 0x1F600]))
            for _ in range(rng.randint(0, 12))
        ),
        "uuid": lambda: str(uuid.UUID(int=rng.getrandbits(128))),
        "date-time": lambda: (
            dt.datetime(1900, 1, 1, tzinfo=dt.UTC)
            + dt.timedelta(microseconds=rng.randint(0, 200 * 365 * 86400 * 10**6))
        ).isoformat(),
        "naive": lambda: (dt.datetime(1900, 1, 1) + dt.timedelta(microseconds=rng.randint(0, 10**16))).isoformat(),
        "date": lambda: (dt.date(1, 1, 1) + dt.timedelta(days=rng.randint(0, 3_600_000))).isoformat(),
        "time": lambda: (
            (dt.datetime(2000, 1, 1) + dt.timedelta(microseconds=rng.randint(0, 86_400 * 10**6 - 1))).time().isoformat()
        ),
        "boolean": lambda: rng.choice(["true", "false"]),
    }
    return [makers[kind]() for _ in range(n)]


@pytest.fixture(scope="module")
def same_rows(server: Any, database: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Any, Any, str]]:
    """One table of every kind with the same rows in PostgreSQL and in DuckDB: each column its edge
    values, random ones, and NULL (values inserted as text, each database casting them itself)."""
    rng = random.Random(20)
    columns = {kind: [*EDGES[kind], *_random_values(kind, rng, 60), None] for kind in KIND_TYPES}
    rows = max(len(values) for values in columns.values())
    table = f"same_{uuid.uuid4().hex[:8]}"
    pg = psycopg.connect(server.dsn(database), autocommit=True)
    duck = duckdb.connect(str(tmp_path_factory.mktemp("same") / "same.duckdb"))
    defs = ", ".join(f"{q(k)} {types[0]}" for k, types in KIND_TYPES.items())
    pg.execute(f"CREATE TABLE {q(table)} (id int PRIMARY KEY, {defs})")
    duck.execute(
        f"CREATE TABLE {q(table)} (id INTEGER PRIMARY KEY, "
        f"{', '.join(f'{q(k)} {types[1]}' for k, types in KIND_TYPES.items())})"
    )
    for statement in DUCKDB.setup():
        duck.execute(statement)
    for statement in POSTGRES.setup():
        pg.execute(statement)
    for i in range(rows):
        values = [columns[kind][i] if i < len(columns[kind]) else None for kind in KIND_TYPES]
        pg_casts = ", ".join(f"CAST(%s AS {types[0]})" for types in KIND_TYPES.values())
        pg.execute(f"INSERT INTO {q(table)} VALUES ({i}, {pg_casts})", values)
        # DuckDB reads each value as PostgreSQL prints it (a naive time is UTC, +05:30 an offset).
        printed = pg.execute(
            f"SELECT {', '.join(f'CAST({q(k)} AS text)' for k in KIND_TYPES)} FROM {q(table)} WHERE id = %s", (i,)
        ).fetchone()
        assert printed is not None
        duck_casts = ", ".join(f"CAST(? AS {types[1]})" for types in KIND_TYPES.values())
        duck.execute(f"INSERT INTO {q(table)} VALUES ({i}, {duck_casts})", list(printed))
    try:
        yield pg, duck, table
    finally:
        pg.execute(f"DROP TABLE {q(table)}")
        pg.close()
        duck.close()


class TestOneChecksumRule:
    @pytest.mark.parametrize("kind", list(KIND_TYPES))
    def test_every_value_reads_the_same_in_postgres_and_duckdb(
        self, same_rows: tuple[Any, Any, str], kind: str
    ) -> None:
        pg, duck, table = same_rows
        wire = WIRE_KIND.get(kind, kind)
        pg_types, duck_types = KIND_TYPES[kind]
        text_pg = POSTGRES.canonical(wire, q(kind), pg_types)
        text_duck = DUCKDB.canonical(wire, q(kind), duck_types)
        hash_pg = POSTGRES.row_hash(POSTGRES.piece(text_pg))
        hash_duck = DUCKDB.row_hash(DUCKDB.piece(text_duck))
        left = pg.execute(f"SELECT id, {text_pg}, {hash_pg} FROM {q(table)} ORDER BY id").fetchall()
        right = duck.execute(f"SELECT id, {text_duck}, {hash_duck} FROM {q(table)} ORDER BY id").fetchall()
        assert [tuple(r) for r in left] == [tuple(r) for r in right]

    def test_every_kind_has_its_expected_text(self, same_rows: tuple[Any, Any, str]) -> None:
        pg, _, table = same_rows
        expected = {  # row 1 of each column: the second edge value
            "integer": "-1",
            "number": "0",
            "decimal": "-0.000001",
            "float": "0",
            "string": "é",
            "date-time": "-1",
            "date": "-1",
            "time": "86399999999",
            "boolean": "false",
        }
        for kind, text in expected.items():
            sql = POSTGRES.canonical(WIRE_KIND.get(kind, kind), q(kind), KIND_TYPES[kind][0])
            assert pg.execute(f"SELECT {sql} FROM {q(table)} WHERE id = 1").fetchone() == (text,), kind
        cases = {"float": {"1e20": "100000000000000000000", "1.5e-07": "0.00000015"}, "number": {"12.50": "12.5"}}
        for kind, texts in cases.items():
            for given, text in texts.items():
                sql = POSTGRES.canonical("number", f"CAST(%s AS {KIND_TYPES[kind][0]})", "")
                assert pg.execute(f"SELECT {sql}", (given,)).fetchone() == (text,)

    @pytest.mark.parametrize("ranges", [1, 7])
    def test_range_counts_and_checksums_are_equal(self, same_rows: tuple[Any, Any, str], ranges: int) -> None:
        pg, duck, table = same_rows
        request = parse_request(
            {
                "stream": "same",
                "keys": ["id"],
                "columns": [{"name": k, "kind": WIRE_KIND.get(k, k)} for k in KIND_TYPES],
                "checksum": True,
                "ranges": ranges,
            }
        )

        def table_of(index: int) -> Table:
            columns = {k: (q(k), types[index]) for k, types in KIND_TYPES.items()}
            columns["id"] = ('"id"', ("integer", "INTEGER")[index])
            return Table(q(table), table, columns, [columns["id"]])

        source = Reconciler(request, table_of(0), POSTGRES, pg_query(pg)).answer()
        destination_request = parse_request({**request_dict(request), "bounds": source["bounds"]})

        def duck_query(sql: str, params: Any) -> list[tuple[Any, ...]]:
            return list(duck.execute(sql, list(params)).fetchall())

        destination = Reconciler(destination_request, table_of(1), DUCKDB, duck_query).answer()
        assert len(source["ranges"]) == ranges
        assert source["ranges"] == destination["ranges"]
        assert source["rows"] == destination["rows"] > 60


def test_rows_with_a_null_key_are_counted_apart(server: Any, database: str) -> None:
    """A key a view (or a table without a primary key) leaves NULL is in no range: counted on its own."""
    with psycopg.connect(server.dsn(database), autocommit=True) as pg:
        table = f"nulls_{uuid.uuid4().hex[:8]}"
        pg.execute(f"CREATE TABLE {q(table)} AS SELECT NULLIF(i % 5, 0) AS k, i FROM generate_series(1, 20) AS i")
        try:
            request = parse_request(
                {"stream": "n", "keys": ["k"], "columns": [{"name": "k", "kind": "integer"}], "ranges": 2}
            )
            columns = {"k": ('"k"', "integer")}
            answer = Reconciler(
                request, Table(q(table), table, columns, [columns["k"]]), POSTGRES, pg_query(pg)
            ).answer()
        finally:
            pg.execute(f"DROP TABLE {q(table)}")
    assert answer["null_keys"] == 4
    assert answer["rows"] == 16 and sum(r["rows"] for r in answer["ranges"]) == 16
    assert [(r["lo"], r["hi"]) for r in answer["ranges"]] == [(None, 2), (2, None)]


def request_dict(request: Any) -> dict[str, Any]:
    return {
        "stream": request.stream,
        "keys": request.keys,
        "columns": [{"name": c.name, "kind": c.kind} for c in request.columns],
        "checksum": request.checksum,
    }
