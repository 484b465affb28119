"""target-duckdb's own cases: types, exact numbers, names and schemas, and its in-line commits.

Load methods, deletes, versions, schema drift, BATCH, bad input, state after commit and crashes are
the shared suite's (tests/kit/target_suite.py, run by test_target_duckdb_suite.py)."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path

import duckdb
import orjson
import pytest

from dpone.targets.duckdb.target import DuckDBTarget
from tests.conftest import lines, record, schema, state

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def rows(db: Path, sql: str) -> list[tuple]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "t.duckdb"


def people(*pairs: tuple[int, str], stream: str = "people", **extra) -> list[dict]:
    return [record(stream, {"id": i, "name": n}, **extra) for i, n in pairs]


def test_all_types_round_trip(run_target, db):
    props = {
        "id": {"type": "integer"},
        "big": {"type": "integer"},
        "f": {"type": "number"},
        "dec": {"type": "string", "format": "singer.decimal"},
        "exact": {"type": "number", "multipleOf": 0.0001, "maximum": 1e10},
        "flag": {"type": "boolean"},
        "ts": {"type": "string", "format": "date-time"},
        "d": {"type": "string", "format": "date"},
        "t": {"type": "string", "format": "time"},
        "u": {"type": "string", "format": "uuid"},
        "obj": {"type": "object"},
        "arr": {"type": "array", "items": {"type": "integer"}},
        "txt": {"type": "string"},
    }
    value = {
        "id": 1,
        "big": 9223372036854775807,
        "f": 1.5e-7,
        "dec": "1234567890.125",
        "exact": 12345.6789,
        "flag": True,
        "ts": "2024-02-29T23:59:59.123456+05:30",
        "d": "2024-02-29",
        "t": "12:34:56",
        "u": "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11",
        "obj": {"k": [1, {"x": None}]},
        "arr": [3, 2, 1],
        "txt": "quote ' and \" and emoji \U0001f600 and tab\t",
    }
    nulls = {k: None for k in props} | {"id": 2}
    result = run_target(
        DuckDBTarget,
        {"filepath": str(db), "add_record_metadata": False},
        lines(schema("types", props), record("types", value), record("types", nulls)),
    )
    assert result.rc == 0, result.stderr
    (got,) = rows(db, "SELECT * FROM types WHERE id = 1")
    assert got[1] == 9223372036854775807
    # A plain number and a decimal without precision are DOUBLE (unbounded_numbers: double) holding each
    # value exactly; a value a double would round stops the load (tests/contract/test_target_duckdb_types.py).
    assert got[2] == 1.5e-7
    assert got[3] == 1234567890.125
    types = "SELECT data_type FROM duckdb_columns() WHERE table_name = 'types' AND column_name IN ('f', 'dec')"
    assert rows(db, types) == [("DOUBLE",), ("DOUBLE",)]
    assert got[4] == decimal.Decimal("12345.6789")
    assert got[5] is True
    assert got[6] == dt.datetime(2024, 2, 29, 18, 29, 59, 123456, tzinfo=dt.UTC)
    assert got[7] == dt.date(2024, 2, 29) and got[8] == dt.time(12, 34, 56)
    assert str(got[9]) == value["u"]
    assert orjson.loads(got[10]) == value["obj"] and orjson.loads(got[11]) == [3, 2, 1]
    assert got[12] == value["txt"]
    assert rows(db, "SELECT count(*) FROM types WHERE id = 2 AND ts IS NULL AND obj IS NULL") == [(1,)]


def test_state_is_echoed_as_soon_as_a_batch_commits(run_target, db):
    """The suite checks that no state goes out early; DuckDB commits in line, so none goes out late either."""
    config = {"filepath": str(db), "batch_size_rows": 3}
    data = lines(
        schema("people", PROPS),
        *people((1, "a")),
        state({"n": 1}),
        *people((2, "b")),
        state({"n": 2}),
        *people((3, "c")),
        state({"n": 3}),
        *people((4, "d")),
    )
    result = run_target(DuckDBTarget, config, data)
    # n=1 and n=2 arrived with rows pending; the third row filled the batch, the commit let
    # the latest pending state (n=2) out, then n=3 was echoed at once (nothing uncommitted).
    assert result.states == [{"n": 2}, {"n": 3}]
    assert rows(db, "SELECT count(*) FROM people") == [(4,)]


def test_table_name_map_and_target_schema(run_target, db):
    config = {"filepath": str(db), "default_target_schema": "raw", "table_name_map": {"people": "persons"}}
    assert run_target(DuckDBTarget, config, lines(schema("people", PROPS), *people((1, "a")))).rc == 0
    assert rows(db, "SELECT id FROM raw.persons") == [(1,)]


@pytest.mark.parametrize("numbers", ["varchar", "decimal"])
def test_json_numbers_beyond_float_precision_load_exactly(run_target, db, numbers):
    props = {
        "id": {"type": "integer"},
        "amount": {"type": "number", "multipleOf": 1e-18},
        "huge": {"type": "integer", "minimum": -1e30, "maximum": 1e30},
    }
    data = (
        lines(schema("exact", props))
        + b'{"type":"RECORD","stream":"exact","record":{"id":1,"amount":12345678901234567890.123456789012345678,'
        b'"huge":123456789012345678901234567890}}\n'
    )
    config = {"filepath": str(db), "add_record_metadata": False}
    result = run_target(DuckDBTarget, config, data)  # the default DOUBLE would round them: it stops
    assert result.rc == 65 and "line 2, stream 'exact', column 'amount': " in result.stderr
    result = run_target(DuckDBTarget, {**config, "unbounded_numbers": numbers}, data)
    assert result.rc == 0, result.stderr
    (row,) = rows(db, "SELECT amount::VARCHAR, huge::VARCHAR FROM exact")
    assert row == ("12345678901234567890.123456789012345678", "123456789012345678901234567890")
