"""target-clickhouse: each batch one INSERT the server parses; upsert by ReplacingMergeTree, refresh by EXCHANGE."""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

from dpone.targets.clickhouse.loader import ClickHouseLoader
from dpone.targets.clickhouse.type_map import NUMBER_MODES, OBJECT_MODES
from dpone.targets.framework.line_batch import LineBatch
from dpone.targets.framework.loader import LOADER_SETTINGS, Loader
from dpone.targets.framework.loader_sink import LoaderSink
from dpone.targets.framework.loader_target import LoaderTarget
from dpone_drivers.clickhouse import CONNECTION_SETTINGS
from dpone_protocol.json_schema import ColumnType
from dpone_protocol.settings import Setting


class ClickHouseSink(LoaderSink):
    """A property the schema does not list as `required` may be absent: its column must take NULL.
    Only a required property whose type has no null becomes a non-Nullable column (ClickHouse
    stores such columns without a null map), and a record without it stops the load. Key columns
    are never Nullable: they are the table's ORDER BY, and a record always has its key."""

    def on_schema(self) -> None:
        required = set(self.schema.get("required") or ())
        keys = set(self.key_properties)
        self.columns = {name: self._nullability(name, col, required, keys) for name, col in self.columns.items()}
        super().on_schema()

    def add_record(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int
    ) -> bool:
        encoder = self.encoder
        if not isinstance(encoder, LineBatch):
            return super().add_record(record, version, time_extracted, size, line)
        # A record the framework decoded (another layout than the compact one): its line goes with it.
        self.check_keys(record, line)
        return encoder.add(record, version, time_extracted, size, line)

    @staticmethod
    def _nullability(name: str, column: ColumnType, required: set[str], keys: set[str]) -> ColumnType:
        if name in keys:
            return dataclasses.replace(column, nullable=False)
        if name not in required:
            return dataclasses.replace(column, nullable=True)
        return column


class ClickHouseTarget(LoaderTarget):
    name = "target-clickhouse"
    drivers: ClassVar[dict[str, str]] = {"clickhouse_connect": "clickhouse"}
    description = (
        "Loads streams into ClickHouse: batches parsed and checked by the server; upsert through ReplacingMergeTree, "
        "full refresh through EXCHANGE TABLES."
    )
    settings: ClassVar[tuple[Setting, ...]] = (
        CONNECTION_SETTINGS
        + LOADER_SETTINGS
        + (
            Setting(
                "unbounded_numbers",
                "string",
                "Numbers without a declared precision (a plain JSON number, a decimal without precision or wider "
                "than 76 digits): float64 stores a Float64 and stops the load on a value a Float64 would not give "
                "back; float64_rounded rounds such values (lossy); string keeps the number's text, every digit.",
                default=NUMBER_MODES[0],
                choices=NUMBER_MODES,
            ),
            Setting(
                "object_columns",
                "string",
                "Objects as String (their JSON text, as sent) or as ClickHouse's JSON type (a null becomes {}).",
                default=OBJECT_MODES[0],
                choices=OBJECT_MODES,
            ),
            Setting(
                "tables",
                "object",
                "Table layout per stream (name or pattern): engine, order_by (append-only), partition_by, "
                'primary_key, ttl, settings, low_cardinality (columns), e.g. {"public-events": {"partition_by": '
                '"toYYYYMM(assumeNotNull(created_at))", "ttl": "toDateTime(assumeNotNull(created_at)) + INTERVAL 1 '
                'YEAR", "low_cardinality": ["country"]}} (keys and TTL take no Nullable column: assumeNotNull). '
                "Applies when the table is created.",
            ),
            Setting("staging_dir", "string", "Directory for batch files on the embedded engine (default: temp)."),
            Setting(
                "load_connections",
                "integer",
                "Connections loading batches: the next batch is parsed into its staging table on one while the "
                "previous one moves into its table on another (batches still commit in order). 1 loads one at a time.",
                default=2,
            ),
            Setting("batch_size_rows", "integer", "Insert a stream's batch at this many records.", default=100_000),
            Setting(
                "batch_size_bytes",
                "integer",
                "Insert a stream's batch at this many bytes of RECORD lines.",
                default=32 * 1024 * 1024,
            ),
        )
    )

    sink_class = ClickHouseSink

    def make_loader(self) -> Loader:
        return ClickHouseLoader(self.config, read_only=self.read_only)
