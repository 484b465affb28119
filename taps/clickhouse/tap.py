"""tap-clickhouse: tables and views as streams; FULL_TABLE (resumable by the sorting key) and INCREMENTAL."""

from __future__ import annotations

from typing import ClassVar

from dpone.taps.clickhouse.dialect import CLICKHOUSE, ClickHouseDialect
from dpone.taps.clickhouse.streams import ClickHouseStream
from dpone.taps.clickhouse.type_map import STRICT_UTF8, UTF8_POLICIES
from dpone.taps.framework.sql_discovery import SqlTable
from dpone.taps.framework.sql_stream import SqlStream
from dpone.taps.framework.sql_tap import TABLE_SETTINGS, SqlTap
from dpone.taps.framework.tap import Tap
from dpone_drivers.clickhouse import CONNECTION_SETTINGS, SECRET_KEYS
from dpone_protocol.catalog import Catalog
from dpone_protocol.settings import Setting


class ClickHouseTap(SqlTap):
    name = "tap-clickhouse"
    drivers: ClassVar[dict[str, str]] = {"clickhouse_connect": "clickhouse"}
    description = "Reads ClickHouse tables and views: full table (resumable by the sorting key) and incremental."
    capabilities: ClassVar[tuple[str, ...]] = Tap.capabilities + ("activate-version",)
    dialect: ClassVar[ClickHouseDialect] = CLICKHOUSE
    secret_keys: ClassVar[tuple[str, ...]] = SECRET_KEYS
    settings: ClassVar[tuple[Setting, ...]] = (
        CONNECTION_SETTINGS
        + TABLE_SETTINGS
        + (
            Setting(
                "invalid_utf8",
                "string",
                "A String value that is not UTF-8 text: fail stops the read naming the column; replace sends "
                "U+FFFD in place of each invalid byte sequence (lossy).",
                default=STRICT_UTF8,
                choices=UTF8_POLICIES,
            ),
        )
    )

    def make_stream(self, table: SqlTable) -> SqlStream:
        return ClickHouseStream(table, self, self.dialect)

    def estimate_rows(self, catalog: Catalog | None) -> dict[str, int | None]:
        from dpone.taps.clickhouse.estimate import estimate_rows  # noqa: PLC0415 - only `--ops` asks

        return estimate_rows(self, catalog)
