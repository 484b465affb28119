"""target-bigquery: each batch one load job into staging and one query job into the table."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone.targets.bigquery.type_map import NUMBER_MODES
from dpone.targets.framework.loader import LOADER_SETTINGS, Loader
from dpone.targets.framework.loader_target import LoaderTarget
from dpone_drivers.bigquery import CONNECTION_SETTINGS
from dpone_protocol.config import Redactor
from dpone_protocol.settings import Setting


class BigQueryTarget(LoaderTarget):
    name = "target-bigquery"
    drivers: ClassVar[dict[str, str]] = {"google.cloud.bigquery": "bigquery"}
    description = (
        "Loads streams into BigQuery: one load job into a staging table per batch, then one INSERT or MERGE; "
        "full refresh through a shadow table and a copy job."
    )
    settings: ClassVar[tuple[Setting, ...]] = (
        CONNECTION_SETTINGS
        + LOADER_SETTINGS
        + (
            Setting(
                "unbounded_numbers",
                "string",
                "Column type of a number without a declared float format or precision (and of a decimal wider "
                "than BIGNUMERIC): bignumeric (38 integer digits, 38 decimals; a value beyond stops the load), "
                "numeric (29 and 9), string (every digit, as text), float64 (rounds past 15-17 digits: lossy).",
                default=NUMBER_MODES[0],
                choices=NUMBER_MODES,
            ),
            Setting(
                "table_options",
                "object",
                "Table layout per stream (name or pattern), applied when the table is created: partition_by (a "
                "TIMESTAMP or DATE column), partition_type (HOUR, DAY, MONTH, YEAR), "
                'cluster_by (up to 4 columns), require_partition_filter, e.g. {"public-events": {"partition_by": '
                '"created_at", "cluster_by": ["country"]}}.',
            ),
            Setting("job_labels", "object", 'Labels on every job the target runs, e.g. {"team": "data"}.'),
            Setting(
                "load_format",
                "string",
                "File format of a batch's load job: jsonl (newline-delimited JSON).",
                default="jsonl",
                choices=("jsonl",),
            ),
            Setting(
                "load_compression",
                "string",
                "Compression of a batch's file: gzip (less to upload) or none.",
                default="gzip",
                choices=("gzip", "none"),
            ),
            Setting(
                "create_dataset",
                "boolean",
                "Create the dataset (in `location`) when it does not exist.",
                default=True,
            ),
            Setting("staging_dir", "string", "Directory for the batch files before upload (default: temp)."),
            Setting(
                "batch_size_rows",
                "integer",
                "Load a stream's batch at this many records (BigQuery allows 1,500 load jobs per table a day).",
                default=200_000,
            ),
            Setting(
                "batch_size_bytes",
                "integer",
                "Load a stream's batch at this many bytes of RECORD lines.",
                default=128 * 1024 * 1024,
            ),
        )
    )

    def __init__(self, config: Mapping[str, Any], redactor: Redactor | None = None) -> None:
        super().__init__(config)
        self.redactor = redactor or Redactor()
        self.redactor.add_config(config, ["credentials_json"])

    def make_loader(self) -> Loader:
        from dpone.targets.bigquery.loader import BigQueryLoader  # noqa: PLC0415 - keep --help fast

        return BigQueryLoader(self.config, self.redactor, read_only=self.read_only)
