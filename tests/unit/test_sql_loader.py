"""SqlLoader and SqlDialect, the steps written once for every SQL target, run on a real SQLite file
through the docs' example loader (examples/target_sqlite/): transactions, typed errors, names,
merge, swap, ACTIVATE_VERSION and table versions."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.sql_dialect import SqlDialect
from dpone_drivers.sql_names import ANSI, BACKTICKS, BRACKETS
from dpone_protocol.errors import DataError, TransientError
from dpone_protocol.json_schema import ColumnType, Logical
from examples.target_sqlite.loader import SqliteLoader, SqliteSql

INT, TEXT = ColumnType(Logical.INTEGER), ColumnType(Logical.STRING)


def plan(method: str = "upsert", hard: bool = False) -> StreamPlan:
    columns = {"id": INT, "v": TEXT, "_sdc_deleted_at": TEXT, "_sdc_table_version": INT}
    return StreamPlan("s", "t", columns, ["id"], method, hard_delete=hard)


@pytest.fixture
def loader(tmp_path: Path) -> SqliteLoader:
    made = SqliteLoader({"path": str(tmp_path / "db.sqlite")})
    made.run_all([made.sql.create_table(made.table_ref("t"), made.column_types(plan()))], "creating")
    return made


def rows(loader: SqliteLoader, table: str = "t") -> list[tuple[Any, ...]]:
    return loader.conn.execute(f'SELECT id, v, _sdc_deleted_at FROM "{table}" ORDER BY id').fetchall()  # type: ignore[no-any-return]


def load(loader: SqliteLoader, p: StreamPlan, records: list[dict[str, Any]], schema: list[str] | None = None) -> None:
    staging = loader.prepare_staging(p)
    try:
        loader.bulk_load(p, staging, records)
        loader.finalize(p, staging, p.table, schema or [])
    finally:
        loader.cleanup(p, staging)


def test_a_failing_statement_rolls_back_the_whole_transaction_and_is_typed(loader):
    with pytest.raises(DataError, match="loading: "):
        loader.run_all(["INSERT INTO t (id) VALUES (1)", "INSERT INTO nosuch VALUES (1)"], "loading")
    assert rows(loader) == []


def test_schema_changes_commit_with_the_rows_or_not_at_all(loader):
    p = plan()
    with pytest.raises(DataError):
        load(loader, p, [{"id": 1, "v": "a"}], ['ALTER TABLE "main"."t" ADD COLUMN "w" TEXT', "SELECT * FROM nosuch"])
    assert "w" not in (loader.describe_table("t") or {})
    assert rows(loader) == []


def test_a_rollback_that_fails_does_not_hide_the_error(loader, monkeypatch):
    real = loader.execute

    def execute(sql: str, params: Any = None) -> Any:
        if sql == "ROLLBACK":
            raise RuntimeError("rollback failed too")
        return real(sql, params)

    monkeypatch.setattr(loader, "execute", execute)
    with pytest.raises(DataError, match="no such table"):
        loader.run_all(["SELECT * FROM nosuch"], "reading")


class OneByOne(SqliteSql):
    transactional = False


def test_a_dialect_without_transactions_runs_each_statement_on_its_own(loader):
    loader.sql = OneByOne()
    with pytest.raises(DataError):
        loader.run_all(["INSERT INTO t (id) VALUES (1)", "INSERT INTO nosuch VALUES (1)"], "loading")
    assert rows(loader) == [(1, None, None)]  # no transaction promised, none given


def test_a_locked_database_is_transient_and_retried_by_default(loader):
    import sqlite3

    error = loader.typed_error(sqlite3.OperationalError("database is locked"), "loading")
    assert isinstance(error, TransientError)
    assert loader.is_transient(error)


def test_upsert_merges_on_the_key_and_hard_deletes_remove_the_key(loader):
    load(loader, plan(), [{"id": 1, "v": "a"}, {"id": 2, "v": "b"}])
    load(loader, plan(), [{"id": 2, "v": "b2"}, {"id": 3, "v": "c"}])
    assert rows(loader) == [(1, "a", None), (2, "b2", None), (3, "c", None)]
    load(loader, plan(hard=True), [{"id": 1, "_sdc_deleted_at": "2026-01-01T00:00:00Z"}])
    assert rows(loader) == [(2, "b2", None), (3, "c", None)]
    load(loader, plan(), [{"id": 3, "v": "c", "_sdc_deleted_at": "2026-01-01T00:00:00Z"}])  # soft: kept, marked
    assert rows(loader)[-1] == (3, "c", "2026-01-01T00:00:00Z")


def test_append_only_keeps_every_row(loader):
    load(loader, plan("append-only"), [{"id": 1, "v": "a"}])
    load(loader, plan("append-only"), [{"id": 1, "v": "a"}])
    assert rows(loader) == [(1, "a", None), (1, "a", None)]


def test_a_full_refresh_swaps_a_shadow_in_and_reports_its_version(loader):
    load(loader, plan(), [{"id": 9, "v": "old", "_sdc_table_version": 1}])
    p = plan("overwrite")
    shadow = loader.begin_replace(p)
    staging = loader.prepare_staging(p)
    loader.bulk_load(p, staging, [{"id": 5, "v": "fresh", "_sdc_table_version": 2}])
    loader.finalize(p, staging, shadow, [])
    loader.cleanup(p, staging)
    assert loader.table_version(shadow) == 2
    loader.swap(p, shadow, [])
    assert rows(loader) == [(5, "fresh", None)]
    assert loader.describe_table(shadow) is None


def test_a_resumed_refresh_is_merged_into_the_live_table(loader):
    load(loader, plan(), [{"id": i, "v": "x", "_sdc_table_version": 3} for i in (1, 2)])
    p = plan("overwrite")
    shadow = loader.begin_replace(p)
    staging = loader.prepare_staging(p)
    loader.bulk_load(p, staging, [{"id": 2, "v": "y", "_sdc_table_version": 3}, {"id": 3, "v": "z"}])
    loader.finalize(p, staging, shadow, [])
    loader.merge_shadow(p, shadow, [])
    assert rows(loader) == [(1, "x", None), (2, "y", None), (3, "z", None)]
    assert loader.describe_table(shadow) is None


@pytest.mark.parametrize("hard", [False, True])
def test_activate_version_retires_older_rows(loader, hard):
    load(loader, plan(), [{"id": 1, "_sdc_table_version": 1}, {"id": 2, "_sdc_table_version": 2}, {"id": 3}])
    loader.activate_version(plan(hard=hard), 2)
    live = [r[0] for r in rows(loader) if r[2] is None]
    assert live == [2]
    assert len(rows(loader)) == (1 if hard else 3)


def test_a_table_without_the_version_column_has_no_version(loader):
    loader.run_all(['CREATE TABLE "main"."plain" ("id" INTEGER)'], "creating")
    assert loader.table_version("plain") is None
    assert loader.table_version("nosuch") is None


@pytest.mark.parametrize(
    ("quoting", "name", "quoted"),
    [
        (ANSI, 'we"ird', '"we""ird"'),
        (BRACKETS, "a]b", "[a]]b]"),
        (BACKTICKS, "a`b\\c", "`a\\`b\\\\c`"),
    ],
)
def test_every_quoting_escapes_its_closing_quote(quoting, name, quoted):
    assert quoting.q(name) == quoted
    assert quoting.qualified("s", name) == f"{quoting.q('s')}.{quoted}"


def test_a_name_with_quotes_is_one_identifier_in_the_database(loader):
    odd = plan()
    odd.table = 'a "quoted" ; DROP TABLE t --'
    loader.run_all([loader.sql.create_table(loader.table_ref(odd.table), loader.column_types(odd))], "creating")
    load(loader, odd, [{"id": 1, "v": "a"}])
    assert rows(loader, odd.table.replace('"', '""')) == [(1, "a", None)]
    assert loader.describe_table("t") is not None


class Short(SqlDialect):
    max_name_bytes = 20


def test_long_names_are_fitted_with_a_hash_so_two_stay_two():
    a, b = Short().fit_name("a_very_long_table_name_one"), Short().fit_name("a_very_long_table_name_two")
    assert a != b and len(a) == len(b) == 20
    assert Short().fit_name("short") == "short"
    assert Short().fit_name("a_very_long_table_name_one", "_pkey").endswith("_pkey")
