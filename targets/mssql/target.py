"""target-mssql: typed parameter arrays (or bcp) into #temp staging; append, MERGE on key, or swap."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone.targets.framework.loader import LOADER_SETTINGS, Loader
from dpone.targets.framework.loader_sink import LoaderSink
from dpone.targets.framework.loader_target import LoaderTarget
from dpone.targets.mssql.loader import BULK_METHODS, FAST_EXECUTEMANY, MssqlLoader
from dpone.targets.mssql.type_map import FLOAT_NUMBERS, NUMBER_MODES, OFFSET_TIMESTAMPS, TIMESTAMP_MODES
from dpone_drivers.mssql import CONNECTION_SETTINGS, SECRET_KEYS
from dpone_protocol.config import Redactor
from dpone_protocol.settings import Setting


class MssqlSink(LoaderSink):
    carry_lines = True  # a value the parameter arrays refuse is named by its input line


class MssqlTarget(LoaderTarget):
    name = "target-mssql"
    drivers: ClassVar[dict[str, str]] = {"pyodbc": "mssql"}
    description = (
        "Loads streams into SQL Server or Azure SQL: parameter arrays (or bcp) into #temp staging, then append, "
        "MERGE on key, or replace by swap."
    )
    sink_class = MssqlSink
    settings: ClassVar[tuple[Setting, ...]] = (
        CONNECTION_SETTINGS
        + LOADER_SETTINGS
        + (
            Setting("default_target_schema", "string", "Schema the tables are created in.", default="dbo"),
            Setting(
                "number_type",
                "string",
                "Column type of a JSON number whose schema declares no float and no precision: float stores the "
                "numbers a float keeps exactly and stops the load on any other; decimal makes decimal(38,10) and "
                "stops on a value with more digits; float_rounded rounds to a float (lossy).",
                default=FLOAT_NUMBERS,
                choices=NUMBER_MODES,
            ),
            Setting(
                "timestamp_type",
                "string",
                "Column type of date-times: datetimeoffset(6) keeps each value's offset; datetime2(6) stores the "
                "UTC time.",
                default=OFFSET_TIMESTAMPS,
                choices=TIMESTAMP_MODES,
            ),
            Setting(
                "json_check",
                "boolean",
                "Give JSON columns (objects, arrays, untyped values; nvarchar(max)) a CHECK (ISJSON(col) = 1).",
                default=False,
            ),
            Setting(
                "bulk_method",
                "string",
                "How a batch reaches staging: fast_executemany (typed parameter arrays over ODBC) or bcp (the bcp "
                "or freebcp tool; its command line holds the password).",
                default=FAST_EXECUTEMANY,
                choices=BULK_METHODS,
            ),
            Setting("bcp_path", "string", "The bcp tool to run (default: bcp, else freebcp, on PATH)."),
            Setting(
                "insert_chunk_rows",
                "integer",
                "Most rows per parameter array sent at once (fewer when the rows are wide).",
                default=10_000,
            ),
            Setting("batch_size_rows", "integer", "Commit a stream's batch at this many records.", default=100_000),
        )
    )

    def __init__(self, config: Mapping[str, Any], redactor: Redactor | None = None) -> None:
        super().__init__(config)
        self.redactor = redactor or Redactor()
        self.redactor.add_config(config, list(SECRET_KEYS))

    def make_loader(self) -> Loader:
        return MssqlLoader(self.config, self.redactor, read_only=self.read_only)
