"""Which existing columns hold incoming types, and which ALTERs are lossless, per dialect."""

from __future__ import annotations

import pytest

from dpone_protocol.json_schema import ColumnType, Logical
from targets.duckdb import type_map as duck
from targets.postgres import type_map as pg


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
        (ColumnType(Logical.DECIMAL), "DECIMAL(38,9)", "numeric"),
        (ColumnType(Logical.DECIMAL, precision=60, scale=2), "VARCHAR", "numeric(60,2)"),
        (ColumnType(Logical.TIMESTAMP), "TIMESTAMP WITH TIME ZONE", "timestamp with time zone"),
        (ColumnType(Logical.OBJECT), "JSON", "jsonb"),
        (ColumnType(Logical.UUID), "UUID", "uuid"),
    ],
)
def test_logical_to_dialect_types(column, duck_type, pg_type):
    assert duck.duckdb_type(column) == duck_type
    assert pg.pg_type(column) == pg_type
