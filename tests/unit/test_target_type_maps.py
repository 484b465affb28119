"""Which existing columns hold incoming types, and which ALTERs are lossless, per dialect."""

from __future__ import annotations

import pytest

from dpone.targets.duckdb import type_map as duck
from dpone.targets.postgres import type_map as pg
from dpone_protocol.errors import ConfigError
from dpone_protocol.json_schema import ColumnType, Logical, column_type


@pytest.mark.parametrize(
    ("existing", "incoming", "holds", "widens"),
    [
        ("BIGINT", "BIGINT", True, True),
        ("DOUBLE", "BIGINT", False, False),  # a BIGINT beyond 2^53 would be rounded
        ("DOUBLE", "INTEGER", True, False),
        ("BIGINT", "DOUBLE", False, False),  # never altered: doubles round beyond 2^53
        ("BIGINT", "DECIMAL(38,9)", False, True),
        ("DECIMAL(10,2)", "DECIMAL(12,3)", False, True),
        ("DECIMAL(12,3)", "DECIMAL(10,2)", True, False),
        ("VARCHAR", "BOOLEAN", True, False),
        ("BOOLEAN", "BIGINT", False, False),
        ("DATE", "TIMESTAMP WITH TIME ZONE", False, True),
        ("BIGINT", "JSON", False, False),
    ],
)
def test_duckdb_rules(existing, incoming, holds, widens):
    assert duck.holds(existing, incoming) is holds
    assert duck.widens(existing, incoming) is widens


@pytest.mark.parametrize(
    ("existing", "incoming", "holds", "widens"),
    [
        ("integer", "bigint", False, True),
        ("bigint", "numeric", False, True),
        ("bigint", "double precision", False, False),
        ("integer", "double precision", False, True),
        ("double precision", "bigint", False, False),
        ("double precision", "integer", True, False),
        ("numeric(10,2)", "numeric(12,3)", False, True),
        ("character varying(10)", "character varying(50)", False, True),
        ("character varying(50)", "text", False, True),
        ("text", "bigint", True, False),
        ("boolean", "bigint", False, False),
        ("date", "timestamp with time zone", False, True),
        ("json", "jsonb", False, True),
    ],
)
def test_postgres_rules(existing, incoming, holds, widens):
    assert pg.holds(existing, incoming) is holds
    assert pg.widens(existing, incoming) is widens


@pytest.mark.parametrize(
    ("column", "duck_type", "pg_type"),
    [
        (ColumnType(Logical.STRING, max_length=12), "VARCHAR", "character varying(12)"),
        (ColumnType(Logical.INTEGER, bits=32), "BIGINT", "bigint"),
        (ColumnType(Logical.DECIMAL, precision=20, scale=4), "DECIMAL(20,4)", "numeric(20,4)"),
        # DuckDB: a DOUBLE that stops on a value it would round (unbounded_numbers: double, the default)
        (ColumnType(Logical.DECIMAL), "DOUBLE", "numeric"),
        (ColumnType(Logical.DECIMAL, precision=60, scale=2), "DOUBLE", "numeric(60,2)"),
        (ColumnType(Logical.TIMESTAMP), "TIMESTAMP WITH TIME ZONE", "timestamp with time zone"),
        (ColumnType(Logical.OBJECT), "JSON", "jsonb"),
        (ColumnType(Logical.UUID), "UUID", "uuid"),
    ],
)
def test_logical_to_dialect_types(column, duck_type, pg_type):
    assert duck.duckdb_type(column) == duck_type
    assert pg.pg_type(column) == pg_type


@pytest.mark.parametrize(
    ("existing", "incoming", "holds", "widens"),
    [
        ("numeric", "double precision", True, False),  # JSON numbers go in as written
        ("double precision", "numeric", False, False),  # float -> numeric keeps 15 digits of each value
        ("real", "numeric", False, False),
        ("bigint", "numeric", False, True),
        ("real", "double precision", False, True),
    ],
)
def test_postgres_float_and_numeric_rules(existing, incoming, holds, widens):
    assert pg.holds(existing, incoming) is holds
    assert pg.widens(existing, incoming) is widens


@pytest.mark.parametrize(
    ("schema", "bits", "numeric", "double"),
    [
        ({"type": ["number", "null"]}, None, "numeric", "double precision"),
        ({"type": "number", "x-sql-datatype": "double precision"}, 64, "double precision", "double precision"),
        ({"type": "number", "x-sql-datatype": "REAL"}, 32, "double precision", "double precision"),
        ({"type": "number", "format": "double"}, 64, "double precision", "double precision"),
        ({"type": "number", "format": "float"}, 32, "double precision", "double precision"),
        ({"type": ["integer", "number"]}, None, "numeric", "double precision"),
        ({"anyOf": [{"type": "number", "format": "double"}, {"type": "number"}]}, None, "numeric", "double precision"),
    ],
)
def test_postgres_number_lands_exact_unless_declared_a_float(schema, bits, numeric, double):
    column = column_type(schema)
    assert column.logical is Logical.NUMBER and column.bits == bits
    assert pg.pg_type(column) == numeric
    assert pg.dialect("double precision").column_type(column) == double


def test_postgres_number_type_setting_is_checked():
    with pytest.raises(ConfigError, match="number_type"):
        pg.dialect("float")
