"""target-sqlite: a SQLite file, loaded staging-first."""

from __future__ import annotations

from typing import ClassVar

from dpone.targets.framework.capabilities import APPEND, OVERWRITE, UPSERT, TargetCapabilities
from dpone.targets.framework.loader import LOADER_SETTINGS, Loader
from dpone.targets.framework.loader_target import LoaderTarget
from dpone_protocol.settings import Setting


class SqliteTarget(LoaderTarget):
    name = "target-sqlite"
    description = "Loads streams into a SQLite file: staging table, then append, merge or replace."
    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities(
        load_methods=(APPEND, UPSERT, OVERWRITE),
        hard_delete=True,
        soft_delete=True,
        activate_version=True,
        schema_evolution=("add_column",),
    )
    settings: ClassVar[tuple[Setting, ...]] = LOADER_SETTINGS + (
        Setting("path", "string", "SQLite database file.", default="dpone.sqlite"),
    )

    def make_loader(self) -> Loader:
        from examples.target_sqlite.loader import SqliteLoader  # noqa: PLC0415 - keep --help fast

        return SqliteLoader(self.config)  # called on the first SCHEMA, not at start-up
