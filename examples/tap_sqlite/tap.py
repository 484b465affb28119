"""tap-sqlite: the tables and views of a SQLite file; FULL_TABLE (resumable) and INCREMENTAL."""

from __future__ import annotations

from typing import ClassVar

from dpone.taps.framework.sql_dialect import SqlDialect
from dpone.taps.framework.sql_tap import TABLE_SETTINGS, SqlTap
from dpone_protocol.settings import Setting
from examples.tap_sqlite.dialect import SqliteDialect


class SqliteTap(SqlTap):
    name = "tap-sqlite"
    description = "Reads the tables and views of a SQLite file."
    capabilities: ClassVar[tuple[str, ...]] = SqlTap.capabilities + ("activate-version",)
    dialect: ClassVar[SqlDialect] = SqliteDialect()
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("path", "string", "The SQLite file.", required=True),
        *TABLE_SETTINGS,
    )
