"""tap-mssql CHANGE_TRACKING on the recording driver: the current version read in a snapshot transaction,
then the whole table (first run) or the exact CHANGETABLE query LEFT JOINed to the table (next runs),
deletes as key and `_sdc_deleted_at`, the version in STATE, and the errors that come before any record."""

from __future__ import annotations

from pathlib import Path

import pytest

from dpone.taps.mssql.change_tracking import (
    SQL_ATTR_TXN_ISOLATION,
    SQL_COPT_SS_TXN_ISOLATION,
    SQL_TXN_READ_COMMITTED,
    SQL_TXN_SS_SNAPSHOT,
)
from tests.tools.recording_odbc import Recorder, RecordingConnection, odbc_error
from tests.unit.mssql.scripted_source import (
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

SNAPSHOT_STATE = "SELECT d.name, d.snapshot_isolation_state FROM sys.databases AS d WHERE d.database_id = DB_ID()"
VERSIONS = "SELECT CHANGE_TRACKING_CURRENT_VERSION(), CHANGE_TRACKING_MIN_VALID_VERSION(OBJECT_ID(?)), DB_NAME()"
CHANGES_SQL = (
    "SELECT CASE WHEN _dpone_ct.[SYS_CHANGE_OPERATION] = 'D' OR _dpone_src.[id] IS NULL THEN "
    "(SELECT _dpone_ct.[id] AS [id], SYSDATETIMEOFFSET() AS [_sdc_deleted_at] "
    "FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES) "
    "ELSE (SELECT _dpone_src.[id] AS [id], _dpone_src.[customer] AS [customer], "
    "CONVERT(VARCHAR(41), _dpone_src.[total]) AS [total], _dpone_src.[updated_at] AS [updated_at], "
    "CAST(_dpone_src.[rv] AS BIGINT) AS [rv], CAST(NULL AS VARCHAR(1)) AS [_sdc_deleted_at] "
    "FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES) END, "
    "CONVERT(VARCHAR(20), _dpone_ct.[SYS_CHANGE_VERSION]) "
    "FROM CHANGETABLE(CHANGES [dbo].[orders], ?) AS _dpone_ct "
    "LEFT JOIN [dbo].[orders] AS _dpone_src ON _dpone_src.[id] = _dpone_ct.[id] "
    "WHERE _dpone_ct.[SYS_CHANGE_VERSION] <= ? ORDER BY _dpone_ct.[SYS_CHANGE_VERSION], _dpone_ct.[id]"
)
CHANGES = [
    (
        '{"id":2,"customer":"Ben","total":"5.00","updated_at":"2024-02-01T08:00:00","rv":2010,"_sdc_deleted_at":null}',
        "41",
    ),
    ('{"id":3,"_sdc_deleted_at":"2024-02-01T09:15:00.1234567+00:00"}', "42"),
    ('{"id":5,"_sdc_deleted_at":"2024-02-01T09:15:00.1234567+00:00"}', "42"),
]


def ct_source(
    monkeypatch: pytest.MonkeyPatch, current: int | None = 50, oldest: int | None = 10, snapshot: int = 1
) -> Recorder:
    recorder = scripted(monkeypatch)
    recorder.on(r"snapshot_isolation_state", [("shop", snapshot)])
    recorder.on(r"CHANGE_TRACKING_CURRENT_VERSION", [(current, oldest, "shop")])
    return recorder


def test_first_run_reads_the_version_then_the_whole_table_in_one_snapshot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = ct_source(monkeypatch)
    recorder.on(r"FROM \[dbo\]\.\[orders\]", [(row, "[null]") for row, _ in ORDERS_ROWS])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "CHANGE_TRACKING"))
    assert run.rc == 0, run.stderr
    assert after_discovery(recorder) == [
        SNAPSHOT_STATE,
        VERSIONS,
        f"SELECT {ORDERS_ROW}, N'[null]' FROM [dbo].[orders] AS _dpone_src",
    ]
    calls = [(c.kind, c.params) for c in recorder.calls if c.kind in ("set_attr", "commit")]
    assert calls == [
        ("set_attr", (SQL_COPT_SS_TXN_ISOLATION, SQL_TXN_SS_SNAPSHOT)),
        ("commit", ()),
        ("set_attr", (SQL_ATTR_TXN_ISOLATION, SQL_TXN_READ_COMMITTED)),
    ]
    assert records(run) == ORDERS_RECORDS
    assert run.of_type("SCHEMA")[0]["schema"]["properties"]["_sdc_deleted_at"]["format"] == "date-time"
    assert last_bookmark(run, ORDERS) == {"change_version": 50}


def test_next_run_reads_changetable_since_the_saved_version(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = ct_source(monkeypatch)
    recorder.on(r"CHANGETABLE", CHANGES)
    tap = TapRun(tmp_path)
    state = {"bookmarks": {ORDERS: {"change_version": 40}}}
    run = tap.sync(select(tap.discover(), ORDERS, "CHANGE_TRACKING"), state, state_every_rows=1)
    assert run.rc == 0, run.stderr
    ((sql, params),) = executed(recorder, "CHANGETABLE")
    assert sql == CHANGES_SQL
    assert params == (40, 50)  # after the saved version, up to the one fixed at the start
    assert records(run) == [
        {
            "id": 2,
            "customer": "Ben",
            "total": "5.00",
            "updated_at": "2024-02-01T08:00:00",
            "rv": 2010,
            "_sdc_deleted_at": None,
        },
        {"id": 3, "_sdc_deleted_at": "2024-02-01T09:15:00.1234567+00:00"},
        {"id": 5, "_sdc_deleted_at": "2024-02-01T09:15:00.1234567+00:00"},
    ]
    # Checkpoints save the last version whose keys were all sent, then the end.
    marks = [s["bookmarks"][ORDERS]["change_version"] for s in run.states]
    assert marks == [40, 41, 41, 50]


STALE = (
    "tap-mssql: config error: stream 'dbo-orders': its saved change tracking version 5 is older than the oldest "
    "version still valid for [dbo].[orders] (10; older changes passed the database's CHANGE_RETENTION), so changes "
    "in between are gone and a full resync is needed: clear the stream's state (dpone state clear PIPELINE "
    "--stream dbo-orders, or remove its bookmark from the state file) and run again: the next run reads the whole "
    "table, then changes"
)
TABLE_OFF = (
    "tap-mssql: config error: stream 'dbo-orders': change tracking is not enabled on [dbo].[orders]: ALTER TABLE "
    "[dbo].[orders] ENABLE CHANGE_TRACKING (or the tap's user cannot see it: GRANT VIEW CHANGE TRACKING ON "
    "[dbo].[orders] TO the tap's user, with SELECT on it)"
)
DATABASE_OFF = (
    "tap-mssql: config error: stream 'dbo-orders': CHANGE_TRACKING needs change tracking on database 'shop': "
    "ALTER DATABASE [shop] SET CHANGE_TRACKING = ON (CHANGE_RETENTION = 7 DAYS, AUTO_CLEANUP = ON)"
)
NO_PERMISSION = (
    "tap-mssql: config error: stream 'dbo-orders': reading change tracking: The VIEW CHANGE TRACKING permission "
    "was denied on the object 'orders', database 'shop', schema 'dbo'. (229) (GRANT VIEW CHANGE TRACKING ON "
    "[dbo].[orders] TO the tap's user, with SELECT on it)"
)
NO_KEY = (
    "tap-mssql: config error: stream 'dbo-events': CHANGE_TRACKING needs a primary key to send updates and deletes "
    "by key (or use FULL_TABLE, INCREMENTAL or ROWVERSION)"
)


def test_a_version_older_than_the_min_valid_one_stops_before_any_record(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = ct_source(monkeypatch)
    recorder.on(r"CHANGETABLE", CHANGES)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "CHANGE_TRACKING"), {"bookmarks": {ORDERS: {"change_version": 5}}})
    assert (run.rc, error_line(run)) == (78, STALE)
    assert run.of_type("RECORD") == [] and executed(recorder, "CHANGETABLE") == []
    assert [c.kind for c in recorder.calls if c.kind in ("commit", "rollback")] == ["rollback"]


@pytest.mark.parametrize(
    ("current", "oldest", "expected"), [(50, None, TABLE_OFF), (None, None, DATABASE_OFF)], ids=["table", "database"]
)
def test_change_tracking_not_enabled_is_a_config_error_naming_the_statement(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, current: int | None, oldest: int | None, expected: str
) -> None:
    ct_source(monkeypatch, current, oldest)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "CHANGE_TRACKING"))
    assert (run.rc, error_line(run)) == (78, expected)
    assert run.of_type("RECORD") == []


def test_without_snapshot_isolation_it_reads_under_read_committed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    recorder = ct_source(monkeypatch, snapshot=0)
    recorder.on(r"CHANGETABLE", CHANGES[:1])
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "CHANGE_TRACKING"), {"bookmarks": {ORDERS: {"change_version": 40}}})
    assert run.rc == 0, run.stderr
    assert [c for c in recorder.calls if c.kind in ("set_attr", "commit")] == []
    assert (
        "database shop does not allow snapshot isolation (ALTER DATABASE [shop] SET ALLOW_SNAPSHOT_ISOLATION ON"
        in run.stderr
    )
    # And the setting turns the snapshot off without asking the database.
    recorder.calls.clear()
    off = tap.sync(
        select(tap.discover(), ORDERS, "CHANGE_TRACKING"),
        {"bookmarks": {ORDERS: {"change_version": 40}}},
        snapshot_isolation=False,
    )
    assert off.rc == 0, off.stderr
    assert executed(recorder, "snapshot_isolation_state") == []


def test_no_view_change_tracking_names_the_grant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = ct_source(monkeypatch)
    denied = "The VIEW CHANGE TRACKING permission was denied on the object 'orders', database 'shop', schema 'dbo'."
    recorder.on(r"CHANGETABLE", odbc_error("42000", denied, 229))
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "CHANGE_TRACKING"), {"bookmarks": {ORDERS: {"change_version": 40}}})
    assert (run.rc, error_line(run)) == (78, NO_PERMISSION)


def test_change_tracking_needs_a_primary_key(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ct_source(monkeypatch)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), "dbo-events", "CHANGE_TRACKING"))
    assert (run.rc, error_line(run), run.messages) == (78, NO_KEY, [])


SNAPSHOT_REFUSED = (
    "tap-mssql: config error: stream 'dbo-orders': the ODBC driver refused snapshot isolation (Optional feature "
    "not implemented); use Microsoft ODBC Driver 18, or set snapshot_isolation: false"
)
COLUMN_GONE = (
    "tap-mssql: config error: stream 'dbo-orders': selected columns ['gone'] no longer exist in dbo.orders; "
    "re-run discovery and update the catalog"
)


def test_a_driver_without_snapshot_isolation_says_what_to_do(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    import pyodbc

    def refuse(self: RecordingConnection, attribute: int, value: int) -> None:
        raise pyodbc.Error("HYC00", "[HYC00] [FreeTDS][SQL Server]Optional feature not implemented (SQLSetConnectAttr)")

    monkeypatch.setattr(RecordingConnection, "set_attr", refuse)
    ct_source(monkeypatch)
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS, "CHANGE_TRACKING"))
    assert (run.rc, error_line(run)) == (78, SNAPSHOT_REFUSED)


def test_a_selected_column_dropped_since_discovery(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    ct_source(monkeypatch)
    tap = TapRun(tmp_path)
    catalog = select(tap.discover(), ORDERS, "CHANGE_TRACKING")
    entry = next(s for s in catalog["streams"] if s["tap_stream_id"] == ORDERS)
    entry["schema"]["properties"]["gone"] = {"type": ["string", "null"]}
    entry["metadata"].append({"breadcrumb": ["properties", "gone"], "metadata": {"inclusion": "available"}})
    run = tap.sync(catalog, {"bookmarks": {ORDERS: {"change_version": 40}}})
    assert (run.rc, error_line(run)) == (78, COLUMN_GONE)
    assert run.of_type("RECORD") == []
