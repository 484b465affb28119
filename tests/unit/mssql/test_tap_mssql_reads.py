"""tap-mssql's table reads on the recording driver: the exact T-SQL of FULL_TABLE (and its resume after a
two-column key, spelled out with repeated parameters), INCREMENTAL and ROWVERSION (bounded by
MIN_ACTIVE_ROWVERSION read first), the RECORDs framed from the server's JSON text, and the STATE."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.unit.mssql.scripted_source import (
    LINES,
    ORDERS,
    ORDERS_KEY,
    ORDERS_RECORDS,
    ORDERS_ROW,
    ORDERS_ROWS,
    TapRun,
    error_line,
    executed,
    last_bookmark,
    records,
    scripted,
    select,
)

ORDERS_SQL = f"SELECT {ORDERS_ROW}, {ORDERS_KEY} FROM [dbo].[orders] AS _dpone_src"


def test_full_table_reads_in_key_order_and_frames_the_servers_json(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"FROM \[dbo\]\.\[orders\]", ORDERS_ROWS)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS), state_every_rows=2)
    assert run.rc == 0, run.stderr
    ((sql, params),) = executed(recorder, "[dbo].[orders]")
    assert sql == f"{ORDERS_SQL} ORDER BY _dpone_src.[id]"
    assert params == ()
    assert records(run) == ORDERS_RECORDS
    kinds = [m["type"] for m in run.messages]
    assert kinds == ["SCHEMA", "ACTIVATE_VERSION", "RECORD", "RECORD", "STATE", "RECORD", "ACTIVATE_VERSION", "STATE"]
    version = run.messages[1]["version"]
    assert run.states[0]["bookmarks"][ORDERS] == {"version": version, "last_pk": [2]}
    assert last_bookmark(run, ORDERS) == {"version": version}  # complete: no resume point


def test_full_table_resumes_after_a_two_column_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"FROM \[dbo\]\.\[order_lines\]", [('{"order_id":7,"line_no":3,"sku":"A-1"}', "[7,3]")])
    tap = TapRun(tmp_path)
    state = {"bookmarks": {LINES: {"version": 1700000000000, "last_pk": [7, 2]}}}
    run = tap.sync(select(tap.discover(), LINES), state)
    assert run.rc == 0, run.stderr
    ((sql, params),) = executed(recorder, "[dbo].[order_lines]")
    key = (
        "N'[' + ISNULL(CONVERT(VARCHAR(20), _dpone_src.[order_id]), N'null') + N',' + "
        "ISNULL(CONVERT(VARCHAR(20), _dpone_src.[line_no]), N'null') + N']'"
    )
    assert sql == (
        "SELECT (SELECT _dpone_src.[order_id] AS [order_id], _dpone_src.[line_no] AS [line_no], "
        "_dpone_src.[sku] AS [sku] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES), "
        f"{key} FROM [dbo].[order_lines] AS _dpone_src "
        "WHERE (_dpone_src.[order_id] > CAST(? AS INT) OR "
        "(_dpone_src.[order_id] = CAST(? AS INT) AND _dpone_src.[line_no] > CAST(? AS SMALLINT))) "
        "ORDER BY _dpone_src.[order_id], _dpone_src.[line_no]"
    )
    assert params == (7, 7, 2)
    assert records(run) == [{"order_id": 7, "line_no": 3, "sku": "A-1"}]
    # The same table version goes on, and the read is complete.
    assert {m["version"] for m in run.of_type("RECORD")} == {1700000000000}
    assert last_bookmark(run, LINES) == {"version": 1700000000000}


def test_incremental_reads_at_or_after_the_bookmark_in_the_columns_type(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = scripted(monkeypatch)
    rows = [
        (row, f'["{at}"]')
        for (row, _), at in zip(ORDERS_ROWS[1:], ["2024-01-02T09:30:00.1234567", "2024-01-03T00:00:00"], strict=True)
    ]
    recorder.on(r"FROM \[dbo\]\.\[orders\]", rows)
    tap = TapRun(tmp_path)
    catalog = select(tap.discover(), ORDERS, "INCREMENTAL", **{"replication-key": "updated_at"})
    state = {"bookmarks": {ORDERS: {"replication_key": "updated_at", "replication_key_value": "2024-01-02T00:00:00"}}}
    run = tap.sync(catalog, state)
    assert run.rc == 0, run.stderr
    ((sql, params),) = executed(recorder, "[dbo].[orders]")
    # The key's text is the one FOR JSON gives the value, cut out of a one-property object.
    key = (
        "N'[' + ISNULL(REPLACE(STUFF((SELECT _dpone_src.[updated_at] AS [v] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, "
        "INCLUDE_NULL_VALUES), 1, 5, N''), N'}', N''), N'null') + N']'"
    )
    assert sql == (
        f"SELECT {ORDERS_ROW}, {key} FROM [dbo].[orders] AS _dpone_src "
        "WHERE _dpone_src.[updated_at] >= CAST(? AS DATETIME2(7)) ORDER BY _dpone_src.[updated_at]"
    )
    assert params == ("2024-01-02T00:00:00",)
    assert records(run) == ORDERS_RECORDS[1:]
    assert last_bookmark(run, ORDERS) == {
        "replication_key": "updated_at",
        "replication_key_value": "2024-01-03T00:00:00",
    }


def test_rowversion_reads_past_the_bookmark_below_the_oldest_active_rowversion(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"MIN_ACTIVE_ROWVERSION", [(2004,)])
    recorder.on(r"FROM \[dbo\]\.\[orders\]", [(row, f"[{2001 + i}]") for i, (row, _) in enumerate(ORDERS_ROWS)])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "ROWVERSION"), {"bookmarks": {ORDERS: {"rowversion": 2000}}})
    assert run.rc == 0, run.stderr
    statements = [c.sql for c in recorder.calls if c.kind == "execute"]
    bound, read = statements[-2:]
    assert bound == "SELECT CAST(MIN_ACTIVE_ROWVERSION() AS BIGINT)"  # read first: the run's upper bound
    ((sql, params),) = executed(recorder, "[dbo].[orders]")
    assert (
        sql
        == read
        == (
            f"SELECT {ORDERS_ROW}, "
            "N'[' + ISNULL(CONVERT(VARCHAR(20), CAST(_dpone_src.[rv] AS BIGINT)), N'null') + N']' "
            "FROM [dbo].[orders] AS _dpone_src "
            "WHERE _dpone_src.[rv] > CAST(CAST(? AS BIGINT) AS BINARY(8)) "
            "AND _dpone_src.[rv] < CAST(CAST(? AS BIGINT) AS BINARY(8)) ORDER BY _dpone_src.[rv]"
        )
    )
    assert params == (2000, 2004)
    assert records(run) == ORDERS_RECORDS
    assert last_bookmark(run, ORDERS) == {"rowversion": 2003}


def test_rowversion_first_run_and_a_run_with_nothing_new_keep_a_true_bookmark(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"MIN_ACTIVE_ROWVERSION", [(2004,)])
    tap = TapRun(tmp_path)
    catalog = select(tap.discover(), ORDERS, "ROWVERSION")
    first = tap.sync(catalog)
    assert first.rc == 0, first.stderr
    ((sql, params),) = executed(recorder, "[dbo].[orders]")
    assert "WHERE _dpone_src.[rv] < CAST(CAST(? AS BIGINT) AS BINARY(8)) ORDER BY" in sql and params == (2004,)
    assert last_bookmark(first, ORDERS) == {}  # no row yet: nothing to bookmark
    again = tap.sync(catalog, {"bookmarks": {ORDERS: {"rowversion": 2003}}})
    assert last_bookmark(again, ORDERS) == {"rowversion": 2003}


def test_rowversion_needs_a_rowversion_column(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    scripted(monkeypatch)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), LINES, "ROWVERSION"))
    assert run.rc == 78
    assert run.messages == []  # planned before any SCHEMA
    assert error_line(run) == (
        "tap-mssql: config error: stream 'dbo-order_lines': ROWVERSION needs a rowversion column, and "
        "[dbo].[order_lines] has none (ALTER TABLE [dbo].[order_lines] ADD [row_version] rowversion adds one)"
    )
