"""tap-postgres: tables and views as streams; FULL_TABLE, INCREMENTAL, XMIN and LOG_BASED."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone.state.records import LsnPosition, bookmarks_of, parse_bookmark
from dpone.taps.framework.sql_discovery import SqlTable
from dpone.taps.framework.sql_stream import SqlStream
from dpone.taps.framework.sql_tap import TABLE_SETTINGS, SqlTap
from dpone.taps.framework.tap import Tap
from dpone.taps.postgres.dialect import POSTGRES, PostgresDialect
from dpone.taps.postgres.streams import PostgresStream
from dpone_drivers.postgres import CONNECTION_SETTINGS
from dpone_protocol.catalog import Catalog
from dpone_protocol.ops import Check
from dpone_protocol.settings import Setting


class PostgresTap(SqlTap):
    name = "tap-postgres"
    description = "Reads PostgreSQL tables and views: full table (resumable), incremental, XMIN and log-based CDC."
    capabilities: ClassVar[tuple[str, ...]] = Tap.capabilities + ("activate-version", "log-based")
    replication_methods: ClassVar[tuple[str, ...]] = Tap.replication_methods + ("XMIN", "LOG_BASED")
    dialect: ClassVar[PostgresDialect] = POSTGRES
    secret_keys: ClassVar[tuple[str, ...]] = ("password", "dsn")
    drivers: ClassVar[dict[str, str]] = {"psycopg": "postgres"}
    partitioned_loads: ClassVar[bool] = True
    settings: ClassVar[tuple[Setting, ...]] = (
        CONNECTION_SETTINGS
        + TABLE_SETTINGS
        + (
            Setting(
                "replication_slot",
                "string",
                "Logical replication slot for LOG_BASED streams (wal2json).",
                default="dpone",
            ),
            Setting(
                "create_replication_slot", "boolean", "Create the slot on first use if it is missing.", default=True
            ),
            Setting(
                "batch_read_connections",
                "integer",
                "BATCH output of a FULL_TABLE stream with an integer primary key: read key ranges over this many "
                "connections at once, in one snapshot, straight into the files.",
                default=2,
            ),
        )
    )

    def make_stream(self, table: SqlTable) -> SqlStream:
        return PostgresStream(table, self)

    def reconcile(self, request: Mapping[str, Any], catalog: Catalog | None) -> dict[str, Any]:
        from dpone.taps.postgres.reconcile import reconcile  # noqa: PLC0415 - only `--ops` asks

        return reconcile(self, request)

    def plan_partitions(self, request: Mapping[str, Any], catalog: Catalog | None) -> dict[str, Any]:
        from dpone.taps.postgres.partition_plan import plan_partitions  # noqa: PLC0415 - only `--ops` asks

        return plan_partitions(self, request, catalog)

    def doctor(self, catalog: Catalog | None) -> list[Check]:
        from dpone.taps.postgres import doctor  # noqa: PLC0415 - only `--ops` asks

        return doctor.checks(self, catalog)

    def committed_lsn(self) -> int | None:
        """The lowest LSN any LOG_BASED stream's committed bookmark holds: the slot may advance to it."""
        positions = [parse_bookmark(stream, b) for stream, b in bookmarks_of(self.input_state).items()]
        lsns = [p.position for p in positions if isinstance(p, LsnPosition)]
        return min(lsns) if lsns else None

    def estimate_rows(self, catalog: Catalog | None) -> dict[str, int | None]:
        from dpone.taps.postgres.estimate import estimate_rows  # noqa: PLC0415 - only `--ops` asks

        return estimate_rows(self, catalog)

    def replay_plan(self, request: Mapping[str, Any], state: Mapping[str, Any]) -> dict[str, Any]:
        from dpone.taps.postgres.replay import replay_plan  # noqa: PLC0415 - only `--ops` asks

        return replay_plan(self, request, state)
