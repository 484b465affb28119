"""The staging-first loader contract every database target implements, and the sink driving it.

When a stream's SCHEMA arrives, the schema-evolution planner compares it with the table and
the loader queues the changes it allows; they run in the same transaction as the next load.
Per batch: prepare staging -> bulk load -> finalize (schema changes, then append or merge, one
transaction) -> clean up. A full refresh (load_method `overwrite`) finalizes into a shadow table and swaps
it into place when the stream completes, so readers never see a half-loaded table.
"""

from __future__ import annotations

import logging
import operator
import re
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.json_schema import ColumnType
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.settings import Setting
from targets.framework.batching import BatchPolicy
from targets.framework.capabilities import APPEND, OVERWRITE, UPSERT, TargetCapabilities
from targets.framework.committer import Committer
from targets.framework.encoded_rows import EncodedRows, LineRouter, RowEncoder
from targets.framework.schema_evolution import (
    SCHEMA_EVOLUTION_SETTING,
    DestinationColumn,
    Dialect,
    Evolution,
    SchemaPlan,
    plan_schema,
)
from targets.framework.sink import Sink


@dataclass(slots=True)
class StreamPlan:
    stream: str
    table: str
    columns: dict[str, ColumnType]  # what batches load: destination column -> incoming type
    key_properties: list[str]
    method: str  # append-only | upsert | overwrite
    hard_delete: bool = False
    evolution: Evolution = field(default_factory=Evolution)
    # The table's columns after schema evolution (destination name -> type), for a shadow table.
    table_columns: dict[str, str] | None = None
    renames: dict[str, str] | None = None  # incoming property -> destination column, where they differ

    @property
    def merges(self) -> bool:
        return bool(self.key_properties) and self.method in (UPSERT, OVERWRITE)


class Loader(ABC):
    """Destination-specific steps. Each method is one database round of work."""

    dialect: Dialect

    @abstractmethod
    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        """The table's columns, or None when it does not exist."""

    @abstractmethod
    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        """The DDL that applies a schema plan to `table` (created with the plan's columns if missing)."""

    @abstractmethod
    def flush_schema(self, table: str) -> None:
        """Run the queued schema changes of `table` on their own, in one transaction."""

    def queue_schema(self, table: str, statements: list[str]) -> None:
        """Hold schema changes until the next load of `table`, to run in its transaction."""
        if self._pending_ddl is None:
            self._pending_ddl = {}
        if statements:
            self._pending_ddl[table] = statements
        else:
            self._pending_ddl.pop(table, None)

    def take_schema(self, table: str) -> list[str]:
        """The queued schema changes of `table`, now owned by the caller's transaction."""
        return self._pending_ddl.pop(table, []) if self._pending_ddl else []

    @abstractmethod
    def prepare_staging(self, plan: StreamPlan) -> str:
        """Create an empty staging table for one batch; return its name."""

    @abstractmethod
    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        """Load records into staging with the destination's fast path."""

    def bulk_load_encoded(self, plan: StreamPlan, staging: str, rows: EncodedRows) -> None:
        """Load a batch taken from this loader's row encoder (already in the bulk format) into staging."""
        raise NotImplementedError(f"{type(self).__name__} gives no row encoder")

    def row_encoder(self, plan: StreamPlan, policy: BatchPolicy, *, metadata: bool) -> RowEncoder | None:
        """An encoder that keeps this stream's batches in the bulk format, or None for decoded records."""
        return None

    def line_router(self) -> LineRouter | None:
        """The router that feeds RECORD lines to the streams' encoders, when row_encoder gives any."""
        return None

    @abstractmethod
    def finalize(self, plan: StreamPlan, staging: str, table: str) -> None:
        """In one transaction, append or merge staging into `table` (and apply CDC deletes)."""

    @abstractmethod
    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        """Drop staging (or keep it, when configured to)."""

    @abstractmethod
    def begin_replace(self, plan: StreamPlan) -> str:
        """Create an empty shadow of the table for a full refresh; return its name."""

    @abstractmethod
    def swap(self, plan: StreamPlan, shadow: str) -> None:
        """Atomically put the shadow in place of the table."""

    @abstractmethod
    def activate_version(self, plan: StreamPlan, version: int) -> None:
        """Delete (hard) or mark deleted (soft) rows whose _sdc_table_version is older."""

    def table_version(self, table: str) -> int | None:
        """The newest _sdc_table_version in `table`; None without one (no such table or column).
        A loader that answers None never sees a refresh resumed (every refresh then swaps)."""
        return None

    def merge_shadow(self, plan: StreamPlan, shadow: str) -> None:
        """Merge a shadow's rows into the live table, as a batch from staging, and drop the shadow:
        for a refresh whose version is live already (a resumed one re-sends only its tail)."""
        raise NotImplementedError(f"{type(self).__name__} answers table_version, so it must merge shadows")

    def close(self) -> None:
        """Release the connection."""

    def is_transient(self, exc: Exception) -> bool:
        """True when retrying the whole batch may succeed (dropped connection, deadlock...)."""
        return False

    def reconnect(self) -> None:
        """Called before a retry: start from a fresh connection."""

    # True when staging fills _sdc_received_at and _sdc_batched_at with the load time itself.
    stamps_load_times: bool = False
    # True when a batch may load in a background thread while the next one is decoded. The sink
    # waits for it before any other use of the loader, so the connection is never used by two threads.
    background_commit: bool = False
    _committer: Committer | None = None
    _pending_ddl: dict[str, list[str]] | None = None

    def committer(self) -> Committer:
        """The one background thread of this loader: every sink sharing the connection queues on it."""
        if self._committer is None:
            self._committer = Committer(f"{type(self).__name__}-commit", self.lanes)
        return self._committer

    # Connections that load batches side by side (see committer.py); lane(0) is the loader itself.
    lanes: int = 1

    def lane(self, index: int) -> Loader:
        """The loader of lane `index`: its own connection, this loader's schema queue and caches."""
        if index != 0:
            raise ValueError(f"{type(self).__name__} has one lane")
        return self


log = logging.getLogger(__name__)

# What every staging-first database target can do, and the settings that drive it.
DATABASE_CAPABILITIES = TargetCapabilities(
    load_methods=(APPEND, UPSERT, OVERWRITE),
    merge=True,
    replace_swap=True,
    hard_delete=True,
    soft_delete=True,
    activate_version=True,
    schema_evolution=("add_column", "widen"),
)
LOADER_SETTINGS: tuple[Setting, ...] = (
    Setting(
        "load_method",
        "string",
        "upsert merges on key properties (append when a stream has none); append-only appends; overwrite loads "
        "into a shadow table and swaps it in at ACTIVATE_VERSION or the end of the input (STATE is held until "
        "then).",
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
    Setting("max_retries", "integer", "Retries of a batch after a transient error (reconnects first).", default=3),
    SCHEMA_EVOLUTION_SETTING,
)
_UNSAFE = re.compile(r"[^0-9a-zA-Z_]+")


def table_name(stream: str, mapping: Mapping[str, Any] | None) -> str:
    """The destination table of a stream: mapped explicitly, or its name made identifier-safe."""
    if mapping and stream in mapping:
        return str(mapping[stream])
    name = _UNSAFE.sub("_", stream).strip("_").lower()
    return name or "stream"


def resolve_method(config: Mapping[str, Any], key_properties: list[str]) -> str:
    method = str(config.get("load_method") or UPSERT)
    if method not in (APPEND, UPSERT, OVERWRITE):
        raise ConfigError(f"load_method must be one of {APPEND}, {UPSERT}, {OVERWRITE}; got {method!r}")
    if method == UPSERT and not key_properties:
        return APPEND  # nothing to merge on
    return method


def _dedupe_last(records: list[dict[str, Any]], keys: list[str]) -> list[dict[str, Any]]:
    """Keep the last record per key, so a merge sees one row per key."""
    latest: dict[Any, dict[str, Any]] = {}
    if len(keys) == 1:
        key = keys[0]
        try:
            if len(set(map(operator.itemgetter(key), records))) == len(records):
                return records  # the usual batch: no key twice, found at C speed
        except TypeError:
            pass  # an object or array as the key: compared by its JSON below
        for record in records:
            value = record[key]
            latest[value if not isinstance(value, (dict, list)) else DEFAULT_CODEC.dumps(value)] = record
    else:
        for record in records:
            latest[DEFAULT_CODEC.dumps([record[k] for k in keys])] = record
    return list(latest.values()) if len(latest) != len(records) else records


class LoaderSink(Sink):
    """Drives a :class:`Loader` through the staging contract for one stream."""

    def __init__(
        self,
        config: Mapping[str, Any],
        schema: SchemaMessage,
        policy: BatchPolicy,
        loader: Loader,
        *,
        plan_only: bool = False,
    ) -> None:
        self.loader = loader
        self.plan_only = plan_only  # --schema-plan: plan each schema, change nothing
        self.stamp_load_times = not loader.stamps_load_times
        self.committer = loader.committer() if loader.background_commit else None
        self.shadow: str | None = None  # an open full refresh (load_method overwrite)
        # Full refreshes: the version last swapped in by ACTIVATE_VERSION, and whether any swap or
        # ACTIVATE_VERSION happened (then the end of the input has nothing left to replace).
        self.activated: int | None = None
        self.refreshed = False
        # Batches handed to the loader and committed, when no committer counts them.
        self._submitted = 0
        self._committed = 0
        self.plan: StreamPlan | None = None
        self.encoder: RowEncoder | None = None  # the batch, when the loader encodes rows itself
        super().__init__(config, schema, policy)

    def _settle(self) -> None:
        """Wait for the batch in flight (raising its error) before using the loader here."""
        if self.committer is not None:
            self.committer.wait()

    def on_schema(self) -> None:
        self._settle()
        self.plan = StreamPlan(
            stream=self.stream,
            table=table_name(self.stream, self.config.get("table_name_map")),
            columns=self.columns,
            key_properties=self.key_properties,
            method=resolve_method(self.config, self.key_properties),
            hard_delete=bool(self.config.get("hard_delete", False)),
            evolution=Evolution.for_stream(self.config, self.stream),
        )
        if not self.plan_only:
            self._evolve(self.plan)
            self._set_encoder(self.plan)

    def _set_encoder(self, plan: StreamPlan) -> None:
        # Called after a drain (or before any row): the previous encoder holds nothing.
        self.encoder = self.loader.row_encoder(plan, self.policy, metadata=self.add_metadata)
        router = self.loader.line_router()
        if router is not None:
            if self.encoder is not None:
                router.register(self.stream, self.encoder)
            else:
                router.unregister(self.stream)

    def schema_plan(self, loader: Loader | None = None) -> SchemaPlan:
        """What the planner decides for the current schema, without changing anything."""
        assert self.plan is not None
        loader = loader or self.loader
        table = self.shadow or self.plan.table
        existing = loader.describe_table(table)
        return plan_schema(
            self.stream, table, self.columns, self.key_properties, existing, loader.dialect, self.plan.evolution
        )

    def _evolve(self, plan: StreamPlan, loader: Loader | None = None) -> None:
        loader = loader or self.loader
        # DDL still queued for this table (another stream loading into it, or this stream's previous
        # SCHEMA without rows) runs first, so this plan starts from the table it will really meet.
        loader.flush_schema(self.shadow or plan.table)
        schema = self.schema_plan(loader)
        schema.check()
        plan.columns = schema.load_columns
        plan.table_columns = schema.table_columns
        plan.renames = schema.renames or None
        for change in schema.changes:
            log.info("stream %s: schema plan for %s: %s", self.stream, schema.table, change.describe())
        # A full refresh builds a fresh shadow from the planned columns; only a live shadow is altered.
        if plan.method != OVERWRITE or self.shadow is not None:
            loader.queue_schema(schema.table, loader.schema_statements(plan, schema, schema.table))

    # -- batches held by the loader's encoder ---------------------------------------------------
    def add_record(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int
    ) -> bool:
        encoder = self.encoder
        if encoder is None:
            return super().add_record(record, version, time_extracted, size, line)
        self.check_keys(record, line)
        try:
            return encoder.add(record, version, time_extracted, size)
        except ValueError as exc:
            raise DataError(f"line {line}, stream {self.stream!r}: {exc}") from None

    def add_raw_record(self, line: bytes) -> bool:
        return self.encoder is not None and self.encoder.feed_record(line)

    def is_full(self) -> bool:
        return self.encoder.is_full() if self.encoder is not None else super().is_full()

    def has_rows(self) -> bool:
        return self.encoder.rows > 0 if self.encoder is not None else super().has_rows()

    def batch_age(self) -> float:
        return self.encoder.age() if self.encoder is not None else super().batch_age()

    def drain(self) -> None:
        encoder = self.encoder
        if encoder is None:
            super().drain()
        elif encoder.rows:
            rows, duplicates = encoder.rows, bool(encoder.duplicates)
            self.write_batch(EncodedRows(encoder.take(), rows, duplicates))

    def write_batch(self, records: list[dict[str, Any]] | EncodedRows) -> None:
        plan = self.plan
        assert plan is not None
        if isinstance(records, EncodedRows):
            self._submit(plan, records)  # renames and duplicate keys are the encoder's and loader's
            return
        if plan.renames:
            renames = plan.renames.items()
            for record in records:
                for source, dest in renames:
                    if source in record:
                        record[dest] = record.pop(source)
        if plan.merges:
            # Renamed above: the keys are found under their destination names.
            keys = [(plan.renames or {}).get(k, k) for k in plan.key_properties]
            records = _dedupe_last(records, keys)
        self._submit(plan, records)

    def _submit(self, plan: StreamPlan, records: list[dict[str, Any]] | EncodedRows) -> None:
        if plan.method == OVERWRITE and self.shadow is None:
            self._settle()  # the loader's connection is ours alone only when nothing is in flight
            self.shadow = self.loader.begin_replace(plan)
        table = self.shadow or plan.table
        if self.committer is not None:
            self.committer.submit(
                lambda lane, turn: self._write_with_retries(plan, records, table, self.loader.lane(lane), turn)
            )
        else:
            self._submitted += 1
            self._write_with_retries(plan, records, table, self.loader, lambda: None)
            self._committed = self._submitted

    def _write_with_retries(
        self,
        plan: StreamPlan,
        records: list[dict[str, Any]] | EncodedRows,
        table: str,
        loader: Loader,
        turn: Callable[[], None],
    ) -> None:
        attempts = max(1, int(self.config.get("max_retries", 3)) + 1)
        for attempt in range(1, attempts + 1):
            try:
                if attempt > 1:
                    # Inside the try: a failed reconnect is one more transient error to retry.
                    loader.reconnect()
                    self._evolve(plan, loader)  # the failed transaction took the queued schema changes with it
                self._load(plan, records, table, loader, turn)
                return
            except Exception as exc:
                if attempt == attempts or not loader.is_transient(exc):
                    raise
                # The batch is still in memory and nothing of it was committed: do it all again.
                delay = min(30.0, 2.0 ** (attempt - 1))
                log.warning(
                    "stream %s: transient error (%s); retry %d/%d in %.0fs",
                    self.stream,
                    str(exc).splitlines()[0],
                    attempt,
                    attempts - 1,
                    delay,
                )
                time.sleep(delay)
        raise AssertionError("unreachable")

    @staticmethod
    def _load(
        plan: StreamPlan,
        records: list[dict[str, Any]] | EncodedRows,
        table: str,
        loader: Loader,
        turn: Callable[[], None],
    ) -> None:
        staging = loader.prepare_staging(plan)
        try:
            if isinstance(records, EncodedRows):
                loader.bulk_load_encoded(plan, staging, records)
            else:
                loader.bulk_load(plan, staging, records)
            turn()  # the batch before this one commits first
            loader.finalize(plan, staging, table)
        finally:
            loader.cleanup(plan, staging)

    def commit_mark(self) -> int:
        return self.committer.submitted if self.committer is not None else self._submitted

    def is_committed(self, mark: int) -> bool:
        if self.shadow is not None:
            return False  # a full refresh is visible only once swapped in
        if self.committer is None:
            return self._committed >= mark  # a batch that failed never counts
        return self.committer.has_committed(mark)

    def settle(self) -> None:
        self._settle()

    def finish(self) -> None:
        self._settle()
        if self.plan is None:
            return
        if self.plan.method != OVERWRITE:
            self.loader.flush_schema(self.plan.table)  # a stream without rows still gets its table
            return
        if self.shadow is None and not self.refreshed:
            # A full refresh that sent no rows and no ACTIVATE_VERSION: the source is empty.
            self.shadow = self.loader.begin_replace(self.plan)
        self._swap_shadow()

    def _swap_shadow(self, version: int | None = None) -> None:
        """Put the shadow in place: `version` is the ACTIVATE_VERSION that completes it, if any."""
        plan = self.plan
        assert plan is not None
        if self.shadow is None:
            return
        loader = self.loader
        live = loader.table_version(plan.table)
        incoming = version if version is not None else loader.table_version(self.shadow)
        if live is not None and incoming is not None and live >= incoming:
            # This version is live already: the tap resumed a refresh that was swapped in, and
            # re-sent only its tail. Swapping the tail in would lose the rest: merge it instead.
            log.info("stream %s: version %d is live already: merging the resumed rows in", self.stream, incoming)
            loader.merge_shadow(plan, self.shadow)
        else:
            loader.swap(plan, self.shadow)
        self.shadow = None
        self.refreshed = True

    def activate_version(self, version: int) -> None:
        self._settle()
        assert self.plan is not None
        if self.plan.method == OVERWRITE:
            self._activate_refresh(version)
            return
        self.loader.flush_schema(self.plan.table)
        self.loader.activate_version(self.plan, version)

    def _activate_refresh(self, version: int) -> None:
        """ACTIVATE_VERSION of a full refresh. After its rows it completes the refresh: the shadow is
        swapped in. Before any row it opens one: the rows that follow fill the shadow, and if none
        come (an empty source) the next ACTIVATE_VERSION or the end of the input swaps it in empty.
        The same version activated again is already in place; the table is never emptied for it."""
        assert self.plan is not None
        if self.shadow is None:
            live = self.loader.table_version(self.plan.table)
            if self.activated == version or (live is not None and live >= version):
                self.refreshed = True  # the end of the input has nothing to replace either
                return  # in place already (this run, or a run whose final state was lost)
            self.shadow = self.loader.begin_replace(self.plan)
            self.refreshed = True  # the end of the input swaps this shadow, not a second empty one
            log.info("stream %s: full refresh of version %d started", self.stream, version)
            return
        self._swap_shadow(version)
        self.activated = version

    def close(self) -> None:
        # Never let the connection close under a batch in flight; its error (if any) was or will be
        # reported by finish() on the normal path.
        if self.committer is not None:
            try:
                self.committer.wait()
            except Exception:
                log.debug("stream %s: batch in flight failed while closing", self.stream, exc_info=True)
