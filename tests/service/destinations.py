"""The database targets as one fixture (`dest`): the same scenario checked on each of them."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import duckdb
import psycopg
import pytest

from dpone.targets.duckdb.target import DuckDBTarget
from dpone.targets.framework.target import Target
from dpone.targets.postgres.target import PostgresTarget


class Destination(Protocol):
    target: type[Target]

    def config(self, **extra: Any) -> dict[str, Any]: ...

    def rows(self, sql: str) -> list[tuple[Any, ...]]: ...

    def tables(self) -> set[str]: ...


class DuckDB:
    target = DuckDBTarget

    def __init__(self, path: Path) -> None:
        self.path = path

    def config(self, **extra: Any) -> dict[str, Any]:
        return {"filepath": str(self.path), **extra}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        with duckdb.connect(str(self.path), read_only=True) as conn:
            return conn.execute(sql).fetchall()

    def tables(self) -> set[str]:
        return {t for (t,) in self.rows("SELECT table_name FROM duckdb_tables()")}


class Postgres:
    target = PostgresTarget

    def __init__(self, dsn: str, base: dict[str, Any]) -> None:
        self.base = base
        self.schema = f"lm_{uuid.uuid4().hex[:10]}"
        self.conn = psycopg.connect(dsn, autocommit=True)

    def config(self, **extra: Any) -> dict[str, Any]:
        return {**self.base, "default_target_schema": self.schema, **extra}

    def rows(self, sql: str) -> list[tuple[Any, ...]]:
        self.conn.execute(f'SET search_path TO "{self.schema}"')
        return self.conn.execute(sql).fetchall()  # type: ignore[arg-type]

    def tables(self) -> set[str]:
        found = self.conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = %s", (self.schema,))
        return {t for (t,) in found.fetchall()}

    def drop(self) -> None:
        self.conn.execute(f'DROP SCHEMA IF EXISTS "{self.schema}" CASCADE')
        self.conn.close()


@pytest.fixture(params=["duckdb", "postgres"])
def dest(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Destination]:
    if request.param == "duckdb":
        yield DuckDB(tmp_path / "lm.duckdb")
        return
    server = request.getfixturevalue("postgres_server")
    pg = Postgres(server.dsn, server.config())
    try:
        yield pg
    finally:
        pg.drop()
