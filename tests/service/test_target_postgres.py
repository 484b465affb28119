"""target-postgres's own cases against a real PostgreSQL: keys and indexes, the insert and merge
paths, the shadow swap, long names, metadata columns, types, NULs, column types after schema
evolution, exact numbers in BATCH files, and connection errors.

The scenarios every target shares (load methods, idempotent re-runs, versions, deletes, schema drift
by policy, BATCH, the singer-sdk inputs, bad input, state after commit, crashes) are the shared
suite's: tests/kit/target_suite.py, run by test_target_postgres_suite.py. Every test loads into a
schema of its own (`default_target_schema`), through the CLI in-process.
"""

from __future__ import annotations

import datetime as dt
import gzip
import io
import socket
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import psycopg
import pytest

from dpone.targets.framework.target_cli import run as run_target_cli
from dpone.targets.postgres import copy_rows
from dpone.targets.postgres.ddl import pg_name
from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import Run, lines, record, schema, state, write_config

pytestmark = pytest.mark.service

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


class Pg:
    """One test's schema on a server, and a connection to inspect it."""

    def __init__(self, dsn: str, base_config: dict[str, Any], schema_name: str) -> None:
        self.base_config = base_config
        self.schema = schema_name
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f'SET search_path TO "{schema_name}"')

    def config(self, **extra: Any) -> dict[str, Any]:
        return {**self.base_config, "default_target_schema": self.schema, **extra}

    def drop(self) -> None:
        self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()

    def rows(self, sql: str, params: Any = None) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql, params).fetchall()

    def scalar(self, sql: str, params: Any = None) -> Any:
        row = self.conn.execute(sql, params).fetchone()
        assert row is not None
        return row[0]

    def column_types(self, table: str) -> dict[str, str]:
        return dict(
            self.rows(
                "SELECT a.attname, format_type(a.atttypid, a.atttypmod) FROM pg_attribute a "
                "JOIN pg_class c ON c.oid = a.attrelid JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 AND NOT a.attisdropped",
                (self.schema, table),
            )
        )

    def tables(self) -> set[str]:
        return {r[0] for r in self.rows("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,))}


def people(*pairs: tuple[int, str | None], stream: str = "people", **extra: Any) -> list[dict[str, Any]]:
    return [record(stream, {"id": i, "name": n}, **extra) for i, n in pairs]


def ok(result: Run) -> Run:
    assert result.rc == 0, result.stderr
    return result


def error_line(result: Run, kind: str, rc: int) -> str:
    """The run failed with `rc` and exactly one error line, the last one, of this kind."""
    assert result.rc == rc, result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("target-postgres:")]
    assert len(ours) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == ours[0]
    assert ours[0].startswith(f"target-postgres: {kind} error: "), ours[0]
    return ours[0]


Hook = Callable[[io.BytesIO], None]


def run_hooked(tmp_path: Path, config: dict[str, Any], *parts: bytes | Hook) -> Run:
    """Run the CLI in-process; a callable part runs once every line before it has been handled."""
    out, err = io.BytesIO(), io.StringIO()

    def feed() -> Iterator[bytes]:
        for part in parts:
            if callable(part):
                part(out)
            else:
                yield from part.splitlines(keepends=True)

    argv = ["--config", write_config(tmp_path, config, "hooked-config.json")]
    rc = run_target_cli(PostgresTarget, argv, stdin=feed(), stdout=out, stderr=err)  # type: ignore[arg-type]
    messages = [orjson.loads(line) for line in out.getvalue().splitlines() if line.strip()]
    return Run(rc, out.getvalue(), err.getvalue(), messages)


# -- load methods -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("method", "index"), [("upsert", ["people_pkey"]), ("append-only", [])])
def test_the_key_is_a_primary_key_only_where_it_is_merged_on(run_target, pg, method, index):
    ok(run_target(PostgresTarget, pg.config(load_method=method), lines(schema("people", PROPS), *people((1, "a")))))
    assert [r[0] for r in pg.rows("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg.schema,))] == index


def _log_changes(pg: Pg) -> None:
    """Log every row change and every statement kind on `people` into `ops`."""
    s = f'"{pg.schema}"'
    pg.conn.execute(f"CREATE TABLE {s}.ops (n serial, level text, op text, id bigint)")
    pg.conn.execute(
        f"CREATE FUNCTION {s}.log_row() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO {s}.ops (level, op, id) VALUES ('row', TG_OP, COALESCE(NEW.id, OLD.id)); RETURN NULL; END $$"
    )
    pg.conn.execute(
        f"CREATE FUNCTION {s}.log_statement() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
        f"INSERT INTO {s}.ops (level, op) VALUES ('statement', TG_OP); RETURN NULL; END $$"
    )
    pg.conn.execute(
        f"CREATE TRIGGER log_row AFTER INSERT OR UPDATE OR DELETE ON {s}.people "
        f"FOR EACH ROW EXECUTE FUNCTION {s}.log_row()"
    )
    pg.conn.execute(
        f"CREATE TRIGGER log_statement AFTER INSERT OR UPDATE OR DELETE ON {s}.people "
        f"FOR EACH STATEMENT EXECUTE FUNCTION {s}.log_statement()"
    )


def _ops(pg: Pg) -> tuple[set[str], list[tuple[str, int]]]:
    statements = {r[0] for r in pg.rows("SELECT op FROM ops WHERE level = 'statement'")}
    changes = pg.rows("SELECT op, id FROM ops WHERE level = 'row' ORDER BY op, id")
    pg.conn.execute("TRUNCATE ops")
    return statements, changes


def test_upsert_insert_fast_path_and_merge_path_give_the_right_rows(run_target, pg):
    config = pg.config()
    ok(run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((1, "a"), (2, "b")))))
    _log_changes(pg)

    # Only new keys: one plain INSERT (a MERGE would also fire the UPDATE statement trigger).
    ok(run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((3, "c"), (4, "d"), (3, "c2")))))
    statements, changes = _ops(pg)
    assert statements == {"INSERT"}
    assert changes == [("INSERT", 3), ("INSERT", 4)]
    assert pg.rows("SELECT id, name FROM people ORDER BY id") == [(1, "a"), (2, "b"), (3, "c2"), (4, "d")]

    # Some keys exist: MERGE updates them and inserts the rest, duplicates resolved to the last.
    data = lines(schema("people", PROPS), *people((2, "b2"), (5, "e"), (2, "b3"), (4, None)))
    ok(run_target(PostgresTarget, config, data))
    statements, changes = _ops(pg)
    assert "UPDATE" in statements
    assert changes == [("INSERT", 5), ("UPDATE", 2), ("UPDATE", 4)]
    assert pg.rows("SELECT id, name FROM people ORDER BY id") == [
        (1, "a"),
        (2, "b3"),
        (3, "c2"),
        (4, None),
        (5, "e"),
    ]


def test_overwrite_swaps_a_shadow_in_and_holds_state_until_then(tmp_path, run_target, pg):
    config = pg.config(load_method="overwrite", batch_size_rows=2)
    ok(run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((1, "old"), (2, "old"), (3, "old")))))

    def during_the_run(out: io.BytesIO) -> None:
        # Two batches are in the shadow; readers still see the old table, whole.
        assert pg.rows("SELECT id, name FROM people ORDER BY id") == [(1, "old"), (2, "old"), (3, "old")]
        # Batches commit in the background (two lanes): the shadow holds whole batches, maybe none yet.
        assert pg.rows("SELECT id FROM people__dpone_new ORDER BY id") in ([], [(7,), (8,)], [(7,), (8,), (9,), (10,)])
        assert b"STATE" not in out.getvalue()  # the mid-stream state covers shadow rows only

    result = run_hooked(
        tmp_path,
        config,
        lines(schema("people", PROPS), *people((7, "new"), (8, "new")), state({"mid": 1})),
        lines(*people((9, "new"), (10, "new"))),
        during_the_run,
        lines(*people((11, "new"))),
    )
    ok(result)
    assert result.states == [{"mid": 1}]  # echoed once the swap committed
    assert pg.rows("SELECT id FROM people ORDER BY id") == [(7,), (8,), (9,), (10,), (11,)]
    assert pg.tables() == {"people"}


def test_overwrite_renames_the_primary_key_so_the_next_overwrite_works(run_target, pg):
    config = pg.config(load_method="overwrite")
    for n in range(1, 4):
        data = lines(schema("people", PROPS), *people(*((i, f"run{n}") for i in range(n, n + 3))))
        ok(run_target(PostgresTarget, config, data))
        assert pg.rows("SELECT indexname FROM pg_indexes WHERE schemaname = %s", (pg.schema,)) == [("people_pkey",)]
        assert pg.rows("SELECT min(id), max(id), min(name) FROM people") == [(n, n + 2, f"run{n}")]
    # The key is enforced on the swapped-in table.
    with pytest.raises(psycopg.errors.UniqueViolation):
        pg.conn.execute("INSERT INTO people (id) VALUES (3)")


def test_overwrite_blocked_by_a_dependent_view_is_a_config_error(run_target, pg):
    config = pg.config(load_method="overwrite")
    ok(run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((1, "old")))))
    pg.conn.execute("CREATE VIEW people_names AS SELECT name FROM people")
    result = run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((2, "new")), state({"s": 1})))
    line = error_line(result, "config", 78)
    assert "views depend on the table" in line
    assert result.states == []
    assert pg.rows("SELECT name FROM people_names") == [("old",)]


LONG = "a_stream_name_longer_than_the_63_bytes_postgresql_keeps_of_an_identifier"


def test_a_long_stream_name_with_a_key_loads(run_target, pg):
    assert len(LONG) > 63
    config = pg.config()
    for i in (1, 2):
        ok(run_target(PostgresTarget, config, lines(schema(LONG, PROPS), *people((i, "x"), stream=LONG))))
    # Cut to 63 bytes with a hash of the whole name, so two long names never share a table.
    assert pg.tables() == {pg_name(LONG)} and pg_name(LONG).startswith(LONG[:54] + "_")
    assert pg.rows(f'SELECT id FROM "{pg_name(LONG)}" ORDER BY id') == [(1,), (2,)]


def test_a_long_stream_name_overwrite_keeps_or_replaces_the_table(run_target, pg):
    ok(run_target(PostgresTarget, pg.config(), lines(schema(LONG, PROPS, keys=()), *people((1, "old"), stream=LONG))))
    result = run_target(
        PostgresTarget,
        pg.config(load_method="overwrite"),
        lines(schema(LONG, PROPS, keys=()), *people((2, "new"), stream=LONG), state({"s": 1})),
    )
    rows = pg.rows(f'SELECT id, name FROM "{pg_name(LONG)}" ORDER BY id')
    if result.rc != 0:  # failing is acceptable only with the live table as it was
        assert rows == [(1, "old")], f"rc={result.rc}, table now {rows}"
    assert result.rc == 0, result.stderr
    assert rows == [(2, "new")]


# -- metadata ---------------------------------------------------------------------------------------


def test_metadata_columns_carry_each_records_own_values(run_target, pg):
    """Batches with one extraction time and version, and batches that mix them and deletes."""
    first, second = "2024-06-01T00:00:00+00:00", "2024-06-02T12:30:00+00:00"
    uniform = [record("people", {"id": i, "name": "u"}, time_extracted=first, version=7) for i in (1, 2)]
    mixed = [
        record("people", {"id": 3, "name": "m"}, time_extracted=first, version=7),
        record("people", {"id": 4, "name": "m", "_sdc_deleted_at": second}, time_extracted=second, version=8),
    ]
    config = pg.config(batch_size_rows=2)
    ok(run_target(PostgresTarget, config, lines(schema("people", PROPS), *uniform, *mixed, state({"s": 1}))))
    got = pg.rows("SELECT id, _sdc_extracted_at, _sdc_table_version, _sdc_deleted_at FROM people ORDER BY id")
    at = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    later = dt.datetime(2024, 6, 2, 12, 30, tzinfo=dt.UTC)
    assert got == [(1, at, 7, None), (2, at, 7, None), (3, at, 7, None), (4, later, 8, later)]
    # A batch without time_extracted or version: nulls, as before.
    ok(run_target(PostgresTarget, config, lines(schema("people", PROPS), record("people", {"id": 5, "name": "n"}))))
    assert pg.rows("SELECT _sdc_extracted_at, _sdc_table_version FROM people WHERE id = 5") == [(None, None)]


# -- types ------------------------------------------------------------------------------------------

TYPE_PROPS = {
    "id": {"type": "integer"},
    "big": {"type": ["integer", "null"]},
    "f": {"type": ["number", "null"]},
    "dec": {"type": ["string", "null"], "format": "singer.decimal"},
    "amount": {"type": ["number", "null"], "multipleOf": 1e-18},
    "huge": {"type": ["integer", "null"], "minimum": -1e30, "maximum": 1e30},
    "flag": {"type": ["boolean", "null"]},
    "ts": {"type": ["string", "null"], "format": "date-time"},
    "d": {"type": ["string", "null"], "format": "date"},
    "t": {"type": ["string", "null"], "format": "time"},
    "u": {"type": ["string", "null"], "format": "uuid"},
    "obj": {"type": ["object", "null"]},
    "arr": {"type": ["array", "null"], "items": {"type": "integer"}},
    "code": {"type": ["string", "null"], "maxLength": 20},
    "txt": {"type": ["string", "null"]},
}
NASTY = "quote ' and \" and \\ backslash \\N \\t tab\there\nnewline\r\nemoji \U0001f600 中文 ünï €"


def test_all_types_round_trip(run_target, pg):
    check_all_types_round_trip(run_target, pg)


def check_all_types_round_trip(run_target: Callable[..., Run], pg: Pg) -> None:
    value = {
        "id": 1,
        "big": 9223372036854775807,
        "f": 1.5e-7,
        "dec": "123456789012345678901234567890.123456789",
        # More digits than a float holds, both: written as bare JSON numbers.
        "amount": orjson.Fragment(b"12345678901234567890.123456789012345678"),
        "huge": orjson.Fragment(b"123456789012345678901234567890"),
        "flag": True,
        "ts": "2024-02-29T23:59:59.123456+05:30",
        "d": "2024-02-29",
        "t": "12:34:56",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "obj": {"k": [1, {"x": None}], "s": NASTY, "b": False},
        "arr": [3, 2, 1],
        "code": "ABC-123",
        "txt": NASTY,
    }
    negative = {"id": 3, "big": -9223372036854775808, "huge": orjson.Fragment(b"-98765432109876543210987654321")}
    empty = {"id": 4, "txt": "", "code": "", "obj": {}, "arr": []}
    nulls = {k: None for k in TYPE_PROPS} | {"id": 2}
    data = lines(
        schema("types", TYPE_PROPS),
        *(record("types", r) for r in (value, nulls, negative, empty)),
    )
    ok(run_target(PostgresTarget, pg.config(add_record_metadata=False), data))

    types = pg.column_types("types")
    assert types == {
        "id": "bigint",
        "big": "bigint",
        "f": "numeric",  # a number without a float format is exact
        "dec": "numeric",
        "amount": "numeric",
        "huge": "numeric",
        "flag": "boolean",
        "ts": "timestamp with time zone",
        "d": "date",
        "t": "time without time zone",
        "u": "uuid",
        "obj": "jsonb",
        "arr": "jsonb",
        "code": "character varying(20)",
        "txt": "text",
    }
    (got,) = pg.rows(
        "SELECT big, f, dec::text, amount::text, huge::text, flag, ts, d, t, u::text, obj, arr, code, txt "
        "FROM types WHERE id = 1"
    )
    assert got[0] == 9223372036854775807
    assert got[1] == Decimal("0.00000015")
    assert got[2] == "123456789012345678901234567890.123456789"
    assert got[3] == "12345678901234567890.123456789012345678"
    assert got[4] == "123456789012345678901234567890"
    assert got[5] is True
    assert got[6] == dt.datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=dt.UTC)
    assert got[7] == dt.date(2024, 2, 29)
    assert got[8] == dt.time(12, 34, 56)
    assert got[9] == value["u"]
    assert got[10] == {"k": [1, {"x": None}], "s": NASTY, "b": False}
    assert got[11] == [3, 2, 1]
    assert got[12] == "ABC-123"
    assert got[13] == NASTY

    nulls_sql = " AND ".join(f'"{c}" IS NULL' for c in TYPE_PROPS if c != "id")
    assert pg.scalar(f"SELECT count(*) FROM types WHERE id = 2 AND {nulls_sql}") == 1
    assert pg.rows("SELECT big, huge::text FROM types WHERE id = 3") == [
        (-9223372036854775808, "-98765432109876543210987654321")
    ]
    # Empty is not NULL.
    assert pg.rows("SELECT txt, code, obj, arr FROM types WHERE id = 4") == [("", "", {}, [])]


def test_string_longer_than_max_length_is_a_data_error(run_target, pg):
    props = {"id": {"type": "integer"}, "code": {"type": "string", "maxLength": 3}}
    data = lines(schema("codes", props), record("codes", {"id": 1, "code": "ABCD"}), state({"s": 1}))
    line = error_line(run_target(PostgresTarget, pg.config(), data), "data", 65)
    assert "'codes'" in line and "character varying(3)" in line


def test_numbers_inside_objects_stay_numbers_in_an_exactly_decoded_stream(run_target, pg):
    props = {"id": {"type": "integer"}, "amount": {"type": "number", "multipleOf": 1e-18}, "obj": {"type": "object"}}
    obj = {"price": 1.5, "big": orjson.Fragment(b"123456789012345678901234567890"), "n": 2}
    data = lines(schema("exact", props), record("exact", {"id": 1, "amount": 1, "obj": obj}))
    ok(run_target(PostgresTarget, pg.config(add_record_metadata=False), data))
    assert pg.rows("SELECT jsonb_typeof(obj->'price'), jsonb_typeof(obj->'big'), (obj->'big')::text FROM exact") == [
        ("number", "number", "123456789012345678901234567890")
    ]


def test_a_date_time_without_offset_is_utc_whatever_the_server_time_zone(run_target, pg, postgres_server):
    database = f"{pg.schema}_tz"
    pg.conn.execute(f'CREATE DATABASE "{database}"')
    try:
        pg.conn.execute(f"ALTER DATABASE \"{database}\" SET timezone = 'Asia/Kolkata'")
        props = {"id": {"type": "integer"}, "ts": {"type": "string", "format": "date-time"}}
        data = lines(
            schema("t", props),
            record("t", {"id": 1, "ts": "2024-01-01T00:00:00"}),
            record("t", {"id": 2, "ts": "2024-01-01T00:00:00Z"}),
        )
        ok(run_target(PostgresTarget, postgres_server.config(database), data))
        with psycopg.connect(postgres_server.dsn.rsplit("/", 1)[0] + f"/{database}") as conn:
            got = conn.execute("SELECT id, ts FROM t ORDER BY id").fetchall()
    finally:
        pg.conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
    midnight = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    assert got == [(1, midnight), (2, midnight)]


# -- NUL characters ---------------------------------------------------------------------------------

NUL_PROPS = {"id": {"type": "integer"}, "txt": {"type": ["string", "null"]}, "obj": {"type": ["object", "null"]}}


@pytest.mark.parametrize(("policy", "mark"), [("strip", ""), ("replace", "\ufffd")], ids=["strip", "replace"])
def test_nul_characters_are_stripped_or_replaced(run_target, pg, policy, mark):
    data = lines(
        schema("nuls", NUL_PROPS),
        record("nuls", {"id": 1, "txt": "a\x00b\x00", "obj": {"k": "x\x00y", "list": ["\x00"], "n\x00": 1}}),
        record("nuls", {"id": 2, "txt": "clean", "obj": {"k": "clean"}}),
        state({"s": 1}),
    )
    result = ok(run_target(PostgresTarget, pg.config(nul_character_policy=policy), data))
    assert result.states == [{"s": 1}]
    assert pg.rows("SELECT id, txt, obj FROM nuls ORDER BY id") == [
        (1, f"a{mark}b{mark}", {"k": f"x{mark}y", "list": [mark], f"n{mark}": 1}),
        (2, "clean", {"k": "clean"}),
    ]


@pytest.mark.parametrize("where", ["string", "object"])
def test_nul_character_policy_fail(run_target, pg, where):
    config = pg.config(nul_character_policy="fail")
    ok(run_target(PostgresTarget, config, lines(schema("nuls", NUL_PROPS), record("nuls", {"id": 1, "txt": "ok"}))))
    bad = {"id": 2, "txt": "a\x00b"} if where == "string" else {"id": 2, "obj": {"k": "a\x00b"}}
    data = lines(
        schema("nuls", NUL_PROPS), record("nuls", {"id": 3, "txt": "fine"}), record("nuls", bad), state({"s": 2})
    )
    result = run_target(PostgresTarget, config, data)
    line = error_line(result, "data", 65)
    assert "NUL" in line and "nul_character_policy" in line
    if copy_rows.available():  # the encoder finds it on the input line; the decoded path, in the COPY
        assert "line 3, stream 'nuls'" in line, line
    assert result.states == []
    assert pg.rows("SELECT id, txt FROM nuls") == [(1, "ok")]


@pytest.mark.parametrize("policy", ["strip", "fail"])
def test_a_literal_backslash_u0000_inside_an_object_is_not_a_nul(run_target, pg, policy):
    text = "C:\\u0000dir"  # backslash, 'u0000': no NUL character
    data = lines(schema("nuls", NUL_PROPS), record("nuls", {"id": 1, "txt": text, "obj": {"path": text}}))
    ok(run_target(PostgresTarget, pg.config(nul_character_policy=policy), data))
    assert pg.rows("SELECT txt, obj FROM nuls") == [(text, {"path": text})]


# -- schema evolution -------------------------------------------------------------------------------


def test_evolved_columns_get_postgres_types(run_target, pg):
    """The suite checks the rows of each policy; here, the column types PostgreSQL ends up with."""
    wider = {**PROPS, "age": {"type": ["integer", "null"]}}
    data = lines(schema("people", PROPS), *people((1, "a")), schema("people", wider), record("people", {"id": 2}))
    ok(run_target(PostgresTarget, pg.config(), data))
    assert pg.column_types("people")["age"] == "bigint"
    narrow = {"id": {"type": "integer"}, "v": {"type": "integer"}}
    ok(run_target(PostgresTarget, pg.config(), lines(schema("m", narrow), record("m", {"id": 1, "v": 5}))))
    assert pg.column_types("m")["v"] == "bigint"
    wide = {"id": {"type": "integer"}, "v": {"type": "string", "format": "singer.decimal"}}
    ok(run_target(PostgresTarget, pg.config(), lines(schema("m", wide), record("m", {"id": 2, "v": "1.25"}))))
    assert pg.column_types("m")["v"] == "numeric"
    assert pg.rows("SELECT id, v::text FROM m ORDER BY id") == [(1, "5"), (2, "1.25")]
    # A breaking change leaves the type as it was.
    flag = {"id": {"type": "integer"}, "v": {"type": "boolean"}}
    assert run_target(PostgresTarget, pg.config(), lines(schema("m", flag), record("m", {"id": 3, "v": True}))).rc == 65
    assert pg.column_types("m")["v"] == "numeric"


def test_widening_varchar_to_longer_varchar_to_text_is_applied(run_target, pg):
    def props(limit: int | None) -> dict[str, Any]:
        code: dict[str, Any] = {"type": ["string", "null"]}
        if limit:
            code["maxLength"] = limit
        return {"id": {"type": "integer"}, "code": code}

    config = pg.config()
    ok(run_target(PostgresTarget, config, lines(schema("c", props(10)), record("c", {"id": 1, "code": "x" * 10}))))
    assert pg.column_types("c")["code"] == "character varying(10)"
    data = lines(
        schema("c", props(50)),
        record("c", {"id": 2, "code": "y" * 50}),
        schema("c", props(None)),
        record("c", {"id": 3, "code": "z" * 5000}),
    )
    ok(run_target(PostgresTarget, config, data))
    assert pg.column_types("c")["code"] == "text"
    assert pg.rows("SELECT id, length(code) FROM c ORDER BY id") == [(1, 10), (2, 50), (3, 5000)]


def test_varchar_widening_mid_stream_keeps_the_wider_type(run_target, pg):
    narrow = {"id": {"type": "integer"}, "code": {"type": "string", "maxLength": 10}}
    wide = {"id": {"type": "integer"}, "code": {"type": "string", "maxLength": 50}}
    data = lines(
        schema("c", narrow),
        record("c", {"id": 1, "code": "short"}),
        schema("c", wide),
        record("c", {"id": 2, "code": "w" * 40}),
    )
    ok(run_target(PostgresTarget, pg.config(), data))
    assert pg.column_types("c")["code"] == "character varying(50)"
    # A narrower schema later is held by the wider column: no change.
    ok(run_target(PostgresTarget, pg.config(), lines(schema("c", narrow), record("c", {"id": 3, "code": "n"}))))
    assert pg.column_types("c")["code"] == "character varying(50)"
    assert pg.scalar("SELECT count(*) FROM c") == 3


def test_table_name_map_and_default_target_schema(run_target, pg):
    config = pg.config(table_name_map={"public-people": "persons"})
    data = lines(
        schema("public-people", PROPS),
        *people((1, "a"), stream="public-people"),
        schema("Other Stream!", PROPS),
        *people((2, "b"), stream="Other Stream!"),
    )
    ok(run_target(PostgresTarget, config, data))
    assert pg.tables() == {"persons", "other_stream"}
    assert pg.rows("SELECT id FROM persons") == [(1,)]
    assert pg.rows("SELECT id FROM other_stream") == [(2,)]
    assert (
        pg.scalar(
            "SELECT count(*) FROM pg_tables WHERE tablename IN ('persons', 'other_stream') AND schemaname = 'public'"
        )
        == 0
    )


# -- BATCH messages ---------------------------------------------------------------------------------


def test_batch_jsonl_numbers_beyond_float_precision_load_exactly(run_target, pg, tmp_path):
    gz = tmp_path / "exact.jsonl.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(b'{"id":1,"amount":12345678901234567890.123456789012345678,"huge":123456789012345678901234567890}\n')
    props = {k: TYPE_PROPS[k] for k in ("id", "amount", "huge")}
    batch = {
        "type": "BATCH",
        "stream": "exact",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": [gz.as_uri()],
    }
    ok(run_target(PostgresTarget, pg.config(add_record_metadata=False), lines(schema("exact", props), batch)))
    assert pg.rows("SELECT amount::text, huge::text FROM exact") == [
        ("12345678901234567890.123456789012345678", "123456789012345678901234567890")
    ]


# -- connection errors ------------------------------------------------------------------------------


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_wrong_port_is_a_transient_error(run_target, pg):
    config = pg.config(port=_closed_port(), connect_timeout=5)
    result = run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((1, "a")), state({"s": 1})))
    line = error_line(result, "transient", 75)
    assert "connecting to PostgreSQL" in line
    assert result.states == []


def test_wrong_database_is_a_config_error(run_target, pg):
    config = pg.config(database="no_such_database_dpone")
    result = run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((1, "a")), state({"s": 1})))
    line = error_line(result, "config", 78)
    assert "no_such_database_dpone" in line and "does not exist" in line
    assert result.states == []


@pytest.mark.parametrize("debug", [False, True], ids=["plain", "DPONE_DEBUG"])
@pytest.mark.parametrize("how", ["dsn", "password"])
def test_password_never_appears_in_stderr(run_target, monkeypatch, how, debug):
    secret = "Sup3r-s3cret-pw"
    port = _closed_port()
    if debug:
        monkeypatch.setenv("DPONE_DEBUG", "1")
    if how == "dsn":
        config: dict[str, Any] = {"dsn": f"postgresql://loader:{secret}@127.0.0.1:{port}/db?connect_timeout=5"}
    else:
        config = {"host": "127.0.0.1", "port": port, "user": "loader", "password": secret, "database": "db"}
    result = run_target(PostgresTarget, config, lines(schema("people", PROPS), *people((1, "a"))))
    assert result.rc == 75, result.stderr
    assert secret not in result.stderr
    if not debug:
        error_line(result, "transient", 75)
