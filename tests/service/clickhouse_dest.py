"""A ClickHouse destination for tests: the embedded engine (chdb) in a data directory of the test's own.

One process may hold a data directory at a time: every read here opens the engine, reads and
closes it, so a target run in a subprocess next finds the directory free.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import clickhouse_connect

from dpone.targets.clickhouse.ddl import INTERNAL_COLUMNS

DATABASE = "dw"


class ClickHouseDest:
    def __init__(self, directory: Path, database: str = DATABASE) -> None:
        self.directory = directory
        self.database = database
        self.dsn = f"chdb://{directory}"

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"dsn": self.dsn, "database": self.database, **extra}

    @contextmanager
    def client(self) -> Iterator[Any]:
        client = clickhouse_connect.get_client(dsn=self.dsn)
        try:
            yield client
        finally:
            client.close()

    def tables(self) -> set[str]:
        with self.client() as client:
            rows = client.query(
                "SELECT name FROM system.tables WHERE database = {db:String}", parameters={"db": self.database}
            ).result_rows
        return {name for (name,) in rows}

    def engine(self, table: str) -> str | None:
        with self.client() as client:
            rows = client.query(
                "SELECT engine FROM system.tables WHERE database = {db:String} AND name = {t:String}",
                parameters={"db": self.database, "t": table},
            ).result_rows
        return rows[0][0] if rows else None

    def rows(self, table: str, *, final: bool = True, internal: bool = False) -> list[dict[str, Any]] | None:
        """The table's rows as dicts; FINAL for a ReplacingMergeTree (what a reader of upserts sees)."""
        engine = self.engine(table)
        if engine is None:
            return None
        suffix = " FINAL" if final and "Replacing" in engine else ""
        with self.client() as client:
            result = client.query(f"SELECT * FROM `{self.database}`.`{table}`{suffix}")
        names = list(result.column_names)
        return [
            {n: v for n, v in zip(names, row, strict=True) if internal or n not in INTERNAL_COLUMNS}
            for row in result.result_rows
        ]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        with self.client() as client:
            return list(client.query(sql).result_rows)
