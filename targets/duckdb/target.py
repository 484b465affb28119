"""target-duckdb: the embedded analytics database, loaded staging-first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone_protocol.messages import SchemaMessage
from dpone_protocol.settings import Setting
from targets.duckdb.loader import DuckDBLoader
from targets.framework.capabilities import TargetCapabilities
from targets.framework.loader import DATABASE_CAPABILITIES, LOADER_SETTINGS, LoaderSink
from targets.framework.sink import Sink
from targets.framework.target import Target


class DuckDBTarget(Target):
    name = "target-duckdb"
    description = "Loads streams into a DuckDB file: staging table, then append, merge on key, or replace."
    capabilities: ClassVar[TargetCapabilities] = DATABASE_CAPABILITIES
    settings: ClassVar[tuple[Setting, ...]] = LOADER_SETTINGS + (
        Setting("filepath", "string", "DuckDB database file.", default="dpone.duckdb"),
        Setting("default_target_schema", "string", "Schema the tables are created in.", default="main"),
        Setting("staging_dir", "string", "Directory for temporary bulk-load files (default: system temp)."),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.loader: DuckDBLoader | None = None

    def make_sink(self, schema: SchemaMessage) -> Sink:
        if self.loader is None:
            self.loader = DuckDBLoader(self.config)
        return LoaderSink(self.config, schema, self.policy, self.loader)

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()
