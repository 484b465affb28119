"""tap-mssql: SQL Server tables and views as streams; FULL_TABLE, INCREMENTAL, ROWVERSION,
CHANGE_TRACKING and LOG_BASED (CDC)."""

from __future__ import annotations

from typing import ClassVar

from dpone.taps.framework.sql_discovery import SqlTable
from dpone.taps.framework.sql_stream import SqlStream
from dpone.taps.framework.sql_tap import TABLE_SETTINGS, SqlTap
from dpone.taps.framework.tap import Tap
from dpone.taps.mssql.dialect import MSSQL, MssqlDialect
from dpone.taps.mssql.streams import MssqlStream
from dpone_drivers.mssql import CONNECTION_SETTINGS, SECRET_KEYS
from dpone_protocol.catalog import Catalog
from dpone_protocol.ops import Check
from dpone_protocol.settings import Setting


class MssqlTap(SqlTap):
    name = "tap-mssql"
    drivers: ClassVar[dict[str, str]] = {"pyodbc": "mssql"}
    description = (
        "Reads SQL Server tables and views: full table (resumable), incremental, rowversion, "
        "change tracking and log-based CDC."
    )
    capabilities: ClassVar[tuple[str, ...]] = Tap.capabilities + ("activate-version", "log-based")
    replication_methods: ClassVar[tuple[str, ...]] = Tap.replication_methods + (
        "ROWVERSION",
        "CHANGE_TRACKING",
        "LOG_BASED",
    )
    dialect: ClassVar[MssqlDialect] = MSSQL
    secret_keys: ClassVar[tuple[str, ...]] = SECRET_KEYS
    settings: ClassVar[tuple[Setting, ...]] = (
        CONNECTION_SETTINGS
        + TABLE_SETTINGS
        + (
            Setting(
                "snapshot_isolation",
                "boolean",
                "CHANGE_TRACKING streams read their version and changes in one snapshot transaction when the "
                "database allows snapshot isolation (ALLOW_SNAPSHOT_ISOLATION ON).",
                default=True,
            ),
        )
    )

    def doctor(self, catalog: Catalog | None) -> list[Check]:
        from dpone.taps.mssql import doctor  # noqa: PLC0415 - only `--ops` asks

        return doctor.checks(self, catalog)

    def make_stream(self, table: SqlTable) -> SqlStream:
        return MssqlStream(table, self)
