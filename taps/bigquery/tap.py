"""tap-bigquery: BigQuery tables, views and queries as streams; FULL_TABLE and INCREMENTAL.

One BigQuery client per run, made on first use (`--help`, `--about` and importing this module
never load google.cloud), and a Storage Read API client beside it when the settings allow one.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from dpone.taps.bigquery import discovery
from dpone.taps.bigquery.reader import AUTO, STORAGE_API_CHOICES, storage_client
from dpone.taps.bigquery.streams import BigQueryStream
from dpone.taps.framework.stream import Stream
from dpone.taps.framework.tap import Tap
from dpone_drivers import bigquery as drivers
from dpone_protocol.config import Redactor
from dpone_protocol.settings import Setting

_UNSET = object()


class BigQueryTap(Tap):
    name = "tap-bigquery"
    description = "Reads BigQuery tables, views and queries: full table and incremental by a replication key."
    capabilities: ClassVar[tuple[str, ...]] = Tap.capabilities + ("activate-version",)
    secret_keys: ClassVar[tuple[str, ...]] = ("credentials_json",)
    settings: ClassVar[tuple[Setting, ...]] = drivers.CONNECTION_SETTINGS + (
        Setting(
            "streams",
            "array",
            "Streams to read instead of the dataset's tables: "
            '[{"name": "orders", "table": "orders" | "dataset.table" | "project.dataset.table", '
            '"key_properties": ["id"], "replication_key": "updated_at"}, {"name": "...", "query": "SELECT ..."}].',
        ),
        Setting("tables", "array", "Without streams: the tables and views of dataset to read, as name globs."),
        Setting(
            "use_storage_api",
            "string",
            "Read through the BigQuery Storage Read API: auto (tables of 100,000 rows or more, and large "
            "query results, when google-cloud-bigquery-storage is installed), always, or never (REST only).",
            default=AUTO,
            choices=STORAGE_API_CHOICES,
        ),
        Setting(
            "storage_api_endpoint",
            "string",
            "Another Storage Read API endpoint, host:port (plaintext gRPC when api_endpoint is http://).",
        ),
        Setting("page_size", "integer", "Rows per REST page (memory holds one page).", default=10_000),
    )

    # Set after the settings: inside the class body `drivers` would hide the dpone_drivers module.
    drivers: ClassVar[dict[str, str]] = {"google.cloud.bigquery": "bigquery"}

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.redactor = Redactor()
        self.redactor.add_config(config, list(self.secret_keys))
        self._client: Any = None
        self._storage: Any = _UNSET
        self.page_size = max(1, int(config.get("page_size") or 10_000))

    @property
    def driver(self) -> Any:
        return drivers.driver()

    @property
    def client(self) -> Any:
        """The BigQuery client, made on first use."""
        if self._client is None:
            self._client = drivers.client(self.config, self.redactor)
        return self._client

    @property
    def storage(self) -> Any:
        """The Storage Read API client, or None to read through the REST API."""
        if self._storage is _UNSET:
            self._storage = storage_client(self.config, self.client)
        return self._storage

    def discover_streams(self) -> list[Stream]:
        if self.config.get("streams"):
            specs = discovery.configured(self.client, self.config, self.redactor)
        else:
            specs = discovery.dataset_tables(self.client, self.config, self.redactor)
        return [BigQueryStream(spec, self) for spec in specs]
