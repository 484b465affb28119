"""A database tap: one stream per table or view its dialect discovers, read over one lazy connection."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar, final

from dpone.taps.framework.sql_dialect import SqlDialect
from dpone.taps.framework.sql_discovery import SqlTable, TableFilter
from dpone.taps.framework.sql_stream import SqlStream
from dpone.taps.framework.stream import Stream
from dpone.taps.framework.tap import Tap
from dpone_protocol.config import Redactor
from dpone_protocol.settings import Setting

# Every database tap chooses its tables the same way.
TABLE_SETTINGS: tuple[Setting, ...] = (
    Setting("include", "array", 'Tables to discover, as schema.table globs (default ["*.*"]).'),
    Setting("exclude", "array", "Tables to leave out, as schema.table globs."),
)


class SqlTap(Tap):
    """Set `dialect`; override `make_stream` for methods beyond FULL_TABLE and INCREMENTAL."""

    dialect: ClassVar[SqlDialect]
    secret_keys: ClassVar[tuple[str, ...]] = ("password",)  # masked in messages even when not declared secret

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.redactor = Redactor()
        self.redactor.add_config(config, list(self.secret_keys))
        self._conn: Any = None

    @property
    @final
    def conn(self) -> Any:
        """The tap's connection, opened on first use: `--help` and `--about` never connect."""
        if self._conn is None:
            self._conn = self.dialect.connect(self.config, self.redactor)
        return self._conn

    @final
    def new_connection(self) -> Any:
        """Another connection with the same settings (for readers working in parallel)."""
        return self.dialect.connect(self.config, self.redactor)

    def make_stream(self, table: SqlTable) -> SqlStream:
        return SqlStream(table, self)

    @final
    def discover_streams(self) -> list[Stream]:
        wanted = TableFilter(list(self.config.get("include") or []), list(self.config.get("exclude") or []))
        try:
            tables = self.dialect.tables(self.conn, wanted)
        except self.dialect.driver_errors() as exc:
            raise self.dialect.error(exc, self.redactor, "discovering tables") from None
        return [self.make_stream(t) for t in tables]
