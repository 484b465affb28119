"""Schema evolution on target-duckdb: the core cases of the planner on a real DuckDB file, with rows
loaded before and after each change and the column types afterwards."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import duckdb
import pytest

from dpone.targets.duckdb.target import DuckDBTarget
from tests.conftest import Run, lines, record, schema, state

NC = "__dpone__nc__"
ID = {"type": "integer"}
NAME = {"type": ["string", "null"]}
BASE = {"id": ID, "name": NAME}
WITH_AGE = {**BASE, "age": {"type": ["integer", "null"]}}
WITH_NOTE = {**BASE, "note": {"type": ["string", "null"]}}
INT_V = {"id": ID, "v": {"type": ["integer", "null"]}}
STR_V = {"id": ID, "v": {"type": ["string", "null"]}}


class Db:
    def __init__(self, path: Path) -> None:
        self.path = path

    def config(self, policy: str | None = None, on_type_change: str | None = None, **extra: Any) -> dict[str, Any]:
        evolution = {k: v for k, v in (("policy", policy), ("on_type_change", on_type_change)) if v}
        return {"filepath": str(self.path), **({"schema_evolution": evolution} if evolution else {}), **extra}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path), read_only=True) as conn:
            return conn.execute(sql).fetchall()

    def execute(self, *statements: str) -> None:
        with duckdb.connect(str(self.path)) as conn:
            for sql in statements:
                conn.execute(sql)

    def columns(self, table: str) -> list[tuple[str, str, str]]:
        """(name, type, nullable) in table order."""
        return [
            tuple(r)
            for r in self.rows(
                "SELECT column_name, data_type, is_nullable FROM information_schema.columns "
                f"WHERE table_schema = 'main' AND table_name = '{table}' ORDER BY ordinal_position"
            )
        ]

    def types(self, table: str) -> dict[str, str]:
        return {name: type_ for name, type_, _ in self.columns(table)}

    def tables(self) -> set[str]:
        return {r[0] for r in self.rows("SELECT table_name FROM duckdb_tables()")}


@pytest.fixture
def db(tmp_path: Path) -> Db:
    return Db(tmp_path / "t.duckdb")


def ok(result: Run) -> Run:
    assert result.rc == 0, result.stderr
    return result


def stopped(result: Run) -> str:
    assert result.rc == 65, result.stderr
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("target-duckdb: data error: "), result.stderr
    return last


def load(run_target, config: dict[str, Any], *messages: dict[str, Any]) -> Run:
    return run_target(DuckDBTarget, config, lines(*messages))


def recs(stream: str, *rows: dict[str, Any]) -> list[dict[str, Any]]:
    return [record(stream, r) for r in rows]


@pytest.mark.parametrize("policy", ["widening", "additive"])
def test_a_new_column_is_added_and_rows_loaded_before_it_read_null(run_target, db, policy):
    config = db.config(policy)
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
    assert db.types("p")["age"] == "BIGINT"
    assert db.rows("SELECT id, name, age FROM p ORDER BY id") == [(1, "a2", 41), (2, "b", None), (3, "c", 30)]


def test_strict_stops_on_a_new_column_and_changes_nothing(run_target, db):
    config = db.config("strict")
    ok(load(run_target, config, schema("p", BASE), *recs("p", {"id": 1, "name": "a"})))
    before = db.columns("p")
    result = load(
        run_target, config, schema("p", WITH_AGE), *recs("p", {"id": 2, "name": "b", "age": 3}), state({"s": 2})
    )
    line = stopped(result)
    assert "strict policy" in line and "column 'age': new column (BIGINT) not in the table" in line
    assert result.states == []
    assert db.columns("p") == before
    assert db.rows("SELECT id, name FROM p") == [(1, "a")]


def test_an_integer_column_receiving_strings_stops_by_default(run_target, db):
    config = db.config()
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 1, "v": 7})))
    before = db.columns("m")
    line = stopped(load(run_target, config, schema("m", STR_V), *recs("m", {"id": 2, "v": "x"}), state({"s": 1})))
    assert "column 'v': is BIGINT in the table but the stream now sends VARCHAR" in line
    assert "on_type_change" in line
    assert db.columns("m") == before
    assert db.rows("SELECT id, v FROM m") == [(1, 7)]


def test_on_type_change_new_column_keeps_old_values_and_routes_strings_to_a_new_column(run_target, db):
    config = db.config(on_type_change="new_column")
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 1, "v": 7}, {"id": 2, "v": 8})))
    ok(load(run_target, config, schema("m", STR_V), *recs("m", {"id": 3, "v": "three"})))
    types = db.types("m")
    assert types["v"] == "BIGINT" and types[f"{NC}v"] == "VARCHAR"
    before = db.columns("m")
    ok(load(run_target, config, schema("m", STR_V), *recs("m", {"id": 4, "v": "four"})))
    assert db.columns("m") == before
    assert db.rows(f'SELECT id, v, "{NC}v" FROM m ORDER BY id') == [
        (1, 7, None),
        (2, 8, None),
        (3, None, "three"),
        (4, None, "four"),
    ]


@pytest.mark.certifies("schema_evolution:cast", connector="target-duckdb")
def test_on_type_change_cast_converts_the_column_to_varchar(run_target, db):
    config = db.config(on_type_change="cast")
    ok(load(run_target, config, schema("m", INT_V), *recs("m", {"id": 1, "v": 7}, {"id": 2, "v": -8})))
    ok(load(run_target, config, schema("m", STR_V), *recs("m", {"id": 3, "v": "three"})))
    assert db.types("m")["v"] == "VARCHAR"
    assert f"{NC}v" not in db.types("m")
    assert db.rows("SELECT id, v FROM m ORDER BY id") == [(1, "7"), (2, "-8"), (3, "three")]


@pytest.mark.parametrize("policy", ["widening", "additive"])
def test_a_dropped_source_column_is_kept_with_its_values_and_new_rows_read_null(run_target, db, policy):
    config = db.config(policy)
    ok(load(run_target, config, schema("p", WITH_NOTE), *recs("p", {"id": 1, "name": "a", "note": "n1"})))
    ok(load(run_target, config, schema("p", BASE), *recs("p", {"id": 2, "name": "b"})))
    assert db.types("p")["note"] == "VARCHAR"
    assert db.rows("SELECT id, name, note FROM p ORDER BY id") == [(1, "a", "n1"), (2, "b", None)]


def test_a_dropped_not_null_column_is_made_nullable(run_target, db):
    db.execute("CREATE TABLE p (id BIGINT, name VARCHAR, note VARCHAR NOT NULL)", "INSERT INTO p VALUES (1, 'a', 'n1')")
    config = db.config(add_record_metadata=False)
    ok(load(run_target, config, schema("p", BASE), *recs("p", {"id": 2, "name": "b"})))
    assert db.columns("p") == [("id", "BIGINT", "YES"), ("name", "VARCHAR", "YES"), ("note", "VARCHAR", "YES")]
    assert db.rows("SELECT id, name, note FROM p ORDER BY id") == [(1, "a", "n1"), (2, "b", None)]


def test_strict_stops_on_a_dropped_source_column(run_target, db):
    config = db.config("strict")
    ok(load(run_target, config, schema("p", WITH_NOTE), *recs("p", {"id": 1, "name": "a", "note": "n1"})))
    before = db.columns("p")
    line = stopped(load(run_target, config, schema("p", BASE), *recs("p", {"id": 2, "name": "b"})))
    assert "column 'note': the stream no longer sends this column" in line
    assert db.columns("p") == before
    assert db.rows("SELECT id FROM p") == [(1,)]


def test_a_schema_changing_mid_stream_adds_and_widens_and_echoes_the_state_once(run_target, db):
    narrow = {"id": ID, "amount": {"type": "string", "format": "singer.decimal", "precision": 10, "scale": 2}}
    wider = {**narrow, "amount": {**narrow["amount"], "precision": 20}, "note": NAME}
    result = ok(
        load(
            run_target,
            db.config(),
            schema("c", narrow),
            *recs("c", {"id": 1, "amount": "12345678.91"}),
            schema("c", wider),
            *recs("c", {"id": 2, "amount": "123456789012345678.91", "note": "n"}),
            state({"s": 1}),
        )
    )
    assert result.states == [{"s": 1}]
    types = db.types("c")
    assert types["amount"] == "DECIMAL(20,2)" and types["note"] == "VARCHAR"
    assert db.rows("SELECT id, amount::VARCHAR, note FROM c ORDER BY id") == [
        (1, "12345678.91", None),
        (2, "123456789012345678.91", "n"),
    ]


@pytest.mark.parametrize("failure", ["bad_value_in_staging", "check_violation_in_insert"])
def test_a_new_column_is_not_added_when_the_load_it_came_with_fails(run_target, db, failure):
    if failure == "bad_value_in_staging":
        ok(
            load(
                run_target, db.config(add_record_metadata=False), schema("p", BASE), *recs("p", {"id": 1, "name": "a"})
            )
        )
        bad = {"id": 3, "name": "c", "age": "not-a-number"}
    else:
        # A constraint the table's owner added: the INSERT fails after the ALTER ran in its transaction.
        db.execute("CREATE TABLE p (id BIGINT, name VARCHAR CHECK (name <> 'bad'))", "INSERT INTO p VALUES (1, 'a')")
        bad = {"id": 3, "name": "bad", "age": 1}
    before = db.columns("p")
    result = load(
        run_target,
        db.config(add_record_metadata=False),
        schema("p", WITH_AGE),
        *recs("p", {"id": 2, "name": "b", "age": 30}, bad),
        state({"s": 2}),
    )
    stopped(result)
    if failure != "bad_value_in_staging":
        assert "CHECK constraint failed" in result.stderr
    assert result.states == []
    assert db.columns("p") == before
    assert db.rows("SELECT id, name FROM p") == [(1, "a")]


def test_routing_away_from_a_not_null_column_makes_it_nullable(run_target, db):
    db.execute("CREATE TABLE m (id BIGINT, v BIGINT NOT NULL)", "INSERT INTO m VALUES (1, 7)")
    config = db.config(on_type_change="new_column", add_record_metadata=False)
    result = load(run_target, config, schema("m", STR_V), *recs("m", {"id": 2, "v": "two"}), state({"s": 1}))
    assert result.rc == 0, result.stderr
    assert db.rows(f'SELECT id, v, "{NC}v" FROM m ORDER BY id') == [(1, 7, None), (2, None, "two")]
    assert ("v", "BIGINT", "YES") in db.columns("m")
