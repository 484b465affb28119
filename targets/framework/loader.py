"""The staging-first loader contract every database target implements (loader_sink.py drives it).

When a stream's SCHEMA arrives, the schema-evolution planner compares it with the table and
the changes it allows are queued (SchemaQueue); the next load of the table receives them and
runs them in its own transaction.
Per batch: prepare staging -> bulk load -> finalize (schema changes, then append or merge, one
transaction) -> clean up. A full refresh (load_method `overwrite`) finalizes into a shadow table and swaps
it into place when the stream completes, so readers never see a half-loaded table.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.capabilities import APPEND, OVERWRITE, UPSERT
from dpone.targets.framework.committer import Turn
from dpone.targets.framework.encoded_rows import EncodedRows, LineRouter, RowEncoder
from dpone.targets.framework.schema_evolution import (
    SCHEMA_EVOLUTION_SETTING,
    DestinationColumn,
    Dialect,
    Evolution,
    SchemaPlan,
)
from dpone_protocol.batch_manifest import BatchManifest
from dpone_protocol.errors import ConfigError, TransientError
from dpone_protocol.json_schema import ColumnType
from dpone_protocol.settings import Setting


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

    @property
    def key_columns(self) -> list[str]:
        """The key properties as the table's columns (a name the destination shortens is stored so)."""
        renames = self.renames or {}
        return [renames.get(k, k) for k in self.key_properties]


class FileScan(Protocol):
    """Looks at a BATCH file's bytes as they are checked (see Loader.file_scan)."""

    def feed(self, chunk: bytes) -> None:
        """The next bytes of the current file, as stored (compressed or not)."""

    def next_file(self) -> None:
        """The current file ended; the next chunks are another file's."""

    def refuses(self) -> str | None:
        """Why the files must be read by the target instead of loaded in place, or None."""


class Loader(ABC):
    """Destination-specific steps. Each method is one database round of work.

    The framework owns the order of the steps, the retries, the schema-change queue and the
    background committer (loader_sink.py, loader_target.py); a loader only does what it is handed.
    A SQL database gets most of this written once by :class:`~dpone.targets.framework.sql_loader.SqlLoader`.
    """

    dialect: Dialect
    # True when staging fills _sdc_received_at and _sdc_batched_at with the load time itself.
    stamps_load_times: bool = False
    # True when a batch may load in a background thread while the next one is decoded. The sink
    # waits for it before any other use of the loader, so the connection is never used by two threads.
    background_commit: bool = False
    # Connections that load batches side by side (see committer.py); lane(0) is the loader itself.
    lanes: int = 1

    def loads_one_range(self) -> bool:
        """True when the whole input is one key range, committed at its end (dpone_protocol/key_ranges.py)."""
        return False

    def range_pending(self) -> bool:
        """True while a key range's rows are loaded but not committed."""
        return False

    @abstractmethod
    def describe_table(self, table: str) -> dict[str, DestinationColumn] | None:
        """The table's columns, or None when it does not exist."""

    @abstractmethod
    def schema_statements(self, plan: StreamPlan, schema: SchemaPlan, table: str) -> list[str]:
        """The DDL that applies a schema plan to `table` (created with the plan's columns if missing)."""

    @abstractmethod
    def apply_schema(self, table: str, statements: list[str]) -> None:
        """Run schema changes of `table` on their own (a stream with no rows still gets its table)."""

    @abstractmethod
    def prepare_staging(self, plan: StreamPlan) -> str:
        """Create an empty staging table for one batch; return its name."""

    @abstractmethod
    def bulk_load(self, plan: StreamPlan, staging: str, records: list[dict[str, Any]]) -> None:
        """Load records into staging with the destination's fast path."""

    def bulk_load_encoded(self, plan: StreamPlan, staging: str, rows: EncodedRows) -> None:
        """Load a batch taken from this loader's row encoder (already in the bulk format) into staging."""
        raise NotImplementedError(f"{type(self).__name__} gives no row encoder")

    def load_direct(
        self,
        plan: StreamPlan,
        table: str,
        rows: EncodedRows,
        schema: Callable[[], list[str]],
        turn: Turn,
        ahead: bool = False,
    ) -> bool:
        """Load an encoded batch straight into `table` in one transaction with the table's queued schema
        changes (`schema()`, called after `turn()`), when the loader can tell staging would add nothing
        (e.g. a table this run created). False takes the staging path; whatever was done is rolled back.

        ahead: the batch may be loaded before the batches still in flight commit, and only its commit
        waits for `turn()`: none of them or it carries schema changes, and its keys (RowEncoder.take_keys)
        are disjoint from theirs."""
        return False

    def row_encoder(self, plan: StreamPlan, policy: BatchPolicy, *, metadata: bool) -> RowEncoder | None:
        """An encoder that keeps this stream's batches in the bulk format, or None for decoded records."""
        return None

    def line_router(self) -> LineRouter | None:
        """The router that feeds RECORD lines to the streams' encoders, when row_encoder gives any."""
        return None

    def accepts_files(self, plan: StreamPlan, manifest: BatchManifest) -> bool:
        """True when this loader can bulk-load the BATCH files themselves into staging (e.g. a
        warehouse reading gs:// files in place), so their rows need not pass through the target."""
        return False

    def file_scan(self, plan: StreamPlan, manifest: BatchManifest) -> FileScan | None:
        """Something that looks at the files' bytes while they are checked (they pass through the
        target for their SHA-256 anyway), to turn down values the loader's in-place load would not
        read exactly; None to look at nothing."""
        return None

    def bulk_load_files(self, plan: StreamPlan, staging: str, manifest: BatchManifest) -> bool:
        """Load the files (already checked against their manifest) into staging. False when the batch
        cannot be finalized from them as they are (e.g. a merge whose files repeat a key, where only the
        order of the rows says which one wins): the framework then reads the files itself."""
        raise NotImplementedError(f"{type(self).__name__} accepts no files")

    @abstractmethod
    def finalize(self, plan: StreamPlan, staging: str, table: str, schema: list[str]) -> None:
        """Apply the queued schema changes `schema`, then append or merge staging into `table` (and
        apply CDC deletes): in one transaction, or as the loader documents where it has none."""

    @abstractmethod
    def cleanup(self, plan: StreamPlan, staging: str) -> None:
        """Drop staging (or keep it, when configured to)."""

    @abstractmethod
    def begin_replace(self, plan: StreamPlan) -> str:
        """Create an empty shadow of the table for a full refresh; return its name."""

    @abstractmethod
    def swap(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        """Apply the shadow's queued schema changes and atomically put it in place of the table."""

    @abstractmethod
    def activate_version(self, plan: StreamPlan, version: int) -> None:
        """Delete (hard) or mark deleted (soft) rows whose _sdc_table_version is older."""

    def note_versions(self, table: str, floor: int | None) -> None:
        """A batch is about to load into `table`: `floor` is the lowest _sdc_table_version among its rows
        (None when one has none, or it is not known). A loader may then tell an ACTIVATE_VERSION that
        nothing in a table this run created is older."""

    def table_version(self, table: str) -> int | None:
        """The newest _sdc_table_version in `table`; None without one (no such table or column).
        A loader that answers None never sees a refresh resumed (every refresh then swaps)."""
        return None

    def merge_shadow(self, plan: StreamPlan, shadow: str, schema: list[str]) -> None:
        """Merge a shadow's rows into the live table, as a batch from staging, and drop the shadow:
        for a refresh whose version is live already (a resumed one re-sends only its tail)."""
        raise NotImplementedError(f"{type(self).__name__} answers table_version, so it must merge shadows")

    def write_probe(self, plan: StreamPlan, records: list[dict[str, Any]]) -> None:
        """`check`: load records into staging the way a batch would, and keep nothing."""
        staging = self.prepare_staging(plan)
        try:
            self.bulk_load(plan, staging, records)
        finally:
            self.cleanup(plan, staging)

    def close(self) -> None:
        """Release the connection."""

    def is_transient(self, exc: Exception) -> bool:
        """True when retrying the whole batch may succeed (dropped connection, deadlock...): a
        :class:`TransientError`, which is what a loader raises for those."""
        return isinstance(exc, TransientError)

    def reconnect(self) -> None:
        """Called before a retry: start from a fresh connection."""

    def lane(self, index: int) -> Loader:
        """The loader of lane `index`: its own connection, sharing this loader's caches."""
        if index != 0:
            raise ValueError(f"{type(self).__name__} has one lane")
        return self


class SchemaQueue:
    """Schema changes planned for a table, held until its next load runs them in its transaction.
    One per target, shared by every lane: a change queued by one stream is run by whichever
    load of that table comes first."""

    def __init__(self) -> None:
        self._pending: dict[str, list[str]] = {}

    def put(self, table: str, statements: list[str]) -> None:
        if statements:
            self._pending[table] = statements
        else:
            self._pending.pop(table, None)

    def take(self, table: str) -> list[str]:
        """The queued changes of `table`, now owned by the caller's transaction."""
        return self._pending.pop(table, [])

    def pending(self, table: str) -> bool:
        return table in self._pending


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
        "Keep the staging tables (_dpone_stage_<table>..., named per target: see its docs) to inspect.",
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
