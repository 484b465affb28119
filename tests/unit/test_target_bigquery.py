"""target-bigquery without a server: its type map, name rules, settings and docs page."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dpone.targets.bigquery.ddl import SQL, TableOptions
from dpone.targets.bigquery.rows import unfit
from dpone.targets.bigquery.target import BigQueryTarget
from dpone.targets.bigquery.type_map import bigquery_type, column_key, column_name, holds, widens
from dpone_protocol.errors import ConfigError
from dpone_protocol.json_schema import column_type

DOC = Path(__file__).resolve().parents[2] / "docs" / "connectors" / "target-bigquery.md"


@pytest.mark.parametrize(
    ("schema", "numbers", "expected"),
    [
        ({"type": "integer"}, "bignumeric", "INT64"),
        ({"type": "integer", "minimum": 0, "maximum": 10**30}, "bignumeric", "BIGNUMERIC"),
        ({"type": "number"}, "bignumeric", "BIGNUMERIC"),
        ({"type": "number"}, "string", "STRING"),
        ({"type": "number"}, "float64", "FLOAT64"),
        ({"type": "number", "format": "double"}, "bignumeric", "FLOAT64"),
        ({"type": "number", "multipleOf": 0.01, "maximum": 1e9}, "bignumeric", "NUMERIC"),
        ({"type": "string", "format": "singer.decimal", "precision": 38, "scale": 9}, "string", "NUMERIC"),
        ({"type": "string", "format": "singer.decimal", "precision": 76, "scale": 38}, "numeric", "BIGNUMERIC"),
        ({"type": "string", "format": "singer.decimal", "precision": 80, "scale": 2}, "string", "STRING"),
        ({"type": "string", "format": "date-time"}, "bignumeric", "TIMESTAMP"),
        ({"type": "string", "format": "date"}, "bignumeric", "DATE"),
        ({"type": "string", "format": "time"}, "bignumeric", "TIME"),
        ({"type": "boolean"}, "bignumeric", "BOOL"),
        ({"type": "object"}, "bignumeric", "JSON"),
        ({}, "bignumeric", "JSON"),
        ({"type": "array", "items": {"type": "string"}}, "bignumeric", "ARRAY<STRING>"),
        ({"type": "array", "items": {"type": ["null", "string"]}}, "bignumeric", "JSON"),
        ({"type": "array", "items": {"type": "object"}}, "bignumeric", "JSON"),
    ],
)
def test_type_map(schema: dict[str, object], numbers: str, expected: str) -> None:
    assert bigquery_type(column_type(schema), numbers) == expected


def test_widenings_keep_every_value() -> None:
    assert widens("INT64", "NUMERIC") and widens("INT64", "BIGNUMERIC") and widens("NUMERIC", "BIGNUMERIC")
    assert not widens("INT64", "FLOAT64") and not widens("NUMERIC", "FLOAT64") and not widens("BIGNUMERIC", "NUMERIC")
    assert holds("NUMERIC", "INT64") and holds("ARRAY<NUMERIC>", "ARRAY<INT64>") and not holds("STRING", "INT64")


def test_names() -> None:
    assert column_name("Hello World!") == "Hello_World_"
    assert column_name("1st") == "_1st" and column_name("") == "_"
    assert column_name("_PARTITIONTIME") == "_dpone_PARTITIONTIME" and column_name("_file_x") == "_dpone_file_x"
    long = column_name("a" * 400)
    assert len(long) == 300 and long != column_name("a" * 401)
    assert column_key("Id") == column_key("id")


def test_merge_names_every_column_and_deletes_on_request() -> None:
    (merge,) = SQL.merge("`p`.`d`.`t`", "`p`.`d`.`s`", ["id", "name", "_sdc_deleted_at"], ["id"], True)
    assert "WHEN MATCHED AND s.`_sdc_deleted_at` IS NOT NULL THEN DELETE" in merge
    assert "INSERT (`id`, `name`, `_sdc_deleted_at`) VALUES (s.`id`, s.`name`, s.`_sdc_deleted_at`)" in merge
    assert "INSERT ROW" not in merge


def test_table_options_are_checked() -> None:
    options = TableOptions.for_stream({"table_options": {"ev-*": {"partition_by": "ts", "cluster_by": "c"}}}, "ev-1")
    assert options.cluster_by == ("c",)
    options.check("ev-1", {"ts": "TIMESTAMP", "c": "STRING"})
    with pytest.raises(ConfigError, match="cluster_by"):
        options.check("ev-1", {"ts": "TIMESTAMP", "c": "JSON"})
    with pytest.raises(ConfigError, match="unknown keys"):
        TableOptions.for_stream({"table_options": {"x": {"partition": "ts"}}}, "x")


def test_unfit_names_the_record_and_column() -> None:
    records = [{"id": 1, "ok": True}, {"id": 2, "ok": "yes"}]
    found = unfit("s", {"id": "INT64", "ok": "BOOL"}, ["id"], records)
    assert found == "stream 's', record 2 of the batch (id=2), column 'ok': 'yes' is not a value a BOOL column holds"
    assert unfit("s", {"a": "ARRAY<INT64>"}, [], [{"a": [1, None]}]) is not None


def test_the_docs_settings_table_lists_every_setting_in_order() -> None:
    text = DOC.read_text()
    section = text.split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    assert rows == [s.name for s in BigQueryTarget.all_settings()]
