"""Identifier quoting and string literals, per SQL family: one object shared by taps, targets and stores.

Names come from sources (stream, table and column names); quoting every one of them, always, is
what lets SQL be built as text without an injection. Record values never go through here: they
travel as bound parameters or in the bulk path's own format.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Quoting:
    """How one SQL family writes a quoted name. A closing quote inside the name is doubled
    (PostgreSQL, DuckDB, SQL Server) or escaped with a backslash (ClickHouse, BigQuery)."""

    open: str = '"'
    close: str = '"'
    backslash: bool = False

    def q(self, name: str) -> str:
        """One quoted identifier."""
        if self.backslash:
            escaped = name.replace("\\", "\\\\").replace(self.close, "\\" + self.close)
        else:
            escaped = name.replace(self.close, self.close * 2)
        return f"{self.open}{escaped}{self.close}"

    def qualified(self, *parts: str) -> str:
        """A dotted name, each part quoted: schema.table, database.schema.table."""
        return ".".join(self.q(part) for part in parts if part)

    def literal(self, text: str) -> str:
        """A string literal, for the few statements that take no parameters (COMMENT, a file path)."""
        if self.backslash:
            return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"
        return "'" + text.replace("'", "''") + "'"


ANSI = Quoting()  # PostgreSQL, DuckDB, SQLite
BRACKETS = Quoting("[", "]")  # SQL Server
BACKTICKS = Quoting("`", "`", backslash=True)  # ClickHouse, BigQuery
