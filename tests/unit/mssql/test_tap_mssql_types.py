"""tap-mssql's type map, table-driven: for every SQL Server type, the JSON Schema, what FOR JSON receives,
the value's JSON text (keys, spliced columns) and how a bookmark comes back as a parameter; then how a
row is put together (FOR JSON, floats and dotted names spliced in) and how `rows()` frames the server's
strings into RECORD lines. Every rendered statement passes the T-SQL check (sqlglot, read="tsql")."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpone.taps.framework.sql_discovery import SqlTable
from dpone.taps.mssql import cdc, change_tracking
from dpone.taps.mssql.dialect import MSSQL, MssqlDialect
from dpone.taps.mssql.render import key_json, row_json
from dpone.taps.mssql.streams import MssqlStream
from dpone.taps.mssql.tap import MssqlTap
from dpone.taps.mssql.type_map import column_spec
from dpone_drivers.sql_names import BRACKETS
from dpone_protocol.wire import record_head, record_tail
from tests.tools import tsql
from tests.tools.recording_odbc import Recorder
from tests.unit.mssql.scripted_source import ORDERS, TapRun, scripted, select

N = ["string", "null"]
NATIVE = (
    "REPLACE(STUFF((SELECT [c] AS [v] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES), 1, 5, N''), "
    "N'}', N'')"
)
STRING = "N'\"' + STRING_ESCAPE([c], 'json') + N'\"'"
# What FOR JSON sends for two rows, and their keys: escapes, non-ASCII, JSON nulls, an offset, base64.
SERVER_ROWS = [
    (
        '{"id":1,"name":"Ana \\u001f tab\\t \\"q\\" \\/ é 😀","at":"2024-01-01T10:00:00.1234567","b":"AAEC\\/w=="}',
        "[1]",
    ),
    ('{"id":2,"name":null,"at":"2024-06-30T23:59:59+05:30","b":null}', "[2]"),
]

# type, max_length, precision, scale, clr -> schema (nullable column), FOR JSON value, JSON text, parameter
TYPES: list[tuple[tuple[str, int, int, int, bool], dict[str, Any], str, str, str]] = [
    (
        ("tinyint", 1, 3, 0, False),
        {"type": ["integer", "null"], "minimum": 0, "maximum": 255},
        "[c]",
        "CONVERT(VARCHAR(20), [c])",
        "CAST(? AS TINYINT)",
    ),
    (
        ("smallint", 2, 5, 0, False),
        {"type": ["integer", "null"], "minimum": -32768, "maximum": 32767},
        "[c]",
        "CONVERT(VARCHAR(20), [c])",
        "CAST(? AS SMALLINT)",
    ),
    (
        ("int", 4, 10, 0, False),
        {"type": ["integer", "null"], "minimum": -(2**31), "maximum": 2**31 - 1},
        "[c]",
        "CONVERT(VARCHAR(20), [c])",
        "CAST(? AS INT)",
    ),
    (
        ("bigint", 8, 19, 0, False),
        {"type": ["integer", "null"], "minimum": -(2**63), "maximum": 2**63 - 1},
        "[c]",
        "CONVERT(VARCHAR(20), [c])",
        "CAST(? AS BIGINT)",
    ),
    (
        ("bit", 1, 1, 0, False),
        {"type": ["boolean", "null"]},
        "[c]",
        "CASE WHEN [c] = 1 THEN 'true' WHEN [c] = 0 THEN 'false' END",
        "CAST(? AS BIT)",
    ),
    (
        ("decimal", 17, 38, 10, False),
        {"type": N, "format": "singer.decimal", "precision": 38, "scale": 10},
        "CONVERT(VARCHAR(41), [c])",
        "N'\"' + CONVERT(VARCHAR(41), [c]) + N'\"'",
        "CAST(? AS DECIMAL(38, 10))",
    ),
    (
        ("numeric", 5, 5, 0, False),
        {"type": N, "format": "singer.decimal", "precision": 5, "scale": 0},
        "CONVERT(VARCHAR(41), [c])",
        "N'\"' + CONVERT(VARCHAR(41), [c]) + N'\"'",
        "CAST(? AS DECIMAL(5, 0))",
    ),
    (
        ("money", 8, 19, 4, False),
        {"type": N, "format": "singer.decimal", "precision": 19, "scale": 4},
        "CONVERT(VARCHAR(30), [c], 2)",
        "N'\"' + CONVERT(VARCHAR(30), [c], 2) + N'\"'",
        "CAST(? AS MONEY)",
    ),
    (
        ("smallmoney", 4, 10, 4, False),
        {"type": N, "format": "singer.decimal", "precision": 10, "scale": 4},
        "CONVERT(VARCHAR(30), [c], 2)",
        "N'\"' + CONVERT(VARCHAR(30), [c], 2) + N'\"'",
        "CAST(? AS SMALLMONEY)",
    ),
    (
        ("float", 8, 53, 0, False),
        {"type": ["number", "null"], "x-sql-datatype": "float"},
        "[c]",
        "CONVERT(VARCHAR(30), [c], 3)",
        "CAST(? AS FLOAT)",
    ),
    (
        ("real", 4, 24, 0, False),
        {"type": ["number", "null"], "x-sql-datatype": "real"},
        "[c]",
        "CONVERT(VARCHAR(30), [c], 3)",
        "CAST(? AS REAL)",
    ),
    (("char", 10, 0, 0, False), {"type": N, "maxLength": 10}, "[c]", STRING, "CAST(? AS CHAR(10))"),
    (("varchar", 20, 0, 0, False), {"type": N, "maxLength": 20}, "[c]", STRING, "CAST(? AS VARCHAR(20))"),
    (("varchar", -1, 0, 0, False), {"type": N}, "[c]", STRING, "CAST(? AS VARCHAR(MAX))"),
    (("nchar", 20, 0, 0, False), {"type": N, "maxLength": 10}, "[c]", STRING, "CAST(? AS NCHAR(10))"),
    (("nvarchar", 100, 0, 0, False), {"type": N, "maxLength": 50}, "[c]", STRING, "CAST(? AS NVARCHAR(50))"),
    (("nvarchar", -1, 0, 0, False), {"type": N}, "[c]", STRING, "CAST(? AS NVARCHAR(MAX))"),
    (("sysname", 256, 0, 0, False), {"type": N, "maxLength": 128}, "[c]", STRING, "CAST(? AS NVARCHAR(128))"),
    (
        ("text", 16, 0, 0, False),
        {"type": N},
        "CAST([c] AS VARCHAR(MAX))",
        "N'\"' + STRING_ESCAPE(CAST([c] AS VARCHAR(MAX)), 'json') + N'\"'",
        "?",
    ),
    (
        ("ntext", 16, 0, 0, False),
        {"type": N},
        "CAST([c] AS NVARCHAR(MAX))",
        "N'\"' + STRING_ESCAPE(CAST([c] AS NVARCHAR(MAX)), 'json') + N'\"'",
        "?",
    ),
    (
        ("xml", -1, 0, 0, False),
        {"type": N},
        "CAST([c] AS NVARCHAR(MAX))",
        "N'\"' + STRING_ESCAPE(CAST([c] AS NVARCHAR(MAX)), 'json') + N'\"'",
        "?",
    ),
    (("date", 3, 10, 0, False), {"type": N, "format": "date"}, "[c]", NATIVE, "CAST(? AS DATE)"),
    (("time", 5, 16, 7, False), {"type": N, "format": "time"}, "[c]", NATIVE, "CAST(? AS TIME(7))"),
    (("datetime", 8, 23, 3, False), {"type": N, "format": "date-time"}, "[c]", NATIVE, "CAST(? AS DATETIME)"),
    (("datetime2", 7, 23, 3, False), {"type": N, "format": "date-time"}, "[c]", NATIVE, "CAST(? AS DATETIME2(3))"),
    (("smalldatetime", 4, 16, 0, False), {"type": N, "format": "date-time"}, "[c]", NATIVE, "CAST(? AS SMALLDATETIME)"),
    (
        ("datetimeoffset", 10, 34, 7, False),
        {"type": N, "format": "date-time"},
        "[c]",
        NATIVE,
        "CAST(? AS DATETIMEOFFSET(7))",
    ),
    (
        ("uniqueidentifier", 16, 0, 0, False),
        {"type": N, "format": "uuid"},
        "[c]",
        "N'\"' + CONVERT(CHAR(36), [c]) + N'\"'",
        "CAST(? AS UNIQUEIDENTIFIER)",
    ),
    (
        ("binary", 16, 0, 0, False),
        {"type": N, "contentEncoding": "base64"},
        "[c]",
        NATIVE,
        "CONVERT(VARBINARY(MAX), ?, 1)",
    ),
    (
        ("varbinary", -1, 0, 0, False),
        {"type": N, "contentEncoding": "base64"},
        "[c]",
        NATIVE,
        "CONVERT(VARBINARY(MAX), ?, 1)",
    ),
    (("image", 16, 0, 0, False), {"type": N, "contentEncoding": "base64"}, "[c]", NATIVE, "?"),
    (
        ("timestamp", 8, 0, 0, False),
        {"type": ["integer", "null"], "minimum": 0, "maximum": 2**63 - 1},
        "CAST([c] AS BIGINT)",
        "CONVERT(VARCHAR(20), CAST([c] AS BIGINT))",
        "CAST(CAST(? AS BIGINT) AS BINARY(8))",
    ),
    (
        ("hierarchyid", 892, 0, 0, True),
        {"type": N},
        "[c].ToString()",
        "N'\"' + STRING_ESCAPE([c].ToString(), 'json') + N'\"'",
        "CAST(? AS HIERARCHYID)",
    ),
    (
        ("geometry", -1, 0, 0, True),
        {"type": N},
        "[c].ToString()",
        "N'\"' + STRING_ESCAPE([c].ToString(), 'json') + N'\"'",
        "?",
    ),
    (
        ("geography", -1, 0, 0, True),
        {"type": N},
        "[c].ToString()",
        "N'\"' + STRING_ESCAPE([c].ToString(), 'json') + N'\"'",
        "?",
    ),
    (
        ("sql_variant", 8016, 0, 0, False),
        {"type": N},
        "CAST([c] AS NVARCHAR(MAX))",
        "N'\"' + STRING_ESCAPE(CAST([c] AS NVARCHAR(MAX)), 'json') + N'\"'",
        "?",
    ),
    (
        ("json", -1, 0, 0, False),
        {"type": N},
        "CONVERT(NVARCHAR(MAX), [c])",
        "N'\"' + STRING_ESCAPE(CONVERT(NVARCHAR(MAX), [c]), 'json') + N'\"'",
        "?",
    ),
]


@pytest.mark.parametrize(
    ("declared", "schema", "value", "text", "param"), TYPES, ids=[t[0][0] + str(t[0][1]) for t in TYPES]
)
def test_each_type_renders_as_its_schema_promises(
    declared: tuple[str, int, int, int, bool], schema: dict[str, Any], value: str, text: str, param: str
) -> None:
    type_name, length, precision, scale, clr = declared
    column = column_spec("c", type_name, length, precision, scale, True, clr)
    assert column.schema == schema
    assert column.expression == column.value_at("") == value
    assert column.text_at("") == text
    assert column.param == param
    # Each piece is T-SQL that sqlglot reads back unchanged, in a query as the tap puts it.
    tsql.check(f"SELECT {column.value_at('s')}, {column.text_at('s')}, {column.key_at('s')} FROM t AS s")
    tsql.check(f"SELECT 1 FROM t AS s WHERE s.[c] > {param}")


def test_not_null_columns_are_not_nullable_and_keys_of_binary_go_as_hex() -> None:
    assert column_spec("c", "int", 4, 10, 0, False).schema["type"] == "integer"
    binary = column_spec("c", "varbinary", 16, 0, 0, False)
    assert binary.key_at("s") == "N'\"' + CONVERT(VARCHAR(MAX), s.[c], 1) + N'\"'"  # CONVERT style 1 reads it back
    assert binary.text_at("s") != binary.key_at("s")  # the record keeps base64


def test_an_alias_type_and_an_odd_name_are_rendered_safely() -> None:
    # A column named like the subquery's alias, with a closing bracket in it.
    column = column_spec("v]x", "datetime2", 8, 27, 7)
    assert column.value_at("s") == "s.[v]]x]"
    assert "(SELECT s.[v]]x] AS [v] FOR JSON PATH" in column.text_at("s")
    tsql.check(f"SELECT {column.text_at('s')} FROM t AS s")


def _table(*columns: tuple[str, str]) -> MssqlDialect:
    specs = [column_spec(name, kind, 8, 53 if kind == "float" else 10, 0) for name, kind in columns]
    return MSSQL.for_table(SqlTable("dbo", "t", "table", 1, BRACKETS.qualified("dbo", "t"), columns=list(specs)))


def test_floats_and_dotted_names_are_spliced_after_the_for_json_object() -> None:
    dialect = _table(("id", "int"), ("ratio", "float"), ("a.b", "int"))
    rendered = [(dialect.column_sql(dialect.by_name[n], "_dpone_src"), n) for n in ("id", "ratio", "a.b")]
    select, joins = dialect.row_json(rendered)
    assert joins == (
        " CROSS APPLY (SELECT (SELECT _dpone_src.[id] AS [id] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, "
        "INCLUDE_NULL_VALUES) AS [j]) AS _dpone_row"
    )
    assert select == (
        "STUFF(_dpone_row.[j], LEN(_dpone_row.[j]), 1, "
        "N',\"ratio\":' + ISNULL(CONVERT(VARCHAR(30), _dpone_src.[ratio], 3), N'null') + "
        "N',\"a.b\":' + ISNULL(CONVERT(VARCHAR(20), _dpone_src.[a.b]), N'null') + N'}')"
    )
    tsql.check(f"SELECT {select}, {dialect.key_json(['_dpone_src.[id]'])} FROM [dbo].[t] AS _dpone_src{joins}")


def test_a_row_of_spliced_columns_only_and_an_empty_row() -> None:
    select, joins = row_json([], [("CONVERT(VARCHAR(30), s.[f], 3)", "f")])
    assert (select, joins) == (
        "CAST(N'{' AS NVARCHAR(MAX)) + N'\"f\":' + ISNULL(CONVERT(VARCHAR(30), s.[f], 3), N'null') + N'}'",
        "",
    )
    tsql.check(f"SELECT {select} FROM t AS s")
    assert row_json([], []) == ("N'{}'", "")
    assert key_json([]) == "N'[null]'"


def test_property_names_are_escaped_in_the_splice() -> None:
    select, _ = row_json([], [("s.[x]", 'say "hi"\\ it\'s')])
    assert select.startswith("CAST(N'{' AS NVARCHAR(MAX)) + N'\"say \\\"hi\\\"\\\\ it''s\":'")
    tsql.check(f"SELECT {select} FROM t AS s")


def test_rows_joins_each_rows_strings_into_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    recorder = Recorder().install(monkeypatch)
    recorder.on("FROM", SERVER_ROWS)
    conn = recorder.module().connect("DSN=x", autocommit=True)
    with MSSQL.rows(conn, "SELECT 1 FROM t", []) as rows:
        lines = list(rows)
    assert lines == [f"{row}\x1f{key}".encode() for row, key in SERVER_ROWS]
    assert [c.sql for c in recorder.calls if c.kind == "execute"] == ["SELECT 1 FROM t"]


def test_the_servers_json_text_becomes_exactly_the_record_lines(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """FOR JSON's text (escapes, non-ASCII, nulls, offsets, base64) goes out byte for byte, never re-encoded."""
    recorder = scripted(monkeypatch)
    recorder.on(r"FROM \[dbo\]\.\[orders\]", SERVER_ROWS)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS))
    assert run.rc == 0, run.stderr
    record_lines = [line + b"\n" for line in run.stdout.splitlines() if line.startswith(b'{"type":"RECORD"')]
    extracted = run.of_type("RECORD")[0]["time_extracted"]
    version = run.of_type("RECORD")[0]["version"]
    tail = record_tail(extracted, version)
    assert record_lines == [record_head(ORDERS) + row.encode() + tail for row, _ in SERVER_ROWS]


def test_change_queries_with_spliced_columns_are_valid_tsql() -> None:
    """A float key and a dotted name in CDC and Change Tracking queries: both row objects get their CROSS APPLY."""
    columns = [
        column_spec("k", "float", 8, 53, 0, False),
        column_spec("a.b", "nvarchar", 20),
        column_spec("n", "int", 4),
    ]
    table = SqlTable("dbo", "m", "table", 1, "[dbo].[m]", columns=list(columns), primary_key=["k"])
    stream = MssqlTap({}).make_stream(table)
    assert isinstance(stream, MssqlStream)
    names = ["k", "a.b", "n"]
    for sql in (cdc.changes_sql(stream, "dbo_m", names), change_tracking.changes_sql(stream, names)):
        assert "CROSS APPLY (SELECT (SELECT" in sql and ") AS _dpone_row CROSS APPLY" in sql and "AS _dpone_key" in sql
        tsql.check(sql)
