"""target-duckdb: the embedded analytics database, loaded staging-first."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone_protocol.messages import SchemaMessage
from dpone_protocol.settings import Setting
from targets.duckdb.loader import DuckDBLoader
from targets.framework.capabilities import APPEND, OVERWRITE, UPSERT, TargetCapabilities
from targets.framework.loader import LoaderSink
from targets.framework.sink import Sink
from targets.framework.target import Target


class DuckDBTarget(Target):
    name = "target-duckdb"
    description = "Loads streams into a DuckDB file: staging table, then append, merge on key, or replace."
    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities(
        load_methods=(APPEND, UPSERT, OVERWRITE),
        merge=True,
        replace_swap=True,
        hard_delete=True,
        soft_delete=True,
        activate_version=True,
        schema_evolution=("add_column", "widen"),
    )
    settings: ClassVar[tuple[Setting, ...]] = (
        Setting("filepath", "string", "DuckDB database file.", default="dpone.duckdb"),
        Setting("default_target_schema", "string", "Schema the tables are created in.", default="main"),
        Setting(
            "load_method",
            "string",
            "upsert merges on key properties (append when a stream has none); append-only appends; "
            "overwrite loads into a shadow table and swaps it in at ACTIVATE_VERSION or the end of the input "
            "(STATE is held until then).",
            default=UPSERT,
            choices=(APPEND, UPSERT, OVERWRITE),
        ),
        Setting(
            "hard_delete",
            "boolean",
            "Delete rows instead of setting _sdc_deleted_at (CDC deletes and ACTIVATE_VERSION).",
            default=False,
        ),
        Setting("table_name_map", "object", 'Table per stream, e.g. {"public-orders": "orders"}.'),
        Setting(
            "keep_staging",
            "boolean",
            "Keep the last batch's staging table (_dpone_stage_<table>) to inspect.",
            default=False,
        ),
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
