"""target-duckdb: load strategies, deletes, versions, types, schema drift, BATCH, state after commit."""

from __future__ import annotations

import datetime as dt
import decimal
import gzip
from pathlib import Path

import duckdb
import orjson
import pytest

from targets.duckdb.target import DuckDBTarget
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


def test_upsert_merges_on_key_and_is_idempotent(run_target, db):
    data = lines(schema("people", PROPS), *people((1, "a"), (2, "b"), (1, "a2")), state({"s": 1}))
    config = {"filepath": str(db)}
    for _ in range(2):
        result = run_target(DuckDBTarget, config, data)
        assert result.rc == 0, result.stderr
        assert result.states == [{"s": 1}]
        assert rows(db, "SELECT id, name FROM people ORDER BY id") == [(1, "a2"), (2, "b")]


def test_append_only_keeps_every_row(run_target, db):
    data = lines(schema("people", PROPS), *people((1, "a"), (1, "b")))
    config = {"filepath": str(db), "load_method": "append-only"}
    run_target(DuckDBTarget, config, data)
    run_target(DuckDBTarget, config, data)
    assert rows(db, "SELECT count(*) FROM people") == [(4,)]


def test_overwrite_replaces_by_swap_and_holds_state_until_swapped(run_target, db):
    config = {"filepath": str(db), "load_method": "overwrite", "batch_size_rows": 2}
    run_target(DuckDBTarget, config, lines(schema("people", PROPS), *people((1, "old"), (2, "old"), (3, "old"))))
    data = lines(
        schema("people", PROPS),
        *people((7, "new"), (8, "new")),
        state({"mid": 1}),
        *people((9, "new")),
        state({"end": 1}),
    )
    result = run_target(DuckDBTarget, config, data)
    assert result.rc == 0, result.stderr
    # The mid-stream state covered rows that were only in the shadow table: never echoed.
    assert result.states == [{"end": 1}]
    assert rows(db, "SELECT id FROM people ORDER BY id") == [(7,), (8,), (9,)]
    assert rows(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name LIKE '%dpone%'") == [(0,)]


def test_overwrite_with_no_rows_empties_the_table(run_target, db):
    config = {"filepath": str(db), "load_method": "overwrite"}
    run_target(DuckDBTarget, config, lines(schema("people", PROPS), *people((1, "a"))))
    run_target(DuckDBTarget, config, lines(schema("people", PROPS)))
    assert rows(db, "SELECT count(*) FROM people") == [(0,)]


@pytest.mark.parametrize("hard", [False, True])
def test_activate_version_soft_and_hard(run_target, db, hard):
    config = {"filepath": str(db), "hard_delete": hard}
    run_target(DuckDBTarget, config, lines(schema("people", PROPS), *people((1, "a"), (2, "b"), version=1)))
    data = lines(
        schema("people", PROPS),
        *people((2, "b2"), version=2),
        {"type": "ACTIVATE_VERSION", "stream": "people", "version": 2},
    )
    assert run_target(DuckDBTarget, config, data).rc == 0
    live = rows(db, "SELECT id FROM people WHERE _sdc_deleted_at IS NULL ORDER BY id")
    assert live == [(2,)]
    total = rows(db, "SELECT count(*) FROM people")[0][0]
    assert total == (1 if hard else 2)


@pytest.mark.parametrize("hard", [False, True])
def test_cdc_delete_records(run_target, db, hard):
    config = {"filepath": str(db), "hard_delete": hard}
    run_target(DuckDBTarget, config, lines(schema("people", PROPS), *people((1, "a"), (2, "b"))))
    deleted = record("people", {"id": 1, "name": "a", "_sdc_deleted_at": "2024-05-01T00:00:00+00:00"})
    assert run_target(DuckDBTarget, config, lines(schema("people", PROPS), deleted)).rc == 0
    if hard:
        assert rows(db, "SELECT id FROM people") == [(2,)]
    else:
        assert rows(db, "SELECT id, _sdc_deleted_at IS NOT NULL FROM people ORDER BY id") == [(1, True), (2, False)]


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


def test_new_column_mid_stream_is_added_and_earlier_rows_kept(run_target, db):
    wider = {**PROPS, "age": {"type": ["integer", "null"]}}
    data = lines(
        schema("people", PROPS),
        *people((1, "a")),
        schema("people", wider),
        record("people", {"id": 2, "name": "b", "age": 30}),
    )
    assert run_target(DuckDBTarget, {"filepath": str(db)}, data).rc == 0
    assert rows(db, "SELECT id, age FROM people ORDER BY id") == [(1, None), (2, 30)]


def test_widening_integer_to_decimal_is_applied(run_target, db):
    config = {"filepath": str(db)}
    run_target(
        DuckDBTarget,
        config,
        lines(schema("m", {"id": {"type": "integer"}, "v": {"type": "integer"}}), record("m", {"id": 1, "v": 5})),
    )
    wider = {
        "id": {"type": "integer"},
        "v": {"type": "string", "format": "singer.decimal", "precision": 38, "scale": 9},
    }
    result = run_target(DuckDBTarget, config, lines(schema("m", wider), record("m", {"id": 2, "v": "1.25"})))
    assert result.rc == 0, result.stderr
    assert rows(db, "SELECT id, v FROM m ORDER BY id") == [(1, decimal.Decimal(5)), (2, decimal.Decimal("1.25"))]


def test_incompatible_type_change_stops_with_a_clear_message(run_target, db):
    config = {"filepath": str(db)}
    run_target(
        DuckDBTarget,
        config,
        lines(schema("m", {"id": {"type": "integer"}, "v": {"type": "boolean"}}), record("m", {"id": 1, "v": True})),
    )
    changed = {"id": {"type": "integer"}, "v": {"type": "integer"}}
    result = run_target(DuckDBTarget, config, lines(schema("m", changed), record("m", {"id": 2, "v": 3})))
    assert result.rc == 65
    assert "column 'v': is BOOLEAN" in result.stderr and "BIGINT" in result.stderr
    assert rows(db, "SELECT id FROM m") == [(1,)]


def test_bad_value_fails_the_batch_leaves_table_and_state_unchanged(run_target, db):
    config = {"filepath": str(db), "batch_size_rows": 2}
    data = lines(
        schema("people", PROPS),
        *people((1, "a"), (2, "b")),
        state({"after": 2}),
        record("people", {"id": 3, "name": "c"}),
        record("people", {"id": "not-a-number", "name": "d"}),
        state({"after": 4}),
    )
    result = run_target(DuckDBTarget, config, data)
    assert result.rc == 65
    assert "line 6, stream 'people', column 'id': 'not-a-number' is not an integer" in result.stderr
    assert result.states == [{"after": 2}]
    assert rows(db, "SELECT id FROM people ORDER BY id") == [(1,), (2,)]


def test_state_is_echoed_only_after_the_records_before_it_commit(run_target, db):
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


def test_malformed_json_names_the_line(run_target, db):
    data = lines(schema("people", PROPS), *people((1, "a"))) + b"{not json\n"
    result = run_target(DuckDBTarget, {"filepath": str(db)}, data)
    assert result.rc == 65
    assert "line 3" in result.stderr and "malformed JSON" in result.stderr
    assert result.states == []


def test_unknown_message_type_and_unknown_stream(run_target, db):
    result = run_target(DuckDBTarget, {"filepath": str(db)}, b'{"type": "RECORDZ", "stream": "x"}\n')
    assert result.rc == 65 and "unknown message type 'RECORDZ'" in result.stderr
    result = run_target(
        DuckDBTarget, {"filepath": str(db)}, lines({"type": "ACTIVATE_VERSION", "stream": "ghost", "version": 1})
    )
    assert result.rc == 65 and "'ghost'" in result.stderr


def test_batch_messages_jsonl_gzip_and_parquet(run_target, db, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    gz = tmp_path / "part-1.jsonl.gz"
    with gzip.open(gz, "wb") as fh:
        fh.write(b"".join(orjson.dumps({"id": i, "name": f"n{i}"}) + b"\n" for i in range(1, 4)))
    pq_file = tmp_path / "part-2.parquet"
    pq.write_table(pa.table({"id": [4, 5], "name": ["n4", "n5"]}), pq_file)
    data = lines(
        schema("people", PROPS),
        {
            "type": "BATCH",
            "stream": "people",
            "encoding": {"format": "jsonl", "compression": "gzip"},
            "manifest": [gz.as_uri()],
        },
        {
            "type": "BATCH",
            "stream": "people",
            "encoding": {"format": "parquet", "compression": None},
            "manifest": [str(pq_file)],
        },
        state({"batches": 2}),
    )
    result = run_target(DuckDBTarget, {"filepath": str(db)}, data)
    assert result.rc == 0, result.stderr
    assert result.states == [{"batches": 2}]
    assert [r[0] for r in rows(db, "SELECT id FROM people ORDER BY id")] == [1, 2, 3, 4, 5]


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
