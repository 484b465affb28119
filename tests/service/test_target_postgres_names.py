"""target-postgres and names longer than PostgreSQL's 63 bytes: two names sharing their first 63
bytes stay two columns (or tables), on the encoder and the decoded path, run after run; a table an
older version made under the plainly cut names still loads.
"""

from __future__ import annotations

from typing import Any

import pytest

from dpone.targets.postgres.ddl import pg_name, truncated
from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import lines, record, schema
from tests.service.test_target_postgres import Pg, ok

pytestmark = pytest.mark.service

SHARED = "a_property_name_that_goes_on_and_on_past_what_postgres_keeps_of_it"[:63]
COL_A = SHARED + "_first"
COL_B = SHARED + "_other"
TABLE_A = "a_stream_whose_table_name_is_longer_than_the_63_bytes_of_postgres_one"
TABLE_B = "a_stream_whose_table_name_is_longer_than_the_63_bytes_of_postgres_two"


def test_the_names_really_share_63_bytes() -> None:
    assert len(COL_A) == len(COL_B) == 69 and truncated(COL_A) == truncated(COL_B)
    assert len(TABLE_A) > 63 and truncated(TABLE_A) == truncated(TABLE_B)


def test_two_long_columns_sharing_63_bytes_keep_both_values_run_after_run(run_target: Any, pg: Pg, path: str) -> None:
    props = {"id": {"type": "integer"}, COL_A: {"type": ["string", "null"]}, COL_B: {"type": ["integer", "null"]}}
    config = pg.config(add_record_metadata=False)
    for i in (1, 2):
        data = lines(schema("wide", props), record("wide", {"id": i, COL_A: f"a{i}", COL_B: i * 10}))
        ok(run_target(PostgresTarget, config, data))
    a, b = pg_name(COL_A), pg_name(COL_B)
    assert pg.column_types("wide") == {"id": "bigint", a: "text", b: "bigint"}
    assert pg.rows(f'SELECT id, "{a}", "{b}" FROM wide ORDER BY id') == [(1, "a1", 10), (2, "a2", 20)]


def test_a_long_key_column_merges(run_target: Any, pg: Pg, path: str) -> None:
    props = {COL_A: {"type": "integer"}, COL_B: {"type": ["string", "null"]}}
    config = pg.config(add_record_metadata=False)
    rows = [record("k", {COL_A: 1, COL_B: "old"}), record("k", {COL_A: 1, COL_B: "new"})]
    for _ in range(2):
        ok(run_target(PostgresTarget, config, lines(schema("k", props, keys=[COL_A]), *rows)))
    assert pg.rows(f'SELECT "{pg_name(COL_A)}", "{pg_name(COL_B)}" FROM k') == [(1, "new")]


def test_two_streams_whose_table_names_share_63_bytes_load_two_tables(run_target: Any, pg: Pg, path: str) -> None:
    props = {"id": {"type": "integer"}, "v": {"type": ["string", "null"]}}
    for load_method in ("upsert", "overwrite"):
        data = lines(
            schema(TABLE_A, props),
            record(TABLE_A, {"id": 1, "v": "a"}),
            schema(TABLE_B, props),
            record(TABLE_B, {"id": 1, "v": "b"}),
        )
        ok(run_target(PostgresTarget, pg.config(load_method=load_method), data))
        assert pg.tables() == {pg_name(TABLE_A), pg_name(TABLE_B)}
        assert pg.rows(f'SELECT v FROM "{pg_name(TABLE_A)}"') == [("a",)]
        assert pg.rows(f'SELECT v FROM "{pg_name(TABLE_B)}"') == [("b",)]


def test_a_table_made_by_an_older_version_under_cut_names_still_loads(run_target: Any, pg: Pg, path: str) -> None:
    # What earlier versions made of TABLE_A with the column COL_A: both names cut at 63 bytes.
    legacy_table, legacy_column = truncated(TABLE_A), truncated(COL_A)
    pg.conn.execute(f'CREATE SCHEMA "{pg.schema}"')
    pg.conn.execute(f'CREATE TABLE "{legacy_table}" (id bigint PRIMARY KEY, "{legacy_column}" text)')
    pg.conn.execute(f"INSERT INTO \"{legacy_table}\" VALUES (1, 'before')")
    props = {"id": {"type": "integer"}, COL_A: {"type": ["string", "null"]}}
    config = pg.config(add_record_metadata=False)
    ok(run_target(PostgresTarget, config, lines(schema(TABLE_A, props), record(TABLE_A, {"id": 2, COL_A: "after"}))))
    assert pg.tables() == {legacy_table}
    assert pg.rows(f'SELECT id, "{legacy_column}" FROM "{legacy_table}" ORDER BY id') == [(1, "before"), (2, "after")]
    assert pg.column_types(legacy_table) == {"id": "bigint", legacy_column: "text"}
    # Another long name sharing the cut is not merged into that table, in this run or the next.
    for _ in range(2):
        data = lines(schema(TABLE_B, props), record(TABLE_B, {"id": 3, COL_A: "other"}))
        ok(run_target(PostgresTarget, config, data))
        assert pg.tables() == {legacy_table, pg_name(TABLE_B)}
        assert pg.scalar(f'SELECT count(*) FROM "{legacy_table}"') == 2
    ok(run_target(PostgresTarget, config, lines(schema(TABLE_A, props), record(TABLE_A, {"id": 4, COL_A: "again"}))))
    assert pg.scalar(f'SELECT count(*) FROM "{legacy_table}"') == 3
    # A full refresh keeps it under its name, still marked as TABLE_A's.
    ok(
        run_target(
            PostgresTarget,
            pg.config(add_record_metadata=False, load_method="overwrite"),
            lines(schema(TABLE_A, props), record(TABLE_A, {"id": 5, COL_A: "fresh"})),
        )
    )
    assert pg.rows(f'SELECT id, "{legacy_column}" FROM "{legacy_table}"') == [(5, "fresh")]
    ok(run_target(PostgresTarget, config, lines(schema(TABLE_B, props), record(TABLE_B, {"id": 6, COL_A: "b"}))))
    assert pg.tables() == {legacy_table, pg_name(TABLE_B)}
    assert pg.scalar(f'SELECT count(*) FROM "{legacy_table}"') == 1


def test_two_long_columns_meeting_an_older_versions_cut_column_are_not_merged(run_target: Any, pg: Pg) -> None:
    legacy_column = truncated(COL_A)
    pg.conn.execute(f'CREATE SCHEMA "{pg.schema}"')
    pg.conn.execute(f'CREATE TABLE wide (id bigint PRIMARY KEY, "{legacy_column}" text)')
    pg.conn.execute("INSERT INTO wide VALUES (1, 'merged by an older version')")
    props = {"id": {"type": "integer"}, COL_A: {"type": ["string", "null"]}, COL_B: {"type": ["string", "null"]}}
    data = lines(schema("wide", props), record("wide", {"id": 2, COL_A: "a", COL_B: "b"}))
    ok(run_target(PostgresTarget, pg.config(add_record_metadata=False), data))
    a, b = pg_name(COL_A), pg_name(COL_B)
    assert pg.rows(f'SELECT id, "{legacy_column}", "{a}", "{b}" FROM wide ORDER BY id') == [
        (1, "merged by an older version", None, None),
        (2, None, "a", "b"),
    ]
