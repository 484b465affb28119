"""tap-mssql's errors as a user meets them: a refused login and an unreachable server (typed exit codes,
no password on stderr), a permission error naming its GRANT; `--help` and the tap's module without
pyodbc; and docs/connectors/tap-mssql.md, whose settings table and troubleshooting messages are the
ones the tap has (every message there is provoked by a test in this folder)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from dpone.taps.mssql.tap import MssqlTap
from tests.tools.recording_odbc import Recorder, odbc_error
from tests.unit.mssql import test_tap_mssql_cdc as cdc
from tests.unit.mssql import test_tap_mssql_change_tracking as change_tracking
from tests.unit.mssql.scripted_source import ORDERS, PASSWORD, TapRun, error_line, scripted, select

ROOT = Path(__file__).resolve().parents[3]
DOC = ROOT / "docs" / "connectors" / "tap-mssql.md"

LOGIN_FAILED = "tap-mssql: config error: connecting to SQL Server at db.example: Login failed for user 'etl'. (18456)"
# What Driver 18 says when nothing answers: no more than this (no TCP provider detail on Linux).
UNREACHABLE = "tap-mssql: transient error: connecting to SQL Server at db.example: Login timeout expired (0)"
READ_DENIED = (
    "tap-mssql: config error: reading dbo.orders: The SELECT permission was denied on the object 'orders', "
    "database 'shop', schema 'dbo'. (229) (GRANT SELECT ON [dbo].[orders] TO the tap's user)"
)
ROWVERSION_MISSING = (
    "tap-mssql: config error: stream 'dbo-order_lines': ROWVERSION needs a rowversion column, and "
    "[dbo].[order_lines] has none (ALTER TABLE [dbo].[order_lines] ADD [row_version] rowversion adds one)"
)


def connect_error(cls: str, sqlstate: str, text: str) -> Exception:
    """A pyodbc error as the real driver raises it when a connection fails."""
    import pyodbc

    error: Exception = getattr(pyodbc, cls)(
        sqlstate, f"[{sqlstate}] [Microsoft][ODBC Driver 18 for SQL Server]{text} (SQLDriverConnect)"
    )
    return error


def refusing(monkeypatch: pytest.MonkeyPatch, error: Exception) -> Recorder:
    """A driver whose connect fails with `error`, after it was handed the password."""
    recorder = Recorder()
    module = recorder.module()

    def connect(text: str, **_: Any) -> None:
        recorder.connection_strings.append(text)
        raise error

    module.connect = connect
    monkeypatch.setattr("dpone_drivers.mssql.pyodbc", lambda: module)
    return recorder


LOGIN_ERROR = ("InterfaceError", "28000", "[SQL Server]Login failed for user 'etl'. (18456)")
TIMEOUT_ERROR = ("OperationalError", "HYT00", "Login timeout expired (0)")


@pytest.mark.parametrize(
    ("error", "code", "expected"),
    [(LOGIN_ERROR, 78, LOGIN_FAILED), (TIMEOUT_ERROR, 75, UNREACHABLE)],
    ids=["login-failed", "unreachable"],
)
def test_a_connection_failure_has_its_exit_code_and_never_the_password(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, error: tuple[str, str, str], code: int, expected: str
) -> None:
    recorder = refusing(monkeypatch, connect_error(*error))
    run = TapRun(tmp_path)("--discover")
    assert (run.rc, error_line(run)) == (code, expected)
    assert PASSWORD in recorder.connection_strings[0]  # the driver got it...
    assert PASSWORD not in run.stderr and PASSWORD not in run.stdout.decode()  # ...nobody else


def test_a_password_in_a_drivers_message_is_masked(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # A driver that repeats its connection string in an error, as a careless one might.
    refusing(monkeypatch, connect_error("OperationalError", "08001", f"cannot use PWD={PASSWORD};UID=etl"))
    run = TapRun(tmp_path)("--discover")
    assert run.rc == 75
    assert (
        error_line(run)
        == "tap-mssql: transient error: connecting to SQL Server at db.example: cannot use PWD=***;UID=etl"
    )


def test_a_table_the_user_may_not_read_names_the_grant(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    denied = "The SELECT permission was denied on the object 'orders', database 'shop', schema 'dbo'."
    recorder.on(r"FROM \[dbo\]\.\[orders\]", odbc_error("42000", denied, 229))
    tap = TapRun(tmp_path)
    run = tap.sync(select(tap.discover(), ORDERS))
    assert (run.rc, error_line(run)) == (78, READ_DENIED)
    assert PASSWORD not in run.stderr


def test_the_connection_string_is_what_the_settings_say(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = scripted(monkeypatch)
    TapRun(tmp_path).discover()
    assert recorder.connection_strings == [
        "DRIVER={ODBC Driver 18 for SQL Server};SERVER=tcp:db.example,1433;Encrypt=yes;TrustServerCertificate=yes;"
        f"APP=dpone-tap-mssql;LoginTimeout=30;DATABASE=shop;UID=etl;PWD={PASSWORD}"
    ]


# -- no driver for --help ----------------------------------------------------------------------------


def _imports(code: str, *args: str) -> set[str]:
    env = {**os.environ, "PYTHONPROFILEIMPORTTIME": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, check=False)
    assert proc.returncode == 0, proc.stderr
    return {line.split("|")[-1].strip() for line in proc.stderr.splitlines() if line.startswith("import time:")}


def test_the_tap_module_and_help_do_not_import_pyodbc() -> None:
    assert "pyodbc" not in _imports("import dpone.taps.mssql.tap")
    assert "pyodbc" not in _imports("from dpone.taps.mssql.cli import main; main()", "--help")


# -- the documentation -------------------------------------------------------------------------------


def test_doc_settings_table_lists_every_setting_in_order() -> None:
    section = DOC.read_text().split("\n## Settings\n", 1)[1].split("\n## ", 1)[0]
    table = re.findall(r"^\| `([a-z0-9_]+)` \|", section, flags=re.MULTILINE)
    names = [s.name for s in MssqlTap.all_settings()]
    assert [n for n in table if n in names] == names, "docs/connectors/tap-mssql.md settings table is out of date"


DOCUMENTED = [
    LOGIN_FAILED,
    UNREACHABLE,
    READ_DENIED,
    ROWVERSION_MISSING,
    cdc.STALE,
    cdc.NOT_TRACKED,
    cdc.NOT_ENABLED,
    cdc.NO_KEY,
    cdc.NO_PERMISSION,
    cdc.NOT_CAPTURED,
    cdc.NO_CAPTURE_YET,
    cdc.INVISIBLE,
    cdc.MALFORMED,
    change_tracking.STALE,
    change_tracking.TABLE_OFF,
    change_tracking.DATABASE_OFF,
    change_tracking.NO_PERMISSION,
    change_tracking.NO_KEY,
    change_tracking.SNAPSHOT_REFUSED,
    change_tracking.COLUMN_GONE,
]


@pytest.mark.parametrize("message", DOCUMENTED, ids=range(len(DOCUMENTED)))
def test_doc_troubleshooting_shows_each_message_as_the_tap_writes_it(message: str) -> None:
    section = DOC.read_text().split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    shown = re.findall(r"^\| `(.+?)` \|", section, flags=re.MULTILINE)
    assert message in shown, f"docs/connectors/tap-mssql.md Troubleshooting lacks: {message}"
