"""tap-mssql's doctor checks on the recording driver: CDC enabled on the database and on each LOG_BASED
stream's table, with the fix each failure needs; other streams ask nothing of CDC."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.tools.recording_odbc import Recorder, odbc_error
from tests.unit.mssql.scripted_source import ORDERS, TapRun, select
from tests.unit.mssql.test_tap_mssql_cdc import cdc_source


def doctor(tap: TapRun, catalog: dict[str, Any]) -> dict[str, dict[str, str]]:
    run = tap("--ops", tap.file("request", {"op": "doctor"}), "--catalog", tap.file("catalog", catalog))
    assert run.rc == 0, run.stderr
    answer = orjson.loads(run.stdout)
    return {check["name"]: check for check in answer["checks"]}


def test_a_log_based_stream_on_a_table_with_cdc_passes(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    cdc_source(monkeypatch)
    tap = TapRun(tmp_path)
    checks = doctor(tap, select(tap.discover(), ORDERS, "LOG_BASED"))
    assert checks["driver pyodbc"]["status"] == "ok"
    assert checks["connect"]["status"] == "ok"
    assert checks[f"CDC {ORDERS}"] == {
        "name": f"CDC {ORDERS}",
        "status": "ok",
        "detail": "enabled; capture instance readable",
        "hint": "",
    }


@pytest.mark.parametrize(
    ("enabled", "says"),
    [
        ((False, False), "not enabled on database 'shop': run EXEC sys.sp_cdc_enable_db"),
        ((True, False), "CDC is not enabled on [dbo].[orders]: run EXEC sys.sp_cdc_enable_table"),
    ],
)
def test_cdc_off_fails_with_the_command_that_turns_it_on(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, enabled: tuple[bool, bool], says: str
) -> None:
    cdc_source(monkeypatch, enabled=enabled)
    tap = TapRun(tmp_path)
    check = doctor(tap, select(tap.discover(), ORDERS, "LOG_BASED"))[f"CDC {ORDERS}"]
    assert check["status"] == "fail"
    assert says in check["detail"]


def test_other_methods_ask_nothing_of_cdc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    recorder = cdc_source(monkeypatch, enabled=(False, False))
    tap = TapRun(tmp_path)
    checks = doctor(tap, select(tap.discover(), ORDERS, "FULL_TABLE"))
    assert [name for name in checks if name.startswith("CDC")] == []
    assert not any("is_cdc_enabled" in sql for sql in recorder.statements())


def test_a_refused_login_fails_connect_and_asks_nothing_else(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    Recorder().install(monkeypatch).on(
        r"FROM sys\.tables", odbc_error("28000", "Login failed for user 'etl'.", 18456, "InterfaceError")
    )
    tap = TapRun(tmp_path)
    catalog = {"streams": []}
    checks = doctor(tap, catalog)
    assert checks["connect"]["status"] == "fail"
    assert "Login failed" in checks["connect"]["detail"]
    assert list(checks) == ["driver pyodbc", "connect"]
