"""target-postgres: staging-first COPY loads; append, merge on key, or replace by swap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone.targets.framework.loader import LOADER_SETTINGS, Loader
from dpone.targets.framework.loader_target import LoaderTarget
from dpone.targets.postgres.loader import PostgresLoader
from dpone.targets.postgres.type_map import NUMBER_TYPES
from dpone_drivers.postgres import CONNECTION_SETTINGS
from dpone_protocol.config import Redactor
from dpone_protocol.ops import Check
from dpone_protocol.settings import Setting


class PostgresTarget(LoaderTarget):
    name = "target-postgres"
    description = "Loads streams into PostgreSQL: COPY into staging, then append, merge on key, or replace by swap."
    drivers: ClassVar[dict[str, str]] = {"psycopg": "postgres"}
    partitioned_loads: ClassVar[bool] = True
    settings: ClassVar[tuple[Setting, ...]] = (
        CONNECTION_SETTINGS
        + LOADER_SETTINGS
        + (
            Setting("default_target_schema", "string", "Schema the tables are created in.", default="public"),
            Setting(
                "nul_character_policy",
                "string",
                "NUL (\\u0000) in strings: strip, replace (U+FFFD) or fail.",
                default="strip",
                choices=("strip", "replace", "fail"),
            ),
            Setting(
                "number_type",
                "string",
                "Column type of a JSON number whose schema declares no float (no format float/double, no "
                "x-sql-datatype real/double precision): numeric keeps every digit; double precision stores a "
                "float, rounding past 15-17 significant digits.",
                default="numeric",
                choices=NUMBER_TYPES,
            ),
            Setting("batch_size_rows", "integer", "Commit a stream's batch at this many records.", default=40_000),
            Setting("temp_buffers_mb", "integer", "Session temp_buffers for staging, in MB.", default=256),
            Setting(
                "load_connections",
                "integer",
                "Connections loading batches: the next batch is copied into staging on one while the previous "
                "one is merged on another (batches still commit in order). 1 loads one batch at a time.",
                default=2,
            ),
        )
    )

    def __init__(self, config: Mapping[str, Any], redactor: Redactor | None = None) -> None:
        super().__init__(config)
        self.redactor = redactor or Redactor()
        self.redactor.add_config(config, ["password", "dsn"])

    def make_loader(self) -> Loader:
        return PostgresLoader(self.config, self.redactor, read_only=self.read_only)

    def reconcile(self, request: Mapping[str, Any], catalog: Any) -> dict[str, Any]:
        from dpone.targets.postgres.reconcile import reconcile  # noqa: PLC0415 - only `--ops` asks

        return reconcile(self, request)

    def doctor(self, catalog: Any) -> list[Check]:
        from dpone.targets.postgres import doctor  # noqa: PLC0415 - only `--ops` asks

        return doctor.checks(self.config, self.redactor)
