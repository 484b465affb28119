"""A scripted SQL Server for tap-mssql's tests: the recording pyodbc connection (tests/tools/recording_odbc.py)
answering the tap's catalog queries with a small database, and the tap run the way a user runs it
(`tap-mssql --config ... [--discover | --catalog ... --state ...]`, in-process).

The database `shop`:

- dbo.orders: id int (key), customer nvarchar(50), total decimal(12,2), updated_at datetime2(7), rv rowversion
- dbo.order_lines: order_id int, line_no smallint (key in that order), sku varchar(20)
- dbo.events: id bigint, payload nvarchar(max), no key (a heap)
- sales.big_orders: a view of id and total
"""

from __future__ import annotations

import copy
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.taps.framework.tap_cli import run as run_tap_cli
from dpone.taps.mssql.tap import MssqlTap
from tests.conftest import Run
from tests.tools.recording_odbc import Recorder

PASSWORD = "s3cret-Pa55word"
CONFIG: dict[str, Any] = {
    "host": "db.example",
    "database": "shop",
    "user": "etl",
    "password": PASSWORD,
    "trust_server_certificate": True,
}

TABLES = [
    (101, "dbo", "events", "table", 0),
    (102, "dbo", "order_lines", "table", 10),
    (103, "dbo", "orders", "table", 3),
    (201, "sales", "big_orders", "view", None),
]
# object_id, name, type, max_length (bytes), precision, scale, is_nullable, is_assembly_type
COLUMNS = [
    (101, "id", "bigint", 8, 19, 0, 0, 0),
    (101, "payload", "nvarchar", -1, 0, 0, 1, 0),
    (102, "order_id", "int", 4, 10, 0, 0, 0),
    (102, "line_no", "smallint", 2, 5, 0, 0, 0),
    (102, "sku", "varchar", 20, 0, 0, 1, 0),
    (103, "id", "int", 4, 10, 0, 0, 0),
    (103, "customer", "nvarchar", 100, 0, 0, 1, 0),
    (103, "total", "decimal", 9, 12, 2, 1, 0),
    (103, "updated_at", "datetime2", 8, 27, 7, 0, 0),
    (103, "rv", "timestamp", 8, 0, 0, 0, 0),
    (201, "id", "int", 4, 10, 0, 0, 0),
    (201, "total", "decimal", 9, 12, 2, 1, 0),
]
KEYS = [(102, "order_id"), (102, "line_no"), (103, "id")]

ORDERS = "dbo-orders"
LINES = "dbo-order_lines"
EVENTS = "dbo-events"

# How the tap renders dbo.orders' rows and keys (FOR JSON inside, JSON text of the key outside).
ORDERS_ROW = (
    "(SELECT _dpone_src.[id] AS [id], _dpone_src.[customer] AS [customer], "
    "CONVERT(VARCHAR(41), _dpone_src.[total]) AS [total], _dpone_src.[updated_at] AS [updated_at], "
    "CAST(_dpone_src.[rv] AS BIGINT) AS [rv] FOR JSON PATH, WITHOUT_ARRAY_WRAPPER, INCLUDE_NULL_VALUES)"
)
ORDERS_KEY = "N'[' + ISNULL(CONVERT(VARCHAR(20), _dpone_src.[id]), N'null') + N']'"
ORDERS_ROWS = [
    ('{"id":1,"customer":"Ana","total":"10.50","updated_at":"2024-01-01T10:00:00","rv":2001}', "[1]"),
    ('{"id":2,"customer":null,"total":"0.00","updated_at":"2024-01-02T09:30:00.1234567","rv":2002}', "[2]"),
    ('{"id":3,"customer":"Ch\\u00e9 \\"q\\"","total":"-1.25","updated_at":"2024-01-03T00:00:00","rv":2003}', "[3]"),
]
ORDERS_RECORDS = [orjson.loads(row) for row, _ in ORDERS_ROWS]


def scripted(monkeypatch: pytest.MonkeyPatch) -> Recorder:
    """A recorder answering discovery with the `shop` database."""
    recorder = Recorder().install(monkeypatch)
    recorder.on(r"FROM sys\.tables AS t", TABLES)
    recorder.on(r"FROM sys\.columns AS c", COLUMNS)
    recorder.on(r"is_primary_key = 1", KEYS)
    return recorder


@dataclass
class TapRun:
    """tap-mssql run in-process with files in `tmp`, as a user runs it."""

    tmp: Path

    def __call__(self, *args: str, config: dict[str, Any] | None = None, **extra: Any) -> Run:
        out, err = io.BytesIO(), io.StringIO()
        path = self.file("config", {**CONFIG, **(config or {}), **extra})
        rc = run_tap_cli(MssqlTap, ["--config", path, *args], stdout=out, stderr=err)
        stdout = out.getvalue()
        messages = [] if stdout.startswith(b"{\n") else [orjson.loads(line) for line in stdout.splitlines()]
        return Run(rc, stdout, err.getvalue(), messages)

    def file(self, what: str, value: Any) -> str:
        path = self.tmp / f"{what}.json"
        path.write_bytes(orjson.dumps(value))
        return str(path)

    def discover(self) -> dict[str, Any]:
        run = self("--discover")
        assert run.rc == 0, run.stderr
        catalog: dict[str, Any] = orjson.loads(run.stdout)
        return catalog

    def sync(self, catalog: dict[str, Any], state: dict[str, Any] | None = None, **config: Any) -> Run:
        args = ["--catalog", self.file("catalog", catalog)]
        if state is not None:
            args += ["--state", self.file("state", state)]
        return self(*args, **config)


def select(catalog: dict[str, Any], stream: str, method: str = "FULL_TABLE", **metadata: Any) -> dict[str, Any]:
    """The catalog with only `stream` selected, read with `method`."""
    catalog = copy.deepcopy(catalog)
    for entry in catalog["streams"]:
        top = next(m["metadata"] for m in entry["metadata"] if m["breadcrumb"] == [])
        top["selected"] = entry["tap_stream_id"] == stream
        if top["selected"]:
            top["replication-method"] = method
            top.update(metadata)
    return catalog


def records(run: Run) -> list[dict[str, Any]]:
    return [m["record"] for m in run.of_type("RECORD")]


def last_bookmark(run: Run, stream: str) -> Any:
    return run.states[-1]["bookmarks"][stream]


def executed(recorder: Recorder, pattern: str) -> list[tuple[str, tuple[Any, ...]]]:
    """(sql, params) of every statement run whose SQL contains `pattern`."""
    return [(c.sql, c.params) for c in recorder.calls if c.kind == "execute" and pattern in c.sql]


def after_discovery(recorder: Recorder) -> list[str]:
    """The statements run after the last discovery (a sync discovers first)."""
    statements = [c.sql for c in recorder.calls if c.kind == "execute"]
    last = max(i for i, sql in enumerate(statements) if "is_primary_key" in sql)
    return statements[last + 1 :]


def error_line(run: Run) -> str:
    lines = [line for line in run.stderr.splitlines() if line.startswith("tap-mssql:")]
    assert lines, run.stderr
    return lines[-1]
