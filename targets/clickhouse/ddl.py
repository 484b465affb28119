"""SQL text for target-clickhouse: tables with their engine, schema changes, the swap, ACTIVATE_VERSION.

ClickHouse has no multi-statement transactions (`transactional = False`); every statement here is
atomic on its own: an INSERT (per block), EXCHANGE TABLES, a lightweight DELETE, ADD COLUMN.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dpone.targets.clickhouse.type_map import low_cardinality, nullable
from dpone.targets.framework.sql_dialect import DELETED_AT, TABLE_VERSION, SqlDialect
from dpone_drivers.sql_names import BACKTICKS
from dpone_protocol.errors import ConfigError

# The ReplacingMergeTree's own columns: the arrival order (the last write of a key wins) and the
# delete flag that hides a key's row from FINAL. Never part of a stream's schema.
VERSION_COLUMN = "_dpone_version"
DELETED_FLAG = "_dpone_is_deleted"
INTERNAL_COLUMNS = {VERSION_COLUMN: "UInt64", DELETED_FLAG: "UInt8"}
# Inserts carry a deduplication token; plain MergeTree tables keep none unless told to.
DEDUP_WINDOW = "non_replicated_deduplication_window = 1000"
_LAYOUT_KEYS = ("engine", "order_by", "partition_by", "primary_key", "ttl", "settings", "low_cardinality")


@dataclass(frozen=True, slots=True)
class TableLayout:
    """What a stream's table is made of beyond its columns (the `tables` setting)."""

    engine: str | None = None
    order_by: str | None = None
    partition_by: str | None = None
    primary_key: str | None = None
    ttl: str | None = None
    settings: str | None = None
    low_cardinality: tuple[str, ...] = field(default_factory=tuple)

    @classmethod
    def for_stream(cls, config: Mapping[str, Any], stream: str) -> TableLayout:
        spec = config.get("tables") or {}
        if not isinstance(spec, Mapping):
            raise ConfigError("setting 'tables' must map stream names (or patterns) to table layouts")
        found = spec.get(stream)
        if found is None:
            found = next((v for k, v in spec.items() if fnmatch.fnmatchcase(stream, k)), None)
        if found is None:
            return cls()
        if not isinstance(found, Mapping):
            raise ConfigError(f"tables[{stream!r}] must be an object")
        unknown = set(found) - set(_LAYOUT_KEYS)
        if unknown:
            raise ConfigError(f"tables[{stream!r}]: unknown keys {sorted(unknown)} (use {', '.join(_LAYOUT_KEYS)})")
        cards = found.get("low_cardinality") or ()
        if isinstance(cards, str) or not all(isinstance(c, str) for c in cards):
            raise ConfigError(f"tables[{stream!r}].low_cardinality must be a list of column names")
        text = {k: (str(found[k]) if found.get(k) else None) for k in _LAYOUT_KEYS if k != "low_cardinality"}
        return cls(low_cardinality=tuple(cards), **text)


class ClickHouseSql(SqlDialect):
    quoting = BACKTICKS
    transactional = False
    create_if_missing = True

    def create(
        self,
        name: str,
        columns: Mapping[str, str],
        keys: list[str],
        layout: TableLayout,
        *,
        replacing: bool,
        stream: str,
    ) -> str:
        """CREATE TABLE of a stream's table: `replacing` makes it a ReplacingMergeTree on the keys
        (upsert), with the version and delete flag columns; key columns are never Nullable."""
        cols = []
        for column, declared in columns.items():
            type_ = declared
            if column in keys and type_.startswith("Nullable("):
                type_ = type_.removeprefix("Nullable(").removesuffix(")")
            if column in layout.low_cardinality:
                type_ = low_cardinality(type_)
            cols.append(f"{self.q(column)} {type_}")
        if replacing:
            cols += [f"{self.q(c)} {t}" for c, t in INTERNAL_COLUMNS.items()]
        engine = layout.engine or (
            f"ReplacingMergeTree({self.q(VERSION_COLUMN)}, {self.q(DELETED_FLAG)})" if replacing else "MergeTree"
        )
        if replacing and "ReplacingMergeTree" not in engine:
            raise ConfigError(
                f"tables[{stream!r}].engine: upsert and overwrite with key properties need a ReplacingMergeTree "
                f"family engine with ({VERSION_COLUMN}, {DELETED_FLAG}), got {engine!r}"
            )
        if "(" not in engine:
            engine += "()"
        key_list = f"({self.column_list(keys)})" if keys else "tuple()"
        if replacing and layout.order_by:
            raise ConfigError(
                f"tables[{stream!r}].order_by: an upsert table is ordered by its key properties (a ReplacingMergeTree "
                "deduplicates on its ORDER BY); use primary_key or partition_by instead"
            )
        parts = [f"CREATE TABLE IF NOT EXISTS {name} ({', '.join(cols)}) ENGINE = {engine}"]
        if layout.partition_by:
            parts.append(f"PARTITION BY {layout.partition_by}")
        parts.append(f"ORDER BY {layout.order_by or key_list}")
        if layout.primary_key:
            parts.append(f"PRIMARY KEY {layout.primary_key}")
        if layout.ttl:
            parts.append(f"TTL {layout.ttl}")
        settings = DEDUP_WINDOW + (f", {layout.settings}" if layout.settings else "")
        parts.append(f"SETTINGS {settings}")
        return " ".join(parts)

    def add_column(self, table: str, column: str, type_: str) -> str:
        # Rows already in the table have no value for it: NULL, not ClickHouse's default 0 or ''.
        return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {self.q(column)} {nullable(type_)}"

    def alter_type(self, table: str, column: str, type_: str) -> str:
        return f"ALTER TABLE {table} MODIFY COLUMN {self.q(column)} {type_}"

    def drop_not_null(self, table: str, column: str, type_: str = "") -> str:
        return f"ALTER TABLE {table} MODIFY COLUMN {self.q(column)} {nullable(type_)}"

    def exchange(self, database: str, table: str, shadow: str) -> list[str]:
        """The shadow takes the table's place atomically; the old rows go with the shadow's name."""
        return [
            f"EXCHANGE TABLES {self.qualified(database, table)} AND {self.qualified(database, shadow)}",
            self.drop_table(self.qualified(database, shadow)),
        ]

    def rename(self, database: str, table: str, shadow: str) -> str:
        return f"RENAME TABLE {self.qualified(database, shadow)} TO {self.qualified(database, table)}"

    def activate_version(self, table: str, version: int, hard: bool) -> str:
        tv = self.q(TABLE_VERSION)
        older = f"({tv} IS NULL OR {tv} < {int(version)})"
        if hard:
            return f"DELETE FROM {table} WHERE {older}"  # a lightweight delete: rows hidden at once
        deleted = self.q(DELETED_AT)
        return f"ALTER TABLE {table} UPDATE {deleted} = {self.now()} WHERE {older} AND {deleted} IS NULL"

    def now(self) -> str:
        return "now64(6, 'UTC')"


SQL = ClickHouseSql()
