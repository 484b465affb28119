"""tap-mssql LOG_BASED (SQL Server CDC) on the recording driver: the first run's snapshot after the max LSN,
the next run's exact fn_cdc_get_all_changes query between the LSNs (hex), inserts, updates and deletes
as records, the LSN in STATE, and the errors that must come before any record."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tools.recording_odbc import Recorder, odbc_error
from tests.unit.mssql.scripted_source import (
    EVENTS,
    ORDERS,
    ORDERS_RECORDS,
    ORDERS_ROW,
    ORDERS_ROWS,
    TapRun,
    after_discovery,
    error_line,
    executed,
    last_bookmark,
    records,
    scripted,
    select,
)

SAVED = "0x0000002A000001F80003"
AFTER = "0x0000002A000001F80004"  # sys.fn_cdc_increment_lsn(SAVED)
END = "0x0000002B000000100005"
CAPTURED = ["id", "customer", "total", "updated_at", "rv"]

CHANGES_SQL = (
    "SELECT CASE WHEN _dpone_cdc.[__$operation] = 1 THEN "
    "(SELECT _dpone_cdc.[id] AS [id], TODATETIMEOFFSET(sys.fn_cdc_map_lsn_to_time(_dpone_cdc.[__$start_lsn]), "
    "DATEPART(TZOFFSET, SYSDATETIMEOFFSET())) AS [_sdc_deleted_at] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, "
    "INCLUDE_NULL_VALUES) "
    "ELSE (SELECT _dpone_cdc.[id] AS [id], _dpone_cdc.[customer] AS [customer], "
    "CONVERT(VARCHAR(41), _dpone_cdc.[total]) AS [total], _dpone_cdc.[updated_at] AS [updated_at], "
    "CAST(_dpone_cdc.[rv] AS BIGINT) AS [rv], CAST(NULL AS VARCHAR(1)) AS [_sdc_deleted_at] "
    "FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES) END, "
    "CONVERT(VARCHAR(22), _dpone_cdc.[__$start_lsn], 1) "
    "FROM cdc.[fn_cdc_get_all_changes_dbo_orders](CONVERT(BINARY(10), ?, 1), CONVERT(BINARY(10), ?, 1), N'all') "
    "AS _dpone_cdc WHERE _dpone_cdc.[__$operation] <> 3 "
    "ORDER BY _dpone_cdc.[__$start_lsn], _dpone_cdc.[__$seqval]"
)
UPDATED = '{"id":2,"customer":"Ben","total":"5.00","updated_at":"2024-02-01T08:00:00","rv":2010,"_sdc_deleted_at":null}'
INSERTED = (
    '{"id":4,"customer":"Dee","total":"1.00","updated_at":"2024-02-01T08:00:00","rv":2011,"_sdc_deleted_at":null}'
)
DELETED = '{"id":3,"_sdc_deleted_at":"2024-02-01T09:15:00.123+01:00"}'
CHANGES = [
    (UPDATED, "0x0000002A000001F80010"),
    (INSERTED, "0x0000002A000001F80010"),
    (DELETED, "0x0000002B000000100001"),
]


def cdc_source(monkeypatch: pytest.MonkeyPatch, *, enabled: tuple[bool, bool] = (True, True)) -> Recorder:
    recorder = scripted(monkeypatch)
    recorder.on(r"is_cdc_enabled", [("shop", *enabled)])
    recorder.on(r"FROM cdc\.change_tables", [("dbo_orders", name) for name in CAPTURED])
    recorder.on(r"sys\.fn_cdc_get_max_lsn\(\)", [(END,)])
    return recorder


def test_first_run_notes_the_max_lsn_then_takes_a_snapshot(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = cdc_source(monkeypatch)
    recorder.on(r"FROM \[dbo\]\.\[orders\]", [(row, "[null]") for row, _ in ORDERS_ROWS])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"))
    assert run.rc == 0, run.stderr
    statements = after_discovery(recorder)
    assert statements == [
        "SELECT d.name, d.is_cdc_enabled, t.is_tracked_by_cdc FROM sys.databases AS d "
        "LEFT JOIN sys.tables AS t ON t.object_id = OBJECT_ID(?) WHERE d.database_id = DB_ID()",
        "SELECT ct.capture_instance, cc.column_name FROM cdc.change_tables AS ct "
        "JOIN cdc.captured_columns AS cc ON cc.object_id = ct.object_id "
        "WHERE ct.source_object_id = OBJECT_ID(?) ORDER BY ct.create_date DESC, cc.column_ordinal",
        "SELECT CONVERT(VARCHAR(22), sys.fn_cdc_get_max_lsn(), 1)",  # before the snapshot: nothing falls between
        f"SELECT {ORDERS_ROW}, N'[null]' FROM [dbo].[orders] AS _dpone_src",
    ]
    assert executed(recorder, "is_cdc_enabled")[0][1] == ("[dbo].[orders]",)
    schema = run.of_type("SCHEMA")[0]
    assert schema["schema"]["properties"]["_sdc_deleted_at"] == {"type": ["string", "null"], "format": "date-time"}
    assert records(run) == ORDERS_RECORDS
    assert last_bookmark(run, ORDERS) == {"cdc_lsn": END}


def test_next_run_reads_the_changes_between_the_saved_lsn_and_the_max(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = cdc_source(monkeypatch)
    recorder.on(r"sys\.fn_cdc_increment_lsn", [(AFTER, "0x00000010000000200001")])
    recorder.on(r"fn_cdc_get_all_changes_dbo_orders", CHANGES)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"), {"bookmarks": {ORDERS: {"cdc_lsn": SAVED}}})
    assert run.rc == 0, run.stderr
    ((sql, params),) = executed(recorder, "sys.fn_cdc_increment_lsn")
    assert sql == (
        "SELECT CONVERT(VARCHAR(22), sys.fn_cdc_increment_lsn(CONVERT(BINARY(10), ?, 1)), 1), "
        "CONVERT(VARCHAR(22), sys.fn_cdc_get_min_lsn(?), 1)"
    )
    assert params == (SAVED, "dbo_orders")
    ((sql, params),) = executed(recorder, "fn_cdc_get_all_changes")
    assert sql == CHANGES_SQL
    assert params == (AFTER, END)  # from just after the saved LSN to the max fixed at the start
    assert records(run) == [
        {
            "id": 2,
            "customer": "Ben",
            "total": "5.00",
            "updated_at": "2024-02-01T08:00:00",
            "rv": 2010,
            "_sdc_deleted_at": None,
        },
        {
            "id": 4,
            "customer": "Dee",
            "total": "1.00",
            "updated_at": "2024-02-01T08:00:00",
            "rv": 2011,
            "_sdc_deleted_at": None,
        },
        {"id": 3, "_sdc_deleted_at": "2024-02-01T09:15:00.123+01:00"},
    ]
    assert run.messages[-1] == {"type": "STATE", "value": {"bookmarks": {ORDERS: {"cdc_lsn": END}}}}


def test_a_checkpoint_saves_the_last_lsn_whose_changes_were_all_sent(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = cdc_source(monkeypatch)
    recorder.on(r"sys\.fn_cdc_increment_lsn", [(AFTER, "0x00000010000000200001")])
    recorder.on(r"fn_cdc_get_all_changes_dbo_orders", CHANGES)
    tap = TapRun(tmp_path)
    run = tap.sync(
        select(tap.discover(), ORDERS, "LOG_BASED"), {"bookmarks": {ORDERS: {"cdc_lsn": SAVED}}}, state_every_rows=1
    )
    assert run.rc == 0, run.stderr
    marks = [s["bookmarks"].get(ORDERS) for s in run.states]
    # After the first change of a transaction nothing new is complete; its LSN is once the next one starts.
    assert marks == [{"cdc_lsn": SAVED}, {"cdc_lsn": SAVED}, {"cdc_lsn": "0x0000002A000001F80010"}, {"cdc_lsn": END}]


def test_no_change_since_the_saved_lsn_reads_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = cdc_source(monkeypatch)
    recorder.on(r"sys\.fn_cdc_increment_lsn", [("0x0000002B000000100006", "0x00000010000000200001")])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"), {"bookmarks": {ORDERS: {"cdc_lsn": END}}})
    assert run.rc == 0, run.stderr
    assert executed(recorder, "fn_cdc_get_all_changes") == []  # a from-LSN past the to-LSN is an error there
    assert records(run) == [] and last_bookmark(run, ORDERS) == {"cdc_lsn": END}


STALE = (
    "tap-mssql: config error: stream 'dbo-orders': its saved CDC position 0x0000002A000001F80003 is older than the "
    "oldest change capture instance 'dbo_orders' still holds (0x0000002B000000000001; the CDC cleanup job removed "
    "the changes before it), so changes in between are gone and a full resync is needed: clear the stream's state "
    "(dpone state clear PIPELINE --stream dbo-orders, or remove its bookmark from the state file) and run again: "
    "the next run reads the whole table, then changes"
)
NOT_TRACKED = (
    "tap-mssql: config error: stream 'dbo-orders': CDC is not enabled on [dbo].[orders]: run EXEC "
    "sys.sp_cdc_enable_table @source_schema = N'dbo', @source_name = N'orders', @role_name = NULL (or use "
    "FULL_TABLE, INCREMENTAL, ROWVERSION or CHANGE_TRACKING)"
)
NOT_ENABLED = (
    "tap-mssql: config error: stream 'dbo-orders': LOG_BASED reads SQL Server CDC, which is not enabled on "
    "database 'shop': run EXEC sys.sp_cdc_enable_db in it (as a member of sysadmin), then enable the table"
)
NO_KEY = (
    "tap-mssql: config error: stream 'dbo-events': LOG_BASED needs a primary key to send updates and deletes by "
    "key (or use FULL_TABLE, INCREMENTAL or ROWVERSION)"
)
NO_PERMISSION = (
    "tap-mssql: config error: stream 'dbo-orders': finding the capture instance: The SELECT permission was denied "
    "on the object 'change_tables', database 'shop', schema 'cdc'. (229) (GRANT SELECT ON SCHEMA::cdc TO the tap's "
    "user, with SELECT on [dbo].[orders], and membership of the capture instance's gating role if it has one)"
)
NOT_CAPTURED = (
    "tap-mssql: config error: stream 'dbo-orders': columns ['rv'] are not captured by CDC capture instance "
    "'dbo_orders': deselect them, or capture them (sys.sp_cdc_enable_table with a @captured_column_list that "
    "names them)"
)
NO_CAPTURE_YET = (
    "tap-mssql: config error: stream 'dbo-orders': no change has been captured in this database yet "
    "(sys.fn_cdc_get_max_lsn() is NULL): the CDC capture job must run (SQL Server Agent's "
    "cdc.<database>_capture job; Azure SQL Database runs it itself)"
)


def test_a_saved_lsn_the_cleanup_passed_stops_before_any_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = cdc_source(monkeypatch)
    recorder.on(r"sys\.fn_cdc_increment_lsn", [(AFTER, "0x0000002B000000000001")])
    recorder.on(r"fn_cdc_get_all_changes_dbo_orders", CHANGES)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"), {"bookmarks": {ORDERS: {"cdc_lsn": SAVED}}})
    assert run.rc == 78
    assert error_line(run) == STALE
    assert run.of_type("RECORD") == [] and executed(recorder, "fn_cdc_get_all_changes") == []
    assert all(s["bookmarks"][ORDERS] == {"cdc_lsn": SAVED} for s in run.states)  # the position is kept


@pytest.mark.parametrize(
    ("enabled", "expected"), [((True, False), NOT_TRACKED), ((False, None), NOT_ENABLED)], ids=["table", "database"]
)
def test_cdc_not_enabled_is_a_config_error_naming_the_procedure(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, enabled: tuple[bool, bool], expected: str
) -> None:
    cdc_source(monkeypatch, enabled=enabled)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"))
    assert (run.rc, error_line(run)) == (78, expected)
    assert run.of_type("RECORD") == []


def test_log_based_needs_a_primary_key_before_any_message(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = cdc_source(monkeypatch)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), EVENTS, "LOG_BASED"))
    assert (run.rc, error_line(run), run.messages) == (78, NO_KEY, [])
    assert executed(recorder, "is_cdc_enabled") == []


def test_no_access_to_the_cdc_schema_names_the_grant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"is_cdc_enabled", [("shop", True, True)])
    denied = "The SELECT permission was denied on the object 'change_tables', database 'shop', schema 'cdc'."
    recorder.on(r"FROM cdc\.change_tables", odbc_error("42000", denied, 229))
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"))
    assert (run.rc, error_line(run)) == (78, NO_PERMISSION)


def test_columns_the_capture_instance_lacks_are_named(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"is_cdc_enabled", [("shop", True, True)])
    recorder.on(r"FROM cdc\.change_tables", [("dbo_orders", name) for name in CAPTURED[:-1]])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"))
    assert (run.rc, error_line(run)) == (78, NOT_CAPTURED)


def test_a_database_whose_capture_job_never_ran(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"is_cdc_enabled", [("shop", True, True)])
    recorder.on(r"FROM cdc\.change_tables", [("dbo_orders", name) for name in CAPTURED])
    recorder.on(r"sys\.fn_cdc_get_max_lsn\(\)", [(None,)])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"))
    assert (run.rc, error_line(run)) == (78, NO_CAPTURE_YET)


def test_a_malformed_saved_lsn_is_refused_before_any_output(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cdc_source(monkeypatch)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"), {"bookmarks": {ORDERS: {"cdc_lsn": "2A:1F8:3"}}})
    assert (run.rc, error_line(run), run.messages) == (78, MALFORMED, [])


INVISIBLE = (
    "tap-mssql: config error: stream 'dbo-orders': no capture instance of [dbo].[orders] is visible to the tap's "
    "user (GRANT SELECT ON SCHEMA::cdc TO the tap's user, with SELECT on [dbo].[orders], and membership of the "
    "capture instance's gating role if it has one)"
)
MALFORMED = (
    "tap-mssql: config error: stream 'dbo-orders': malformed bookmark in the state: 'cdc_lsn' must be a SQL Server "
    "LSN ('0x' and 20 hex digits), got \"2A:1F8:3\"; fix it, or clear the stream's bookmark to start over (dpone "
    "state clear PIPELINE --stream dbo-orders)"
)


def test_a_capture_instance_the_user_cannot_see(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    recorder.on(r"is_cdc_enabled", [("shop", True, True)])
    recorder.on(r"FROM cdc\.change_tables", [])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "LOG_BASED"))
    assert (run.rc, error_line(run)) == (78, INVISIBLE)
