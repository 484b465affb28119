"""tap-postgres: tables and views as streams; FULL_TABLE, INCREMENTAL, XMIN and LOG_BASED."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone_drivers.postgres import CONNECTION_SETTINGS, classify, connect, driver_errors
from dpone_protocol.config import Redactor
from dpone_protocol.settings import Setting
from taps.framework.stream import Stream
from taps.framework.tap import Tap
from taps.postgres.discovery import discover
from taps.postgres.streams import PostgresStream

APPLICATION_NAME = "dpone-tap-postgres"


class PostgresTap(Tap):
    name = "tap-postgres"
    description = "Reads PostgreSQL tables and views: full table (resumable), incremental, XMIN and log-based CDC."
    capabilities: ClassVar[tuple[str, ...]] = Tap.capabilities + ("activate-version", "log-based")
    settings: ClassVar[tuple[Setting, ...]] = CONNECTION_SETTINGS + (
        Setting("include", "array", 'Tables to discover, as schema.table globs (default ["*.*"]).'),
        Setting("exclude", "array", "Tables to leave out, as schema.table globs."),
        Setting(
            "replication_slot", "string", "Logical replication slot for LOG_BASED streams (wal2json).", default="dpone"
        ),
        Setting("create_replication_slot", "boolean", "Create the slot on first use if it is missing.", default=True),
        Setting(
            "batch_read_connections",
            "integer",
            "BATCH output of a FULL_TABLE stream with an integer primary key: read key ranges over this many "
            "connections at once, in one snapshot, straight into the files.",
            default=2,
        ),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.redactor = Redactor()
        self.redactor.add_config(config, ["password", "dsn"])
        self._conn: Any = None

    @property
    def conn(self) -> Any:
        if self._conn is None:
            self._conn = connect(self.config, self.redactor, APPLICATION_NAME, autocommit=True)
        return self._conn

    def new_connection(self) -> Any:
        """Another connection with the same settings (a range reader's)."""
        return connect(self.config, self.redactor, APPLICATION_NAME, autocommit=True)

    def discover_streams(self) -> list[Stream]:
        try:
            tables = discover(self.conn, list(self.config.get("include") or []), list(self.config.get("exclude") or []))
        except driver_errors() as exc:
            raise classify(exc, self.redactor, "discovering tables") from None
        return [PostgresStream(t, self) for t in tables]

    def committed_lsn(self) -> int | None:
        """The lowest LSN any LOG_BASED stream's committed bookmark holds: the slot may advance to it."""
        lsns = [
            b["lsn"]
            for b in (self.input_state.get("bookmarks") or {}).values()
            if isinstance(b, dict) and isinstance(b.get("lsn"), int)
        ]
        return min(lsns) if lsns else None
