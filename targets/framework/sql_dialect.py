"""The SQL a staging-first loader runs, written once; a database overrides only the words it says differently.

Every identifier is quoted through the dialect's :class:`Quoting`; record values never appear in
this text (they travel through the bulk path). The defaults are plain SQL that PostgreSQL,
DuckDB and SQLite all accept: a merge is a DELETE of the matching keys and an INSERT, in one
transaction. A database with a MERGE statement, or without multi-statement transactions
(ClickHouse, BigQuery: `transactional = False`), says so in its subclass.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping

from dpone_drivers.sql_names import ANSI, Quoting

TABLE_VERSION = "_sdc_table_version"
DELETED_AT = "_sdc_deleted_at"


class SqlDialect:
    quoting: Quoting = ANSI
    # True when several statements can commit as one: the loader then runs each batch's schema
    # changes and its move into the table in one transaction. False: each statement is atomic on
    # its own, and the loader orders them so that a failure between two leaves nothing half-done.
    transactional: bool = True
    # A longer name is cut and suffixed with a hash of the whole name (fit_name), never truncated
    # silently by the database, so two long names stay two tables or columns.
    max_name_bytes: int | None = None
    # CREATE TABLE IF NOT EXISTS: where two streams mapped to one table may both plan its creation.
    create_if_missing: bool = False
    # Words after a new table's column list (SQLite's STRICT, a storage clause).
    table_options: str = ""
    # The words of CREATE <temp_table> (T-SQL: a #name makes a table temporary, not a keyword).
    temp_table = "TEMP TABLE"
    # How a transaction is opened and closed (T-SQL's BEGIN alone opens a block, not a transaction).
    begin = "BEGIN"
    commit = "COMMIT"
    rollback = "ROLLBACK"
    # A transaction inside the one a key range is loaded in (key_ranges.py): undone alone on error.
    savepoint = "SAVEPOINT {}"
    release_savepoint = "RELEASE SAVEPOINT {}"
    rollback_to_savepoint = "ROLLBACK TO SAVEPOINT {}"
    # A family with a MERGE statement upserts with one (`merge_statement`), in its words.
    has_merge = False
    merge_into = "MERGE INTO"  # BigQuery: MERGE
    merge_hint = ""  # after the table (T-SQL: WITH (HOLDLOCK))
    merge_set = ""  # before each updated column (T-SQL names it t.<column>)
    merge_not_matched = "WHEN NOT MATCHED"  # T-SQL: WHEN NOT MATCHED BY TARGET
    merge_end = ""  # T-SQL ends a MERGE with ;

    # -- names ---------------------------------------------------------------------------------------
    def q(self, name: str) -> str:
        return self.quoting.q(name)

    def qualified(self, *parts: str) -> str:
        return self.quoting.qualified(*parts)

    def literal(self, text: str) -> str:
        return self.quoting.literal(text)

    def fit_name(self, base: str, suffix: str = "") -> str:
        """`base + suffix` within max_name_bytes; a longer one keeps the suffix, is cut, and gets 8 hex
        digits of the SHA-1 of the whole base, so two names sharing their first bytes stay apart."""
        limit = self.max_name_bytes
        if limit is None or len((base + suffix).encode()) <= limit:
            return base + suffix
        digest = hashlib.sha1(base.encode()).hexdigest()[:8]  # noqa: S324 - a name, not security
        room = limit - len(suffix.encode()) - len(digest) - 1
        cut = base.encode()[:room].decode("utf-8", "ignore")
        return f"{cut}_{digest}{suffix}"

    def column_list(self, columns: Iterable[str]) -> str:
        return ", ".join(self.q(c) for c in columns)

    # -- tables ----------------------------------------------------------------------------------------
    def create_table(
        self,
        name: str,
        columns: Mapping[str, str],
        keys: Iterable[str] = (),
        *,
        temp: bool = False,
        key_name: str | None = None,
    ) -> str:
        """`name` is already qualified (or a temp table's quoted name). `keys` become a primary key
        where the dialect makes one (`primary_key`)."""
        key_list = list(keys)
        cols = [self.column_def(c, t, not_null=c in key_list) for c, t in columns.items()]
        key = self.primary_key(key_list, key_name)
        kind = self.temp_table if temp else "TABLE"
        missing = " IF NOT EXISTS" if self.create_if_missing else ""
        options = f" {self.table_options}" if self.table_options else ""
        return f"CREATE {kind}{missing} {name} ({', '.join(cols + ([key] if key else []))}){options}"

    def column_def(self, name: str, type_: str, *, not_null: bool = False) -> str:
        """A column of a new table; `not_null` for a key column (a primary key implies it here)."""
        return f"{self.q(name)} {type_}"

    def primary_key(self, keys: list[str], key_name: str | None) -> str | None:
        """The key clause of a new table; none by default (the merge does not need one)."""
        return None

    def drop_table(self, name: str) -> str:
        return f"DROP TABLE IF EXISTS {name}"

    def add_column(self, table: str, column: str, type_: str) -> str:
        return f"ALTER TABLE {table} ADD COLUMN {self.q(column)} {type_}"

    def alter_type(self, table: str, column: str, type_: str) -> str:
        return f"ALTER TABLE {table} ALTER COLUMN {self.q(column)} TYPE {type_}"

    def drop_not_null(self, table: str, column: str, type_: str = "") -> str:
        """Let `column` (now of `type_`) take NULL."""
        return f"ALTER TABLE {table} ALTER COLUMN {self.q(column)} DROP NOT NULL"

    def swap(self, schema: str, table: str, shadow: str) -> list[str]:
        """Put the shadow in the table's place; run in one transaction where the dialect has them."""
        return [
            self.drop_table(self.qualified(schema, table)),
            f"ALTER TABLE {self.qualified(schema, shadow)} RENAME TO {self.q(table)}",
        ]

    # -- rows ------------------------------------------------------------------------------------------
    def insert(self, table: str, source: str, columns: Iterable[str], where: str = "") -> str:
        cols = self.column_list(columns)
        return f"INSERT INTO {table} ({cols}) SELECT {cols} FROM {source}{f' WHERE {where}' if where else ''}"

    def delete_matching(self, table: str, source: str, keys: Iterable[str]) -> str:
        on = " AND ".join(f"t.{self.q(k)} = s.{self.q(k)}" for k in keys)
        return f"DELETE FROM {table} AS t USING {source} AS s WHERE {on}"

    def merge(self, table: str, source: str, columns: list[str], keys: list[str], hard_delete: bool) -> list[str]:
        """Upsert `source` (one row per key) into `table`: rows of matching keys are replaced; with
        `hard_delete`, a row carrying _sdc_deleted_at removes its key instead of landing."""
        if self.has_merge:
            return [self.merge_statement(table, source, columns, keys, hard_delete)]
        where = f"{self.q(DELETED_AT)} IS NULL" if hard_delete else ""
        return [self.delete_matching(table, source, keys), self.insert(table, source, columns, where)]

    def merge_statement(self, table: str, source: str, columns: list[str], keys: list[str], hard_delete: bool) -> str:
        """One MERGE with explicit column lists: matched keys updated, new ones inserted (staging
        holds one row per key: the sink kept the last); with `hard_delete`, a row carrying
        _sdc_deleted_at removes its key and is never inserted."""
        q = self.q
        on = " AND ".join(f"t.{q(k)} = s.{q(k)}" for k in keys)
        deleted = f"s.{q(DELETED_AT)}"
        clauses = [f"WHEN MATCHED AND {deleted} IS NOT NULL THEN DELETE"] if hard_delete else []
        updates = ", ".join(f"{self.merge_set}{q(c)} = s.{q(c)}" for c in columns if c not in keys)
        if updates:  # a table of only its key has nothing to update
            clauses.append(f"WHEN MATCHED THEN UPDATE SET {updates}")
        live = f" AND {deleted} IS NULL" if hard_delete else ""
        values = ", ".join(f"s.{q(c)}" for c in columns)
        clauses.append(f"{self.merge_not_matched}{live} THEN INSERT ({self.column_list(columns)}) VALUES ({values})")
        head = f"{self.merge_into} {table}{self.merge_hint} AS t USING {source} AS s ON {on}"
        return f"{head} {' '.join(clauses)}{self.merge_end}"

    def activate_version(self, table: str, version: int, hard: bool) -> str:
        """Retire the rows of versions older than `version` (int: rendered, never a record value)."""
        tv = self.q(TABLE_VERSION)
        older = f"({tv} IS NULL OR {tv} < {int(version)})"
        if hard:
            return f"DELETE FROM {table} WHERE {older}"
        deleted = self.q(DELETED_AT)
        return f"UPDATE {table} SET {deleted} = {self.now()} WHERE {older} AND {deleted} IS NULL"

    def max_version(self, table: str) -> str:
        return f"SELECT max({self.q(TABLE_VERSION)}) FROM {table}"

    def now(self) -> str:
        return "now()"
