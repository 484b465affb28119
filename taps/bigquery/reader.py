"""Rows out of BigQuery, a page or an Arrow batch at a time: the REST API or the Storage Read API.

- A table read whole (FULL_TABLE of a table) is `tabledata.list` through `client.list_rows`: no
  query job, nothing billed. With the Storage Read API it is a read session on the table instead,
  streamed as Arrow record batches (`RowIterator.to_arrow_iterable`).
- Anything else (a view, a configured query, an INCREMENTAL read) is a query job with typed
  parameters; its result is paged through `getQueryResults`, or read with the Storage Read API
  when the result is larger than its first page (the client library decides).

Memory holds one page (`page_size` rows) or one Arrow batch, whichever path. Every value comes
out as the client's Python value; type_map.py turns it into JSON.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from dpone_drivers import bigquery as drivers
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError

log = logging.getLogger(__name__)

AUTO, ALWAYS, NEVER = "auto", "always", "never"
STORAGE_API_CHOICES = (AUTO, ALWAYS, NEVER)
# Under `auto`, tables with fewer rows go through tabledata.list: a read session costs a round trip
# or two more than it saves there, and needs the extra IAM role.
STORAGE_API_MIN_ROWS = 100_000


def storage_client(config: Mapping[str, Any], client: Any) -> Any | None:
    """The Storage Read API client the settings ask for, or None to read through the REST API."""
    mode = str(config.get("use_storage_api") or AUTO)
    if mode == NEVER:
        return None
    endpoint = config.get("storage_api_endpoint")
    if mode == AUTO and config.get("api_endpoint") and not endpoint:
        # Another REST endpoint (an emulator, a proxy) says nothing of where its gRPC API is.
        return None
    try:
        if endpoint:
            found = _storage_client_at(str(endpoint), str(config.get("api_endpoint") or ""), client)
        else:
            found = drivers.storage_read_client(config, client)
    except ImportError:
        found = None
    if found is None and mode == ALWAYS:
        raise ConfigError(
            "use_storage_api is 'always' but google-cloud-bigquery-storage is not installed: "
            "pip install 'dpone[bigquery]'"
        )
    return found


def _storage_client_at(endpoint: str, rest_endpoint: str, client: Any) -> Any:
    """A Storage Read API client on `endpoint` (host:port); plaintext gRPC when the REST endpoint is
    http:// (a local emulator), TLS otherwise."""
    from google.cloud import bigquery_storage  # noqa: PLC0415 - lazy: only readers that use it

    if rest_endpoint.startswith("http://"):
        import grpc  # type: ignore[import-untyped, unused-ignore]  # noqa: PLC0415
        from google.cloud.bigquery_storage_v1.services.big_query_read.transports import (  # noqa: PLC0415
            BigQueryReadGrpcTransport,
        )

        channel = grpc.insecure_channel(endpoint)
        transport = BigQueryReadGrpcTransport(channel=channel)
        return bigquery_storage.BigQueryReadClient(transport=transport)  # type: ignore[no-untyped-call, unused-ignore]
    from google.api_core.client_options import ClientOptions  # noqa: PLC0415

    options = ClientOptions(api_endpoint=endpoint)
    return bigquery_storage.BigQueryReadClient(  # type: ignore[no-untyped-call, unused-ignore]
        credentials=client._credentials, client_options=options
    )


def use_storage_for_table(config: Mapping[str, Any], num_rows: int | None) -> bool:
    """Whether a whole-table read goes through the Storage Read API (given a client for it)."""
    mode = str(config.get("use_storage_api") or AUTO)
    return mode == ALWAYS or (mode == AUTO and (num_rows or 0) >= STORAGE_API_MIN_ROWS)


def _arrow_rows(iterator: Any, bqstorage: Any) -> Iterator[tuple[Any, ...]]:
    for batch in iterator.to_arrow_iterable(bqstorage_client=bqstorage):
        columns = [column.to_pylist() for column in batch.columns]
        yield from zip(*columns, strict=True)


def _rest_rows(iterator: Any) -> Iterator[tuple[Any, ...]]:
    for page in iterator.pages:
        for row in page:
            yield row.values()


def table_rows(client: Any, table: Any, fields: Sequence[Any], page_size: int, bqstorage: Any | None) -> Rows:
    """Every row of `table`, each a tuple of the `fields` values in their order."""
    iterator = client.list_rows(table, selected_fields=list(fields), page_size=page_size)
    if bqstorage is not None:
        log.info("reading %s.%s through the Storage Read API", table.dataset_id, table.table_id)
        return Rows(_arrow_rows(iterator, bqstorage), True)
    return Rows(_rest_rows(iterator), False)


class Rows:
    """Rows of one read, each a tuple in the order of the fields read; `arrow` when they come from
    Arrow batches (a Storage Read API session), whose JSON columns are text."""

    def __init__(self, rows: Iterator[tuple[Any, ...]], arrow: bool) -> None:
        self.rows = rows
        self.arrow = arrow

    def __iter__(self) -> Iterator[tuple[Any, ...]]:
        return self.rows


class QueryRead:
    """One query job and its rows; `job` is kept so a failure can name it."""

    def __init__(self, client: Any, sql: str, parameters: Sequence[Any], page_size: int) -> None:
        bigquery = drivers.driver()
        self.client = client
        self.sql = sql
        self.page_size = page_size
        self.config = bigquery.QueryJobConfig(query_parameters=list(parameters))
        self.job: Any = None

    def rows(self, bqstorage: Any | None, always: bool) -> Rows:
        """The result, through the Storage Read API when `always`, or when it holds STORAGE_API_MIN_ROWS
        rows or more (given a client for it); else page by page."""
        # client.query + result(), not query_and_wait: a failed job then raises with its id and reason
        # on every endpoint (an emulator's jobs.query can answer a failed statement with no rows).
        self.job = self.client.query(self.sql, job_config=self.config)
        result = self.job.result(page_size=self.page_size)
        if bqstorage is not None and (always or (result.total_rows or 0) >= STORAGE_API_MIN_ROWS):
            log.info("reading the result of job %s through the Storage Read API", self.job.job_id)
            return Rows(_arrow_rows(result, bqstorage), True)
        return Rows(_rest_rows(result), False)

    def schema(self) -> list[Any]:
        """The result's columns, from a dry run of the query (free, and an invalid query is reported
        at its own line and column); from the query with LIMIT 0 where a dry run gives no schema."""
        bigquery = drivers.driver()
        parameters = self.config.query_parameters
        dry = bigquery.QueryJobConfig(dry_run=True, use_query_cache=False, query_parameters=parameters)
        fields = list(self.client.query(self.sql, job_config=dry).schema or [])
        if fields:
            return fields
        self.job = self.client.query(f"SELECT * FROM ({self.sql}) LIMIT 0", job_config=self.config)
        return list(self.job.result().schema)


def read_error(exc: BaseException, redactor: Redactor, doing: str, job: Any = None) -> DponeError:
    """A failure while reading: a missing table, a denied permission or a query BigQuery rejects is a
    ConfigError (the settings or the catalog must change); quota and backend errors are transient."""
    found = drivers.classify(exc, redactor, doing)
    failed = job is not None and getattr(job, "error_result", None)
    message = f"{doing}: {drivers.describe_job_error(job, redactor)}" if failed else str(found)
    if isinstance(found, DataError):
        # A tap sends what BigQuery has: a rejected statement is the configured query's or the catalog's.
        return ConfigError(message)
    return type(found)(message)
