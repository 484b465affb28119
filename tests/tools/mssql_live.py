"""A real SQL Server for the live tests, when DPONE_TEST_MSSQL_DSN (an ODBC connection string) is set.

No SQL Server runs on the development machines; these tests run wherever one is reachable, each
in a schema of its own that is dropped afterwards.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

ENV = "DPONE_TEST_MSSQL_DSN"
needs_server = pytest.mark.skipif(
    not os.environ.get(ENV), reason=f"no SQL Server here: set {ENV} to an ODBC connection string to run live"
)


@dataclass
class LiveSchema:
    conn: Any
    schema: str
    dsn: str

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"odbc_connection_string": self.dsn, "default_target_schema": self.schema, **extra}

    def tables(self) -> set[str]:
        rows = self.conn.execute(
            "SELECT t.name FROM sys.tables AS t JOIN sys.schemas AS s ON s.schema_id = t.schema_id WHERE s.name = ?",
            self.schema,
        ).fetchall()
        return {r[0] for r in rows}

    def rows(self, table: str) -> list[dict[str, Any]] | None:
        if table not in self.tables():
            return None
        cursor = self.conn.execute(f"SELECT * FROM [{self.schema}].[{table.replace(']', ']]')}]")
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

    def drop(self) -> None:
        for table in self.tables():
            self.conn.execute(f"DROP TABLE [{self.schema}].[{table.replace(']', ']]')}]")
        self.conn.execute(f"DROP SCHEMA IF EXISTS [{self.schema}]")


def live_schema() -> Iterator[LiveSchema]:
    """A fresh schema on the live server (use from a fixture)."""
    from dpone_drivers.mssql import connection_string, pyodbc

    dsn = os.environ[ENV]
    conn = pyodbc().connect(connection_string({"odbc_connection_string": dsn}, "dpone-tests"), autocommit=True)
    schema = f"dpone_test_{secrets.token_hex(4)}"
    conn.execute(f"CREATE SCHEMA [{schema}]")
    live = LiveSchema(conn, schema, dsn)
    try:
        yield live
    finally:
        live.drop()
        conn.close()
