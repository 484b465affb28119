"""Schema evolution on target-postgres against a real PostgreSQL: every policy and kind of change,
with rows loaded before and after the change, the column types afterwards, stops that change
nothing, DDL that commits only with its load, full refreshes, and `--schema-plan`.

Every test loads into a schema of its own (`default_target_schema`), through the CLI in-process.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import psycopg
import pytest

from dpone.targets.postgres.target import PostgresTarget
from tests.conftest import Run, lines, record, schema, state

pytestmark = pytest.mark.service

NC = "__dpone__nc__"
ID = {"type": "integer"}
NAME = {"type": ["string", "null"]}
BASE = {"id": ID, "name": NAME}
WITH_AGE = {**BASE, "age": {"type": ["integer", "null"]}}
WITH_NOTE = {**BASE, "note": {"type": ["string", "null"]}}
INT_V = {"id": ID, "v": {"type": ["integer", "null"]}}
STR_V = {"id": ID, "v": {"type": ["string", "null"]}}
NO_META = {"add_record_metadata": False}


def code(limit: int | None) -> dict[str, Any]:
    prop: dict[str, Any] = {"type": ["string", "null"]}
    if limit:
        prop["maxLength"] = limit
    return {"id": ID, "code": prop}


class Pg:
    """One test's schema on the server, and a connection to inspect it."""

    def __init__(self, dsn: str, base_config: dict[str, Any], schema_name: str) -> None:
        self.base_config = base_config
        self.schema = schema_name
        self.conn = psycopg.connect(dsn, autocommit=True)
        self.conn.execute(f'SET search_path TO "{schema_name}"')

    def config(self, policy: str | None = None, on_type_change: str | None = None, **extra: Any) -> dict[str, Any]:
        evolution = {k: v for k, v in (("policy", policy), ("on_type_change", on_type_change)) if v}
        config = {**self.base_config, "default_target_schema": self.schema, **extra}
        if evolution:
            config["schema_evolution"] = {**config.get("schema_evolution", {}), **evolution}
        return config

    def create(self, ddl: str) -> None:
        """A table made by hand (as a DBA would), in this test's schema."""
        self.conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
        self.conn.execute(ddl)

    def drop(self) -> None:
        self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        return self.conn.execute(sql).fetchall()

    def _columns(self, table: str, what: str) -> list[tuple[Any, ...]]:
        return self.conn.execute(
            f"SELECT {what} FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = %s AND c.relname = %s AND a.attnum > 0 ORDER BY a.attnum",
            (self.schema, table),
        ).fetchall()

    def types(self, table: str) -> dict[str, str]:
        """Live columns in table order: name -> format_type."""
        rows = self._columns(table, "a.attname, format_type(a.atttypid, a.atttypmod), a.attisdropped")
        return {name: type_ for name, type_, dropped in rows if not dropped}

    def not_null(self, table: str) -> set[str]:
        return {name for name, notnull in self._columns(table, "a.attname, a.attnotnull") if notnull}

    def catalog(self, table: str) -> list[tuple[Any, ...]]:
        """The table's catalog rows with their row versions: any DDL on the table changes this."""
        return self._columns(
            table,
            "a.attnum, a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull, a.attisdropped, "
            "a.xmin::text, c.xmin::text, c.relfilenode",
        )

    def tables(self) -> set[str]:
        return {
            r[0] for r in self.conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,))
        }

    def schema_exists(self, name: str) -> bool:
        return self.conn.execute("SELECT 1 FROM pg_namespace WHERE nspname = %s", (name,)).fetchone() is not None


@pytest.fixture
def pg(postgres_server) -> Iterator[Pg]:
    helper = Pg(postgres_server.dsn, postgres_server.config(), f"se_{uuid.uuid4().hex[:12]}")
    try:
        yield helper
    finally:
        helper.drop()


def ok(result: Run) -> Run:
    assert result.rc == 0, result.stderr
    return result


def stopped(result: Run, kind: str = "data", rc: int = 65) -> str:
    """The run failed with `rc`; its last stderr line is target-postgres's one error line."""
    assert result.rc == rc, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"target-postgres: {kind} error: "), result.stderr
    return last


def load(run_target, config: dict[str, Any], *messages: dict[str, Any], args: tuple[str, ...] = ()) -> Run:
    return run_target(PostgresTarget, config, lines(*messages), *args)


def recs(stream: str, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [record(stream, r) for r in rows]


# -- new column -------------------------------------------------------------------------------------


@pytest.mark.parametrize("policy", ["widening", "additive"])
def test_a_new_column_is_added_and_rows_loaded_before_it_read_null(run_target, pg, policy):
    config = pg.config(policy)
    ok(load(run_target, config, schema("p", BASE), *recs("p", {"id": 1, "name": "a"}, {"id": 2, "name": "b"})))
    result = ok(
        load(
            run_target,
            config,
            schema("p", WITH_AGE),
            *recs("p", {"id": 3, "name": "c", "age": 30}, {"id": 1, "name": "a2", "age": 41}),
            state({"s": 2}),
        )
    )
    assert result.states == [{"s": 2}]
    assert pg.rows("SELECT id, name, age FROM p ORDER BY id") == [(1, "a2", 41), (2, "b", None), (3, "c", 30)]
    assert pg.types("p")["age"] == "bigint"
    assert "age" not in pg.not_null("p")


def test_strict_stops_on_a_new_column_naming_it_and_leaves_table_and_state_alone(run_target, pg):
    config = pg.config("strict")
    ok(load(run_target, config, schema("p", BASE), *recs("p", {"id": 1, "name": "a"})))
    before = pg.catalog("p")
    result = load(
        run_target, config, schema("p", WITH_AGE), *recs("p", {"id": 2, "name": "b", "age": 3}), state({"s": 2})
    )
    line = stopped(result)
    assert "'p'" in line and "strict policy" in line
    assert "column 'age': new column (bigint) not in the table" in line
    assert "Nothing was changed or loaded" in line
    assert result.states == []
    assert pg.catalog("p") == before
    assert pg.rows("SELECT id, name FROM p ORDER BY id") == [(1, "a")]


# -- widened integer ------------------------------------------------------------------------------


def test_an_integer_column_is_widened_to_bigint_under_widening(run_target, pg):
    pg.create(f'CREATE TABLE "{pg.schema}".m (id bigint PRIMARY KEY, v integer)')
    pg.conn.execute("INSERT INTO m VALUES (1, 5), (2, -2147483648)")
    ok(load(run_target, pg.config(**NO_META), schema("m", INT_V), *recs("m", {"id": 3, "v": 3_000_000_000})))
    assert pg.types("m") == {"id": "bigint", "v": "bigint"}
    assert pg.rows("SELECT id, v FROM m ORDER BY id") == [(1, 5), (2, -2147483648), (3, 3_000_000_000)]


def test_additive_stops_where_an_integer_column_would_have_to_widen(run_target, pg):
    pg.create(f'CREATE TABLE "{pg.schema}".m (id bigint PRIMARY KEY, v integer)')
    pg.conn.execute("INSERT INTO m VALUES (1, 5)")
    before = pg.catalog("m")
    config = pg.config("additive", **NO_META)
    result = load(run_target, config, schema("m", INT_V), *recs("m", {"id": 2, "v": 3_000_000_000}), state({"s": 1}))
    line = stopped(result)
    assert "additive policy" in line
    assert "column 'v': is integer in the table but the stream now sends bigint" in line
    assert result.states == []
    assert pg.catalog("m") == before
    assert pg.rows("SELECT id, v FROM m") == [(1, 5)]


# -- widened varchar ------------------------------------------------------------------------------


def test_a_varchar_widens_to_a_longer_varchar_then_to_text(run_target, pg):
    config = pg.config()
    ok(load(run_target, config, schema("c", code(10)), *recs("c", {"id": 1, "code": "x" * 10})))
    assert pg.types("c")["code"] == "character varying(10)"
    ok(load(run_target, config, schema("c", code(50)), *recs("c", {"id": 2, "code": "y" * 50})))
    assert pg.types("c")["code"] == "character varying(50)"
    ok(load(run_target, config, schema("c", code(None)), *recs("c", {"id": 3, "code": "z" * 500})))
    assert pg.types("c")["code"] == "text"
    assert pg.rows("SELECT id, code FROM c ORDER BY id") == [(1, "x" * 10), (2, "y" * 50), (3, "z" * 500)]


# -- integer -> string ----------------------------------------------------------------------------


def test_an_integer_column_receiving_strings_stops_by_default_pointing_at_on_type_change(run_target, pg):
    config = pg.config()
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 1, "v": 7})))
    before = pg.catalog("m")
    result = load(run_target, config, schema("m", STR_V), *recs("m", {"id": 2, "v": "seven"}), state({"s": 2}))
    line = stopped(result)
    assert "column 'v': is bigint in the table but the stream now sends text, which it cannot hold" in line
    assert "on_type_change: new_column or cast may apply" in line
    assert result.states == []
    assert pg.catalog("m") == before
    assert pg.rows("SELECT id, v FROM m") == [(1, 7)]


def test_on_type_change_new_column_keeps_old_values_and_routes_strings_to_a_new_column(run_target, pg):
    config = pg.config(on_type_change="new_column")
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 1, "v": 7}, {"id": 2, "v": 8})))
    result = ok(
        load(
            run_target,
            config,
            schema("m", STR_V),
            *recs("m", {"id": 3, "v": "three"}, {"id": 1, "v": "one"}),
            state({"s": 2}),
        )
    )
    assert result.states == [{"s": 2}]
    types = pg.types("m")
    assert types["v"] == "bigint" and types[f"{NC}v"] == "text"
    # The update of id 1 fills the new column; its old bigint value stays where it was.
    assert pg.rows(f'SELECT id, v, "{NC}v" FROM m ORDER BY id') == [(1, 7, "one"), (2, 8, None), (3, None, "three")]

    # A second run with strings uses the same column: no DDL at all.
    before = pg.catalog("m")
    ok(load(run_target, config, schema("m", STR_V), *recs("m", {"id": 4, "v": "four"})))
    assert pg.catalog("m") == before
    # Back to integers: the values go to the original column again.
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 5, "v": 5})))
    assert pg.catalog("m") == before
    assert pg.rows(f'SELECT id, v, "{NC}v" FROM m WHERE id >= 4 ORDER BY id') == [(4, None, "four"), (5, 5, None)]


@pytest.mark.certifies("schema_evolution:cast", connector="target-postgres")
def test_on_type_change_cast_converts_the_column_to_text_and_old_values_read_as_text(run_target, pg):
    config = pg.config(on_type_change="cast")
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 1, "v": 7}, {"id": 2, "v": -8})))
    ok(load(run_target, config, schema("m", STR_V), *recs("m", {"id": 3, "v": "three"})))
    assert pg.types("m")["v"] == "text"
    assert f"{NC}v" not in pg.types("m")
    assert pg.rows("SELECT id, v FROM m ORDER BY id") == [(1, "7"), (2, "-8"), (3, "three")]


def test_cast_under_additive_stops_because_it_needs_widening(run_target, pg):
    config = pg.config("additive", "cast")
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 1, "v": 7})))
    line = stopped(load(run_target, config, schema("m", STR_V), *recs("m", {"id": 2, "v": "x"})))
    assert "cast needs the widening policy" in line
    assert pg.types("m")["v"] == "bigint"


def test_a_key_column_changing_type_stops_even_with_new_column(run_target, pg):
    config = pg.config(on_type_change="new_column")
    ok(load(run_target, config, schema("m", BASE), *recs("m", {"id": 1, "name": "a"})))
    before = pg.catalog("m")
    str_key = {"id": {"type": "string"}, "name": NAME}
    result = load(run_target, config, schema("m", str_key), *recs("m", {"id": "k2", "name": "b"}), state({"s": 2}))
    line = stopped(result)
    assert "column 'id': is bigint in the table but the stream now sends text" in line
    assert "a key column cannot move to a new column" in line
    assert result.states == []
    assert pg.catalog("m") == before
    assert pg.rows("SELECT id, name FROM m") == [(1, "a")]


# -- columns the source no longer sends -----------------------------------------------------------


@pytest.mark.parametrize("policy", ["widening", "additive"])
def test_a_dropped_source_column_is_kept_with_its_values_and_new_rows_read_null(run_target, pg, policy):
    config = pg.config(policy)
    first = recs("p", {"id": 1, "name": "a", "note": "n1"}, {"id": 2, "name": "b", "note": "n2"})
    ok(load(run_target, config, schema("p", WITH_NOTE), *first))
    result = ok(
        load(
            run_target,
            config,
            schema("p", BASE),
            *recs("p", {"id": 3, "name": "c"}, {"id": 1, "name": "a2"}),
            state({"s": 2}),
        )
    )
    assert result.states == [{"s": 2}]
    assert pg.types("p")["note"] == "text"
    assert pg.rows("SELECT id, name, note FROM p ORDER BY id") == [(1, "a2", "n1"), (2, "b", "n2"), (3, "c", None)]


def test_a_dropped_not_null_column_is_made_nullable(run_target, pg):
    pg.create(f'CREATE TABLE "{pg.schema}".p (id bigint PRIMARY KEY, name text, note text NOT NULL)')
    pg.conn.execute("INSERT INTO p VALUES (1, 'a', 'n1')")
    assert pg.not_null("p") == {"id", "note"}
    ok(load(run_target, pg.config(**NO_META), schema("p", BASE), *recs("p", {"id": 2, "name": "b"})))
    assert pg.not_null("p") == {"id"}
    assert pg.types("p") == {"id": "bigint", "name": "text", "note": "text"}
    assert pg.rows("SELECT id, name, note FROM p ORDER BY id") == [(1, "a", "n1"), (2, "b", None)]


def test_strict_stops_on_a_dropped_source_column(run_target, pg):
    config = pg.config("strict")
    ok(load(run_target, config, schema("p", WITH_NOTE), *recs("p", {"id": 1, "name": "a", "note": "n1"})))
    before = pg.catalog("p")
    result = load(run_target, config, schema("p", BASE), *recs("p", {"id": 2, "name": "b"}), state({"s": 2}))
    line = stopped(result)
    assert "column 'note': the stream no longer sends this column" in line
    assert result.states == []
    assert pg.catalog("p") == before
    assert pg.rows("SELECT id, name, note FROM p") == [(1, "a", "n1")]


# -- a SCHEMA changing mid-stream -----------------------------------------------------------------


def test_a_schema_changing_mid_stream_adds_and_widens_and_echoes_the_state_once_at_the_end(run_target, pg):
    wider = {**code(50), "age": {"type": ["integer", "null"]}}
    result = ok(
        load(
            run_target,
            pg.config(),
            schema("c", code(10)),
            *recs("c", {"id": 1, "code": "a" * 10}, {"id": 2, "code": "b"}),
            schema("c", wider),
            *recs("c", {"id": 3, "code": "c" * 50, "age": 3}, {"id": 2, "code": "b2", "age": 2}),
            state({"s": 1}),
        )
    )
    assert result.states == [{"s": 1}]
    types = pg.types("c")
    assert types["code"] == "character varying(50)" and types["age"] == "bigint"
    assert pg.rows("SELECT id, code, age FROM c ORDER BY id") == [(1, "a" * 10, None), (2, "b2", 2), (3, "c" * 50, 3)]


# -- configuration --------------------------------------------------------------------------------


def test_per_stream_overrides_match_exact_names_before_glob_patterns(run_target, pg):
    evolution = {
        "policy": "strict",
        "streams": {"public-*": {"policy": "widening"}, "public-locked": {"policy": "strict"}},
    }
    config = pg.config(schema_evolution=evolution)
    for stream in ("public-people", "public-locked", "other"):
        ok(load(run_target, config, schema(stream, BASE), *recs(stream, {"id": 1, "name": "a"})))

    ok(load(run_target, config, schema("public-people", WITH_AGE), *recs("public-people", {"id": 2, "age": 9})))
    assert pg.rows("SELECT id, name, age FROM public_people ORDER BY id") == [(1, "a", None), (2, None, 9)]

    for stream, table in (("public-locked", "public_locked"), ("other", "other")):
        before = pg.catalog(table)
        line = stopped(load(run_target, config, schema(stream, WITH_AGE), *recs(stream, {"id": 2, "age": 9})))
        assert f"stream '{stream}'" in line and "strict policy" in line and "'age'" in line
        assert pg.catalog(table) == before
        assert pg.rows(f"SELECT id FROM {table}") == [(1,)]


@pytest.mark.parametrize(
    ("evolution", "says"),
    [
        ({"policy": "loose"}, "schema_evolution.policy must be one of strict, additive, widening; got 'loose'"),
        ({"on_type_change": "drop"}, "schema_evolution.on_type_change must be one of fail, new_column, cast"),
        ({"streams": {"p*": {"policy": "sometimes"}}}, "got 'sometimes'"),
        ({"policy": "widening", "mode": "x"}, "unknown keys ['mode']"),
    ],
)
def test_a_bad_schema_evolution_setting_is_a_config_error(run_target, pg, evolution, says):
    result = load(run_target, pg.config(schema_evolution=evolution), schema("p", BASE), *recs("p", {"id": 1}))
    assert says in stopped(result, "config", 78)
    assert "p" not in pg.tables()


# -- schema changes commit with the load, or not at all -------------------------------------------


@pytest.mark.parametrize("failure", ["bad_value_in_copy", "nul_with_policy_fail", "check_violation_in_merge"])
def test_a_new_column_is_not_added_when_the_load_it_came_with_fails(run_target, pg, failure):
    ok(load(run_target, pg.config(), schema("p", BASE), *recs("p", {"id": 1, "name": "a"})))
    config = pg.config(load_method="upsert")
    bad: dict[str, Any] = {"id": 3, "name": "c", "age": 1}
    if failure == "bad_value_in_copy":
        bad["age"] = "not-a-number"
    elif failure == "nul_with_policy_fail":
        config["nul_character_policy"] = "fail"
        bad["name"] = "c\x00"
    else:
        # A constraint the table's owner added: the INSERT fails after the ALTER ran in its transaction.
        pg.conn.execute("ALTER TABLE p ADD CONSTRAINT no_bad_name CHECK (name <> 'bad')")
        bad["name"] = "bad"
    before = pg.catalog("p")
    result = load(
        run_target,
        config,
        schema("p", WITH_AGE),
        *recs("p", {"id": 2, "name": "b", "age": 30}, bad),
        state({"s": 2}),
    )
    stopped(result)
    assert result.states == []
    assert "age" not in pg.types("p")
    assert pg.catalog("p") == before
    assert pg.rows("SELECT id, name FROM p") == [(1, "a")]


# -- full refresh (load_method overwrite) ---------------------------------------------------------


def test_overwrite_keeps_a_removed_column_empty_and_takes_a_widened_type(run_target, pg):
    first = {**code(10), "note": {"type": ["string", "null"]}}
    ok(load(run_target, pg.config(), schema("c", first), *recs("c", {"id": 1, "code": "a", "note": "n1"})))
    result = ok(
        load(
            run_target,
            pg.config(load_method="overwrite"),
            schema("c", code(50)),
            *recs("c", {"id": 2, "code": "b" * 50}, {"id": 3, "code": "c"}),
            state({"s": 2}),
        )
    )
    assert result.states == [{"s": 2}]
    types = pg.types("c")
    assert types["code"] == "character varying(50)" and types["note"] == "text"
    assert pg.rows("SELECT id, code, note FROM c ORDER BY id") == [(2, "b" * 50, None), (3, "c", None)]
    assert pg.tables() == {"c"}


# -- target-postgres --schema-plan ----------------------------------------------------------------


def plans(result: Run) -> dict[str, dict[str, Any]]:
    ok(result)
    doc = orjson.loads(result.stdout)
    assert doc["target"] == "target-postgres"
    return {p["stream"]: p for p in doc["plans"]}


def test_schema_plan_prints_the_plan_as_json_and_changes_nothing(run_target, pg):
    config = pg.config()
    first = {**WITH_NOTE, "v": ID}
    ok(load(run_target, config, schema("p", first), *recs("p", {"id": 1, "name": "a", "note": "n", "v": 1})))
    before, rows = pg.catalog("p"), pg.rows("SELECT * FROM p")
    result = load(
        run_target,
        config,
        schema("p", {**WITH_AGE, "v": {"type": "string"}}),
        *recs("p", {"id": 2, "name": "b", "age": 3, "v": "x"}),
        state({"s": 2}),
        schema("fresh", BASE),
        args=("--schema-plan", "--format", "json"),
    )
    got = plans(result)
    assert result.messages == []  # no STATE: nothing was loaded

    p = got["p"]
    assert (p["table"], p["policy"], p["on_type_change"], p["status"]) == ("p", "widening", "fail", "stop")
    changes = {c["column"]: c for c in p["changes"]}
    assert changes["age"] | {"description": ""} == {
        "action": "add_column",
        "column": "age",
        "current": None,
        "wanted": "bigint",
        "detail": "",
        "description": "",
        "effect": "ddl",
    }
    assert (changes["v"]["action"], changes["v"]["effect"]) == ("stop", "stop")
    assert (changes["v"]["current"], changes["v"]["wanted"]) == ("bigint", "text")
    assert (changes["note"]["action"], changes["note"]["effect"]) == ("keep", "note")
    assert p["columns"]["age"] == "bigint" and p["columns"]["note"] == "text"

    fresh = got["fresh"]
    assert fresh["status"] == "change"
    assert [c["action"] for c in fresh["changes"]] == ["create_table"]
    assert fresh["columns"]["id"] == "bigint"

    assert pg.catalog("p") == before
    assert pg.rows("SELECT * FROM p") == rows
    assert pg.tables() == {"p"}


def test_schema_plan_text_marks_changes_notes_and_stops(run_target, pg):
    config = pg.config(on_type_change="new_column")
    ok(load(run_target, config, schema("m", {**INT_V, "note": NAME}), *recs("m", {"id": 1, "v": 1})))
    before = pg.catalog("m")
    result = ok(load(run_target, config, schema("m", {**STR_V, "age": ID}), args=("--schema-plan",)))
    text = result.stdout.decode()
    assert text.startswith("stream m -> table m (policy widening, on_type_change new_column)\n")
    assert "  + add column 'age' bigint (nullable)\n" in text
    assert f"  + add column '{NC}v' text: 'v' is bigint; its new text values go here" in text
    assert "  ~ keep column 'note': the stream no longer sends it; kept\n" in text
    assert text.endswith("  => the load would proceed\n")
    assert pg.catalog("m") == before


def test_schema_plan_does_not_create_a_missing_table(run_target, pg):
    result = load(run_target, pg.config(), schema("p", BASE), args=("--schema-plan", "--format", "json"))
    assert plans(result)["p"]["status"] == "change"
    assert "p" not in pg.tables()


def test_schema_plan_does_not_create_a_missing_target_schema(run_target, pg):
    result = load(run_target, pg.config(), schema("p", BASE), args=("--schema-plan", "--format", "json"))
    assert plans(result)["p"]["status"] == "change"
    assert not pg.schema_exists(pg.schema)


def test_routing_away_from_a_not_null_column_makes_it_nullable(run_target, pg):
    pg.create(f'CREATE TABLE "{pg.schema}".m (id bigint PRIMARY KEY, v bigint NOT NULL)')
    pg.conn.execute("INSERT INTO m VALUES (1, 7)")
    config = pg.config(on_type_change="new_column", **NO_META)
    result = load(run_target, config, schema("m", STR_V), *recs("m", {"id": 2, "v": "two"}), state({"s": 1}))
    assert result.rc == 0, result.stderr
    assert result.states == [{"s": 1}]
    assert pg.rows(f'SELECT id, v, "{NC}v" FROM m ORDER BY id') == [(1, 7, None), (2, None, "two")]
    assert pg.not_null("m") == {"id"}


@pytest.mark.parametrize("table_exists", [False, True], ids=["new_table", "existing_table"])
def test_two_streams_mapped_to_one_table_each_get_their_columns(run_target, pg, table_exists):
    config = pg.config(table_name_map={"orders_2023": "orders", "orders_2024": "orders"}, load_method="append-only")
    if table_exists:
        ok(load(run_target, config, schema("orders_2023", BASE), *recs("orders_2023", {"id": 0, "name": "z"})))
    first = {**BASE, "age": ID}
    second = {**BASE, "score": ID}
    result = load(
        run_target,
        config,
        schema("orders_2023", first),
        schema("orders_2024", second),
        *recs("orders_2023", {"id": 1, "name": "a", "age": 1}),
        *recs("orders_2024", {"id": 2, "name": "b", "score": 2}),
        state({"s": 1}),
    )
    assert result.rc == 0, result.stderr
    assert pg.rows("SELECT id, name, age, score FROM orders WHERE id > 0 ORDER BY id") == [
        (1, "a", 1, None),
        (2, "b", None, 2),
    ]
