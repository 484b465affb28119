"""target-duckdb: the embedded analytics database, loaded staging-first."""

from __future__ import annotations

from typing import ClassVar

from dpone_protocol.settings import Setting
from targets.duckdb.loader import DuckDBLoader
from targets.framework.loader import LOADER_SETTINGS, Loader
from targets.framework.loader_target import LoaderTarget


class DuckDBTarget(LoaderTarget):
    name = "target-duckdb"
    description = "Loads streams into a DuckDB file: staging table, then append, merge on key, or replace."
    settings: ClassVar[tuple[Setting, ...]] = LOADER_SETTINGS + (
        Setting("filepath", "string", "DuckDB database file.", default="dpone.duckdb"),
        Setting("default_target_schema", "string", "Schema the tables are created in.", default="main"),
        Setting("staging_dir", "string", "Directory for temporary bulk-load files (default: system temp)."),
    )

    def make_loader(self) -> Loader:
        return DuckDBLoader(self.config, read_only=self.read_only)
