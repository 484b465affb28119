"""target-duckdb keeps every value exactly, or stops naming the input line and the column (DESIGN rule 7).

Numbers DuckDB's DECIMAL cannot declare follow `unbounded_numbers`; JSON documents keep their
numbers' text; dates and timestamps beyond what DuckDB reads the way PostgreSQL writes them are
converted (BC) or stop the load (past DuckDB's range, or digits DuckDB would drop).
"""

from __future__ import annotations

import datetime as dt
import decimal
import math
import os
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone.targets.duckdb import type_map, values
from dpone.targets.duckdb.target import DuckDBTarget
from dpone_protocol.json_schema import ColumnType, Logical, column_type
from tests.conftest import lines, record, schema

ID = {"type": "integer"}
DECIMAL = {"type": ["string", "null"], "format": "singer.decimal"}


def rows(db: Path, sql: str) -> list[tuple[Any, ...]]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return conn.execute(sql).fetchall()


def column_types(db: Path, table: str) -> dict[str, str]:
    with duckdb.connect(str(db), read_only=True) as conn:
        return dict(
            conn.execute(f"SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = '{table}'").fetchall()
        )


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "t.duckdb"


def load(run_target: Any, db: Path, props: dict[str, Any], *values: dict[str, Any], **config: Any) -> Any:
    data = lines(schema("s", {"id": ID, **props}), *(record("s", {"id": i, **v}) for i, v in enumerate(values, 1)))
    return run_target(DuckDBTarget, {"filepath": str(db), "add_record_metadata": False, **config}, data)


def ok(result: Any) -> Any:
    assert result.rc == 0, result.stderr
    return result


def stopped(result: Any) -> str:
    """The one error line of a run that stopped on bad data (exit 65)."""
    assert result.rc == 65, result.stderr
    (line,) = [x for x in result.stderr.splitlines() if x.startswith("target-duckdb: data error:")]
    return str(line)


# -- the type map -------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schema_", "double", "varchar", "decimal_"),
    [
        (DECIMAL, "DOUBLE", "VARCHAR", "DECIMAL(38,9)"),
        ({**DECIMAL, "precision": 12, "scale": 4}, "DECIMAL(12,4)", "DECIMAL(12,4)", "DECIMAL(12,4)"),
        ({**DECIMAL, "precision": 60, "scale": 2}, "DOUBLE", "VARCHAR", "DECIMAL(38,2)"),
        ({**DECIMAL, "precision": 5, "scale": -2}, "DECIMAL(7,0)", "DECIMAL(7,0)", "DECIMAL(7,0)"),
        ({**DECIMAL, "precision": 2, "scale": 5}, "DECIMAL(5,5)", "DECIMAL(5,5)", "DECIMAL(5,5)"),
        ({"type": "number"}, "DOUBLE", "VARCHAR", "DECIMAL(38,9)"),
        ({"type": ["integer", "number"]}, "DOUBLE", "VARCHAR", "DECIMAL(38,9)"),
        ({"type": "number", "x-sql-datatype": "double precision"}, "DOUBLE", "DOUBLE", "DOUBLE"),
        ({"type": "number", "format": "float"}, "FLOAT", "FLOAT", "FLOAT"),
        ({"type": "number", "x-sql-datatype": "real"}, "FLOAT", "FLOAT", "FLOAT"),
        ({"type": "number", "multipleOf": 0.01}, "DOUBLE", "VARCHAR", "DECIMAL(38,2)"),
        ({"type": "number", "multipleOf": 0.01, "maximum": 99999}, "DECIMAL(7,2)", "DECIMAL(7,2)", "DECIMAL(7,2)"),
        ({"type": "integer", "minimum": -1e30, "maximum": 1e30}, "DOUBLE", "VARCHAR", "DECIMAL(38,0)"),
    ],
)
def test_numbers_map_to_a_type_holding_every_value_under_each_setting(schema_, double, varchar, decimal_):
    column = column_type(schema_)
    assert type_map.duckdb_type(column) == double  # the default: a DOUBLE that stops on what it would round
    assert type_map.dialect("double").column_type(column) == double
    assert type_map.dialect("double_rounded").column_type(column) == double
    assert type_map.dialect("varchar").column_type(column) == varchar
    assert type_map.dialect("decimal").column_type(column) == decimal_


def test_the_default_is_a_double_that_stops_rather_than_rounds():
    assert type_map.DEFAULT_NUMBERS == "double"
    assert type_map.NUMBER_MODES == ("double", "varchar", "decimal", "double_rounded")
    setting = {s.name: s for s in DuckDBTarget.all_settings()}["unbounded_numbers"]
    assert setting.default == "double" and setting.choices == type_map.NUMBER_MODES


def test_a_float_column_widens_to_double_and_nothing_else_becomes_a_float():
    assert type_map.widens("FLOAT", "DOUBLE") and type_map.widens("REAL", "DOUBLE")
    assert not type_map.widens("DOUBLE", "FLOAT") and not type_map.widens("BIGINT", "DOUBLE")


def test_a_double_column_made_by_an_older_version_keeps_taking_plain_numbers():
    assert type_map.keeps("DOUBLE", ColumnType(Logical.NUMBER)) is not None
    assert type_map.keeps("DECIMAL(38,9)", ColumnType(Logical.DECIMAL)) is None


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (decimal.Decimal("1E-10"), "0.0000000001"),
        (decimal.Decimal("1.10"), "1.10"),
        (decimal.Decimal("-0.0"), "-0.0"),
        (decimal.Decimal("1E+400"), "1E+400"),  # not 401 characters
        (decimal.Decimal("NaN"), "NaN"),
        (decimal.Decimal("-Infinity"), "-Infinity"),
        (123456789012345678901234567890, "123456789012345678901234567890"),
        (0.1, "0.1"),
        (float("inf"), "Infinity"),
        ("1e-10", "1e-10"),  # a singer.decimal string stays as sent
    ],
)
def test_a_number_kept_as_text_is_its_exact_text(value, text):
    assert values.number_as_text(value) == text


@pytest.mark.parametrize("value", ["1_000", " 1", "0x10", "", True, [1]])
def test_only_numbers_go_into_a_number_text_column(value):
    with pytest.raises(ValueError, match="is not a number"):
        values.number_as_text(value)


def test_unknown_unbounded_numbers_setting_is_a_config_error(run_target, db):
    result = load(run_target, db, {"v": DECIMAL}, {"v": "1"}, unbounded_numbers="float")
    assert result.rc == 78 and "unbounded_numbers" in result.stderr


# -- numbers: the default, a DOUBLE that takes only what it gives back ---------------------------------------


def raw(run_target: Any, db: Path, texts: list[str], prop: dict[str, Any] | None = None, **config: Any) -> Any:
    """A stream whose column `n` gets each of `texts` as written on the wire (lines 2, 3...)."""
    data = lines(schema("s", {"id": ID, "n": prop or {"type": ["number", "null"]}}))
    for i, text in enumerate(texts, 1):
        data += b'{"type":"RECORD","stream":"s","record":{"id":%d,"n":%s}}\n' % (i, text.encode())
    return run_target(DuckDBTarget, {"filepath": str(db), "add_record_metadata": False, **config}, data)


def bits(value: float) -> bytes:
    return struct.pack("<d", value)


# Wire text -> the double DuckDB must hold, bit for bit.
EXACT_DOUBLES = [
    ("12.5", 12.5),
    ("0.1", 0.1),
    ("0.30000000000000004", 0.30000000000000004),
    ("1e-300", 1e-300),
    ("5e-324", 5e-324),  # the smallest subnormal
    ("2.2250738585072014e-308", 2.2250738585072014e-308),
    ("1.7976931348623157e308", 1.7976931348623157e308),
    ("1.10", 1.1),  # the same number; a DOUBLE keeps no trailing zero
    ("1E+2", 100.0),
    ("-0.0", -0.0),  # negative zero stays negative
    ("9007199254740992", 2.0**53),
    ("-9007199254740992", -(2.0**53)),
    ("9007199254740994", 2.0**53 + 2),  # beyond 2**53, an integer a double holds
    ("9223372036854775808", 2.0**63),  # 2**63: a power of two
    ("18446744073709551616", 2.0**64),
    ("10000000000000000000000", 1e22),
    ('"NaN"', math.nan),
    ('"Infinity"', math.inf),
    ('"-Infinity"', -math.inf),
    ('"1.5"', 1.5),  # a number sent as a string
]


def test_the_default_stores_what_a_double_gives_back_exactly(run_target, db):
    ok(raw(run_target, db, [text for text, _ in EXACT_DOUBLES]))
    assert column_types(db, "s")["n"] == "DOUBLE"
    got = [r[0] for r in rows(db, "SELECT n FROM s ORDER BY id")]
    assert [bits(v) for v in got] == [bits(v) for _, v in EXACT_DOUBLES]
    assert rows(db, "SELECT sum(n) FROM s WHERE id <= 3") == [(12.5 + 0.1 + 0.30000000000000004,)]  # sums work


def test_the_default_stores_a_decimal_without_precision_as_a_double_when_exact(run_target, db):
    ok(raw(run_target, db, ['"1234.56"', '"-0.5"', '"0.000001"', '"NaN"'], DECIMAL))
    assert column_types(db, "s")["n"] == "DOUBLE"
    got = [r[0] for r in rows(db, "SELECT n FROM s ORDER BY id")]
    assert got[:3] == [1234.56, -0.5, 0.000001] and math.isnan(got[3])


@pytest.mark.parametrize(
    ("text", "shown"),
    [
        ("123456789012.345678", "123456789012.345678"),  # 18 significant digits
        ("0.12345678901234567890", "0.12345678901234567890"),
        ("0.33333333333333333333", "0.33333333333333333333"),
        ("9007199254740993", "9007199254740993"),  # 2**53 + 1
        ("-9007199254740993", "-9007199254740993"),
        ("9223372036854775807", "9223372036854775807"),  # 2**63 - 1
        ("123456789012345678901234567890", "123456789012345678901234567890"),
        ("1e400", "1E+400"),  # beyond a double's range
        ("1e-400", "1E-400"),  # below its smallest subnormal
        ("2.5e-324", "2.5E-324"),  # would round to zero
        ('"0.12345678901234567890"', "'0.12345678901234567890'"),
    ],
)
def test_the_default_stops_on_a_value_a_double_would_round(run_target, db, text, shown):
    line = stopped(raw(run_target, db, ["1", text]))
    assert line == (
        f"target-duckdb: data error: line 3, stream 's', column 'n': {shown} would be rounded by a DOUBLE column "
        "(unbounded_numbers: varchar keeps every number as text)"
    )
    assert rows(db, "SELECT count(*) FROM duckdb_tables() WHERE table_name = 's'") == [(0,)]  # nothing left behind
    # The setting the message names keeps every digit; double_rounded rounds as the user asked.
    ok(raw(run_target, db, ["1", text], unbounded_numbers="varchar"))
    ((kept,),) = rows(db, "SELECT n FROM s WHERE id = 2")
    assert decimal.Decimal(kept) == decimal.Decimal(text.strip('"'))


def test_the_default_stops_on_a_decimal_string_a_double_would_round(run_target, db):
    line = stopped(raw(run_target, db, ['"1.5"', '"12345678901234567890.123456789"'], DECIMAL))
    assert line == (
        "target-duckdb: data error: line 3, stream 's', column 'n': '12345678901234567890.123456789' would be "
        "rounded by a DOUBLE column (unbounded_numbers: varchar keeps every number as text)"
    )


def test_double_rounded_takes_what_the_default_stops_on(run_target, db):
    ok(raw(run_target, db, ["123456789012.345678", "9007199254740993", "1e-400"], unbounded_numbers="double_rounded"))
    assert column_types(db, "s")["n"] == "DOUBLE"
    assert rows(db, "SELECT n FROM s ORDER BY id") == [(123456789012.34568,), (9007199254740992.0,), (0.0,)]


@pytest.mark.parametrize(
    ("value", "double"),
    [
        (decimal.Decimal("12.5"), 12.5),
        (decimal.Decimal("0.30000000000000004"), 0.30000000000000004),
        (decimal.Decimal("0.1000000000000000055511151231257827021181583404541015625"), 0.1),  # the double's own value
        (decimal.Decimal("5e-324"), 5e-324),
        (decimal.Decimal(2**63), 2.0**63),
        (2**53, 2**53),
        (-(2**53), -(2**53)),
        (2**63, 2.0**63),
        ("1e-300", 1e-300),
        (0.1, 0.1),  # a float is already a double
    ],
)
def test_exact_double_passes_what_a_double_holds(value, double):
    got = values.exact_double(value)
    assert got == double and type(got) is type(double)


def test_exact_double_keeps_negative_zero_and_passes_nan_and_infinity_as_text():
    assert bits(values.exact_double(decimal.Decimal("-0.0"))) == bits(-0.0)
    assert values.exact_double(decimal.Decimal("NaN")) == "NaN"
    assert values.exact_double("-Infinity") == "-Infinity"


@pytest.mark.parametrize(
    "value",
    [
        decimal.Decimal("123456789012.345678"),
        decimal.Decimal("0.12345678901234567890"),
        2**53 + 1,
        2**63 - 1,
        decimal.Decimal(2**63 - 1),
        decimal.Decimal("1e400"),
        decimal.Decimal("1e-400"),
        10**400,  # an integer no double reaches
        "0.12345678901234567890",
    ],
)
def test_exact_double_stops_on_what_a_double_would_round(value):
    with pytest.raises(ValueError, match=r"would be rounded by a DOUBLE column \(unbounded_numbers: varchar"):
        values.exact_double(value)


@pytest.mark.parametrize("value", ["abc", "0x10", True, [1]])
def test_exact_double_takes_only_numbers(value):
    with pytest.raises(ValueError, match="is not a number"):
        values.exact_double(value)


# -- numbers: the other settings ----------------------------------------------------------------------------

UNBOUNDED = [
    "0.0000000001",
    "123456789012345678901234567890",
    "-9999999999999999999999999999999999999999.000000000000000000000000000001",
    "0.00000000000000000000000000000000000000000000000001",
    "NaN",
    "Infinity",
    "-Infinity",
    "1.10",
]


def test_unconstrained_decimals_keep_every_digit_and_nan_and_infinity(run_target, db):
    ok(load(run_target, db, {"v": DECIMAL}, *({"v": v} for v in UNBOUNDED), unbounded_numbers="varchar"))
    assert column_types(db, "s")["v"] == "VARCHAR"
    assert [r[0] for r in rows(db, "SELECT v FROM s ORDER BY id")] == UNBOUNDED


def test_plain_json_numbers_keep_their_digits(run_target, db):
    data = lines(schema("s", {"id": ID, "n": {"type": ["number", "null"]}, "u": {"type": ["string", "number"]}}))
    data += (
        b'{"type":"RECORD","stream":"s","record":{"id":1,"n":0.33333333333333333333,"u":0.33333333333333333333}}\n'
        b'{"type":"RECORD","stream":"s","record":{"id":2,"n":123456789012345678901234567890.123456789,"u":"x"}}\n'
        b'{"type":"RECORD","stream":"s","record":{"id":3,"n":-0.0,"u":12}}\n'
    )
    config = {"filepath": str(db), "add_record_metadata": False, "unbounded_numbers": "varchar"}
    ok(run_target(DuckDBTarget, config, data))
    assert rows(db, "SELECT n, u FROM s ORDER BY id") == [
        ("0.33333333333333333333", "0.33333333333333333333"),
        ("123456789012345678901234567890.123456789", "x"),
        ("-0.0", "12"),
    ]
    assert rows(db, "SELECT sum(n::DECIMAL(38,20)) FROM s WHERE id = 1") == [
        (decimal.Decimal("0.33333333333333333333"),)
    ]


def test_a_declared_float_is_a_double(run_target, db):
    double = {"type": ["number", "null"], "x-sql-datatype": "double precision"}
    ok(load(run_target, db, {"f": double}, {"f": 3.141592653589793}, {"f": "NaN"}, {"f": -1.7976931348623157e308}))
    assert column_types(db, "s")["f"] == "DOUBLE"
    got = [r[0] for r in rows(db, "SELECT f FROM s ORDER BY id")]
    assert got[0] == 3.141592653589793 and got[1] != got[1] and got[2] == -1.7976931348623157e308


def test_decimal_setting_stores_decimal_38_9_and_stops_on_what_it_cannot_hold(run_target, db):
    ok(
        load(
            run_target,
            db,
            {"v": DECIMAL},
            {"v": "1.000000001"},
            {"v": "-12345678901234567890123456789"},
            unbounded_numbers="decimal",
        )
    )
    assert column_types(db, "s")["v"] == "DECIMAL(38,9)"
    assert rows(db, "SELECT v::VARCHAR FROM s ORDER BY id") == [
        ("1.000000001",),
        ("-12345678901234567890123456789.000000000",),
    ]
    for value, why in [
        ("0.0000000001", "'0.0000000001' has 10 decimal places; DECIMAL(38,9) keeps 9 and would round it"),
        ("123456789012345678901234567890", "has 30 digits before the point; DECIMAL(38,9) holds 29"),
        ("NaN", "'NaN' does not fit DECIMAL(38,9): a DuckDB DECIMAL holds no NaN or Infinity"),
    ]:
        line = stopped(load(run_target, db, {"v": DECIMAL}, {"v": "1"}, {"v": value}, unbounded_numbers="decimal"))
        assert line.startswith("target-duckdb: data error: line 3, stream 's', column 'v': ") and why in line
        assert "unbounded_numbers: varchar" in line
    assert rows(db, "SELECT count(*) FROM s") == [(2,)]  # each stopped batch left the table as it was


def test_double_rounded_setting_rounds_as_asked(run_target, db):
    data = lines(schema("s", {"id": ID, "v": DECIMAL, "n": {"type": ["number", "null"]}})) + (
        b'{"type":"RECORD","stream":"s","record":{"id":1,"v":"0.1","n":0.33333333333333333333}}\n'
        b'{"type":"RECORD","stream":"s","record":{"id":2,"v":"NaN","n":123456789012.345678}}\n'
        b'{"type":"RECORD","stream":"s","record":{"id":3,"v":"9007199254740993","n":0.12345678901234567890}}\n'
    )
    config = {"filepath": str(db), "add_record_metadata": False, "unbounded_numbers": "double_rounded"}
    ok(run_target(DuckDBTarget, config, data))
    assert column_types(db, "s")["v"] == "DOUBLE" and column_types(db, "s")["n"] == "DOUBLE"
    got = rows(db, "SELECT v, n FROM s ORDER BY id")
    assert got[0] == (0.1, 0.3333333333333333)
    assert got[1][0] != got[1][0] and got[1][1] == 123456789012.34568
    assert got[2] == (9007199254740992.0, 0.12345678901234568)


def test_declared_decimals_stop_instead_of_rounding(run_target, db):
    money = {**DECIMAL, "precision": 10, "scale": 2}
    ok(load(run_target, db, {"m": money}, {"m": "12345678.90"}, {"m": "1.50000"}, {"m": 7}))
    assert rows(db, "SELECT m::VARCHAR FROM s ORDER BY id") == [("12345678.90",), ("1.50",), ("7.00",)]
    cases = [
        ("0.001", "'0.001' has 3 decimal places; DECIMAL(10,2) keeps 2 and would round it"),
        ("123456789", "'123456789' has 9 digits before the point; DECIMAL(10,2) holds 8"),
        ("NaN", "'NaN' does not fit DECIMAL(10,2): a DuckDB DECIMAL holds no NaN or Infinity"),
        ("abc", "'abc' is not a number"),
    ]
    for value, why in cases:
        line = stopped(load(run_target, db, {"m": money}, {"m": "1"}, {"m": value}))
        assert line == f"target-duckdb: data error: line 3, stream 's', column 'm': {why}"
    assert rows(db, "SELECT count(*) FROM s") == [(3,)]


def test_a_fraction_in_an_integer_column_stops_instead_of_rounding(run_target, db):
    line = stopped(load(run_target, db, {"i": {"type": "integer"}}, {"i": 1}, {"i": 1.5}))
    assert line == "target-duckdb: data error: line 3, stream 's', column 'i': 1.5 is not an integer"
    ok(load(run_target, db, {"i": {"type": "integer"}}, {"i": 3.0}, {"i": "42"}))
    assert rows(db, "SELECT i FROM s ORDER BY id") == [(3,), (42,)]


def test_an_older_double_column_keeps_taking_plain_numbers(run_target, db):
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE s (id BIGINT, n DOUBLE)")
    ok(load(run_target, db, {"n": {"type": "number"}}, {"n": 0.5}, {"n": 0.1}))
    assert column_types(db, "s")["n"] == "DOUBLE" and rows(db, "SELECT n FROM s ORDER BY id") == [(0.5,), (0.1,)]
    # The default checks what goes into it as it would a column it made.
    line = stopped(raw(run_target, db, ["2.5", "0.12345678901234567890"]))
    assert line == (
        "target-duckdb: data error: line 3, stream 's', column 'n': 0.12345678901234567890 would be rounded by a "
        "DOUBLE column (unbounded_numbers: varchar keeps every number as text)"
    )
    assert column_types(db, "s")["n"] == "DOUBLE" and rows(db, "SELECT n FROM s ORDER BY id") == [(0.5,), (0.1,)]


def test_a_double_column_is_not_kept_under_a_setting_that_keeps_digits(run_target, db):
    """Under varchar (or decimal) a DOUBLE column would round what the setting was chosen to keep."""
    ok(raw(run_target, db, ["1.5"]))
    assert column_types(db, "s")["n"] == "DOUBLE"
    line = stopped(raw(run_target, db, ["0.12345678901234567890"], unbounded_numbers="varchar"))
    assert "column 'n': is DOUBLE in the table but the stream now sends VARCHAR" in line
    cast = {"on_type_change": "cast"}
    ok(raw(run_target, db, ["2.5", "0.12345678901234567890"], unbounded_numbers="varchar", schema_evolution=cast))
    assert rows(db, "SELECT n FROM s ORDER BY id") == [("2.5",), ("0.12345678901234567890",)]


def test_a_fraction_for_an_integer_wider_than_64_bits_is_not_rounded_on_the_way(run_target, db):
    wide = {"type": "integer", "minimum": -1e30, "maximum": 1e30}
    line = stopped(raw(run_target, db, ["1", "0.12345678901234567890"], wide))
    assert "line 3, stream 's', column 'n': 0.12345678901234567890 would be rounded" in line


def test_an_older_decimal_38_9_column_stops_unless_the_decimal_setting_is_chosen(run_target, db):
    with duckdb.connect(str(db)) as conn:
        conn.execute("CREATE TABLE s (id BIGINT, v DECIMAL(38,9))")
    line = stopped(load(run_target, db, {"v": DECIMAL}, {"v": "1.5"}))
    assert "column 'v': is DECIMAL(38,9) in the table but the stream now sends DOUBLE" in line
    line = stopped(load(run_target, db, {"v": DECIMAL}, {"v": "1.5"}, unbounded_numbers="varchar"))
    assert "column 'v': is DECIMAL(38,9) in the table but the stream now sends VARCHAR" in line
    ok(load(run_target, db, {"v": DECIMAL}, {"v": "1.5"}, unbounded_numbers="decimal"))
    assert rows(db, "SELECT v::VARCHAR FROM s") == [("1.500000000",)]


# -- JSON ---------------------------------------------------------------------------------------------------


def test_json_columns_keep_the_numbers_text(run_target, db):
    props = {"j": {}, "o": {"type": "object"}, "a": {"type": "array"}}
    data = lines(schema("s", {"id": ID, **props})) + (
        b'{"type":"RECORD","stream":"s","record":{"id":1,"j":{"a":0.33333333333333333333},'
        b'"o":{"b":123456789012345678901234567890.123456789,"z":-0.0},"a":[1.10,1e400]}}\n'
    )
    ok(run_target(DuckDBTarget, {"filepath": str(db), "add_record_metadata": False}, data))
    (got,) = rows(db, "SELECT j::VARCHAR, o::VARCHAR, a::VARCHAR FROM s")
    assert got[0] == '{"a":0.33333333333333333333}'
    assert got[1] == '{"b":123456789012345678901234567890.123456789,"z":-0.0}'
    assert got[2] == "[1.10," + "1" + "0" * 400 + "]"
    assert column_types(db, "s")["o"] == "JSON"


def test_a_record_larger_than_read_jsons_default_object_size_loads(run_target, db):
    big = "x" * (50 * 1024 * 1024)
    ok(load(run_target, db, {"t": {"type": "string"}, "j": {"type": "object"}}, {"t": big, "j": {"k": big[:1000]}}))
    assert rows(db, "SELECT length(t) FROM s") == [(len(big),)]


# -- dates and times ----------------------------------------------------------------------------------------


def test_bc_dates_and_timestamps_land_as_the_same_day_and_instant(run_target, db):
    props = {"d": {"type": "string", "format": "date"}, "ts": {"type": "string", "format": "date-time"}}
    values = [
        {"d": "0044-03-15 BC", "ts": "0044-03-15T12:00:00+00:00 BC"},
        {"d": "4713-01-01 BC", "ts": "4713-01-01T00:00:00 BC"},
        {"d": "294276-12-31", "ts": "infinity"},
        {"d": "-infinity", "ts": "-infinity"},
    ]
    ok(load(run_target, db, props, *values))
    # The same days as PostgreSQL counts them (1 BC is year 0, a leap year) are checked against a real
    # server in tests/service/test_duckdb_round_trip.py.
    assert rows(db, "SELECT d::VARCHAR, ts::VARCHAR FROM s ORDER BY id") == [
        ("0044-03-15 (BC)", "0044-03-15 (BC) 12:00:00+00"),
        ("4713-01-01 (BC)", "4713-01-01 (BC) 00:00:00+00"),
        ("294276-12-31", "infinity"),
        ("-infinity", "-infinity"),
    ]


def test_timestamps_beyond_duckdbs_range_stop_naming_line_and_column(run_target, db):
    line = stopped(
        load(
            run_target,
            db,
            {"ts": {"type": "string", "format": "date-time"}},
            {"ts": "2024-01-01T00:00:00Z"},
            {"ts": "294276-12-31T23:59:59.999999+00:00"},
        )
    )
    assert line.startswith(
        "target-duckdb: data error: line 3, stream 's', column 'ts': '294276-12-31T23:59:59.999999+00:00' does not fit "
        "TIMESTAMP WITH TIME ZONE (timestamp field value out of range"
    )
    assert "dpone-duckdb-" not in line  # the staging file is no business of the reader


def test_digits_duckdb_would_drop_stop_the_load(run_target, db):
    ts = {"type": "string", "format": "date-time"}
    line = stopped(load(run_target, db, {"ts": ts}, {"ts": "2024-01-01T00:00:00.123456789Z"}))
    assert "line 2, stream 's', column 'ts': '2024-01-01T00:00:00.123456789Z' has digits beyond microseconds" in line
    ok(load(run_target, db, {"ts": ts}, {"ts": "2024-01-01T00:00:00.123456000Z"}))
    time = {"type": "string", "format": "time"}
    line = stopped(load(run_target, db, {"t": time}, {"t": "12:00:00+02:00"}))
    assert (
        "line 2, stream 's', column 't': '12:00:00+02:00' has a UTC offset, which a DuckDB TIME does not keep" in line
    )


def test_a_value_duckdb_refuses_names_the_input_line_and_column(run_target, db):
    props = {"d": {"type": ["string", "null"], "format": "date"}, "b": {"type": ["boolean", "null"]}}
    line = stopped(load(run_target, db, props, {"d": "2024-01-01"}, {"d": "2024-01-02"}, {"b": "maybe"}))
    assert line.startswith("target-duckdb: data error: line 4, stream 's', column 'b': 'maybe' does not fit BOOLEAN")
    line = stopped(load(run_target, db, props, {"d": "2024-01-01"}, {"d": "not a date"}))
    assert line.startswith("target-duckdb: data error: line 3, stream 's', column 'd': 'not a date' does not fit DATE")


def test_dates_and_date_times_without_offset_are_utc_whatever_the_machines_zone(tmp_path, db):
    config = tmp_path / "c.json"
    config.write_bytes(orjson.dumps({"filepath": str(db), "add_record_metadata": False}))
    target = str(Path(sys.executable).parent / "target-duckdb")
    for kind, value in [("date-time", "2024-01-02T03:04:05"), ("date", "2024-01-03")]:
        # The second SCHEMA sends dates into the date-time column: each becomes midnight UTC.
        data = lines(
            schema("s", {"id": ID, "ts": {"type": "string", "format": kind}}), record("s", {"id": 1, "ts": value})
        )
        done = subprocess.run(
            [target, "--config", str(config)],
            input=data,
            capture_output=True,
            env={**os.environ, "TZ": "Europe/Paris"},
            check=False,
        )
        assert done.returncode == 0, done.stderr.decode()
        assert rows(db, "SELECT epoch(ts)::BIGINT FROM s") == [
            (int(dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC).timestamp()),)
        ]
