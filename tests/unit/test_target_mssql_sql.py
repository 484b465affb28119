"""Every statement target-mssql can generate, for every type, option and schema change, parsed by
sqlglot's T-SQL grammar (no error, no Command node, a stable round trip); and the type rules."""

from __future__ import annotations

import itertools

import pytest

from dpone.targets.framework.schema_evolution import (
    DestinationColumn,
    Evolution,
    change_statements,
    plan_schema,
)
from dpone.targets.mssql.ddl import DESCRIBE_TABLE, SCHEMA_EXISTS, SESSION_OPTIONS, MssqlSql
from dpone.targets.mssql.type_map import (
    NUMBER_MODES,
    TIMESTAMP_MODES,
    casts,
    dialect,
    holds,
    mssql_type,
    normalize,
    widens,
)
from dpone_protocol.json_schema import ColumnType, Logical
from tests.tools import tsql

EVERY_COLUMN = {
    "s": ColumnType(Logical.STRING),
    "s10": ColumnType(Logical.STRING, max_length=10),
    "s4000": ColumnType(Logical.STRING, max_length=4000),
    "s4001": ColumnType(Logical.STRING, max_length=4001),
    "i": ColumnType(Logical.INTEGER),
    "n": ColumnType(Logical.NUMBER),
    "f": ColumnType(Logical.NUMBER, bits=64),
    "d": ColumnType(Logical.DECIMAL, precision=30, scale=10),
    "d_wide": ColumnType(Logical.DECIMAL, precision=60, scale=20),
    "d_free": ColumnType(Logical.DECIMAL),
    "b": ColumnType(Logical.BOOLEAN),
    "ts": ColumnType(Logical.TIMESTAMP),
    "day": ColumnType(Logical.DATE),
    "tm": ColumnType(Logical.TIME),
    "u": ColumnType(Logical.UUID),
    "bin": ColumnType(Logical.STRING, binary=True),
    "o": ColumnType(Logical.OBJECT),
    "a": ColumnType(Logical.ARRAY),
    "j": ColumnType(Logical.JSON),
    "odd ]name[": ColumnType(Logical.STRING),  # brackets in a name are doubled
}
OPTIONS = list(itertools.product(NUMBER_MODES, TIMESTAMP_MODES))


def types(numbers: str, timestamps: str) -> dict[str, str]:
    return {name: mssql_type(col, numbers, timestamps) for name, col in EVERY_COLUMN.items()}


@pytest.mark.parametrize(("numbers", "timestamps"), OPTIONS)
def test_tables_of_every_type_parse(numbers: str, timestamps: str) -> None:
    sql = MssqlSql()
    columns = types(numbers, timestamps)
    statements = [
        sql.create_table("[dbo].[t]", columns),
        sql.create_table("[dbo].[t]", columns, ["i", "s10"]),
        sql.create_table("[#_dpone_stage_t]", columns, temp=True),
        sql.create_table("[##_dpone_stage_t_0a1b2c3d]", columns, temp=True),
        sql.insert_values("[#_dpone_stage_t]", columns),
        *(sql.add_column("[dbo].[t]", name, type_) for name, type_ in columns.items()),
        *(sql.alter_type("[dbo].[t]", name, type_) for name, type_ in columns.items()),
        *(sql.drop_not_null("[dbo].[t]", name, type_) for name, type_ in columns.items()),
        sql.json_check("[dbo].[t]", "o"),
    ]
    for statement in statements:
        tsql.check(statement)
    assert "[odd ]]name[]" in statements[0]


@pytest.mark.parametrize("hard", [False, True])
@pytest.mark.parametrize("keys", [["id"], ["id", "odd ]key"]])
def test_moves_swaps_and_versions_parse(hard: bool, keys: list[str]) -> None:
    sql = MssqlSql()
    columns = [*keys, "v", "_sdc_deleted_at", "_sdc_table_version"]
    statements = [
        *sql.merge("[dbo].[t]", "[#s]", columns, keys, hard),
        *sql.merge("[dbo].[t]", "[#s]", keys, keys, hard),  # a table of only its key: nothing to update
        sql.insert("[dbo].[t]", "[#s]", columns),
        sql.insert("[dbo].[t]", "[#s]", columns, "[_sdc_deleted_at] IS NULL"),
        *sql.swap("dbo", "t", "t__dpone_new"),
        *sql.swap("odd ]schema", "it's", "it's__dpone_new"),
        sql.activate_version("[dbo].[t]", 12, hard),
        sql.max_version("[dbo].[t]"),
        sql.drop_table("[#s]"),
        sql.begin,
        sql.commit,
        sql.rollback,
        *SESSION_OPTIONS,
        SCHEMA_EXISTS,
        DESCRIBE_TABLE,
        "CREATE SCHEMA [odd ]]schema]",
    ]
    for statement in statements:
        tsql.check(statement)


def test_a_merge_says_holdlock_and_ends_with_a_semicolon() -> None:
    (merge,) = MssqlSql().merge("[dbo].[t]", "[#s]", ["id", "v"], ["id"], False)
    assert merge.startswith("MERGE INTO [dbo].[t] WITH (HOLDLOCK) AS t USING [#s] AS s ON t.[id] = s.[id] ")
    assert merge.endswith(";")  # T-SQL requires it after MERGE


def test_sp_rename_takes_unicode_literals_with_quotes_doubled() -> None:
    assert MssqlSql().rename("dbo", "it's__dpone_new", "it's") == (
        "EXEC sp_rename N'[dbo].[it''s__dpone_new]', N'it''s'"
    )


# -- schema changes through the shared planner -------------------------------------------------------------
@pytest.mark.parametrize(
    ("existing", "incoming", "change"),
    [
        ("nvarchar(10)", ColumnType(Logical.STRING, max_length=40), "nvarchar(40)"),
        ("nvarchar(10)", ColumnType(Logical.STRING), "nvarchar(max)"),
        ("int", ColumnType(Logical.INTEGER), "bigint"),
        ("decimal(10,2)", ColumnType(Logical.DECIMAL, precision=20, scale=4), "decimal(20,4)"),
        ("real", ColumnType(Logical.NUMBER, bits=64), "float"),
        ("datetimeoffset(3)", ColumnType(Logical.TIMESTAMP), "datetimeoffset(6)"),
    ],
)
def test_widenings_are_altered_in_place_and_parse(existing: str, incoming: ColumnType, change: str) -> None:
    plan = plan_schema(
        "s",
        "t",
        {"c": incoming},
        [],
        {"c": DestinationColumn(existing)},
        dialect(),
        Evolution(),  # the default policy widens
    )
    statements = change_statements(plan, "[dbo].[t]", MssqlSql())
    assert statements == [f"ALTER TABLE [dbo].[t] ALTER COLUMN [c] {change}"]
    tsql.check(statements[0])


def test_a_not_null_column_is_relaxed_by_restating_its_type() -> None:
    statement = MssqlSql().drop_not_null("[dbo].[t]", "c", "bigint")
    assert statement == "ALTER TABLE [dbo].[t] ALTER COLUMN [c] bigint"  # nullable: ANSI_NULL_DFLT_ON
    tsql.check(statement)


# -- type rules ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("described", "written"),
    [
        (("nvarchar", -1, 0, 0), "nvarchar(max)"),
        (("nvarchar", 80, 0, 0), "nvarchar(40)"),
        (("varchar", 40, 0, 0), "varchar(40)"),
        (("varbinary", -1, 0, 0), "varbinary(max)"),
        (("numeric", 17, 30, 8), "decimal(30,8)"),
        (("datetimeoffset", 10, 34, 7), "datetimeoffset(7)"),
        (("datetime2", 8, 27, 6), "datetime2(6)"),
        (("time", 5, 16, 6), "time(6)"),
        (("float", 8, 53, 0), "float"),
        (("real", 4, 24, 0), "real"),
        (("BIGINT", 8, 19, 0), "bigint"),
        (("uniqueidentifier", 16, 0, 0), "uniqueidentifier"),
    ],
)
def test_described_types_are_written_as_the_type_map_writes_them(
    described: tuple[str, int, int, int], written: str
) -> None:
    assert normalize(*described) == written


@pytest.mark.parametrize(
    ("existing", "incoming", "held"),
    [
        ("bigint", "int", True),
        ("int", "bigint", False),
        ("float", "bigint", False),  # beyond 2^53 a float rounds
        ("float", "int", True),
        ("decimal(38,10)", "bigint", True),
        ("decimal(20,2)", "bigint", False),
        ("decimal(30,8)", "decimal(20,4)", True),
        ("decimal(30,8)", "decimal(30,9)", False),
        ("nvarchar(max)", "nvarchar(10)", True),
        ("nvarchar(10)", "nvarchar(max)", False),
        ("datetimeoffset(6)", "datetimeoffset(3)", True),
        ("datetimeoffset(3)", "datetimeoffset(6)", False),
        ("nvarchar(max)", "uniqueidentifier", True),
        ("bit", "bigint", False),
    ],
)
def test_holds(existing: str, incoming: str, held: bool) -> None:
    assert holds(existing, incoming) is held


def test_widens_and_casts() -> None:
    assert widens("int", "bigint") and widens("nvarchar(10)", "nvarchar(max)") and widens("real", "float")
    assert not widens("bigint", "int") and not widens("float", "decimal(38,10)")
    assert casts("bigint", "nvarchar(max)") and casts("datetimeoffset(6)", "nvarchar(max)")
    assert not casts("float", "nvarchar(max)"), "CONVERT keeps six digits of a float"


def test_the_docs_settings_table_lists_every_setting_in_order() -> None:
    import re
    from pathlib import Path

    from dpone.targets.mssql.target import MssqlTarget

    text = (Path(__file__).resolve().parents[2] / "docs" / "connectors" / "target-mssql.md").read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    assert rows == [s.name for s in MssqlTarget.all_settings()]
