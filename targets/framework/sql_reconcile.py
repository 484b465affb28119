"""A SQL target's reconcile answer (dpone_protocol/reconcile.py), written once for every SqlLoader.

The table and its columns are found the way the loader itself names them (table_name and
table_name_map, the loader's stored name, the dialect's column naming and the names older
versions used); only live rows count (`_sdc_deleted_at IS NULL`, where the table has the column).
Deleting keys found missing at the source goes staging-first like any load: the keys are
bulk-loaded into a temporary staging table with the loader's own bulk path, then one statement in
one transaction marks them deleted (or deletes them, with hard_delete or without the column).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from dpone.targets.framework.capabilities import UPSERT
from dpone.targets.framework.loader import StreamPlan, table_name
from dpone.targets.framework.loader_target import LoaderTarget
from dpone.targets.framework.sql_loader import SqlLoader
from dpone_drivers.reconcile_sql import Reconciler, Table, Words
from dpone_protocol.errors import ConfigError
from dpone_protocol.json_schema import stream_columns
from dpone_protocol.reconcile import Request, parse_request

# (loader, table) -> the table's column types by column name, or None when there is no such table.
ColumnTypes = Callable[[Any, str], "dict[str, str] | None"]


def answer_request(
    target: LoaderTarget, request: Mapping[str, Any], words: Words, types: ColumnTypes
) -> dict[str, Any]:
    parsed = parse_request(request)
    target.read_only = parsed.delete is None  # counting creates nothing, not even a schema
    loader = target.make_loader()
    if not isinstance(loader, SqlLoader):
        raise ConfigError(f"{target.name} has no SQL loader to reconcile with")
    try:
        loader.keep_staging = False  # this staging is always temporary: never shared with a load's
        table = table_name(parsed.stream, target.config.get("table_name_map"))
        found = types(loader, table)
        if found is not None:
            for statement in words.setup():
                loader.run(statement, "preparing the reconcile session")
        if parsed.delete is not None:
            if found is None:
                raise ConfigError(f"stream {parsed.stream!r}: no table {loader.schema}.{table} to delete from")
            return delete_keys(loader, parsed, table, found, bool(target.config.get("hard_delete")))
        compared = compared_table(loader, parsed, table, found)

        def query(sql: str, params: Any) -> list[tuple[Any, ...]]:
            return list(loader.run(sql, f"reconciling {loader.schema}.{table}", list(params) or None).fetchall())

        return Reconciler(parsed, compared, words, query).answer()
    finally:
        loader.close()


def destination_columns(loader: SqlLoader, request: Request, types: dict[str, str]) -> dict[str, str]:
    """Property -> the table column it landed in (absent: no such column), named as the loader names it."""
    dialect = loader.dialect
    by_key = {dialect.column_key(name): name for name in types}
    found: dict[str, str] = {}
    for prop in [*request.keys, *(c.name for c in request.columns)]:
        column = by_key.get(dialect.column_key(prop))
        if column is None and dialect.former_name is not None:
            column = by_key.get(dialect.column_key(dialect.former_name(prop)))
        if column is not None:
            found[prop] = column
    return found


def compared_table(loader: SqlLoader, request: Request, table: str, types: dict[str, str] | None) -> Table | None:
    """The destination table of the request's stream, with the column each property landed in."""
    if types is None:
        return None
    q = loader.sql.q
    columns = {prop: (q(column), types[column]) for prop, column in destination_columns(loader, request, types).items()}
    soft = request.soft_delete_column
    live = f"{q(soft)} IS NULL" if soft and soft in types else ""
    return Table(
        ref=loader.table_ref(table),
        label=f"{loader.schema}.{loader.stored_name(table)}",
        columns=columns,
        keys=[columns[k] for k in request.keys if k in columns],
        live=live,
        notes=[f"live rows only ({soft} IS NULL)"] if live else [],
    )


def delete_keys(
    loader: SqlLoader, request: Request, table: str, types: dict[str, str], hard_delete: bool
) -> dict[str, Any]:
    """Remove `request.delete` keys: staging-first, one statement in one transaction. Soft (the
    live rows get _sdc_deleted_at = now()) where the table has that column and hard_delete is off."""
    assert request.delete is not None
    q = loader.sql.q
    ref, label = loader.table_ref(table), f"{loader.schema}.{loader.stored_name(table)}"
    key_types = stream_columns({"properties": request.key_schema}, request.stream)
    landed = destination_columns(loader, request, types)
    missing = [k for k in request.keys if k not in key_types or k not in landed]
    if not request.keys or missing:
        raise ConfigError(f"stream {request.stream!r}: cannot delete by key {missing or request.keys} in {label}")
    columns = {landed[k]: key_types[k] for k in request.keys}
    soft = request.soft_delete_column
    mode = "soft" if soft and soft in types and not hard_delete else "hard"
    if not request.delete:
        return {"table": label, "deleted": 0, "mode": mode}
    records = [dict(zip(columns, values, strict=True)) for values in request.delete]
    plan = StreamPlan(request.stream, table, columns, list(columns), UPSERT)
    staging = loader.prepare_staging(plan)
    try:
        loader.bulk_load(plan, staging, records)
        on = " AND ".join(f"t.{q(c)} = s.{q(c)}" for c in columns)
        matched = f"FROM {ref} AS t JOIN {staging} AS s ON {on}"
        if mode == "soft":
            live = f"t.{q(str(soft))} IS NULL"
            count = f"SELECT count(*) {matched} WHERE {live}"
            change = (
                f"UPDATE {ref} AS t SET {q(str(soft))} = {loader.sql.now()} FROM {staging} AS s WHERE {on} AND {live}"
            )
        else:
            count = f"SELECT count(*) {matched}"
            change = loader.sql.delete_matching(ref, staging, list(columns))
        with loader.transaction(f"deleting keys missing at the source from {label}"):
            deleted = int(loader.execute(count).fetchone()[0])
            loader.execute(change)
    finally:
        loader.cleanup(plan, staging)
    return {"table": label, "deleted": deleted, "mode": mode}
