"""target-postgres: staging-first COPY loads; append, merge on key, or replace by swap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone_protocol.config import Redactor
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.settings import Setting
from targets.framework.capabilities import APPEND, OVERWRITE, UPSERT, TargetCapabilities
from targets.framework.loader import LoaderSink
from targets.framework.sink import Sink
from targets.framework.target import Target
from targets.postgres.loader import PostgresLoader


class PostgresTarget(Target):
    name = "target-postgres"
    description = "Loads streams into PostgreSQL: COPY into staging, then append, merge on key, or replace by swap."
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
        Setting("host", "string", "Server host.", default="localhost"),
        Setting("port", "integer", "Server port.", default=5432),
        Setting("user", "string", "User name."),
        Setting("password", "string", "Password.", secret=True),
        Setting("database", "string", "Database name."),
        Setting("sslmode", "string", "libpq sslmode (disable, require, verify-full, ...)."),
        Setting("dsn", "string", "A libpq connection string or URL instead of the fields above.", secret=True),
        Setting("default_target_schema", "string", "Schema the tables are created in.", default="public"),
        Setting("table_name_map", "object", 'Table per stream, e.g. {"public-orders": "orders"}.'),
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
        Setting(
            "keep_staging",
            "boolean",
            "Keep staging tables (unlogged, _dpone_stage_<table>) for debugging.",
            default=False,
        ),
        Setting(
            "nul_character_policy",
            "string",
            "NUL (\\u0000) in strings: strip, replace (U+FFFD) or fail.",
            default="strip",
            choices=("strip", "replace", "fail"),
        ),
        Setting("max_retries", "integer", "Retries of a batch after a transient error (reconnects first).", default=3),
        Setting("temp_buffers_mb", "integer", "Session temp_buffers for staging, in MB.", default=256),
        Setting("connect_timeout", "integer", "Seconds to wait for a connection.", default=30),
    )

    def __init__(self, config: Mapping[str, Any], redactor: Redactor | None = None) -> None:
        super().__init__(config)
        self.redactor = redactor or Redactor()
        self.redactor.add_config(config, ["password", "dsn"])
        self.loader: PostgresLoader | None = None

    def make_sink(self, schema: SchemaMessage) -> Sink:
        if self.loader is None:
            self.loader = PostgresLoader(self.config, self.redactor)
        return LoaderSink(self.config, schema, self.policy, self.loader)

    def close(self) -> None:
        if self.loader is not None:
            self.loader.close()
