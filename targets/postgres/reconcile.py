"""target-postgres's reconcile answer: the shared SQL target answer (targets/framework/sql_reconcile.py)
in PostgreSQL's words, the same tap-postgres counts with (dpone_drivers/postgres_reconcile.py)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from dpone.targets.framework.sql_reconcile import answer_request
from dpone_drivers.postgres_reconcile import COLUMN_TYPES, WORDS

if TYPE_CHECKING:
    from dpone.targets.postgres.loader import PostgresLoader
    from dpone.targets.postgres.target import PostgresTarget


def column_types(loader: PostgresLoader, table: str) -> dict[str, str] | None:
    rows = loader.run(COLUMN_TYPES, "reading the table's columns", (loader.table_ref(table),)).fetchall()
    return {name: type_ for name, type_ in rows} or None


def reconcile(target: PostgresTarget, request: Mapping[str, Any]) -> dict[str, Any]:
    return answer_request(target, request, WORDS, column_types)
