"""LoaderSink: one stream driven through the staging contract of targets/framework/loader.py.

Per batch: prepare staging -> bulk load -> finalize -> clean up, retried whole on a transient
error, on the loader's committer when it loads in the background. A full refresh (load_method
`overwrite`) fills a shadow table that ACTIVATE_VERSION or the end of the input swaps in; a
version the table holds already is merged into it instead (a resumed refresh).
"""

from __future__ import annotations

import logging
import operator
import time
from collections.abc import Mapping
from collections.abc import Set as AbstractSet
from typing import Any, final

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.capabilities import OVERWRITE
from dpone.targets.framework.committer import Committer, Turn, no_wait
from dpone.targets.framework.encoded_rows import EncodedRows, RowEncoder
from dpone.targets.framework.loader import Loader, SchemaQueue, StreamPlan, resolve_method, table_name
from dpone.targets.framework.schema_evolution import Evolution, SchemaPlan, plan_schema
from dpone.targets.framework.sink import Sink
from dpone.targets.framework.sql_dialect import TABLE_VERSION
from dpone_protocol.batch_manifest import BatchManifest, fetch, verify_remote
from dpone_protocol.codec import DEFAULT_CODEC
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.object_store import ObjectStores, is_remote

log = logging.getLogger(__name__)


class _NotFromFiles(Exception):
    """The loader declined to finalize a batch from its files as they are."""


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


# The key under which a record keeps its input line (a name no JSON property will have).
LINE_KEY = "\x00dpone_line"


def input_line(records: list[dict[str, Any]], position: int) -> str:
    """The input line of the batch's record at `position` (1-based), or its place in the batch."""
    line = records[position - 1].get(LINE_KEY)
    return f"line {line}" if line is not None else f"record {position} of the batch"


class LoaderSink(Sink):
    """Drives a :class:`Loader` through the staging contract for one stream."""

    # Records keep their input line under LINE_KEY, so a loader names the line of a value it refuses.
    carry_lines = False

    def __init__(
        self,
        config: Mapping[str, Any],
        schema: SchemaMessage,
        policy: BatchPolicy,
        loader: Loader,
        queue: SchemaQueue,
        committer: Committer | None = None,
        *,
        plan_only: bool = False,
    ) -> None:
        self.loader = loader
        self.queue = queue  # the target's: schema changes waiting for their table's next load
        self.committer = committer  # the target's, when its loader loads in the background
        self.plan_only = plan_only  # --schema-plan: plan each schema, change nothing
        self.stamp_load_times = not loader.stamps_load_times
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
            if self.loader.loads_one_range():
                self._check_range_method(self.plan)
            self._evolve(self.plan)
            if self.loader.loads_one_range():
                self._flush(self.plan.table)  # before the range's transaction opens: see SqlLoader.apply_schema
            self._set_encoder(self.plan)

    def _check_range_method(self, plan: StreamPlan) -> None:
        if plan.method == OVERWRITE:
            raise ConfigError(
                f"stream {self.stream!r}: load_method overwrite replaces the whole table, so it cannot load one "
                "key range of it; use append-only or upsert for a partitioned load"
            )

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
        self._flush(self.shadow or plan.table, loader)
        schema = self.schema_plan(loader)
        schema.check()
        plan.columns = schema.load_columns
        plan.table_columns = schema.table_columns
        plan.renames = schema.renames or None
        for change in schema.changes:
            log.info("stream %s: schema plan for %s: %s", self.stream, schema.table, change.describe())
        # A full refresh builds a fresh shadow from the planned columns; only a live shadow is altered.
        if plan.method != OVERWRITE or self.shadow is not None:
            self.queue.put(schema.table, loader.schema_statements(plan, schema, schema.table))

    def _flush(self, table: str, loader: Loader | None = None) -> None:
        """Run the changes queued for `table` now, on their own."""
        statements = self.queue.take(table)
        if statements:
            (loader or self.loader).apply_schema(table, statements)

    # -- batches held by the loader's encoder ---------------------------------------------------
    def add_record(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int
    ) -> bool:
        encoder = self.encoder
        if encoder is None:
            if self.carry_lines:
                record[LINE_KEY] = line
            return super().add_record(record, version, time_extracted, size, line)
        self.check_keys(record, line)
        try:
            return encoder.add(record, version, time_extracted, size)
        except ValueError as exc:
            raise DataError(f"line {line}, stream {self.stream!r}: {exc}") from None

    def add_raw_record(self, line: bytes) -> bool:
        return self.encoder is not None and self.encoder.feed_record(line)

    def load_files(self, manifest: BatchManifest, stores: ObjectStores, where: str) -> bool:
        plan = self.plan
        if self.plan_only or plan is None or not self.loader.accepts_files(plan, manifest):
            return False
        self.drain()  # the rows before this BATCH commit first
        self._settle()
        scan = self.loader.file_scan(plan, manifest)
        for file in manifest.files:
            if is_remote(file.uri):
                verify_remote(file, stores, where, scan.feed if scan is not None else None)
            else:
                with fetch(file, stores, where=where) as path, path.open("rb") as fh:
                    while scan is not None and (chunk := fh.read(1 << 20)):
                        scan.feed(chunk)
            if scan is not None:
                scan.next_file()
        refused = scan.refuses() if scan is not None else None
        if refused:
            log.info("stream %s: BATCH files read by the target: %s", self.stream, refused)
            return False
        if plan.method == OVERWRITE and self.shadow is None:
            self.shadow = self.loader.begin_replace(plan)
        self._submitted += 1
        self.loader.note_versions(self.shadow or plan.table, None)
        try:
            self._write_with_retries(plan, manifest, self.shadow or plan.table, self.loader, no_wait)
        except _NotFromFiles:
            self._submitted -= 1
            return False
        self._committed = self._submitted
        log.info(
            "stream %s: %d rows loaded from %d BATCH files in place", self.stream, manifest.rows, len(manifest.files)
        )
        return True

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
            rows, duplicates, keys = encoder.rows, bool(encoder.duplicates), encoder.take_keys()
            floor = encoder.version_floor()
            self.write_batch(EncodedRows(encoder.take(), rows, duplicates, keys, floor))

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

    @final
    def _submit(self, plan: StreamPlan, records: list[dict[str, Any]] | EncodedRows) -> None:
        if plan.method == OVERWRITE and self.shadow is None:
            self._settle()  # the loader's connection is ours alone only when nothing is in flight
            self.shadow = self.loader.begin_replace(plan)
        table = self.shadow or plan.table
        self.loader.note_versions(table, records.floor if isinstance(records, EncodedRows) else None)
        if self.committer is not None:
            self.committer.make_room()  # what is in flight now is what this batch will load beside
            ahead = self.committer.claim(table, self._claim(plan, table, records))
            self.committer.submit(
                lambda lane, turn: self._write_with_retries(plan, records, table, self.loader.lane(lane), turn, ahead)
            )
        else:
            self._submitted += 1
            self._write_with_retries(plan, records, table, self.loader, no_wait)
            self._committed = self._submitted

    def _claim(
        self, plan: StreamPlan, table: str, records: list[dict[str, Any]] | EncodedRows
    ) -> AbstractSet[bytes] | None:
        """The keys this batch writes into `table` (none that can meet another batch's, for an append:
        the table has no key), or None when they are not known or the batch carries schema changes."""
        if self.queue.pending(table):
            return None
        if not plan.merges:
            return frozenset()
        return records.keys if isinstance(records, EncodedRows) else None

    @final
    def _write_with_retries(
        self,
        plan: StreamPlan,
        records: list[dict[str, Any]] | EncodedRows | BatchManifest,
        table: str,
        loader: Loader,
        turn: Turn,
        ahead: bool = False,
    ) -> None:
        # A key range is one transaction: a reconnect would lose its earlier batches, so the whole
        # range is retried (by the runner) instead of the batch.
        attempts = 1 if loader.loads_one_range() else max(1, int(self.config.get("max_retries", 3)) + 1)
        for attempt in range(1, attempts + 1):
            try:
                if attempt > 1:
                    # Inside the try: a failed reconnect is one more transient error to retry.
                    loader.reconnect()
                    self._evolve(plan, loader)  # the failed transaction took the queued schema changes with it
                # A retry re-plans the table's schema (above): it loads in its turn, never ahead.
                self._load(plan, records, table, loader, turn, ahead and attempt == 1)
                return
            except Exception as exc:
                if isinstance(exc, _NotFromFiles) or attempt == attempts or not loader.is_transient(exc):
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

    @final
    def _load(
        self,
        plan: StreamPlan,
        records: list[dict[str, Any]] | EncodedRows | BatchManifest,
        table: str,
        loader: Loader,
        turn: Turn,
        ahead: bool,
    ) -> None:
        taken: list[str] | None = None

        def schema() -> list[str]:
            # Taken in turn (after the batch before has committed), as finalize takes it.
            nonlocal taken
            taken = self.queue.take(table)
            return taken

        if isinstance(records, EncodedRows) and loader.load_direct(plan, table, records, schema, turn, ahead):
            return
        staging = loader.prepare_staging(plan)
        try:
            if isinstance(records, BatchManifest):
                if not loader.bulk_load_files(plan, staging, records):
                    raise _NotFromFiles
            elif isinstance(records, EncodedRows):
                loader.bulk_load_encoded(plan, staging, records)
            else:
                loader.bulk_load(plan, staging, records)
            turn()  # the batch before this one commits first
            # A direct load that gave up rolled back the changes it took: they run here.
            loader.finalize(plan, staging, table, taken if taken is not None else self.queue.take(table))
        finally:
            loader.cleanup(plan, staging)

    @final
    def commit_mark(self) -> int:
        return self.committer.submitted if self.committer is not None else self._submitted

    @final
    def is_committed(self, mark: int) -> bool:
        if self.shadow is not None or self.loader.range_pending():
            return False  # a full refresh is visible only once swapped in, a key range once committed
        if self.committer is None:
            return self._committed >= mark  # a batch that failed never counts
        return self.committer.has_committed(mark)

    @final
    def settle(self) -> None:
        self._settle()

    @final
    def finish(self) -> None:
        self._settle()
        if self.plan is None:
            return
        if self.plan.method != OVERWRITE:
            self._flush(self.plan.table)  # a stream without rows still gets its table
            return
        if self.shadow is None and not self.refreshed:
            # A full refresh that sent no rows and no ACTIVATE_VERSION: the source is empty.
            self.shadow = self.loader.begin_replace(self.plan)
        self._swap_shadow()

    @final
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
            self._flush(self.shadow)
            loader.merge_shadow(plan, self.shadow, self._live_schema(plan))
        else:
            loader.swap(plan, self.shadow, self.queue.take(self.shadow))
        self.shadow = None
        self.refreshed = True

    def _live_schema(self, plan: StreamPlan) -> list[str]:
        """The live table's changes for the current schema (the shadow had them; the table may not)."""
        self._flush(plan.table)  # what another stream queued for the table runs first
        schema = plan_schema(
            self.stream,
            plan.table,
            self.columns,
            self.key_properties,
            self.loader.describe_table(plan.table),
            self.loader.dialect,
            plan.evolution,
        )
        schema.check()
        return self.loader.schema_statements(plan, schema, plan.table)

    @final
    def activate_version(self, version: int) -> None:
        self._settle()
        assert self.plan is not None
        if self.loader.loads_one_range():
            raise ConfigError(
                f"stream {self.stream!r}: ACTIVATE_VERSION in a key-range load would remove the other ranges' rows; "
                "a tap reading a dpone-range sends none"
            )
        if self.plan.method == OVERWRITE:
            self._activate_refresh(version)
            return
        if TABLE_VERSION not in self.plan.columns:
            # Without the version column no row says which version it belongs to: nothing to retire.
            log.warning("stream %s: ACTIVATE_VERSION ignored: add_record_metadata is off", self.stream)
            return
        self._flush(self.plan.table)
        self.loader.activate_version(self.plan, version)

    @final
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
