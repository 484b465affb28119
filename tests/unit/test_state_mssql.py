"""The SQL Server state store, up to the wire: what each operation sends, and what it makes of answers.

No SQL Server runs here. The store runs on the real driver module with pyodbc replaced by the
recording stand-in (tests/tools/recording_odbc.py): every statement is checked with sqlglot's T-SQL
parser as it is sent, and each test compares the exact list of calls. TestMssqlStoreLive runs the
contract every store passes (tests/unit/test_state_stores.py) against a real server when
DPONE_TEST_MSSQL_DSN holds an ODBC connection string.
"""

from __future__ import annotations

import os
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dpone.state.mssql_store import MssqlStore, parse_uri
from dpone.state.store import LockedError, LockInfo, RunRecord, open_store
from dpone_drivers import mssql
from dpone_protocol.errors import ConfigError, DataError, ErrorKind, TransientError
from dpone_runner.project import state_backend_uri
from tests.tools.recording_odbc import Recorder, odbc_error
from tests.unit.test_state_stores import Opener, StoreBehaviour

PASSWORD = "S3cr@t/pw+1"
ENCODED = urllib.parse.quote(PASSWORD, safe="")  # S3cr%40t%2Fpw%2B1
URI = f"mssql://dpone:{ENCODED}@db.example:1433/statedb?schema=dpone&trust_server_certificate=yes"
CONNECTION_STRING = (
    "DRIVER={ODBC Driver 18 for SQL Server};SERVER=tcp:db.example,1433;Encrypt=yes;TrustServerCertificate=yes;"
    f"APP=dpone-state;LoginTimeout=30;DATABASE=statedb;UID=dpone;PWD={PASSWORD}"
)
STATE, LOCKS, RUNS = "[dpone].[dpone_state]", "[dpone].[dpone_locks]", "[dpone].[dpone_runs]"

CHECK = "SELECT OBJECT_ID(?, 'U'), OBJECT_ID(?, 'U'), OBJECT_ID(?, 'U'), SCHEMA_ID(?)"
ID = "NVARCHAR(400) COLLATE Latin1_General_100_BIN2 NOT NULL"
STAMP = "NVARCHAR(64) COLLATE Latin1_General_100_BIN2 NOT NULL"
CREATE_STATE = f"CREATE TABLE {STATE} (pipeline_id {ID} PRIMARY KEY, value NVARCHAR(MAX) NOT NULL, updated_at {STAMP})"
CREATE_LOCKS = (
    f"CREATE TABLE {LOCKS} (pipeline_id {ID} PRIMARY KEY, owner {ID}, pid BIGINT NOT NULL,"
    " host NVARCHAR(255) NOT NULL, acquired_at NVARCHAR(64) NOT NULL)"
)
CREATE_RUNS = (
    f"CREATE TABLE {RUNS} (seq BIGINT IDENTITY(1, 1) NOT NULL PRIMARY KEY, pipeline_id {ID}, run_id {ID},"
    f" created_at {STAMP}, report NVARCHAR(MAX) NOT NULL, UNIQUE (pipeline_id, run_id))"
)
GET = f"SELECT value, updated_at FROM {STATE} WHERE pipeline_id = ?"
PUT = (
    f"MERGE INTO {STATE} WITH (HOLDLOCK) AS t USING (SELECT ? AS pipeline_id, ? AS value, ? AS updated_at) AS s"
    " ON t.pipeline_id = s.pipeline_id WHEN MATCHED THEN UPDATE SET value = s.value, updated_at = s.updated_at"
    " WHEN NOT MATCHED THEN INSERT (pipeline_id, value, updated_at) VALUES (s.pipeline_id, s.value, s.updated_at);"
)
DELETE = f"DELETE FROM {STATE} WHERE pipeline_id = ?"
LIST = f"SELECT pipeline_id, value, updated_at FROM {STATE} ORDER BY pipeline_id"
INSERT_LOCK = (
    f"INSERT INTO {LOCKS} (pipeline_id, owner, pid, host, acquired_at) OUTPUT inserted.pipeline_id"
    f" SELECT ?, ?, ?, ?, ? WHERE NOT EXISTS (SELECT 1 FROM {LOCKS} WITH (UPDLOCK, HOLDLOCK) WHERE pipeline_id = ?)"
)
GET_LOCK = f"SELECT pipeline_id, owner, pid, host, acquired_at FROM {LOCKS} WHERE pipeline_id = ?"
RELEASE = f"DELETE FROM {LOCKS} WHERE pipeline_id = ? AND owner = ?"
BREAK = (
    f"DELETE {LOCKS} OUTPUT deleted.pipeline_id, deleted.owner, deleted.pid, deleted.host, deleted.acquired_at"
    " WHERE pipeline_id = ?"
)
SAVE_RUN = (
    f"MERGE INTO {RUNS} WITH (HOLDLOCK) AS t"
    " USING (SELECT ? AS pipeline_id, ? AS run_id, ? AS created_at, ? AS report) AS s"
    " ON t.pipeline_id = s.pipeline_id AND t.run_id = s.run_id"
    " WHEN MATCHED THEN UPDATE SET created_at = s.created_at, report = s.report"
    " WHEN NOT MATCHED THEN INSERT (pipeline_id, run_id, created_at, report)"
    " VALUES (s.pipeline_id, s.run_id, s.created_at, s.report);"
)
RUNS_QUERY = (
    f"SELECT TOP (?) pipeline_id, run_id, created_at, report FROM {RUNS} WHERE pipeline_id = ?"
    " ORDER BY created_at DESC, seq DESC"
)
RECENT_RUNS = f"SELECT TOP (?) pipeline_id, run_id, created_at, report FROM {RUNS} ORDER BY created_at DESC, seq DESC"

HOLDER = LockInfo("p1", "run-1", 4242, "etl-1.invalid", "2024-01-01T00:00:00.000+00:00")
MINE = LockInfo("p1", "run-2", 4343, "etl-2.invalid", "2024-01-01T00:00:05.000+00:00")


def deadlock() -> Exception:
    return odbc_error(
        "40001",
        "Transaction (Process ID 57) was deadlocked on lock resources with another process and has been chosen "
        "as the deadlock victim. Rerun the transaction.",
        1205,
    )


def link_failure() -> Exception:
    return odbc_error("08S01", "TCP Provider: Error code 0x2746", 10054, "OperationalError")


def _row(lock: LockInfo) -> tuple[Any, ...]:
    return (lock.pipeline_id, lock.owner, lock.pid, lock.host, lock.acquired_at)


def execute(sql: str) -> str:
    return f"execute {sql}"


def params_of(recorder: Recorder, sql: str) -> list[tuple[Any, ...]]:
    return [call.params for call in recorder.calls if call.kind == "execute" and call.sql == sql]


def assert_no_password(text: str) -> None:
    for form in (PASSWORD, ENCODED, urllib.parse.quote_plus(PASSWORD), "S3cr"):
        assert form not in text


@pytest.fixture
def recorder(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    monkeypatch.delenv("DPONE_STATE_BACKEND", raising=False)
    return Recorder().install(monkeypatch)


@pytest.fixture
def store(recorder: Recorder) -> Iterator[MssqlStore]:
    """A store opened where its tables exist, with the opening's calls forgotten."""
    recorder.on(r"^SELECT OBJECT_ID", [(101, 102, 103, 5)])
    opened = MssqlStore(URI)
    recorder.calls.clear()
    yield opened
    opened.close()


# -- opening


def test_open_where_the_tables_exist_checks_and_creates_nothing(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(101, 102, 103, 5)])
    store = MssqlStore(URI)
    assert recorder.sequence() == ["connect", execute(CHECK), "commit"]
    assert params_of(recorder, CHECK) == [(STATE, LOCKS, RUNS, "dpone")]
    assert recorder.connection_strings == [CONNECTION_STRING]
    # Autocommit off: every operation is a transaction the store commits itself.
    assert store._conn.autocommit is False
    assert store._conn.timeout == 60
    store.close()
    assert recorder.sequence()[-1] == "close"


def test_open_where_nothing_exists_creates_the_schema_and_each_table_in_its_own_transaction(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(None, None, None, None)])
    MssqlStore(URI)
    assert recorder.sequence() == [
        "connect",
        execute(CHECK),
        "commit",
        execute("CREATE SCHEMA [dpone]"),
        "commit",
        execute(CREATE_STATE),
        "commit",
        execute(CREATE_LOCKS),
        "commit",
        execute(CREATE_RUNS),
        "commit",
    ]


def test_open_creates_only_what_is_missing(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(101, 102, None, 5)])
    MssqlStore(URI)
    assert recorder.sequence() == ["connect", execute(CHECK), "commit", execute(CREATE_RUNS), "commit"]


def test_open_in_the_default_schema_dbo(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(1, 2, 3, 1)])
    store = MssqlStore("mssql://dpone:pw12@db.example/statedb")
    assert store.schema == "dbo"
    assert params_of(recorder, CHECK) == [("[dbo].[dpone_state]", "[dbo].[dpone_locks]", "[dbo].[dpone_runs]", "dbo")]


def test_a_schema_name_is_quoted(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(None, None, None, None)])
    MssqlStore(URI, schema="odd]name")
    assert execute("CREATE SCHEMA [odd]]name]") in recorder.sequence()
    assert params_of(recorder, CHECK) == [
        ("[odd]]name].[dpone_state]", "[odd]]name].[dpone_locks]", "[odd]]name].[dpone_runs]", "odd]name")
    ]


def test_open_racing_another_store_that_creates_a_table_first(recorder: Recorder) -> None:
    # The other store's CREATE committed between our check and ours: SQL Server refuses ours as
    # existing (2714), which is what we wanted; the store goes on with the rest.
    recorder.on(r"^SELECT OBJECT_ID", [(None, None, None, 5)])
    exists = odbc_error("42S01", "There is already an object named 'dpone_state' in the database.", 2714)
    recorder.on(r"^CREATE TABLE \[dpone\]\.\[dpone_state\]", exists)
    store = MssqlStore(URI)
    assert recorder.sequence() == [
        "connect",
        execute(CHECK),
        "commit",
        execute(CREATE_STATE),
        "commit",
        execute(CREATE_LOCKS),
        "commit",
        execute(CREATE_RUNS),
        "commit",
    ]
    store.put("p1", {"v": 1})


def test_open_without_the_permission_to_create_is_a_config_error_with_the_grant(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(None, None, None, 5)])
    denied = odbc_error("42000", "CREATE TABLE permission denied in database 'statedb'.", 262)
    recorder.on(r"^CREATE TABLE", denied)
    with pytest.raises(ConfigError) as caught:
        MssqlStore(URI)
    message = str(caught.value)
    assert "CREATE TABLE permission denied" in message
    assert "GRANT CREATE TABLE" in message
    assert "creating its tables in schema 'dpone'" in message
    assert recorder.sequence() == ["connect", execute(CHECK), "commit", execute(CREATE_STATE), "rollback"]


def test_login_failure_is_a_config_error_without_the_password(
    recorder: Recorder, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = recorder.module()
    # A message quoting the password, raw and encoded, to show the redactor masks both.
    refused = odbc_error("28000", f"Login failed for user 'dpone'. [{PASSWORD}] [{ENCODED}]", 18456, "InterfaceError")

    def connect(text: str, **_: Any) -> Any:
        raise refused

    module.connect = connect
    monkeypatch.setattr("dpone_drivers.mssql.pyodbc", lambda: module)
    with pytest.raises(ConfigError) as caught:
        MssqlStore(URI)
    message = str(caught.value)
    assert "Login failed for user 'dpone'" in message
    assert "db.example:1433/statedb" in message
    assert_no_password(message)
    assert caught.value.kind is ErrorKind.CONFIG


def test_a_server_that_does_not_answer_is_transient(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    module = recorder.module()

    def connect(text: str, **_: Any) -> Any:
        raise odbc_error("HYT00", "Login timeout expired", 0, "OperationalError")

    module.connect = connect
    monkeypatch.setattr("dpone_drivers.mssql.pyodbc", lambda: module)
    with pytest.raises(TransientError, match="the SQL Server state store"):
        MssqlStore(URI)


# -- values


def test_get(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT value", [('{"bookmarks":{"s":{"id":7}}}', "2024-01-01T00:00:00.000+00:00")], times=1)
    got = store.get("p1")
    assert got is not None
    assert (got.pipeline_id, got.value, got.updated_at) == (
        "p1",
        {"bookmarks": {"s": {"id": 7}}},
        "2024-01-01T00:00:00.000+00:00",
    )
    assert store.get("nope") is None
    assert recorder.sequence() == [execute(GET), "commit", execute(GET), "commit"]
    assert params_of(recorder, GET) == [("p1",), ("nope",)]


def test_put_is_one_merge_of_canonical_json(store: MssqlStore, recorder: Recorder) -> None:
    store.put("p1", {"z": 1, "a": {"é": "✓"}})
    assert recorder.sequence() == [execute(PUT), "commit"]
    [(pipeline_id, value, stamp)] = params_of(recorder, PUT)
    assert (pipeline_id, value) == ("p1", '{"a":{"é":"✓"},"z":1}')
    assert stamp.endswith("+00:00")


@pytest.mark.parametrize(
    "call",
    [
        lambda store: store.get("p1 "),
        lambda store: store.put("p1 ", {}),
        lambda store: store.delete("p1 "),
        lambda store: store.acquire_lock(LockInfo("p1 ", "r", 1, "h", "t")),
        lambda store: store.acquire_lock(LockInfo("p1", "r ", 1, "h", "t")),
        lambda store: store.release_lock("p1", "r "),
        lambda store: store.break_lock("p1 "),
        lambda store: store.get_lock("p1 "),
        lambda store: store.save_run(RunRecord("p1", "r ", "t")),
        lambda store: store.runs("p1 "),
        lambda store: store.recent_runs(5, "p1 "),
    ],
)
def test_an_id_ending_in_a_space_is_refused_before_sending_anything(
    store: MssqlStore, recorder: Recorder, call: Any
) -> None:
    # SQL Server's `=` ignores trailing spaces in every collation: `p1 ` would be `p1`'s rows.
    with pytest.raises(ConfigError, match="ignores trailing spaces"):
        call(store)
    assert recorder.sequence() == []


def test_a_value_that_is_not_json_sends_nothing(store: MssqlStore, recorder: Recorder) -> None:
    with pytest.raises(DataError):
        store.put("p1", {"bad": object()})
    assert recorder.sequence() == []


def test_delete(store: MssqlStore, recorder: Recorder) -> None:
    store.delete("p1")
    assert recorder.sequence() == [execute(DELETE), "commit"]
    assert params_of(recorder, DELETE) == [("p1",)]


def test_list(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT pipeline_id, value", [("a", '{"id":"a"}', "t1"), ("b", '{"id":"b"}', "t2")])
    assert [(s.pipeline_id, s.value, s.updated_at) for s in store.list()] == [
        ("a", {"id": "a"}, "t1"),
        ("b", {"id": "b"}, "t2"),
    ]
    assert recorder.sequence() == [execute(LIST), "commit"]


def test_a_stored_value_edited_into_non_json_is_a_config_error_naming_the_pipeline(
    store: MssqlStore, recorder: Recorder
) -> None:
    recorder.on(r"^SELECT value", [("{not json", "t")])
    with pytest.raises(ConfigError, match="the state of pipeline 'p1' .* is not JSON"):
        store.get("p1")


# -- locks


def test_acquire_a_free_lock_inserts_it(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^INSERT INTO \[dpone\]\.\[dpone_locks\]", [("p1",)])
    store.acquire_lock(MINE)
    assert recorder.sequence() == [execute(INSERT_LOCK), "commit"]
    assert params_of(recorder, INSERT_LOCK) == [("p1", "run-2", 4343, "etl-2.invalid", MINE.acquired_at, "p1")]


def test_acquire_a_held_lock_names_the_holder_and_rolls_back(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT pipeline_id, owner", [_row(HOLDER)])
    with pytest.raises(LockedError) as caught:
        store.acquire_lock(MINE)
    assert caught.value.lock == HOLDER
    assert "run-1" in str(caught.value)
    assert "pid 4242 on etl-1.invalid" in str(caught.value)
    assert caught.value.kind is ErrorKind.TRANSIENT
    assert recorder.sequence() == [execute(INSERT_LOCK), execute(GET_LOCK), "rollback"]


def test_acquire_racing_into_a_duplicate_key_names_the_racer(store: MssqlStore, recorder: Recorder) -> None:
    duplicate = odbc_error(
        "23000",
        "Violation of PRIMARY KEY constraint 'PK__dpone_lo__1'. Cannot insert duplicate key in object "
        "'dpone.dpone_locks'. The duplicate key value is (p1).",
        2627,
        "IntegrityError",
    )
    recorder.on(r"^INSERT INTO \[dpone\]\.\[dpone_locks\]", duplicate)
    recorder.on(r"^SELECT pipeline_id, owner", [_row(HOLDER)])
    with pytest.raises(LockedError) as caught:
        store.acquire_lock(MINE)
    assert caught.value.lock == HOLDER
    assert recorder.sequence() == [execute(INSERT_LOCK), execute(GET_LOCK), "rollback"]


def test_acquire_when_the_holder_left_in_between_tries_again(store: MssqlStore, recorder: Recorder) -> None:
    # First try: not inserted, and nobody to name; the second finds the key free.
    recorder.on(r"^INSERT INTO \[dpone\]\.\[dpone_locks\]", [], times=1)
    recorder.on(r"^INSERT INTO \[dpone\]\.\[dpone_locks\]", [("p1",)])
    store.acquire_lock(MINE)
    assert recorder.sequence() == [execute(INSERT_LOCK), execute(GET_LOCK), "commit", execute(INSERT_LOCK), "commit"]


def test_acquire_that_never_settles_is_transient(store: MssqlStore, recorder: Recorder) -> None:
    with pytest.raises(TransientError, match="changing hands too fast"):
        store.acquire_lock(MINE)
    assert recorder.sequence() == [execute(INSERT_LOCK), execute(GET_LOCK), "commit"] * 5


def test_release_deletes_only_the_owners_lock(store: MssqlStore, recorder: Recorder) -> None:
    store.release_lock("p1", "run-1")
    assert recorder.sequence() == [execute(RELEASE), "commit"]
    assert params_of(recorder, RELEASE) == [("p1", "run-1")]


def test_break_returns_the_lock_it_removed(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^DELETE \[dpone\]\.\[dpone_locks\] OUTPUT", [_row(HOLDER)], times=1)
    assert store.break_lock("p1") == HOLDER
    assert store.break_lock("p1") is None
    assert recorder.sequence() == [execute(BREAK), "commit", execute(BREAK), "commit"]


def test_get_lock(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT pipeline_id, owner", [_row(HOLDER)], times=1)
    assert store.get_lock("p1") == HOLDER
    assert store.get_lock("p1") is None
    assert recorder.sequence() == [execute(GET_LOCK), "commit", execute(GET_LOCK), "commit"]


# -- runs


def test_save_run_is_one_merge(store: MssqlStore, recorder: Recorder) -> None:
    store.save_run(RunRecord("p1", "r1", "2024-01-01T00:00:00+00:00", {"status": "ok", "rows": 3}))
    assert recorder.sequence() == [execute(SAVE_RUN), "commit"]
    assert params_of(recorder, SAVE_RUN) == [("p1", "r1", "2024-01-01T00:00:00+00:00", '{"rows":3,"status":"ok"}')]


def test_runs_newest_first_with_top(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT TOP", [("p1", "r2", "t2", '{"rows":2}'), ("p1", "r1", "t1", "{}")])
    runs = store.runs("p1", limit=2)
    assert [(r.pipeline_id, r.run_id, r.created_at, r.report) for r in runs] == [
        ("p1", "r2", "t2", {"rows": 2}),
        ("p1", "r1", "t1", {}),
    ]
    store.runs("p1", limit=-1)
    assert recorder.sequence() == [execute(RUNS_QUERY), "commit", execute(RUNS_QUERY), "commit"]
    assert params_of(recorder, RUNS_QUERY) == [(2, "p1"), (0, "p1")]


def test_recent_runs_of_every_pipeline_in_one_query(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT TOP", [("p2", "r3", "t3", '{"rows":3}'), ("p1", "r2", "t2", "{}")])
    runs = store.recent_runs(2)
    assert [(r.pipeline_id, r.run_id, r.created_at, r.report) for r in runs] == [
        ("p2", "r3", "t3", {"rows": 3}),
        ("p1", "r2", "t2", {}),
    ]
    store.recent_runs(7, "p1")
    assert recorder.sequence() == [execute(RECENT_RUNS), "commit", execute(RUNS_QUERY), "commit"]
    assert params_of(recorder, RECENT_RUNS) == [(2,)]
    assert params_of(recorder, RUNS_QUERY) == [(7, "p1")]


def test_a_run_report_edited_into_non_json_is_a_config_error_naming_the_run(
    store: MssqlStore, recorder: Recorder
) -> None:
    recorder.on(r"^SELECT TOP", [("p2", "r3", "t3", "{not json")])
    with pytest.raises(ConfigError, match="the run 'r3' report of pipeline 'p2'"):
        store.recent_runs()


# -- failures


def test_a_deadlock_is_transient_and_rolled_back(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^MERGE", deadlock(), times=1)
    with pytest.raises(TransientError) as caught:
        store.put("p1", {"v": 1})
    message = str(caught.value)
    assert "deadlock victim" in message
    assert "the SQL Server state store (db.example:1433/statedb) failed saving a state" in message
    assert_no_password(message)
    # The connection is still good: the next call uses it.
    store.put("p1", {"v": 1})
    assert recorder.sequence() == [execute(PUT), "rollback", execute(PUT), "commit"]
    assert {call.connection for call in recorder.calls} == {0}


def test_a_dropped_connection_is_replaced_and_the_call_redone(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^MERGE", link_failure(), times=1)
    store.put("p1", {"v": 1})
    assert [(call.connection, call.kind) for call in recorder.calls] == [
        (0, "execute"),
        (0, "close"),
        (1, "connect"),
        (1, "execute"),
        (1, "commit"),
    ]
    assert recorder.connection_strings == [CONNECTION_STRING, CONNECTION_STRING]


def test_a_connection_that_drops_again_is_transient_and_the_next_call_reconnects(
    store: MssqlStore, recorder: Recorder
) -> None:
    recorder.on(r"^SELECT value", link_failure(), times=2)
    with pytest.raises(TransientError) as caught:
        store.get("p1")
    assert "failed reading a state" in str(caught.value)
    assert store.get("p1") is None
    assert [(call.connection, call.kind) for call in recorder.calls] == [
        (0, "execute"),
        (0, "close"),
        (1, "connect"),
        (1, "execute"),
        (1, "close"),
        (2, "connect"),
        (2, "execute"),
        (2, "commit"),
    ]


def test_acquire_redone_after_a_drop_finds_its_own_lock_and_succeeds(store: MssqlStore, recorder: Recorder) -> None:
    # The first insert committed, then the link failed before the answer came back: the redo
    # finds the row it wrote, equal to the millisecond, and takes that as success.
    recorder.on(r"^INSERT INTO \[dpone\]\.\[dpone_locks\]", link_failure(), times=1)
    recorder.on(r"^SELECT pipeline_id, owner", [_row(MINE)])
    store.acquire_lock(MINE)
    assert recorder.sequence() == [
        execute(INSERT_LOCK),
        "close",
        "connect",
        execute(INSERT_LOCK),
        execute(GET_LOCK),
        "commit",
    ]


def test_a_lock_equal_to_ours_without_a_drop_is_still_a_conflict(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT pipeline_id, owner", [_row(MINE)])
    with pytest.raises(LockedError):
        store.acquire_lock(MINE)


def test_a_statement_timeout_is_transient(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^SELECT pipeline_id, owner", odbc_error("HYT00", "Query timeout expired", 0, "OperationalError"))
    with pytest.raises(TransientError, match="Query timeout expired"):
        store.get_lock("p1")
    assert recorder.sequence() == [execute(GET_LOCK), "rollback"]


def test_a_key_too_long_for_its_column_is_a_data_error(store: MssqlStore, recorder: Recorder) -> None:
    cut = odbc_error(
        "22001",
        "String or binary data would be truncated in table 'statedb.dpone.dpone_state', column 'pipeline_id'.",
        2628,
    )
    recorder.on(r"^MERGE", cut)
    with pytest.raises(DataError, match="would be truncated"):
        store.put("p" * 500, {"v": 1})


def test_every_statement_sent_is_checked_t_sql(store: MssqlStore, recorder: Recorder) -> None:
    recorder.on(r"^INSERT INTO", [("p1",)])
    store.put("p1", {"v": 1})
    store.get("p1")
    store.list()
    store.delete("p1")
    store.acquire_lock(MINE)
    store.get_lock("p1")
    store.release_lock("p1", "run-2")
    store.break_lock("p1")
    store.save_run(RunRecord("p1", "r1", "t"))
    store.runs("p1")
    store.recent_runs()
    assert sorted(set(recorder.checked)) == sorted(
        {CHECK, PUT, GET, LIST, DELETE, INSERT_LOCK, GET_LOCK, RELEASE, BREAK, SAVE_RUN, RUNS_QUERY, RECENT_RUNS}
    )


# -- choosing the store


def test_open_store_from_an_mssql_uri(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(1, 2, 3, 5)])
    store = open_store(URI)
    assert isinstance(store, MssqlStore)
    assert store.schema == "dpone"
    assert recorder.connection_strings == [CONNECTION_STRING]


def test_open_store_from_a_sqlserver_uri(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(1, 2, 3, 5)])
    store = open_store(URI.replace("mssql://", "sqlserver://"))
    assert isinstance(store, MssqlStore)
    assert recorder.connection_strings == [CONNECTION_STRING]


def test_open_store_from_the_environment(recorder: Recorder, monkeypatch: pytest.MonkeyPatch) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(1, 2, 3, 5)])
    monkeypatch.setenv("DPONE_STATE_BACKEND", URI)
    assert isinstance(open_store(), MssqlStore)
    assert recorder.connection_strings == [CONNECTION_STRING]
    # The runner hands the URI over as it is: only file paths are made absolute.
    assert state_backend_uri(Path("/project"), None, None) == URI


# -- the URI


def test_uri_settings() -> None:
    target = parse_uri(
        "mssql://loader:pw%3Bx@db.example:14330/st?schema=s&encrypt=strict&trust_server_certificate=no"
        "&authentication=ActiveDirectoryPassword&connect_timeout=5&driver=FreeTDS"
    )
    assert target.config == {
        "host": "db.example",
        "port": 14330,
        "user": "loader",
        "password": "pw;x",
        "database": "st",
        "encrypt": "strict",
        "trust_server_certificate": False,
        "authentication": "ActiveDirectoryPassword",
        "connect_timeout": 5,
        "driver": "FreeTDS",
    }
    assert target.schema == "s"
    assert target.where == "db.example:14330/st"


def test_uri_with_a_named_instance(recorder: Recorder) -> None:
    recorder.on(r"^SELECT OBJECT_ID", [(1, 2, 3, 5)])
    MssqlStore("mssql://u:pw12@srv%5CSQLEXPRESS/st")
    assert "SERVER=srv\\SQLEXPRESS;" in recorder.connection_strings[0]


def test_uri_with_an_ipv6_host_and_no_database() -> None:
    target = parse_uri("sqlserver://u@[::1]:1533")
    assert target.config == {"host": "::1", "port": 1533, "user": "u"}
    assert target.where == "::1:1533/(default database)"


def test_uri_with_a_whole_odbc_connection_string(recorder: Recorder) -> None:
    odbc = "Server=tcp:db.example,1433;Database=st;UID=u;PWD={p;w}}x+1};Encrypt=yes"
    uri = f"mssql:///?odbc_connect={urllib.parse.quote_plus(odbc)}&schema=st&connect_timeout=7"
    recorder.on(r"^SELECT OBJECT_ID", [(1, 2, 3, 5)])
    store = MssqlStore(uri)
    assert store.schema == "st"
    assert recorder.connection_strings == ["DRIVER={ODBC Driver 18 for SQL Server};" + odbc]
    target = parse_uri(uri)
    assert target.config == {"odbc_connection_string": odbc, "connect_timeout": 7}
    assert target.where == "server tcp:db.example,1433"
    assert target.redactor(f"failed: p;w}}x+1 / {urllib.parse.quote_plus(odbc)}") == "failed: *** / ***"


@pytest.mark.parametrize(
    ("uri", "words"),
    [
        (f"mysql://u:{ENCODED}@h/db", "starts with mssql://"),
        (f"mssql://u:{ENCODED}@h:99999/db", "the port must be a number"),
        (f"mssql://u:{ENCODED}@h:{ENCODED}/db", "the port must be a number"),
        (f"mssql://u:{ENCODED}@h/db?sslmode=require", "unknown parameters ('sslmode')"),
        (f"mssql://u:{ENCODED}@h/db?encrypt=maybe", "encrypt must be one of"),
        (f"mssql://u:{ENCODED}@h/db?trust_server_certificate=S3cr", "must be yes or no"),
        (f"mssql://u:{ENCODED}@h/db?authentication=Kerberos", "authentication must be one of"),
        (f"mssql://u:{ENCODED}@h/db?connect_timeout=-1", "connect_timeout must be"),
        (f"mssql://u:{ENCODED}@h/db?odbc_connect=PWD%3DS3cr%40t", "both odbc_connect and"),
        ("mssql:///?odbc_connect=PWD%3DS3cr%40t&encrypt=yes", "in the ODBC connection string itself"),
        ("mssql:///?odbc_connect=", "odbc_connect is empty"),
        # Unencoded reserved characters in the password cut the URL in the wrong place.
        ("mssql://u:S3cr/t9@h/db", "percent-encode"),
        ("mssql://u:S3cr?x=1@h/db", "percent-encode"),
        ("mssql://u:12#S3cr@h/db", "percent-encode"),
        ("mssql://h/db?S3cr%3F=1", "unknown parameters (one that is not a name)"),
    ],
)
def test_malformed_uris_are_config_errors_that_quote_no_password(uri: str, words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_uri(uri)
    assert words in str(caught.value)
    assert_no_password(str(caught.value))


def test_unknown_scheme_message_names_mssql(recorder: Recorder) -> None:
    with pytest.raises(ConfigError, match=r"postgresql://\.\.\. or mssql://\.\.\."):
        open_store("oracle://u@h/db")


# -- laziness


def test_importing_the_store_loads_no_driver() -> None:
    code = "import sys, dpone.state.store, dpone.state.mssql_store, dpone_drivers.mssql; print('pyodbc' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# -- against a real server

LIVE_DSN = os.environ.get("DPONE_TEST_MSSQL_DSN", "")


def _admin() -> Any:
    """A plain pyodbc connection to the live server, for setting up and inspecting."""
    driver = mssql.pyodbc()
    return driver.connect(mssql.connection_string({"odbc_connection_string": LIVE_DSN}, "dpone-test"), autocommit=True)


@pytest.mark.skipif(
    not LIVE_DSN,
    reason="no SQL Server: set DPONE_TEST_MSSQL_DSN to an ODBC connection string (a login that may create "
    "schemas and tables) to run the state store contract against a real server",
)
class TestMssqlStoreLive(StoreBehaviour):
    @pytest.fixture
    def schema(self) -> Iterator[str]:
        name = f"dpone_test_{uuid.uuid4().hex[:12]}"
        yield name
        conn = _admin()
        try:
            for table in ("dpone_runs", "dpone_locks", "dpone_state"):
                conn.execute(f"DROP TABLE IF EXISTS [{name}].[{table}]")
            conn.execute(f"DROP SCHEMA IF EXISTS [{name}]")
        finally:
            conn.close()

    @pytest.fixture
    def uri(self, schema: str) -> str:
        return f"mssql:///?odbc_connect={urllib.parse.quote_plus(LIVE_DSN)}&schema={schema}"

    @pytest.fixture
    def open_store_here(self, uri: str) -> Opener:
        return lambda: MssqlStore(uri)

    def test_creates_its_tables_in_the_schema(self, store: MssqlStore, schema: str) -> None:
        conn = _admin()
        try:
            rows = conn.execute(
                "SELECT t.name FROM sys.tables AS t JOIN sys.schemas AS s ON s.schema_id = t.schema_id"
                " WHERE s.name = ?",
                schema,
            ).fetchall()
        finally:
            conn.close()
        assert {r[0] for r in rows} == {"dpone_state", "dpone_locks", "dpone_runs"}

    def test_values_are_json_the_server_reads(self, store: MssqlStore, schema: str) -> None:
        store.put("p1", {"bookmarks": {"s": {"xmin": 3}}})
        conn = _admin()
        try:
            got = conn.execute(f"SELECT JSON_VALUE(value, '$.bookmarks.s.xmin') FROM [{schema}].dpone_state").fetchval()
        finally:
            conn.close()
        assert got == "3"

    def test_ids_are_exact_whatever_the_collation(self, store: MssqlStore) -> None:
        store.put("P1", {"v": "upper"})
        store.put("p1", {"v": "lower"})
        store.put("pé", {"v": "accent"})
        store.put("pe", {"v": "plain"})
        assert [(s.pipeline_id, s.value["v"]) for s in store.list()] == [
            ("P1", "upper"),
            ("p1", "lower"),
            ("pe", "plain"),
            ("pé", "accent"),
        ]
        store.acquire_lock(LockInfo("p1", "run-a", 1, "h.invalid", "t"))
        store.release_lock("p1", "RUN-A")  # not the owner: the lock stays
        assert store.get_lock("p1") is not None

    def test_reconnects_after_the_session_is_killed(self, store: MssqlStore) -> None:
        store.put("p1", {"v": 1})
        spid = store._conn.execute("SELECT @@SPID").fetchval()
        conn = _admin()
        try:
            conn.execute(f"KILL {int(spid)}")
        except mssql.driver_errors() as exc:
            pytest.skip(f"the test login may not KILL a session: {exc}")
        finally:
            conn.close()
        got = store.get("p1")
        assert got is not None
        assert got.value == {"v": 1}

    def test_a_store_opens_where_tables_exist_without_creating(self, store: MssqlStore, uri: str) -> None:
        again = MssqlStore(uri)
        try:
            assert again.get("nope") is None
        finally:
            again.close()
