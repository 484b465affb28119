"""A read that fails after rows have started to arrive: the server raising an error mid-COPY, and the
tap's own connection killed mid-COPY. Both row paths (rows encoded from COPY text, and the server's JSON)
stop with the same kind of error, name what they were reading, and send no row past the failure."""

from __future__ import annotations

from typing import Any

import pytest

from tests.service.test_tap_postgres import records

pytestmark = pytest.mark.service
ROWS = 5000
FAIL_AT = 4000


@pytest.fixture(params=["compiled", "json"])
def row_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "json":
        monkeypatch.setenv("DPONE_PURE_PYTHON", "1")
    return str(request.param)


def read_failing(src: Any, row_path: str, failure: str, last_row: int) -> Any:
    src.sql(
        "CREATE TABLE t (id int PRIMARY KEY, v int)",
        f"INSERT INTO t SELECT i, i FROM generate_series(1, {ROWS}) i",
        f"CREATE VIEW w AS SELECT id, CASE WHEN id = {FAIL_AT} THEN {failure} ELSE v END AS v FROM t",
    )
    run = src.sync(src.catalog("w"))
    path_line = "rows encoded from COPY text" if row_path == "compiled" else "rows rendered as JSON by the server"
    assert path_line in run.stderr
    sent = [r["id"] for r in records(run)]
    assert sent == list(range(1, len(sent) + 1)) and len(sent) <= last_row  # nothing past the failure
    return run


def test_a_server_error_mid_copy_is_a_clear_error(src: Any, row_path: str) -> None:
    run = read_failing(src, row_path, "1 / (id - id)", FAIL_AT - 1)
    last = run.stderr.strip().splitlines()[-1]
    assert run.rc != 0 and "reading" in last and "division by zero" in last, run.stderr


def test_the_connection_killed_mid_copy_is_transient(src: Any, row_path: str) -> None:
    # The backend sends the row that terminates it, then dies at its next interrupt check.
    run = read_failing(src, row_path, "pg_terminate_backend(pg_backend_pid())::int", ROWS - 1)
    last = run.stderr.strip().splitlines()[-1]
    assert run.rc == 75 and "transient error" in last and "reading" in last, run.stderr
