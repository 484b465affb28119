"""SQLite as a SQL stream source: json_object() renders each row, the stdlib driver streams it."""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from dpone.taps.framework.sql_dialect import SqlDialect
from dpone.taps.framework.sql_discovery import SqlColumn, SqlTable, TableFilter, assemble
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError

# By declared type; everything else is sent as text. SQLite keeps date-times as ISO 8601 text.
_TYPES: dict[str, dict[str, Any]] = {
    "INTEGER": {"type": "integer"},
    "REAL": {"type": "number"},
    "TIMESTAMP": {"type": "string", "format": "date-time"},
    "DATETIME": {"type": "string", "format": "date-time"},
    "DATE": {"type": "string", "format": "date"},
}


def sqlite_column(name: str, declared: str, nullable: bool) -> SqlColumn:
    schema = dict(_TYPES.get(declared.upper(), {"type": "string"}))
    if nullable:
        schema["type"] = [schema["type"], "null"]
    return SqlColumn(name, schema, '"' + name.replace('"', '""') + '"')


class SqliteDialect(SqlDialect):
    name = "SQLite"
    placeholder = "?"

    def connect(self, config: Mapping[str, Any], redactor: Redactor) -> Any:
        import sqlite3  # noqa: PLC0415 - lazy: `--help` and `--about` must not load the driver

        return sqlite3.connect(str(config["path"]), isolation_level=None)

    def driver_errors(self) -> tuple[type[Exception], ...]:
        import sqlite3  # noqa: PLC0415

        return (sqlite3.Error,)

    def error(self, exc: Exception, redactor: Redactor, doing: str) -> DponeError:
        return ConfigError(f"{doing}: {redactor(str(exc))}")

    def tables(self, conn: Any, wanted: TableFilter) -> list[SqlTable]:
        found: dict[Any, SqlTable] = {}
        for name, kind in conn.execute(
            "SELECT name, type FROM sqlite_master WHERE type IN ('table', 'view') "
            "AND name NOT LIKE 'sqlite%' ORDER BY name"
        ):
            if wanted.wants("main", name):
                found[name] = SqlTable("main", name, kind, None, self.quoting.qualified("main", name), kind == "view")
        columns, keys = [], []
        for table in found:
            info = conn.execute(f"PRAGMA table_info({self.quoting.q(table)})").fetchall()
            # A key column is never null, though SQLite lets a table say so only with NOT NULL.
            columns += [(table, name, declared, not (notnull or pk)) for _, name, declared, notnull, _, pk in info]
            keys.append((table, [row[1] for row in sorted(info, key=lambda r: r[5]) if row[5]]))
        return assemble(found, columns, keys, sqlite_column)

    def row_json(self, columns: Sequence[tuple[str, str]]) -> tuple[str, str]:
        pairs = ", ".join(f"{self.quoting.literal(name)}, {expression}" for expression, name in columns)
        return f"json_object({pairs})", ""

    def key_json(self, expressions: Sequence[str]) -> str:
        return f"json_array({', '.join(expressions) or 'NULL'})"

    @contextlib.contextmanager
    def rows(self, conn: Any, sql: str, params: Sequence[Any]) -> Iterator[Iterable[Any]]:
        yield ("\x1f".join(row).encode() for row in conn.execute(sql, params))
