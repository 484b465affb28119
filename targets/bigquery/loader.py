"""target-bigquery's loader: one load job into staging, then one query job into the table, per batch.

- bulk load: the batch is written locally as one NDJSON file (gzip by default) and loaded with one
  load job (resumable upload, explicit schema, max_bad_records 0, WRITE_TRUNCATE) into the stream's
  staging table, which the job creates the first time: no create or truncate call. The staging
  table lives for the run (dropped at the end; it expires on its own after a day if the run dies).
- finalize: one script job: the additive schema changes (ALTER ... IF NOT EXISTS, DROP NOT NULL,
  SET DATA TYPE to a wider type), then ONE DML statement: INSERT ... SELECT for append, MERGE with
  explicit column lists for upsert (the sink kept the last record per key). A DML statement is
  atomic: a failed batch leaves no row of it in the table. The move job's id is kept while the batch
  is retried, so a retry after a lost answer finds the job that ran instead of moving the rows twice.
- full refresh: a shadow table, filled like the table, put in place by one copy job WRITE_TRUNCATE
  (atomic: readers see the old rows or the new ones, never a half-loaded table), then dropped.
"""

from __future__ import annotations

import datetime as dt
import gzip
import hashlib
import io
import logging
import re
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import IO, Any

from dpone.targets.bigquery import envelope
from dpone.targets.bigquery.ddl import SQL, TableOptions, labels_of, schema_fields
from dpone.targets.bigquery.file_scan import FileScan
from dpone.targets.bigquery.rows import BatchFile, convert, numeric_columns, unfit
from dpone.targets.bigquery.type_map import array_item, dialect, standard
from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.encoded_rows import EncodedRows
from dpone.targets.framework.line_batch import LineBatch, LineRouter
from dpone.targets.framework.loader import StreamPlan
from dpone.targets.framework.schema_evolution import DestinationColumn, SchemaPlan, change_statements
from dpone.targets.framework.sql_loader import STAGING_PREFIX, FetchedRows, SqlLoader
from dpone_drivers import bigquery as bq
from dpone_protocol.batch_manifest import BatchManifest
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError, DponeError, TransientError
from dpone_protocol.json_schema import Logical

log = logging.getLogger(__name__)
STAGING_LIFETIME = dt.timedelta(days=1)
KEPT_STAGING_LIFETIME = dt.timedelta(days=7)


class BigQueryLoader(SqlLoader):
    sql = SQL
    # A batch's jobs run on the committer's thread while the next batch is read and decoded. One lane:
    # a stream's batches share its staging table (truncated by each load), so they load one at a time.
    background_commit = True
    # The move fills _sdc_received_at/_sdc_batched_at with CURRENT_TIMESTAMP(): raw lines carry none.
    stamps_load_times = True

    def __init__(self, config: Mapping[str, Any], redactor: Redactor, *, read_only: bool = False) -> None:
        self.config = config
        self.redactor = redactor
        self.bigquery = bq.driver()
        self.project = str(config["project"])
        self.schema = str(config["dataset"])
        self.dialect = dialect(str(config.get("unbounded_numbers") or "bignumeric"))
        self.keep_staging = bool(config.get("keep_staging", False))
        self.labels = labels_of(config)
        if str(config.get("load_format") or "jsonl") != "jsonl":
            raise ConfigError("load_format: only jsonl is supported")
        compression = str(config.get("load_compression") or "gzip")
        if compression not in ("gzip", "none"):
            raise ConfigError(f"load_compression must be gzip or none; got {compression!r}")
        self.compress = compression == "gzip"
        self.staging_dir = config.get("staging_dir") or None
        self._creates: dict[str, tuple[str, dict[str, str], TableOptions]] = {}  # CREATE text -> the table
        self._staged: set[str] = set()  # staging tables this run loaded (dropped by close)
        self._moves: dict[str, str] = {}  # a batch being retried -> the id of its move job
        self.run_id = uuid.uuid4().hex[:8]
        self._sources: dict[str, str] = {}  # staging -> the move's source (a SELECT over it)
        self.metadata = bool(config.get("add_record_metadata", True))
        self.exact_json = bool(config.get("exact_json_numbers", True))
        self._router = LineRouter()  # RECORD lines of the streams with a raw batch, untouched
        self._told: set[str] = set()  # streams whose path was logged
        self._patterns: dict[str, re.Pattern[bytes] | None] = {}  # the suspect values' pattern per shape
        self._contents: dict[str, str] = {}  # staging -> a digest of the batch it holds
        self.client: Any = bq.client(config, redactor)
        if not read_only:
            self._ensure_dataset(create=bool(config.get("create_dataset", True)))

    # -- the API -----------------------------------------------------------------------------------
    def _ensure_dataset(self, *, create: bool) -> None:
        ref = f"{self.project}.{self.schema}"
        try:
            self.client.get_dataset(ref)
            return
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise bq.classify(exc, self.redactor, f"reading dataset {ref}") from None
        if not create:
            raise ConfigError(
                f"dataset {ref} does not exist (create_dataset is false): create it, or set create_dataset"
            )
        dataset = self.bigquery.Dataset(ref)
        if self.config.get("location"):
            dataset.location = str(self.config["location"])
        try:
            self.client.create_dataset(dataset, exists_ok=True)
        except Exception as exc:
            raise bq.classify(exc, self.redactor, f"creating dataset {ref}") from None

    def table_id(self, table: str) -> str:
        return f"{self.project}.{self.schema}.{table}"

    def table_ref(self, table: str) -> str:
        return self.sql.qualified(self.project, self.schema, table)

    def _wait(self, job: Any, doing: str) -> Any:
        """The job's result; its failure as a typed error naming the job, its reason and location."""
        try:
            result = job.result(retry=bq.api_retry())
        except Exception as exc:
            raise self._job_error(job, exc, doing) from None
        if getattr(job, "error_result", None):
            raise DataError(f"{doing}: {bq.describe_job_error(job, self.redactor)}")
        return result

    def _job_error(self, job: Any, exc: Exception, doing: str) -> DponeError:
        typed = bq.classify(exc, self.redactor, doing)
        if getattr(job, "error_result", None):
            return type(typed)(f"{doing}: {bq.describe_job_error(job, self.redactor)}")
        return typed

    def execute(self, sql: str, params: Sequence[Any] | None = None) -> Any:
        return self._query(sql, "running a query")

    def _query(self, sql: str, doing: str, job_id: str | None = None) -> FetchedRows:
        config = self.bigquery.QueryJobConfig(labels=self.labels)
        try:
            # A fixed job id cannot be retried by the client under the same id: the batch retry does it.
            extra = {"job_id": job_id, "job_retry": None} if job_id else {}
            job = self.client.query(sql, job_config=config, **extra)
        except Exception as exc:
            if job_id is None or getattr(exc, "code", None) != 409:
                raise bq.classify(exc, self.redactor, doing) from None
            # A retried batch whose move ran before its answer was lost: that job's outcome is ours.
            log.info("%s: job %s ran already; taking its result", doing, job_id)
            try:
                job = self.client.get_job(job_id, location=self.config.get("location") or None)
            except Exception as again:
                raise bq.classify(again, self.redactor, doing) from None
        rows = self._wait(job, doing)
        return FetchedRows([tuple(row.values()) for row in rows])

    def error(self, exc: Exception, doing: str) -> Exception:
        return bq.classify(exc, self.redactor, doing)

    def reconnect(self) -> None:
        self.client.close()
        self.client = bq.client(self.config, self.redactor)

    def close(self) -> None:
        if self.client is None:
            return
        if not self.keep_staging:
            for staging in sorted(self._staged):
                try:
                    self.client.delete_table(self.table_id(staging), not_found_ok=True)
                except Exception:
                    # The batch's own error, if any, is the one to report; the table expires by itself.
                    log.debug("dropping staging %s failed; it expires in a day", staging, exc_info=True)
        self._staged.clear()
        self.client.close()
        self.client = None

    # -- tables ------------------------------------------------------------------------------------
    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        try:
            found = self.client.get_table(self.table_id(table))
        except Exception as exc:
            if getattr(exc, "code", None) == 404:
                return None
            raise bq.classify(exc, self.redactor, f"reading table {self.schema}.{table}") from None
        columns = {}
        for field in found.schema:
            type_ = standard(field.field_type)
            if field.mode == "REPEATED":
                columns[field.name] = DestinationColumn(f"ARRAY<{type_}>", True)
            else:
                columns[field.name] = DestinationColumn(type_, field.mode != "REQUIRED")
        return columns

    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        if schema.creates:
            options = TableOptions.for_stream(self.config, plan.stream)
            options.check(plan.stream, schema.table_columns)
            text = SQL.create_text(self.table_ref(table), schema.table_columns, options)
            self._creates[text] = (table, dict(schema.table_columns), options)
            return [text]
        return change_statements(schema, self.table_ref(table), SQL)

    def _create(self, table: str, columns: Mapping[str, str], options: TableOptions, like: Any = None) -> None:
        """A table through the tables API (one call, no job), with its partitioning and clustering:
        those of `like` (an existing table) when given, else the stream's table_options."""
        spec = self.bigquery.Table(self.table_id(table), schema=schema_fields(self.bigquery, columns))
        if like is not None:
            spec.time_partitioning = like.time_partitioning
            spec.range_partitioning = like.range_partitioning
            spec.clustering_fields = like.clustering_fields
            spec.require_partition_filter = like.require_partition_filter
        elif options.partition_by:
            spec.time_partitioning = self.bigquery.TimePartitioning(
                type_=options.partition_type, field=options.partition_by
            )
            spec.require_partition_filter = options.require_partition_filter or None
        if like is None and options.cluster_by:
            spec.clustering_fields = list(options.cluster_by)
        try:
            self.client.create_table(spec, exists_ok=True)
        except Exception as exc:
            raise bq.classify(exc, self.redactor, f"creating table {self.schema}.{table}") from None

    def _script(self, statements: list[str], doing: str, job_id: str | None = None) -> None:
        """CREATEs through the API, then every other statement in one script job."""
        rest = []
        for sql in statements:
            create = self._creates.get(sql)
            if create is not None:
                self._create(*create)
            else:
                rest.append(sql)
        if rest:
            self._query(";\n".join(rest), doing, job_id)

    def apply_schema(self, table: str, statements: list[str]) -> None:
        self._script(statements, f"changing the schema of {self.schema}.{table}")
        for sql in statements:
            log.info("schema change on %s.%s: %s", self.schema, table, sql)

    # -- batches -----------------------------------------------------------------------------------
    def prepare_staging(self, plan: StreamPlan) -> str:
        """No call: the load job creates the table, or truncates it for the next batch. Its name is the
        run's own (two runs loading one table never share staging) and the columns' (a batch of a new
        schema loads into a new table rather than rely on a truncate to replace the columns)."""
        shape_of = (sorted(self.column_types(plan).items()), self._raw_unfit(plan) is None, plan.merges)
        shape = hashlib.sha1(repr(shape_of).encode()).hexdigest()[:8]  # noqa: S324
        return self.sql.fit_name(f"{STAGING_PREFIX}{plan.table}", f"_{self.run_id}_{shape}")

    def _numbers(self, plan: StreamPlan, types: Mapping[str, str]) -> dict[str, str]:
        numeric = (Logical.NUMBER, Logical.DECIMAL)
        found = {}
        for name, column in plan.columns.items():
            logical = column.items.logical if column.logical is Logical.ARRAY and column.items else column.logical
            item = array_item(types[name]) or types[name]
            if (logical in numeric and item in ("NUMERIC", "BIGNUMERIC", "STRING")) or item == "INT64":
                found[name] = types[name]
        return found

    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        types = self.column_types(plan)
        batch = BatchFile(self._numbers(plan, types), self.staging_dir, self.compress)
        doing = f"stream {plan.stream!r}: loading staging {self.schema}.{staging}"
        try:
            try:
                batch.write(plan.stream, records)
            except DataError:
                raise
            except (TypeError, ValueError) as exc:  # an integer beyond 64 bits, a value JSON cannot hold
                found = unfit(plan.stream, types, plan.key_columns, records)
                raise DataError(found or f"stream {plan.stream!r}: {exc}") from None
            config = self._load_config(schema_fields(self.bigquery, types))
            self._contents[staging] = batch.digest
            with open(batch.path, "rb") as fh:
                self._load_staging(
                    staging, fh, config, doing, lambda: unfit(plan.stream, types, plan.key_columns, records)
                )
        finally:
            batch.remove()
        self._sources[staging] = self._stamped(self.table_ref(staging), types)

    def _load_staging(
        self, staging: str, source: IO[bytes], config: Any, doing: str, explain: Callable[[], str | None]
    ) -> None:
        """One load job into staging, waited on. A refused job's error is led by what `explain`
        finds (the input line and column); staging expires if the run dies."""
        try:
            job = self.client.load_table_from_file(source, self.table_id(staging), job_config=config, rewind=True)
        except Exception as exc:
            raise bq.classify(exc, self.redactor, doing) from None
        try:
            self._wait(job, doing)
        except DataError as exc:
            self._staged.add(staging)  # a refused job may leave the table it created: close() drops it
            found = explain()
            raise DataError(f"{found}; {exc}" if found else str(exc)) from None
        if staging not in self._staged:
            self._staged.add(staging)
            self._expire(staging)

    # -- raw batches: the RECORD lines themselves ----------------------------------------------------
    def _raw_unfit(self, plan: StreamPlan) -> str | None:
        return envelope.raw_unfit(plan, self.column_types(plan), self.exact_json)

    def row_encoder(self, plan: StreamPlan, policy: BatchPolicy, *, metadata: bool) -> LineBatch | None:
        """The stream's batch as its RECORD lines, where a load job reads them as the decoded path
        would; None (the decoded path) where it cannot."""
        why = self._raw_unfit(plan)
        if plan.stream not in self._told:
            self._told.add(plan.stream)
            if why is None:
                log.debug("stream %s: batches load as the RECORD lines themselves", plan.stream)
            else:
                log.info("stream %s: records are decoded before loading: %s", plan.stream, why)
        if why is not None:
            return None
        return LineBatch(plan.stream, policy, tuple(plan.key_properties))

    def line_router(self) -> LineRouter:
        return self._router

    def bulk_load_encoded(self, plan: StreamPlan, staging: str, rows: EncodedRows) -> None:
        """Load the batch's envelope lines as they are into the envelope-shaped staging table."""
        types = self.column_types(plan)
        fields = envelope.record_types(types, self.metadata)
        doing = f"stream {plan.stream!r}: loading staging {self.schema}.{staging}"
        data = rows.data
        if envelope.needs_check(data, rows.rows, plan, self._suspects(plan, fields)):
            data = self._check(plan, data, fields)
        if plan.merges:
            data = envelope.sequenced(data)  # the MERGE keeps each key's last line
        config = self._load_config(
            envelope.staging_fields(self.bigquery, schema_fields(self.bigquery, fields), plan.merges)
        )
        body = gzip.compress(data, compresslevel=1) if self.compress else bytes(data)
        self._contents[staging] = hashlib.sha256(body).hexdigest()
        self._load_staging(staging, io.BytesIO(body), config, doing, lambda: self._refused(plan, rows.data, types))
        self._sources[staging] = envelope.source_sql(self.table_ref(staging), plan, types, self.metadata, SQL.q)

    def _load_config(self, schema: list[Any]) -> Any:
        """Every load job's settings: into staging (created the first time, truncated after), no bad
        record let through; the envelope's type and stream, and properties the schema does not name,
        are ignored, as the decoded path ignores them."""
        return self.bigquery.LoadJobConfig(
            schema=schema,
            source_format="NEWLINE_DELIMITED_JSON",
            write_disposition="WRITE_TRUNCATE",
            create_disposition="CREATE_IF_NEEDED",
            max_bad_records=0,
            ignore_unknown_values=True,
            labels=self.labels,
        )

    def _suspects(self, plan: StreamPlan, fields: dict[str, str]) -> re.Pattern[bytes] | None:
        key = repr((plan.key_columns, sorted(fields.items())))
        if key not in self._patterns:
            self._patterns[key] = envelope.suspects(plan, fields)
        return self._patterns[key]

    def _check(self, plan: StreamPlan, data: bytes | bytearray, fields: dict[str, str]) -> bytes:
        numbers = self._numbers(plan, self.column_types(plan))
        numeric = numeric_columns({name: type_ for name, type_ in numbers.items() if name in fields})
        return envelope.checked(
            plan, data, lambda position, record, where: convert(plan.stream, position, record, numeric, where)
        )

    def _refused(self, plan: StreamPlan, data: bytes | bytearray, types: dict[str, str]) -> str | None:
        """The error path of a refused load: which line (or record) and column, found by decoding the
        batch; the raw path takes RECORD lines unparsed, so a malformed one is found here too."""
        found = envelope.malformed(plan, data)
        if found is not None:
            return found
        records = [record for _, record in envelope.envelopes(data)]
        return unfit(plan.stream, types, plan.key_columns, records, lambda n: envelope.where(plan, data, n))

    def _expire(self, staging: str) -> None:
        """One call per staging table and run: a run that dies leaves a table that goes by itself."""
        lifetime = KEPT_STAGING_LIFETIME if self.keep_staging else STAGING_LIFETIME
        try:
            table = self.bigquery.Table(self.table_id(staging))
            table.expires = dt.datetime.now(dt.UTC) + lifetime
            self.client.update_table(table, ["expires"])
        except Exception:
            log.debug("setting the expiry of %s failed", staging, exc_info=True)

    # -- BATCH files read by BigQuery itself -------------------------------------------------------
    def accepts_files(self, plan: StreamPlan, manifest: BatchManifest) -> bool:
        """gs:// JSONL files load in place (BigQuery reads them; gzip is detected by BigQuery), unless
        their properties need renaming into valid column names."""
        return (
            bool(manifest.files)
            and all(f.uri.startswith("gs://") for f in manifest.files)
            and manifest.format == "jsonl"
            and not plan.renames
        )

    def file_scan(self, plan: StreamPlan, manifest: BatchManifest) -> FileScan:
        types = self.column_types(plan)
        fields = {name: type_ for name, type_ in types.items() if name not in envelope.stamped(self.metadata)}
        gz = manifest.compression == "gzip" or all(f.uri.endswith(".gz") for f in manifest.files)
        return FileScan(self._suspects(plan, fields), plan.key_columns, [f.rows for f in manifest.files], gz)

    def bulk_load_files(self, plan: StreamPlan, staging: str, manifest: BatchManifest) -> bool:
        types = self.column_types(plan)
        doing = f"stream {plan.stream!r}: loading {len(manifest.files)} BATCH files into {self.schema}.{staging}"
        config = self._load_config(schema_fields(self.bigquery, types))
        try:
            job = self.client.load_table_from_uri(
                [f.uri for f in manifest.files], self.table_id(staging), job_config=config
            )
        except Exception as exc:
            raise bq.classify(exc, self.redactor, doing) from None
        self._wait(job, doing)
        if staging not in self._staged:
            self._staged.add(staging)
            self._expire(staging)
        loaded = getattr(job, "output_rows", None)
        if loaded is not None and int(loaded) != manifest.rows:
            raise DataError(f"{doing}: the load job read {loaded} rows, the manifest lists {manifest.rows}")
        ref = self.table_ref(staging)
        if plan.merges:
            row = self._query(SQL.duplicate_keys(ref, plan.key_columns), doing).fetchone()
            if row is None or row[0] != row[1]:
                return False  # only the files' row order says which row of a key wins: the framework reads them
        self._sources[staging] = self._stamped(ref, types)
        self._contents[staging] = ",".join(f.sha256 for f in manifest.files)
        return True

    def _stamped(self, ref: str, types: Mapping[str, str]) -> str:
        """Staging as a source whose rows get the load times the target stamps on records it reads."""
        stamps = [c for c in ("_sdc_received_at", "_sdc_batched_at") if c in types]
        if not stamps:
            return ref
        q = SQL.q
        replaced = ", ".join(f"COALESCE({q(c)}, CURRENT_TIMESTAMP()) AS {q(c)}" for c in stamps)
        return f"(SELECT * REPLACE ({replaced}) FROM {ref})"

    def finalize(self, plan: StreamPlan, staging: str, table: str, schema: list[str]) -> None:
        source = self._sources.pop(staging, None) or (staging if staging.startswith("`") else self.table_ref(staging))
        moves = self.move_statements(plan, source, self.table_ref(table))
        statements = [*schema, *moves]
        # A retry of this batch (same table, same staged content) reuses the move's job id: if the job ran
        # and only its answer was lost, BigQuery says so (409) instead of moving the rows twice.
        content = self._contents.pop(staging, "")
        batch = hashlib.sha256("\n".join([table, source, content, *moves]).encode()).hexdigest()
        job_id = self._moves.setdefault(batch, f"dpone_{uuid.uuid4().hex}")
        doing = f"stream {plan.stream!r}: loading {self.schema}.{table}"
        try:
            self._script(statements, doing, job_id)
        except TransientError:
            raise  # retried: the id is kept
        except Exception:
            self._moves.pop(batch, None)
            raise
        self._moves.pop(batch, None)

    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        """Nothing per batch: the next load truncates staging, and close() drops it."""

    # -- full refresh ------------------------------------------------------------------------------
    def begin_replace(self, plan: StreamPlan) -> str:
        shadow = self.shadow_name(plan.table)
        columns = plan.table_columns or self.column_types(plan)
        options = TableOptions.for_stream(self.config, plan.stream)
        options.check(plan.stream, columns)
        try:
            self.client.delete_table(self.table_id(shadow), not_found_ok=True)
            live = self.client.get_table(self.table_id(plan.table))
        except Exception as exc:
            if getattr(exc, "code", None) != 404:
                raise bq.classify(exc, self.redactor, f"preparing a shadow of {plan.table}") from None
            live = None
        # An existing table keeps its layout (table_options apply when a table is created): the copy
        # job that swaps the shadow in refuses a partitioning other than the table's.
        self._create(shadow, columns, options, like=live)
        return shadow

    def swap(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        doing = f"replacing {self.schema}.{plan.table}"
        self._script(schema, doing)
        config = self.bigquery.CopyJobConfig(
            write_disposition="WRITE_TRUNCATE", create_disposition="CREATE_IF_NEEDED", labels=self.labels
        )
        try:
            job = self.client.copy_table(self.table_id(shadow), self.table_id(plan.table), job_config=config)
        except Exception as exc:
            raise bq.classify(exc, self.redactor, doing) from None
        self._wait(job, doing)
        try:
            self.client.delete_table(self.table_id(shadow), not_found_ok=True)
        except Exception as exc:
            raise bq.classify(exc, self.redactor, f"dropping the shadow table {shadow}") from None
        log.info("replaced %s.%s", self.schema, plan.table)
