"""tap-postgres | target-postgres: every supported type, extreme values and NULLs come out of the
destination exactly as they went into the source.

The source is a table holding every type the tap maps; it is piped into another database (real
executables, a shell-like pipe) and, in BATCH mode, into another schema (in-process). Source and
destination are then compared with SQL `EXCEPT` both ways over every column, each side cast where
the target's column type differs from the source's (timestamp lands as timestamptz, bytea as base64
text, json and arrays as jsonb, real as double precision, money/enum/inet/interval as text or numeric).
"""

from __future__ import annotations

import gzip
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import Run
from tests.service.test_tap_postgres import (
    BYTES,
    Source,
    create_every_type,
    drop_database,
    make_database,
    ok,
    q,
)

pytestmark = pytest.mark.service

BIN = Path(sys.executable).parent
TAP = str(BIN / "tap-postgres")
TARGET = str(BIN / "target-postgres")

# Extremes, per column of every_type (see test_tap_postgres.EVERY_TYPE_DDL); id 1 is the ordinary row and
# id 2 is all NULLs.
EXTREME_ROWS: list[dict[str, Any]] = [
    {
        "id": 3,
        "c_smallint": "32767",
        "c_integer": "-2147483648",
        "c_bigint": "-9223372036854775808",
        "c_numeric_ps": "-99999999.9999",
        "c_numeric": "-9999999999999999999999999999999999999999.000000000000000000000000000001",
        "c_real": "3.4028235e38",
        "c_double": "1e-300",
        "c_boolean": "false",
        "c_text": 'quotes \' " back\\slash \\\\ tab\t nl\n cr\r \x1e\x1f \u00e9\u4e2d\U0001f600 {"json": 1} NULL',
        "c_varchar": "\u00f1" * 10,
        "c_char": "x",
        "c_timestamptz": "2024-06-30 23:59:59.999999-09:30",
        "c_timestamp": "0001-01-01 00:00:00",
        "c_date": "9999-12-31",
        "c_time": "24:00:00",
        "c_interval": "-1 days -00:00:01.000001",
        "c_json": "[]",
        "c_jsonb": '"just a string"',
        "c_int_array": "{}",
        "c_text_array": '{"",NULL,"NULL","a\\"b","back\\\\slash","x,y","{}"}',
        "c_numeric_array": "{-1.000001,0,12345678901234567890.5}",
        "c_uuid": "00000000-0000-0000-0000-000000000000",
        "c_bytea": b"",
        "c_inet": "::1/128",
        "c_cidr": "2001:db8::/32",
        "c_macaddr": "ff:ff:ff:ff:ff:ff",
        "c_enum": "sad",
        "c_domain_int": "2147483647",
        "c_domain_text": "",
        "c_domain_numeric": "-99999999.99",
        "c_money": "-1.5",
        "c_timetz": "23:59:59.999999-11:30",
        "c_not_null": "",
    },
    {
        "id": 4,
        "c_numeric": "0.00000000000000000000000000000000000000000000000001",
        "c_real": "-1.17549435e-38",
        "c_double": "-1.7976931348623157e308",
        "c_text": "",
        "c_timestamptz": "1970-01-01 00:00:00+14",
        "c_timestamp": "2000-02-29 12:00:00.000001",
        "c_date": "0001-01-01",
        "c_time": "00:00:00",
        "c_interval": "178000000 years",
        "c_json": '{"nested": {"deep": [1, {"k": null}]}, "n": 1e300, "f": 0.1, "s": "\\u0041"}',
        "c_jsonb": "[1, 2.0, -3.5e-10, true, null]",
        "c_int_array": "{-2147483648,2147483647}",
        "c_text_array": '{"\u4e2d\u6587","\U0001f600"}',
        "c_bytea": bytes(range(256)) * 4,
        "c_inet": "10.1.2.3",
        "c_not_null": "\\",
    },
    {
        "id": 5,
        "c_real": "NaN",
        "c_double": "Infinity",
        "c_numeric": "NaN",
        "c_timestamptz": "2038-01-19 03:14:08+05:45",
        "c_text": "'; DROP TABLE every_type; --",
        "c_not_null": "x",
    },
]

# (source expression, destination expression) per column, so both sides have one comparable type.
COMPARE: dict[str, tuple[str, str]] = {
    "id": ("id", "id"),
    "c_smallint": ("c_smallint::bigint", "c_smallint"),
    "c_integer": ("c_integer::bigint", "c_integer"),
    "c_bigint": ("c_bigint", "c_bigint"),
    "c_numeric_ps": ("c_numeric_ps::text", "c_numeric_ps::text"),  # text: the scale must match too
    "c_numeric": ("c_numeric::text", "c_numeric::text"),
    "c_real": ("c_real", "c_real::real"),  # lands as double precision
    "c_double": ("c_double", "c_double"),
    "c_boolean": ("c_boolean", "c_boolean"),
    "c_text": ("c_text", "c_text"),
    "c_varchar": ("c_varchar::text", "c_varchar::text"),
    "c_char": ("c_char::text", "c_char::text"),
    "c_timestamptz": ("c_timestamptz", "c_timestamptz"),
    # Lands as timestamptz; target-postgres reads a date-time without an offset as UTC.
    "c_timestamp": ("c_timestamp", "c_timestamp AT TIME ZONE 'UTC'"),
    "c_date": ("c_date", "c_date"),
    "c_time": ("c_time", "c_time"),
    "c_interval": ("c_interval::text", "c_interval"),
    "c_json": ("c_json::jsonb", "c_json"),
    "c_jsonb": ("c_jsonb", "c_jsonb"),
    "c_int_array": ("to_jsonb(c_int_array)", "c_int_array"),
    "c_text_array": ("to_jsonb(c_text_array)", "c_text_array"),
    "c_numeric_array": (
        "c_numeric_array::text",
        "(SELECT array_agg(e::numeric ORDER BY n) FROM jsonb_array_elements_text(c_numeric_array) "
        "WITH ORDINALITY AS u(e, n))::text",
    ),
    "c_uuid": ("c_uuid", "c_uuid"),
    "c_bytea": ("c_bytea", "decode(c_bytea, 'base64')"),
    "c_inet": ("c_inet::text", "c_inet"),
    "c_cidr": ("c_cidr::text", "c_cidr"),
    "c_macaddr": ("c_macaddr::text", "c_macaddr"),
    "c_enum": ("c_enum::text", "c_enum"),
    "c_domain_int": ("c_domain_int::bigint", "c_domain_int"),
    "c_domain_text": ("c_domain_text::text", "c_domain_text::text"),
    "c_domain_numeric": ("c_domain_numeric::numeric::text", "c_domain_numeric::text"),
    "c_money": ("c_money::numeric", "c_money"),
    "c_timetz": ("c_timetz::text", "c_timetz"),
    "c_not_null": ("c_not_null", "c_not_null"),
}
# What the destination columns are (target-postgres's type map): the casts above rely on it.
DESTINATION_TYPES = {
    "c_smallint": "bigint",
    "c_numeric_ps": "numeric(12,4)",
    "c_numeric": "numeric",
    "c_real": "double precision",
    "c_varchar": "character varying(10)",
    "c_char": "character varying(3)",
    "c_timestamp": "timestamp with time zone",
    "c_interval": "text",
    "c_json": "jsonb",
    "c_int_array": "jsonb",
    "c_numeric_array": "jsonb",
    "c_uuid": "uuid",
    "c_bytea": "text",
    "c_enum": "text",
    "c_domain_numeric": "numeric(10,2)",
    "c_money": "numeric",
    "c_timetz": "text",
}


def fill_source(src: Source) -> None:
    create_every_type(src)
    for row in EXTREME_ROWS:
        columns = ", ".join(q(c) for c in row)
        src.conn.execute(
            f"INSERT INTO every_type ({columns}) VALUES ({', '.join(['%s'] * len(row))})",  # type: ignore[arg-type]
            list(row.values()),
        )
    assert src.scalar("SELECT count(*) FROM every_type") == 2 + len(EXTREME_ROWS)
    assert src.scalar("SELECT c_bytea FROM every_type WHERE id = 1") == BYTES


def compare(source: psycopg.Connection[Any], src_table: str, dest: psycopg.Connection[Any], dst_table: str) -> None:
    """Every row and column equal, checked by the database: EXCEPT both ways (the destination copied in)."""
    dst_cols = {
        r[0]: r[1]
        for r in dest.execute(
            "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
            "WHERE a.attrelid = %s::regclass AND a.attnum > 0 AND NOT a.attisdropped",
            (dst_table,),
        ).fetchall()
    }
    for column, type_ in DESTINATION_TYPES.items():
        assert dst_cols[column] == type_, f"{column}: {dst_cols[column]}"
    if source.info.dbname != dest.info.dbname:
        # Bring the destination rows next to the source as jsonb text (never parsed in Python).
        rows = dest.execute(f"SELECT to_jsonb(d)::text FROM {dst_table} AS d").fetchall()
        defs = ", ".join(f"{q(c)} {t}" for c, t in dst_cols.items())
        source.execute(f"CREATE TEMP TABLE dest_copy ({defs})")
        source.execute(
            "INSERT INTO dest_copy SELECT * FROM jsonb_populate_recordset(NULL::dest_copy, %s::jsonb)",
            ("[" + ",".join(r[0] for r in rows) + "]",),
        )
        dst_table = "dest_copy"
    src_sql = ", ".join(f"{s} AS {q(c)}" for c, (s, _) in COMPARE.items())
    dst_sql = ", ".join(f"{d} AS {q(c)}" for c, (_, d) in COMPARE.items())
    only_src = source.execute(
        f"SELECT count(*) FROM (SELECT {src_sql} FROM {src_table} EXCEPT SELECT {dst_sql} FROM {dst_table}) AS x"
    ).fetchone()
    only_dst = source.execute(
        f"SELECT count(*) FROM (SELECT {dst_sql} FROM {dst_table} EXCEPT SELECT {src_sql} FROM {src_table}) AS x"
    ).fetchone()
    if only_src != (0,) or only_dst != (0,):
        differing = []
        for column, (s, d) in COMPARE.items():
            diff = source.execute(
                f"SELECT s.id, ({s.replace(column, 's.' + column)})::text, ({d.replace(column, 'd.' + column)})::text "
                f"FROM {src_table} s JOIN {dst_table} d USING (id) "
                f"WHERE ({s.replace(column, 's.' + column)}) IS DISTINCT FROM ({d.replace(column, 'd.' + column)})"
            ).fetchall()
            differing += [(column, *row) for row in diff]
        pytest.fail(f"source and destination differ: {differing or (only_src, only_dst)}")
    count = source.execute(f"SELECT count(*) FROM {dst_table}").fetchone()
    assert count is not None and count[0] == 2 + len(EXTREME_ROWS)


# -- fixtures -----------------------------------------------------------------------------------------------


@pytest.fixture
def dest_database(server) -> Iterator[str]:
    name = make_database(server, "round_trip_dest")
    try:
        yield name
    finally:
        drop_database(server, name)


def target_config(src: Source, database: str, schema: str, table: str, **extra: Any) -> dict[str, Any]:
    config = {k: v for k, v in src.config().items() if k != "include"}
    return {
        **config,
        "database": database,
        "default_target_schema": schema,
        "table_name_map": {src.stream(table): table},
        **extra,
    }


# -- round trips ------------------------------------------------------------------------------------------


@pytest.mark.certifies("types", connector=("tap-postgres", "target-postgres"))
def test_round_trip_every_type_through_a_pipe_into_another_database(src, server, dest_database):
    fill_source(src)
    catalog = src.file("catalog", src.catalog("every_type").to_dict())
    tap_config = src.file("tap", src.config(state_every_rows=2))
    target = src.file("target", target_config(src, dest_database, "copied", "every_type", batch_size_rows=3))
    tap = subprocess.Popen([TAP, "--config", tap_config, "--catalog", catalog], stdout=subprocess.PIPE)
    assert tap.stdout is not None
    loaded = subprocess.run([TARGET, "--config", target], stdin=tap.stdout, capture_output=True, check=False)
    tap.stdout.close()
    assert tap.wait(timeout=60) == 0
    assert loaded.returncode == 0, loaded.stderr.decode()
    echoed = [orjson.loads(line) for line in loaded.stdout.splitlines()]
    assert echoed and all("bookmarks" in m for m in echoed)
    assert "last_pk" not in echoed[-1]["bookmarks"][src.stream("every_type")]

    with psycopg.connect(server.dsn(dest_database), autocommit=True) as dest:
        compare(src.conn, "every_type", dest, "copied.every_type")
        # ACTIVATE_VERSION: every row carries the version the tap announced, none is marked deleted.
        versions = dest.execute(
            "SELECT count(DISTINCT _sdc_table_version), count(*) FILTER (WHERE _sdc_deleted_at IS NOT NULL) "
            "FROM copied.every_type"
        ).fetchone()
        assert versions == (1, 0)


@pytest.mark.certifies("batch", connector=("tap-postgres", "target-postgres"))
def test_round_trip_every_type_in_batch_mode(src, tmp_path, run_target):
    fill_source(src)
    batches = tmp_path / "batches"
    config = {
        "state_every_rows": 3,
        "batch_config": {
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "storage": {"root": batches.as_uri(), "prefix": "pg-"},
            "batch_size": 2,
        },
    }
    tapped = ok(src.sync(src.catalog("every_type"), **config))
    assert not tapped.of_type("RECORD")
    manifests = [uri for m in tapped.of_type("BATCH") for uri in m["manifest"]]
    assert len(manifests) >= 3 and all(uri.startswith("file://") for uri in manifests)
    assert tapped.of_type("BATCH")[0]["encoding"] == {"format": "jsonl", "compression": "gzip"}
    in_files = [
        orjson.loads(line)
        for path in sorted(batches.rglob("*.jsonl.gz"))
        for line in gzip.decompress(path.read_bytes()).splitlines()
    ]
    assert sorted(r["id"] for r in in_files) == [1, 2, 3, 4, 5]

    dest_schema = f"{src.schema}_batch"
    try:
        loaded = run_target(PostgresTarget, target_config(src, src.database, dest_schema, "every_type"), tapped.stdout)
        assert loaded.rc == 0, loaded.stderr
        assert loaded.states[-1] == tapped.states[-1]
        compare(src.conn, "every_type", src.conn, f"{q(dest_schema)}.every_type")
    finally:
        src.sql(f"DROP SCHEMA IF EXISTS {q(dest_schema)} CASCADE")


def test_round_trip_is_idempotent_when_the_same_input_is_loaded_twice(src, run_target):
    fill_source(src)
    tapped = ok(src.sync(src.catalog("every_type")))
    dest_schema = f"{src.schema}_twice"
    config = target_config(src, src.database, dest_schema, "every_type")
    try:
        assert ok_target(run_target(PostgresTarget, config, tapped.stdout))
        assert ok_target(run_target(PostgresTarget, config, tapped.stdout))
        compare(src.conn, "every_type", src.conn, f"{q(dest_schema)}.every_type")
    finally:
        src.sql(f"DROP SCHEMA IF EXISTS {q(dest_schema)} CASCADE")


def ok_target(run: Run) -> Run:
    assert run.rc == 0, run.stderr
    return run


def test_round_trip_empty_text_and_numeric_arrays(src, run_target):
    src.sql(
        "CREATE TABLE arrays (id int PRIMARY KEY, t text[], n numeric[], i int[])",
        "INSERT INTO arrays VALUES (1, '{}', '{}', '{}'), (2, NULL, NULL, NULL), (3, '{a}', '{1.0}', '{1}')",
    )
    tapped = ok(src.sync(src.catalog("arrays")))
    dest_schema = f"{src.schema}_arrays"
    try:
        ok_target(run_target(PostgresTarget, target_config(src, src.database, dest_schema, "arrays"), tapped.stdout))
        differing = src.rows(
            f"SELECT s.id FROM arrays s JOIN {q(dest_schema)}.arrays d USING (id) "
            "WHERE to_jsonb(s.t) IS DISTINCT FROM d.t OR to_jsonb(s.i) IS DISTINCT FROM d.i "
            "OR to_jsonb(s.n::text[]) IS DISTINCT FROM d.n"
        )
        assert differing == []
    finally:
        src.sql(f"DROP SCHEMA IF EXISTS {q(dest_schema)} CASCADE")


def test_round_trip_keeps_wide_numbers_inside_json(src, run_target):
    src.sql(
        "CREATE TABLE docs (id int PRIMARY KEY, j jsonb)",
        """INSERT INTO docs VALUES (1, '{"big": 123456789012345678901234567890, "exact": 0.1000000000000000055511}')""",
    )
    tapped = src.sync(src.catalog("docs"))
    assert tapped.rc == 0, tapped.stderr
    dest_schema = f"{src.schema}_json"
    try:
        ok_target(run_target(PostgresTarget, target_config(src, src.database, dest_schema, "docs"), tapped.stdout))
        [(source_json, dest_json)] = src.rows(
            f"SELECT s.j::text, d.j::text FROM docs s JOIN {q(dest_schema)}.docs d USING (id)"
        )
        assert dest_json == source_json
    finally:
        src.sql(f"DROP SCHEMA IF EXISTS {q(dest_schema)} CASCADE")


def test_batch_mode_full_table_rows_survive_the_closing_activate_version(src, tmp_path, run_target):
    src.sql("CREATE TABLE items (id int PRIMARY KEY, v text)", "INSERT INTO items VALUES (1, 'a'), (2, 'b')")
    batch = {"encoding": {"format": "jsonl", "compression": "gzip"}, "storage": {"root": str(tmp_path / "b")}}
    tapped = ok(src.sync(src.catalog("items"), batch_config=batch))
    assert tapped.of_type("BATCH") and not tapped.of_type("RECORD")
    dest_schema = f"{src.schema}_bv"
    try:
        config = target_config(src, src.database, dest_schema, "items", hard_delete=True)
        ok_target(run_target(PostgresTarget, config, tapped.stdout))
        assert src.rows(f"SELECT id, v FROM {q(dest_schema)}.items ORDER BY id") == [(1, "a"), (2, "b")]
    finally:
        src.sql(f"DROP SCHEMA IF EXISTS {q(dest_schema)} CASCADE")
