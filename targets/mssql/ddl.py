"""The T-SQL target-mssql runs: the loader's statements in SQL Server's words.

Identifiers are always bracket-quoted; record values never appear here (they travel as bound
parameter arrays or in a bcp file). Every statement parses with sqlglot's T-SQL grammar into
no generic Command (tests/tools/tsql.py): which is why a column is made nullable by restating
its type (`ALTER COLUMN c T`, nullable in an ODBC session, which sets ANSI_NULL_DFLT_ON), and a
table is swapped with `sp_rename`, not `ALTER SCHEMA ... TRANSFER`.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable

from dpone.targets.framework.sql_dialect import SqlDialect
from dpone_drivers.sql_names import BRACKETS

JSON_TYPE = "nvarchar(max)"
# Session options each loader connection sets: an error inside a transaction rolls all of it back
# (without XACT_ABORT a failed statement leaves the transaction open with the others' effects).
SESSION_OPTIONS = ("SET XACT_ABORT ON", "SET ANSI_NULL_DFLT_ON ON")


class MssqlSql(SqlDialect):
    quoting = BRACKETS
    # sysname is 128 characters; a temp table's name at most 116 with its # (the server pads it).
    max_name_bytes = 114
    temp_table = "TABLE"  # temp_ref names it #...
    begin = "BEGIN TRANSACTION"
    commit = "COMMIT TRANSACTION"
    # With XACT_ABORT an error has already rolled back; the loader ignores this one's "no transaction".
    rollback = "ROLLBACK TRANSACTION"
    has_merge = True
    merge_hint = " WITH (HOLDLOCK)"  # no other writer inserts a key between the match and the insert
    merge_set = "t."
    merge_not_matched = "WHEN NOT MATCHED BY TARGET"
    merge_end = ";"  # T-SQL requires it after MERGE

    def nliteral(self, text: str) -> str:
        """A Unicode string literal (N'...'): names with any character compare as written."""
        return "N" + self.literal(text)

    def column_def(self, name: str, type_: str, *, not_null: bool = False) -> str:
        # A primary key's columns must be said NOT NULL; the others take NULL whatever the session's default.
        return f"{self.q(name)} {type_} {'NOT NULL' if not_null else 'NULL'}"

    def json_check(self, table: str, column: str) -> str:
        """Other writers of `table` can store only JSON text in `column`. Constraint names are unique
        per schema and a shadow's stays with it when swapped in: each gets a random suffix."""
        name = self.fit_name(column, f"_isjson_{secrets.token_hex(4)}")
        return f"ALTER TABLE {table} ADD CONSTRAINT {self.q(name)} CHECK (ISJSON({self.q(column)}) = 1)"

    def primary_key(self, keys: list[str], key_name: str | None) -> str | None:
        # Unnamed: constraint names are unique per schema, and a shadow's named key would collide
        # with the next shadow's once swapped in.
        return f"PRIMARY KEY ({self.column_list(keys)})" if keys else None

    def add_column(self, table: str, column: str, type_: str) -> str:
        return f"ALTER TABLE {table} ADD {self.column_def(column, type_)}"

    def alter_type(self, table: str, column: str, type_: str) -> str:
        return f"ALTER TABLE {table} ALTER COLUMN {self.q(column)} {type_}"

    def drop_not_null(self, table: str, column: str, type_: str = "") -> str:
        return self.alter_type(table, column, type_)

    def rename(self, schema: str, name: str, new_name: str) -> str:
        """sp_rename of a table of `schema`; transactional, like the DROP before it."""
        return f"EXEC sp_rename {self.nliteral(self.qualified(schema, name))}, {self.nliteral(new_name)}"

    def swap(self, schema: str, table: str, shadow: str) -> list[str]:
        return [self.drop_table(self.qualified(schema, table)), self.rename(schema, shadow, table)]

    def now(self) -> str:
        return "SYSUTCDATETIME()"

    def insert_values(self, table: str, columns: Iterable[str]) -> str:
        """The parameterized INSERT the bulk path runs with parameter arrays."""
        names = list(columns)
        return f"INSERT INTO {table} ({self.column_list(names)}) VALUES ({', '.join('?' * len(names))})"


SQL = MssqlSql()

# The catalog queries, with parameters: names travel as values.
SCHEMA_EXISTS = "SELECT 1 FROM sys.schemas WHERE name = ?"
DESCRIBE_TABLE = (
    "SELECT c.name, ty.name, c.max_length, c.precision, c.scale, c.is_nullable "
    "FROM sys.columns AS c JOIN sys.types AS ty ON ty.user_type_id = c.user_type_id "
    "WHERE c.object_id = OBJECT_ID(?) ORDER BY c.column_id"
)
