"""tap-postgres against a real PostgreSQL 15: discovery, FULL_TABLE (values, versions, resume),
INCREMENTAL, XMIN, the runner's catalog selection, and the errors an operator meets.

Each test works in a schema of its own inside a database this module creates on the session
server (the database's TimeZone is UTC, so rendered timestamps are predictable). The tap runs
in-process through its CLI (`run_tap`); a second, tiny server with password authentication and
wal_level=replica is started for the tests that need one. LOG_BASED lives in
test_tap_postgres_cdc.py, the tap | target round trip in test_postgres_round_trip.py. The scenarios
every tap shares (discovery, selection, bookmarks, resume, state cadence) are the shared suite's:
tests/kit/tap_suite.py, run by test_tap_postgres_suite.py.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import itertools
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.taps.postgres.discovery import discover
from dpone.taps.postgres.tap import PostgresTap
from dpone_protocol.catalog import Catalog, apply_selection
from tests.conftest import Run

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
TAP = str(BIN / "tap-postgres")
DPONE = str(BIN / "dpone")
DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "tap-postgres.md"
EXIT_TRANSIENT = 75
EXIT_CONFIG = 78

XMIN_BUG = (
    'bug: taps/postgres/streams.py:145 (_xmin) runs "SELECT txid_snapshot_xmin(txid_current_snapshot()) % %s" with '
    "parameters, so psycopg reads the modulo '%' as a placeholder: every XMIN run dies with 'incomplete "
    "placeholder' (exit 70). Fix: write the modulo as '%%' (or compute it in Python)"
)


# -- helpers ------------------------------------------------------------------------------------------


def q(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def records(run: Run, stream: str | None = None) -> list[dict[str, Any]]:
    return [m["record"] for m in run.messages if m["type"] == "RECORD" and stream in (None, m["stream"])]


def ok(run: Run) -> Run:
    assert run.rc == 0, run.stderr
    return run


def error_line(run: Run, kind: str, rc: int) -> str:
    """The run failed with `rc` and printed exactly one error line, the last one, of this kind."""
    assert run.rc == rc, run.stderr
    ours = [line for line in run.stderr.splitlines() if line.startswith("tap-postgres:")]
    assert len(ours) == 1, run.stderr
    assert run.stderr.strip().splitlines()[-1] == ours[0], run.stderr
    assert ours[0].startswith(f"tap-postgres: {kind} error: "), ours[0]
    return ours[0]


def tap_runner(tmp_dir: Path) -> Callable[..., Run]:
    """What the `run_tap` fixture does, for module-scoped fixtures: the CLI in-process, stdio captured."""
    counter = itertools.count()

    def go(cls: type[PostgresTap], config: dict[str, Any] | None, *args: str) -> Run:
        out, err = io.BytesIO(), io.StringIO()
        argv = list(args)
        if config is not None:
            path = tmp_dir / f"tap-config-{next(counter)}.json"
            path.write_bytes(orjson.dumps(config))
            argv = ["--config", str(path), *argv]
        rc = run_tap_cli(cls, argv, stdout=out, stderr=err)
        data = out.getvalue()
        messages = [] if data.startswith(b"{\n") else [orjson.loads(line) for line in data.splitlines() if line]
        return Run(rc, data, err.getvalue(), messages)

    return go


def bookmark(run: Run, stream: str) -> dict[str, Any]:
    return dict(run.states[-1]["bookmarks"][stream])


@dataclass
class Server:
    """Where a database lives: enough to build a tap config and an admin connection."""

    host: str
    port: int
    user: str
    password: str = ""

    def dsn(self, database: str) -> str:
        auth = f"{self.user}:{self.password}" if self.password else self.user
        return f"postgresql://{auth}@{self.host}:{self.port}/{database}"

    def config(self, database: str) -> dict[str, Any]:
        return {
            "host": self.host,
            "port": self.port,
            "user": self.user,
            "password": self.password,
            "database": database,
        }


def make_database(server: Server, prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {q(name)}")
        admin.execute(f"ALTER DATABASE {q(name)} SET timezone TO 'UTC'")
    return name


def drop_database(server: Server, name: str) -> None:
    with psycopg.connect(server.dsn("postgres"), autocommit=True) as admin:
        admin.execute(
            "SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE database = %s", (name,)
        )
        admin.execute(f"DROP DATABASE IF EXISTS {q(name)} WITH (FORCE)")


class Source:
    """One test's schema in the module's database, a connection to it, and the tap pointed at it."""

    def __init__(self, dsn: str, base_config: dict[str, Any], run_tap: Callable[..., Run], tmp_path: Path) -> None:
        self.dsn = dsn
        self.base_config = base_config
        self.schema = f"s_{uuid.uuid4().hex[:10]}"
        self.run_tap = run_tap
        self.tmp_path = tmp_path
        self._files = itertools.count()
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.database = self.conn.info.dbname
        self.conn.execute(f"CREATE SCHEMA {q(self.schema)}")
        self.conn.execute(f"SET search_path TO {q(self.schema)}, public")

    # -- SQL
    def sql(self, *statements: str) -> None:
        for statement in statements:
            self.conn.execute(statement)  # type: ignore[arg-type]

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()  # type: ignore[arg-type]

    def scalar(self, sql: str, params: Any = None) -> Any:
        row = self.conn.execute(sql, params).fetchone()  # type: ignore[arg-type]
        assert row is not None
        return row[0]

    def connect(self) -> psycopg.Connection[Any]:
        conn = psycopg.connect(self.dsn, autocommit=True)
        conn.execute(f"SET search_path TO {q(self.schema)}, public")
        return conn

    # -- the tap
    def config(self, **extra: Any) -> dict[str, Any]:
        return {**self.base_config, "include": [f"{self.schema}.*"], **extra}

    def stream(self, table: str) -> str:
        return f"{self.schema}-{table}"

    def file(self, name: str, value: Any) -> str:
        path = self.tmp_path / f"{next(self._files):03d}-{name}.json"
        path.write_bytes(orjson.dumps(value))
        return str(path)

    def discover(self, **config: Any) -> Catalog:
        run = self.run_tap(PostgresTap, self.config(**config), "--discover")
        assert run.rc == 0, run.stderr
        return Catalog.from_dict(orjson.loads(run.stdout))

    def catalog(
        self,
        table: str,
        method: str = "FULL_TABLE",
        key: str | None = None,
        deselect: tuple[str, ...] = (),
        catalog: Catalog | None = None,
    ) -> Catalog:
        """The discovered catalog with only `table` selected, read with `method`."""
        catalog = catalog or self.discover()
        found = False
        for entry in catalog:
            md = entry.stream_metadata()
            md["selected"] = entry.tap_stream_id == self.stream(table)
            if md["selected"]:
                found = True
                md["replication-method"] = method
                if key:
                    md["replication-key"] = key
                for column in deselect:
                    entry.metadata[("properties", column)]["selected"] = False
        assert found, f"{table} not discovered"
        return catalog

    def sync(self, catalog: Catalog | None = None, state: dict[str, Any] | None = None, **config: Any) -> Run:
        args: list[str] = []
        if catalog is not None:
            args += ["--catalog", self.file("catalog", catalog.to_dict())]
        if state is not None:
            args += ["--state", self.file("state", state)]
        return self.run_tap(PostgresTap, self.config(**config), *args)

    def close(self) -> None:
        # Schemas a test named after this one (<schema>_dest, a target's destination) go with it.
        like = self.schema.replace("_", r"\_") + r"\_%"
        derived = [r[0] for r in self.conn.execute("SELECT nspname FROM pg_namespace WHERE nspname LIKE %s", (like,))]
        for schema in [self.schema, *derived]:
            self.conn.execute(f"DROP SCHEMA IF EXISTS {q(schema)} CASCADE")
        self.conn.close()


# -- a table with every supported type --------------------------------------------------------------

EVERY_TYPE_DDL = """
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS integer CHECK (VALUE > 0);
CREATE DOMAIN code AS varchar(8);
CREATE DOMAIN amount AS numeric(10,2);
CREATE TABLE every_type (
    id integer PRIMARY KEY,
    c_smallint smallint, c_integer integer, c_bigint bigint,
    c_numeric_ps numeric(12,4), c_numeric numeric, c_real real, c_double double precision, c_boolean boolean,
    c_text text, c_varchar varchar(10), c_char char(3),
    c_timestamptz timestamptz, c_timestamp timestamp, c_date date, c_time time, c_interval interval,
    c_json json, c_jsonb jsonb, c_int_array integer[], c_text_array text[], c_numeric_array numeric[],
    c_uuid uuid, c_bytea bytea, c_inet inet, c_cidr cidr, c_macaddr macaddr,
    c_enum mood, c_domain_int posint, c_domain_text code, c_domain_numeric amount,
    c_money money, c_timetz timetz, c_not_null text NOT NULL DEFAULT 'n'
);
"""
BYTES = bytes(range(256)) + b"\x00\xff\x10"
EVERY_TYPE_ROW = """
INSERT INTO every_type VALUES (
    1, -32768, 2147483647, 9223372036854775807,
    12345678.123, 1234567890123456789012345678901234567890.0123456789, 1.5, 3.141592653589793, true,
    E'he said "hi" \\\\ and ''q'' \\u2603 \\t end', 'abc', 'ab',
    '2024-01-02 03:04:05.123456+05:30', '2024-01-02 03:04:05.654321', '2024-02-29', '23:59:59.999999',
    '1 year 2 mons 3 days 04:05:06',
    '{"a": [1, 2.50, "x"], "b": null}', '{"k": {"n": 1.10}, "u": "\\u00e9"}', '{1,2,NULL}',
    '{"a b","c,d",NULL,"\\"q\\""}', '{1.10,2.200,NULL}',
    'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11', %s, '192.168.0.1/24', '10.0.0.0/8', '08:00:2b:01:02:03',
    'happy', 5, 'dom', 12.5, 12.34, '12:00:00+02', 'nn'
)
"""
EVERY_TYPE_VALUES = {
    "id": 1,
    "c_smallint": -32768,
    "c_integer": 2147483647,
    "c_bigint": 9223372036854775807,
    "c_numeric_ps": "12345678.1230",
    "c_numeric": "1234567890123456789012345678901234567890.0123456789",
    "c_real": 1.5,
    "c_double": 3.141592653589793,
    "c_boolean": True,
    "c_text": "he said \"hi\" \\ and 'q' \u2603 \t end",
    "c_varchar": "abc",
    "c_char": "ab",
    "c_timestamptz": "2024-01-01T21:34:05.123456+00:00",
    "c_timestamp": "2024-01-02T03:04:05.654321",
    "c_date": "2024-02-29",
    "c_time": "23:59:59.999999",
    "c_interval": "1 year 2 mons 3 days 04:05:06",
    "c_json": {"a": [1, 2.5, "x"], "b": None},
    "c_jsonb": {"k": {"n": 1.1}, "u": "\u00e9"},
    "c_int_array": [1, 2, None],
    "c_text_array": ["a b", "c,d", None, '"q"'],
    "c_numeric_array": ["1.10", "2.200", None],
    "c_uuid": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
    "c_bytea": base64.b64encode(BYTES).decode(),
    "c_inet": "192.168.0.1/24",
    "c_cidr": "10.0.0.0/8",
    "c_macaddr": "08:00:2b:01:02:03",
    "c_enum": "happy",
    "c_domain_int": 5,
    "c_domain_text": "dom",
    "c_domain_numeric": "12.50",
    "c_money": "12.34",
    "c_timetz": "12:00:00+02",
    "c_not_null": "nn",
}
INT32 = {"minimum": -(2**31), "maximum": 2**31 - 1}
NULLABLE_STRING = {"type": ["string", "null"]}


def nested_items(item: dict[str, Any]) -> dict[str, Any]:
    """An array column's items: elements, or arrays of them, up to PostgreSQL's 6 dimensions."""
    schema = item
    for _ in range(5):
        schema = {"anyOf": [item, {"type": "array", "items": schema}]}
    return schema


EVERY_TYPE_SCHEMA = {
    "id": {"type": "integer", **INT32},
    "c_smallint": {"type": ["integer", "null"], "minimum": -(2**15), "maximum": 2**15 - 1},
    "c_integer": {"type": ["integer", "null"], **INT32},
    "c_bigint": {"type": ["integer", "null"], "minimum": -(2**63), "maximum": 2**63 - 1},
    "c_numeric_ps": {"type": ["string", "null"], "format": "singer.decimal", "precision": 12, "scale": 4},
    "c_numeric": {"type": ["string", "null"], "format": "singer.decimal"},
    "c_real": {"type": ["number", "null"], "x-sql-datatype": "real"},
    "c_double": {"type": ["number", "null"], "x-sql-datatype": "double precision"},
    "c_boolean": {"type": ["boolean", "null"]},
    "c_text": NULLABLE_STRING,
    "c_varchar": {"type": ["string", "null"], "maxLength": 10},
    "c_char": {"type": ["string", "null"], "maxLength": 3},
    "c_timestamptz": {"type": ["string", "null"], "format": "date-time"},
    "c_timestamp": {"type": ["string", "null"], "format": "date-time"},
    "c_date": {"type": ["string", "null"], "format": "date"},
    "c_time": {"type": ["string", "null"], "format": "time"},
    "c_interval": NULLABLE_STRING,
    "c_json": {"type": ["object", "array", "string", "number", "boolean", "null"]},
    "c_jsonb": {"type": ["object", "array", "string", "number", "boolean", "null"]},
    "c_int_array": {"type": ["array", "null"], "items": nested_items({"type": ["integer", "null"], **INT32})},
    "c_text_array": {"type": ["array", "null"], "items": nested_items(NULLABLE_STRING)},
    "c_numeric_array": {
        "type": ["array", "null"],
        "items": nested_items({"type": ["string", "null"], "format": "singer.decimal"}),
    },
    "c_uuid": {"type": ["string", "null"], "format": "uuid"},
    "c_bytea": {"type": ["string", "null"], "contentEncoding": "base64"},
    "c_inet": NULLABLE_STRING,
    "c_cidr": NULLABLE_STRING,
    "c_macaddr": NULLABLE_STRING,
    "c_enum": {"type": ["string", "null"], "enum": ["sad", "ok", "happy", None]},
    "c_domain_int": {"type": ["integer", "null"], **INT32},
    "c_domain_text": {"type": ["string", "null"], "maxLength": 8},
    "c_domain_numeric": {"type": ["string", "null"], "format": "singer.decimal", "precision": 10, "scale": 2},
    "c_money": {"type": ["string", "null"], "format": "singer.decimal"},
    "c_timetz": NULLABLE_STRING,
    "c_not_null": {"type": "string"},
}


def create_every_type(src: Source) -> None:
    src.sql(EVERY_TYPE_DDL)
    src.conn.execute(EVERY_TYPE_ROW, (BYTES,))
    src.sql("INSERT INTO every_type (id) VALUES (2)")


# -- discovery -----------------------------------------------------------------------------------------


def test_discovery_schemas_tables_and_views_with_include_and_exclude_globs(src):
    other = f"{src.schema}_x"
    src.sql(
        "CREATE TABLE orders (id int PRIMARY KEY)",
        "CREATE TABLE order_lines (order_id int, line int, PRIMARY KEY (order_id, line))",
        "CREATE TABLE tmp_scratch (v text)",
        "CREATE VIEW open_orders AS SELECT id FROM orders",
        "CREATE MATERIALIZED VIEW order_counts AS SELECT count(*) AS n FROM orders",
        f"CREATE SCHEMA {q(other)}",
        f"CREATE TABLE {q(other)}.customers (id int PRIMARY KEY)",
        f"CREATE TABLE {q(other)}.orders (id int PRIMARY KEY)",
    )
    try:
        s, x = src.schema, other
        every = {e.tap_stream_id for e in src.discover(include=[f"{s}*.*"])}
        assert every == {
            f"{s}-orders",
            f"{s}-order_lines",
            f"{s}-tmp_scratch",
            f"{s}-open_orders",
            f"{s}-order_counts",
            f"{x}-customers",
            f"{x}-orders",
        }
        excluded = {e.tap_stream_id for e in src.discover(include=[f"{s}*.*"], exclude=[f"{s}.tmp_*", f"{x}.*"])}
        assert excluded == {f"{s}-orders", f"{s}-order_lines", f"{s}-open_orders", f"{s}-order_counts"}
        by_table = {e.tap_stream_id for e in src.discover(include=[f"{s}*.order*"])}
        assert by_table == {f"{s}-orders", f"{s}-order_lines", f"{s}-order_counts", f"{x}-orders"}
        assert src.discover(include=["no_such_schema.*"]).streams == []

        catalog = src.discover()
        keys = {e.tap_stream_id: e.key_properties for e in catalog}
        assert keys[f"{s}-orders"] == ["id"]
        assert keys[f"{s}-order_lines"] == ["order_id", "line"]  # in the key's column order
        assert keys[f"{s}-tmp_scratch"] == []
        assert keys[f"{s}-open_orders"] == []
        lines = catalog.get(f"{s}-order_lines")
        assert lines is not None
        assert lines.stream_metadata()["table-key-properties"] == ["order_id", "line"]
        assert lines.metadata[("properties", "line")]["inclusion"] == "automatic"
        assert lines.replication_method == "FULL_TABLE"
    finally:
        src.sql(f"DROP SCHEMA {q(other)} CASCADE")


def test_discovery_leaves_out_temporary_tables_of_other_sessions(src):
    src.sql("CREATE TABLE kept (id int PRIMARY KEY)")
    with src.connect() as other:
        other.execute("CREATE TEMP TABLE staging_in_progress (id int)")
        catalog = src.discover(include=["pg_temp*.*", f"{src.schema}.*"])
        assert [e.tap_stream_id for e in catalog] == [src.stream("kept")]
        ok(src.sync(catalog, include=["pg_temp*.*", f"{src.schema}.*"]))


def test_discovery_json_schema_for_every_supported_type(src):
    create_every_type(src)
    catalog = src.discover()
    entry = catalog.get(src.stream("every_type"))
    assert entry is not None
    assert entry.schema == {"type": "object", "properties": EVERY_TYPE_SCHEMA}
    assert list(entry.schema["properties"]) == list(EVERY_TYPE_SCHEMA)  # table column order
    assert entry.key_properties == ["id"]
    # The same schema goes out in the SCHEMA message.
    run = ok(src.sync(src.catalog("every_type", catalog=catalog)))
    assert run.of_type("SCHEMA")[0]["schema"]["properties"] == EVERY_TYPE_SCHEMA
    assert run.of_type("SCHEMA")[0]["key_properties"] == ["id"]


def test_discovery_row_estimates_after_analyze(src):
    src.sql("CREATE TABLE big (id int PRIMARY KEY)", "INSERT INTO big SELECT generate_series(1, 1234)")
    before = {t.name: t.row_estimate for t in discover(src.conn, [f"{src.schema}.*"], [])}
    assert before == {"big": None}  # never analyzed: reltuples is -1, unknown (not 0)
    catalog = src.discover()
    assert "row-count" not in catalog.get(src.stream("big")).stream_metadata()
    src.sql("ANALYZE big")
    tables = discover(src.conn, [f"{src.schema}.*"], [])
    assert [(t.name, t.row_estimate, t.primary_key, t.kind) for t in tables] == [("big", 1234, ["id"], "r")]
    src.sql("CREATE TABLE empty (id int PRIMARY KEY)", "ANALYZE empty")  # analysed and empty: a real 0
    assert {t.name: t.row_estimate for t in discover(src.conn, [f"{src.schema}.empty"], [])} == {"empty": 0}


def test_catalog_metadata_carries_row_count_and_is_view(src):
    src.sql(
        "CREATE TABLE big (id int PRIMARY KEY)",
        "INSERT INTO big SELECT generate_series(1, 1234)",
        "ANALYZE big",
        "CREATE VIEW v AS SELECT id FROM big",
    )
    catalog = src.discover()
    big, view = catalog.get(src.stream("big")), catalog.get(src.stream("v"))
    assert big is not None and view is not None
    assert big.stream_metadata().get("row-count") == 1234
    assert big.stream_metadata().get("is-view") is False
    assert view.stream_metadata().get("is-view") is True


def test_discover_cli_output_works_with_runner_select_patterns(src):
    """`tap-postgres --discover` (the real executable) -> Meltano-style select -> a sync of just that."""
    src.sql(
        "CREATE TABLE customers (id int PRIMARY KEY, name text, email text, notes text)",
        "INSERT INTO customers VALUES (1, 'ana', 'ana@example.com', 'vip'), (2, 'ben', NULL, NULL)",
        "CREATE TABLE audit (id int PRIMARY KEY, what text)",
        "INSERT INTO audit VALUES (1, 'login')",
    )
    config_path = src.file("config", src.config())
    proc = subprocess.run([TAP, "--config", config_path, "--discover"], capture_output=True, check=False)
    assert proc.returncode == 0, proc.stderr.decode()
    catalog = Catalog.from_dict(orjson.loads(proc.stdout))
    customers = src.stream("customers")
    selected = apply_selection(catalog, [f"{customers}.*", f"!{customers}.email", f"!{customers}.notes"])
    run = ok(src.sync(selected))
    assert {m["stream"] for m in run.messages if "stream" in m} == {customers}
    assert run.of_type("SCHEMA")[0]["schema"]["properties"].keys() == {"id", "name"}
    assert records(run) == [{"id": 1, "name": "ana"}, {"id": 2, "name": "ben"}]


def test_partitioned_table_is_one_stream_read_through_its_parent(src):
    src.sql(
        "CREATE TABLE measures (id int, at date, v int, PRIMARY KEY (id, at)) PARTITION BY RANGE (at)",
        "CREATE TABLE measures_2024 PARTITION OF measures FOR VALUES FROM ('2024-01-01') TO ('2025-01-01')",
        "CREATE TABLE measures_2025 PARTITION OF measures FOR VALUES FROM ('2025-01-01') TO ('2026-01-01')",
        "INSERT INTO measures VALUES (1, '2024-06-01', 10), (2, '2025-06-01', 20)",
    )
    catalog = src.discover()
    assert [e.tap_stream_id for e in catalog] == [src.stream("measures")]
    assert catalog.streams[0].key_properties == ["id", "at"]
    run = ok(src.sync(src.catalog("measures", catalog=catalog)))
    assert records(run) == [{"id": 1, "at": "2024-06-01", "v": 10}, {"id": 2, "at": "2025-06-01", "v": 20}]


# -- FULL_TABLE --------------------------------------------------------------------------------------------


def test_full_table_values_exact_for_every_type(src):
    create_every_type(src)
    run = ok(src.sync(src.catalog("every_type")))
    rows = records(run)
    assert rows[0] == EVERY_TYPE_VALUES
    assert rows[1] == {k: ("n" if k == "c_not_null" else None) for k in EVERY_TYPE_VALUES} | {"id": 2}
    assert base64.b64decode(rows[0]["c_bytea"]) == BYTES
    # Numbers keep their digits on the wire, not only after parsing.
    raw = next(line for line in run.stdout.splitlines() if b'"id":1,' in line)
    assert b'"c_numeric":"1234567890123456789012345678901234567890.0123456789"' in raw
    assert b'"c_bigint":9223372036854775807' in raw
    assert b"2.50" in raw  # json text is passed through as the server holds it


def test_timestamptz_carries_the_session_offset(src, server):
    """A server whose TimeZone is not UTC: values carry its offset and name the same instant."""
    role = f"tz_{uuid.uuid4().hex[:8]}"
    src.sql(
        f"CREATE ROLE {role} LOGIN SUPERUSER",
        f"ALTER ROLE {role} SET timezone TO 'Asia/Kathmandu'",
        "CREATE TABLE events (id int PRIMARY KEY, at timestamptz)",
        "INSERT INTO events VALUES (1, '2024-06-30 23:59:59.999999+00'), (2, '1999-01-01 00:00:00-08')",
    )
    try:
        run = ok(src.sync(src.catalog("events"), user=role))
        values = [r["at"] for r in records(run)]
        assert values == ["2024-07-01T05:44:59.999999+05:45", "1999-01-01T13:45:00+05:45"]
        instants = [dt.datetime.fromisoformat(v) for v in values]
        assert instants == [
            dt.datetime(2024, 6, 30, 23, 59, 59, 999999, tzinfo=dt.UTC),
            dt.datetime(1999, 1, 1, 8, 0, tzinfo=dt.UTC),
        ]
    finally:
        src.sql(f"DROP ROLE {role}")


@pytest.mark.certifies("activate_version", connector="tap-postgres")
def test_full_table_first_sync_activates_version_at_start_and_end(src):
    src.sql(
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, 'v' || g FROM generate_series(1, 5) g",
    )
    stream = src.stream("items")
    catalog = src.catalog("items")
    first = ok(src.sync(catalog))
    kinds = [m["type"] for m in first.messages]
    assert kinds == ["SCHEMA", "ACTIVATE_VERSION", *["RECORD"] * 5, "ACTIVATE_VERSION", "STATE"]
    version = first.of_type("ACTIVATE_VERSION")[0]["version"]
    assert first.of_type("ACTIVATE_VERSION")[1]["version"] == version
    assert {m["version"] for m in first.of_type("RECORD")} == {version}
    assert bookmark(first, stream) == {"version": version}  # complete: no last_pk

    # A later full sync: a new version, announced only at the end (the old rows stay visible meanwhile).
    second = ok(src.sync(catalog, first.states[-1]))
    kinds = [m["type"] for m in second.messages]
    assert kinds == ["SCHEMA", *["RECORD"] * 5, "ACTIVATE_VERSION", "STATE"]
    new_version = second.of_type("ACTIVATE_VERSION")[0]["version"]
    assert new_version > version
    assert {m["version"] for m in second.of_type("RECORD")} == {new_version}
    assert bookmark(second, stream) == {"version": new_version}


def test_full_table_states_carry_last_pk_while_reading(src):
    src.sql(
        "CREATE TABLE items (id int PRIMARY KEY, v text)",
        "INSERT INTO items SELECT g, 'v' FROM generate_series(1, 10) g",
    )
    stream = src.stream("items")
    run = ok(src.sync(src.catalog("items"), state_every_rows=3))
    marks = [s["bookmarks"][stream] for s in run.states]
    version = marks[0]["version"]
    assert marks == [
        {"version": version, "last_pk": [3]},
        {"version": version, "last_pk": [6]},
        {"version": version, "last_pk": [9]},
        {"version": version},
    ]
    # Every STATE comes after the records it covers.
    seen = 0
    for message in run.messages:
        if message["type"] == "RECORD":
            seen = message["record"]["id"]
        elif message["type"] == "STATE" and "last_pk" in message["value"]["bookmarks"][stream]:
            assert message["value"]["bookmarks"][stream]["last_pk"] == [seen]


def test_full_table_resumes_after_the_committed_last_pk(src):
    src.sql(
        "CREATE TABLE items (k1 int, k2 text, v text, PRIMARY KEY (k1, k2))",
        "INSERT INTO items SELECT g / 3, 'k' || (g % 3), 'v' || g FROM generate_series(0, 29) g",
    )
    stream = src.stream("items")
    catalog = src.catalog("items")
    first = ok(src.sync(catalog, state_every_rows=4))
    all_keys = [(r["k1"], r["k2"]) for r in records(first)]
    assert len(all_keys) == 30
    # The target committed up to the third checkpoint; then the pipeline died.
    committed = first.states[2]
    mark = committed["bookmarks"][stream]
    assert mark["last_pk"] == list(all_keys[11])
    version = mark["version"]

    second = ok(src.sync(catalog, committed, state_every_rows=4))
    kinds = [m["type"] for m in second.messages]
    assert kinds[:2] == ["SCHEMA", "RECORD"]  # no ACTIVATE_VERSION before the rows of a resumed version
    resumed = [(r["k1"], r["k2"]) for r in records(second)]
    assert resumed == all_keys[12:]
    assert sorted(set(all_keys[:12]) | set(resumed)) == sorted(all_keys)
    assert {m["version"] for m in second.of_type("RECORD")} == {version}
    assert second.of_type("ACTIVATE_VERSION") == [{"type": "ACTIVATE_VERSION", "stream": stream, "version": version}]
    assert bookmark(second, stream) == {"version": version}


def test_table_without_primary_key_is_read_whole_every_time(src):
    src.sql("CREATE TABLE log (at int, msg text)", "INSERT INTO log SELECT g, 'm' || g FROM generate_series(1, 7) g")
    stream = src.stream("log")
    catalog = src.catalog("log")
    first = ok(src.sync(catalog, state_every_rows=2))
    assert len(records(first)) == 7
    assert all("last_pk" not in s["bookmarks"][stream] for s in first.states)
    # Even a state that claims a position is not a resume point without a key.
    version = bookmark(first, stream)["version"]
    second = ok(src.sync(catalog, {"bookmarks": {stream: {"version": version, "last_pk": [4]}}}))
    assert sorted(r["at"] for r in records(second)) == list(range(1, 8))
    assert {m["version"] for m in second.of_type("RECORD")} != {version}


def test_a_column_named_r_is_read(src):
    src.sql("CREATE TABLE points (id int PRIMARY KEY, r int, x int)", "INSERT INTO points VALUES (1, 2, 3)")
    run = ok(src.sync(src.catalog("points")))
    assert records(run) == [{"id": 1, "r": 2, "x": 3}]


def test_json_with_line_breaks_stays_one_message_per_line(src):
    src.sql("CREATE TABLE docs (id int PRIMARY KEY, body json)")
    src.conn.execute("INSERT INTO docs VALUES (1, %s)", ('{\n  "a": 1,\r\n  "b": "x\\ny"\n}',))
    run = src.sync(src.catalog("docs"))
    assert all(line.startswith(b"{") for line in run.stdout.splitlines()), run.stdout
    ok(run)
    assert records(run) == [{"id": 1, "body": {"a": 1, "b": "x\ny"}}]


def test_empty_arrays_stay_empty(src):
    src.sql(
        "CREATE TABLE arr (id int PRIMARY KEY, i int[], t text[], n numeric[])",
        "INSERT INTO arr VALUES (1, '{}', '{}', '{}'), (2, NULL, NULL, NULL)",
    )
    run = ok(src.sync(src.catalog("arr")))
    assert records(run) == [
        {"id": 1, "i": [], "t": [], "n": []},
        {"id": 2, "i": None, "t": None, "n": None},
    ]


def test_full_table_of_a_view(src):
    src.sql(
        "CREATE TABLE base (id int PRIMARY KEY, v int)",
        "INSERT INTO base SELECT g, g * 10 FROM generate_series(1, 4) g",
        "CREATE VIEW big_ones AS SELECT id, v FROM base WHERE v > 15",
    )
    run = ok(src.sync(src.catalog("big_ones")))
    assert sorted(r["id"] for r in records(run)) == [2, 3, 4]
    assert run.of_type("SCHEMA")[0]["key_properties"] == []


# -- INCREMENTAL -----------------------------------------------------------------------------------------


def create_events(src: Source) -> None:
    src.sql(
        "CREATE TABLE events (id int PRIMARY KEY, updated_at timestamptz, v text)",
        "INSERT INTO events VALUES "
        "(1, '2024-01-01 00:00+00', 'a'), (2, '2024-01-02 00:00+00', 'b'), "
        "(3, '2024-01-03 00:00+00', 'c'), (4, '2024-01-03 00:00+00', 'd'), (5, '2024-01-03 00:00+00', 'e')",
    )


def test_incremental_first_run_reads_all_in_key_order_and_bookmarks_the_last_value(src):
    create_events(src)
    src.sql("UPDATE events SET updated_at = '2023-12-31 00:00+00' WHERE id = 5")
    stream = src.stream("events")
    run = ok(src.sync(src.catalog("events", "INCREMENTAL", "updated_at"), state_every_rows=2))
    assert [r["id"] for r in records(run)] == [5, 1, 2, 3, 4]
    assert run.of_type("SCHEMA")[0]["bookmark_properties"] == ["updated_at"]
    assert not run.of_type("ACTIVATE_VERSION")
    assert all("version" not in m for m in run.of_type("RECORD"))
    assert [s["bookmarks"][stream]["replication_key_value"] for s in run.states] == [
        "2024-01-01T00:00:00+00:00",
        "2024-01-03T00:00:00+00:00",
        "2024-01-03T00:00:00+00:00",
    ]
    assert bookmark(run, stream) == {
        "replication_key": "updated_at",
        "replication_key_value": "2024-01-03T00:00:00+00:00",
    }


def test_incremental_resends_ties_and_picks_up_late_rows_with_the_bookmark_value(src):
    create_events(src)
    stream = src.stream("events")
    catalog = src.catalog("events", "INCREMENTAL", "updated_at")
    first = ok(src.sync(catalog))
    # Three rows share the last value: all are sent again (at-least-once), none is lost.
    src.sql(
        "INSERT INTO events VALUES (6, '2024-01-03 00:00+00', 'late tie'), (7, '2024-01-04 00:00+00', 'new')",
        "UPDATE events SET v = 'b2', updated_at = '2024-01-05 00:00+00' WHERE id = 2",
        "INSERT INTO events VALUES (8, '2023-06-01 00:00+00', 'backdated: before the bookmark, not read')",
    )
    second = ok(src.sync(catalog, first.states[-1]))
    assert [r["id"] for r in records(second)] == [3, 4, 5, 6, 7, 2]
    assert records(second)[-1]["v"] == "b2"
    assert bookmark(second, stream)["replication_key_value"] == "2024-01-05T00:00:00+00:00"


def test_incremental_start_date_is_the_first_lower_bound(src):
    create_events(src)
    catalog = src.catalog("events", "INCREMENTAL", "updated_at")
    run = ok(src.sync(catalog, start_date="2024-01-02T00:00:00+00:00"))
    assert [r["id"] for r in records(run)] == [2, 3, 4, 5]
    # A bookmark wins over start_date.
    state = {
        "bookmarks": {
            src.stream("events"): {
                "replication_key": "updated_at",
                "replication_key_value": "2024-01-03T00:00:00+00:00",
            }
        }
    }
    later = ok(src.sync(catalog, state, start_date="2020-01-01"))
    assert [r["id"] for r in records(later)] == [3, 4, 5]


def test_incremental_null_replication_key_does_not_erase_the_bookmark(src):
    create_events(src)
    src.sql("INSERT INTO events VALUES (9, NULL, 'no timestamp')")
    stream = src.stream("events")
    run = ok(src.sync(src.catalog("events", "INCREMENTAL", "updated_at")))
    assert len(records(run)) == 6
    assert bookmark(run, stream).get("replication_key_value") == "2024-01-03T00:00:00+00:00"


def test_incremental_on_a_missing_column_is_a_config_error(src):
    create_events(src)
    run = src.sync(src.catalog("events", "INCREMENTAL", "no_such_column"))
    line = error_line(run, "config", EXIT_CONFIG)
    assert "replication key 'no_such_column' is not a column" in line


# -- XMIN ------------------------------------------------------------------------------------------------


def xmin_of(src: Source, table: str, key: int) -> int:
    return int(src.scalar(f"SELECT xmin::text::bigint FROM {q(table)} WHERE id = %s", (key,)))


def test_xmin_first_run_reads_all_and_bookmarks_the_highest_xmin(src):
    src.sql("CREATE TABLE acct (id int PRIMARY KEY, balance numeric)")
    for i in range(1, 5):  # one transaction each
        src.conn.execute("INSERT INTO acct VALUES (%s, %s)", (i, i * 100))
    stream = src.stream("acct")
    run = ok(src.sync(src.catalog("acct", "XMIN")))
    assert [r["id"] for r in records(run)] == [1, 2, 3, 4]  # in xmin order
    assert records(run)[0] == {"id": 1, "balance": "100"}
    assert bookmark(run, stream) == {"xmin": xmin_of(src, "acct", 4)}
    assert not run.of_type("ACTIVATE_VERSION")


@pytest.mark.certifies("replication_method:XMIN", connector="tap-postgres")
def test_xmin_second_run_reads_changed_rows_and_the_boundary_transaction(src):
    src.sql("CREATE TABLE acct (id int PRIMARY KEY, balance numeric)")
    for i in range(1, 6):
        src.conn.execute("INSERT INTO acct VALUES (%s, %s)", (i, i * 100))
    stream = src.stream("acct")
    catalog = src.catalog("acct", "XMIN")
    first = ok(src.sync(catalog))
    src.sql("UPDATE acct SET balance = 0 WHERE id = 2", "INSERT INTO acct VALUES (6, 600)")
    second = ok(src.sync(catalog, first.states[-1]))
    # Row 5 wrote the bookmarked xmin: the boundary transaction is read again (>=).
    assert [r["id"] for r in records(second)] == [5, 2, 6]
    assert records(second)[1] == {"id": 2, "balance": "0"}
    assert bookmark(second, stream) == {"xmin": xmin_of(src, "acct", 6)}


def test_xmin_wraparound_rereads_the_whole_table_with_a_warning(src):
    src.sql("CREATE TABLE acct (id int PRIMARY KEY, balance numeric)", "INSERT INTO acct VALUES (1, 1), (2, 2)")
    stream = src.stream("acct")
    # A bookmark from "the future": transaction ids wrapped around since it was taken.
    state = {"bookmarks": {stream: {"xmin": 4_000_000_000}}}
    run = ok(src.sync(src.catalog("acct", "XMIN"), state))
    assert [r["id"] for r in records(run)] == [1, 2]
    assert "transaction ids wrapped around since the last run; re-reading the whole table" in run.stderr
    assert [line for line in run.stderr.splitlines() if "WARNING" in line and stream in line]
    assert bookmark(run, stream) == {"xmin": xmin_of(src, "acct", 1)}


def test_xmin_transaction_open_during_the_run_is_not_lost(src):
    src.sql("CREATE TABLE acct (id int PRIMARY KEY, balance numeric)", "INSERT INTO acct VALUES (1, 1), (2, 2)")
    catalog = src.catalog("acct", "XMIN")
    slow = src.connect()
    try:
        slow.execute("BEGIN")
        slow.execute("UPDATE acct SET balance = 111 WHERE id = 1")  # takes an xid first...
        src.sql("UPDATE acct SET balance = 222 WHERE id = 2")  # ...a later xid commits first
        first = ok(src.sync(catalog))
        assert {r["id"]: r["balance"] for r in records(first)} == {1: "1", 2: "222"}
        slow.execute("COMMIT")
    finally:
        slow.close()
    second = ok(src.sync(catalog, first.states[-1]))
    assert {r["id"]: r["balance"] for r in records(second)}.get(1) == "111"


# -- errors ----------------------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def password_server(postgres_server) -> Iterator[Server]:
    """A second, tiny server: scram-sha-256 passwords and wal_level=replica."""
    bin_dir = postgres_server.bin_dir
    root = Path(tempfile.mkdtemp(prefix="dpone-pgpw-"))
    password = f"pw-{uuid.uuid4().hex[:12]}"
    (root / "pw").write_text(password + "\n")
    as_postgres: list[str] = []
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(root / "pw", "postgres")
        as_postgres = ["runuser", "-u", "postgres", "--"]
    data = root / "data"
    subprocess.run(
        [*as_postgres, str(bin_dir / "initdb"), "-D", str(data), "-A", "scram-sha-256", f"--pwfile={root / 'pw'}"]
        + ["-U", "postgres", "--no-sync", "-E", "UTF8", "--locale=C"],
        check=True,
        capture_output=True,
    )
    port = _free_port()
    options = f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={root} -c wal_level=replica"
    subprocess.run(
        [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-o", options, "-l", str(root / "log"), "-w", "start"],
        check=True,
        capture_output=True,
    )
    try:
        yield Server("127.0.0.1", port, "postgres", password)
    finally:
        subprocess.run(
            [*as_postgres, str(bin_dir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False,
            capture_output=True,
        )
        shutil.rmtree(root, ignore_errors=True)


def test_wrong_password_is_one_config_error_line_without_the_password(run_tap, password_server):
    secret = "Wr0ng-Pa55-" + uuid.uuid4().hex[:6]
    config = {"host": "127.0.0.1", "port": password_server.port, "user": "postgres", "password": secret}
    run = run_tap(PostgresTap, {**config, "database": "postgres"}, "--discover")
    line = error_line(run, "config", EXIT_CONFIG)
    assert "password authentication failed" in line
    assert secret not in run.stderr and secret.encode() not in run.stdout

    dsn = f"postgresql://postgres:{secret}@127.0.0.1:{password_server.port}/postgres"
    run = run_tap(PostgresTap, {"dsn": dsn}, "--discover")
    assert "password authentication failed" in error_line(run, "config", EXIT_CONFIG)
    assert secret not in run.stderr

    good = run_tap(PostgresTap, {**config, "password": password_server.password, "database": "postgres"}, "--discover")
    assert good.rc == 0, good.stderr


def test_unreachable_port_is_a_transient_error(run_tap):
    config = {"host": "127.0.0.1", "port": _free_port(), "user": "postgres", "password": "s3cret-unused"}
    run = run_tap(PostgresTap, {**config, "database": "postgres", "connect_timeout": 3}, "--discover")
    line = error_line(run, "transient", EXIT_TRANSIENT)
    assert "connecting to PostgreSQL" in line and "refused" in line
    assert "s3cret-unused" not in run.stderr


def test_log_based_on_a_server_without_logical_wal_names_the_setting(run_tap, tmp_path, password_server):
    admin = psycopg.connect(password_server.dsn("postgres"), autocommit=True)
    try:
        admin.execute("DROP TABLE IF EXISTS t")
        admin.execute("CREATE TABLE t (id int PRIMARY KEY)")
    finally:
        admin.close()
    config = {"host": "127.0.0.1", "port": password_server.port, "user": "postgres"}
    config |= {"password": password_server.password, "database": "postgres", "include": ["public.t"]}
    discovered = run_tap(PostgresTap, config, "--discover")
    catalog = Catalog.from_dict(orjson.loads(discovered.stdout))
    catalog.streams[0].stream_metadata().update({"selected": True, "replication-method": "LOG_BASED"})
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(catalog.to_dict()))
    run = run_tap(PostgresTap, config, "--catalog", str(path))
    line = error_line(run, "config", EXIT_CONFIG)
    assert "LOG_BASED needs wal_level=logical (it is 'replica')" in line
    assert password_server.password not in run.stderr


def test_missing_select_privilege_is_a_clear_config_error(src):
    role = f"nopriv_{uuid.uuid4().hex[:8]}"
    src.sql(
        "CREATE TABLE secret (id int PRIMARY KEY, v text)",
        "INSERT INTO secret VALUES (1, 'x')",
        f"CREATE ROLE {role} LOGIN",
        f"GRANT USAGE ON SCHEMA {q(src.schema)} TO {role}",
    )
    try:
        catalog = src.catalog("secret")
        run = src.sync(catalog, user=role)
        line = error_line(run, "config", EXIT_CONFIG)
        assert "permission denied for table secret" in line
        assert "GRANT SELECT" in line or "privilege" in line.lower()
    finally:
        src.sql(f"DROP OWNED BY {role}", f"DROP ROLE {role}")


def test_selected_column_dropped_since_discovery_is_a_clear_error(src):
    src.sql("CREATE TABLE people (id int PRIMARY KEY, nickname text)", "INSERT INTO people VALUES (1, 'al')")
    catalog = src.catalog("people")  # saved by an earlier discovery
    src.sql("ALTER TABLE people DROP COLUMN nickname")
    run = src.sync(catalog)
    line = error_line(run, "config", EXIT_CONFIG)
    assert "nickname" in line


def test_stream_dropped_since_discovery_is_a_clear_error(src):
    src.sql("CREATE TABLE gone (id int PRIMARY KEY)")
    catalog = src.catalog("gone")
    src.sql("DROP TABLE gone")
    line = error_line(src.sync(catalog), "config", EXIT_CONFIG)
    assert f"catalog selects stream '{src.stream('gone')}', which the source does not have" in line
    assert "re-run discovery" in line


# -- the runner, and the doc's settings table ----------------------------------------------------------


def test_dpone_run_with_meltano_yml_select_and_metadata(src, tmp_path):
    """The doc's `dpone run` example: select patterns and metadata overrides from meltano.yml."""
    src.sql(
        "CREATE TABLE orders (id int PRIMARY KEY, customer text, card_number text, updated_at timestamptz)",
        "INSERT INTO orders VALUES (1, 'ana', '4111', '2024-01-01 00:00+00'), "
        "(2, 'ben', '5500', '2024-01-02 00:00+00')",
        "CREATE TABLE ignored (id int PRIMARY KEY)",
    )
    dest = f"{src.schema}_dst"
    orders = src.stream("orders")
    project = tmp_path / "project"
    project.mkdir()
    tap_config = json.dumps(src.config())
    target_config = json.dumps(
        {
            **{k: v for k, v in src.config().items() if k != "include"},
            "default_target_schema": dest,
            "table_name_map": {orders: "orders"},
        }
    )
    (project / "meltano.yml").write_text(
        f"""\
version: 1
default_environment: dev
environments:
- name: dev
plugins:
  extractors:
  - name: tap-postgres
    namespace: tap_postgres
    executable: tap-postgres
    capabilities: [catalog, discover, state, about, batch, activate-version]
    config: {tap_config}
    select:
    - "{orders}.*"
    - "!{orders}.card_number"
    metadata:
      "{orders}":
        replication-method: INCREMENTAL
        replication-key: updated_at
  loaders:
  - name: target-postgres
    namespace: target_postgres
    executable: target-postgres
    config: {target_config}
"""
    )
    env = {**os.environ, "DPONE_LOG_LEVEL": "WARNING", "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}"}
    try:
        proc = subprocess.run(
            [DPONE, "run", "tap-postgres", "target-postgres", "--project", str(project), "--no-progress"],
            capture_output=True,
            text=True,
            env=env,
            timeout=120,
            check=False,
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        table = f"{q(dest)}.orders"
        assert src.rows(f"SELECT id, customer FROM {table} ORDER BY id") == [(1, "ana"), (2, "ben")]
        columns = {
            r[0]
            for r in src.rows("SELECT column_name FROM information_schema.columns WHERE table_schema = %s", (dest,))
        }
        assert "card_number" not in columns
        assert {
            r[0] for r in src.rows("SELECT table_name FROM information_schema.tables WHERE table_schema = %s", (dest,))
        } == {"orders"}
        saved = subprocess.run(
            [DPONE, "state", "get", "tap-postgres-to-target-postgres", "--project", str(project)],
            capture_output=True,
            text=True,
            env=env,
            check=True,
        )
        state = json.loads(saved.stdout)
        assert state["bookmarks"][orders]["replication_key_value"] == "2024-01-02T00:00:00+00:00"
    finally:
        src.sql(f"DROP SCHEMA IF EXISTS {q(dest)} CASCADE")


def test_doc_settings_table_lists_every_setting():
    text = DOC.read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    names = [s.name for s in PostgresTap.all_settings()]
    assert [n for n in table if n in names] == names, "docs/connectors/tap-postgres.md settings table is out of date"
