"""A sink: one stream's records on their way to the destination.

The framework calls :meth:`Sink.add` per record and :meth:`Sink.drain` when the batch
must be committed; a connector implements :meth:`Sink.write_batch` (and, for databases,
uses :class:`dpone.targets.framework.loader_sink.LoaderSink`).
"""

from __future__ import annotations

import datetime as dt
import time
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any

from dpone.targets.framework.batching import Batch, BatchPolicy
from dpone_protocol.batch_manifest import BatchManifest
from dpone_protocol.errors import DataError
from dpone_protocol.json_schema import ColumnType, Logical, stream_columns
from dpone_protocol.messages import RecordMessage, SchemaMessage
from dpone_protocol.object_store import ObjectStores

METADATA_PROPERTIES: dict[str, dict[str, Any]] = {
    "_sdc_extracted_at": {"type": ["null", "string"], "format": "date-time"},
    "_sdc_received_at": {"type": ["null", "string"], "format": "date-time"},
    "_sdc_batched_at": {"type": ["null", "string"], "format": "date-time"},
    "_sdc_deleted_at": {"type": ["null", "string"], "format": "date-time"},
    "_sdc_table_version": {"type": ["null", "integer"]},
}


def _json_types(prop: dict[str, Any]) -> set[str]:
    declared = prop.get("type", [])
    types = {declared} if isinstance(declared, str) else set(declared)
    for alt in prop.get("anyOf") or prop.get("oneOf") or []:
        types |= _json_types(alt)
    return types


# A float prints back every digit of a number with at most 15 significant digits.
FLOAT_EXACT_DIGITS = 15


def _needs_exact_decoding(column: ColumnType, prop: dict[str, Any], exact_json: bool) -> bool:
    """JSON numbers (not singer.decimal strings) bound for a decimal column wider than a float holds,
    or for a JSON column (whose numbers are stored as they came) when `exact_json` is on."""
    if column.logical in (Logical.OBJECT, Logical.ARRAY, Logical.JSON):
        return exact_json
    if column.logical is Logical.NUMBER:
        return column.bits is None  # no float format declared: the digits are the value (DESIGN rule 7)
    if column.logical is not Logical.DECIMAL or "string" in _json_types(prop):
        return False
    return column.precision is None or column.precision > FLOAT_EXACT_DIGITS


def _now_iso() -> str:
    return dt.datetime.now(dt.UTC).isoformat()


class _Clock:
    """An ISO timestamp refreshed at most every 100 ms: formatting one per row is costly."""

    __slots__ = ("_at", "_text")

    def __init__(self) -> None:
        self._at = 0.0
        self._text = ""

    def now(self) -> str:
        t = time.monotonic()
        if t - self._at > 0.1:
            self._at = t
            self._text = _now_iso()
        return self._text


class Sink(ABC):
    # False when the destination fills _sdc_received_at/_sdc_batched_at itself (cheaper than per row here).
    stamp_load_times = True

    def __init__(self, config: Mapping[str, Any], schema: SchemaMessage, policy: BatchPolicy) -> None:
        self.config = config
        self.stream = schema.stream
        self.policy = policy
        self.add_metadata = bool(config.get("add_record_metadata", True))
        self.batch = Batch()
        self.version: int | None = None
        self._clock = _Clock()
        self.schema: dict[str, Any] = {}
        self.key_properties: list[str] = []
        self.columns: dict[str, ColumnType] = {}
        self.exact_numbers = False  # decode this stream's records without float rounding
        self.set_schema(schema)

    # -- schema -----------------------------------------------------------------
    def set_schema(self, message: SchemaMessage) -> None:
        schema = message.schema
        columns = stream_columns(schema, self.stream)
        missing = [k for k in message.key_properties if k not in columns]
        if missing:
            raise DataError(f"stream {self.stream!r}: key properties {missing} are not in the schema")
        if self.add_metadata:
            properties = {**schema.get("properties", {}), **METADATA_PROPERTIES}
            schema = {**schema, "properties": properties}
            columns = stream_columns(schema, self.stream)
        self.schema = schema
        self.key_properties = list(message.key_properties)
        self.columns = columns
        exact_json = bool(self.config.get("exact_json_numbers", True))
        self.exact_numbers = any(
            _needs_exact_decoding(col, schema["properties"][name], exact_json) for name, col in columns.items()
        )
        self.on_schema()

    def schema_differs(self, message: SchemaMessage) -> bool:
        props = dict(message.schema.get("properties", {}))
        if self.add_metadata:
            props.update(METADATA_PROPERTIES)
        return props != self.schema.get("properties") or message.key_properties != self.key_properties

    # -- records -----------------------------------------------------------------
    def add(self, message: RecordMessage, size: int, line: int) -> bool:
        return self.add_record(message.record, message.version, message.time_extracted, size, line)

    def add_record(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int
    ) -> bool:
        """Add a record to the batch; True when the batch is full."""
        self.check_keys(record, line)
        if self.add_metadata:
            self.stamp(record, version, time_extracted)
        if version is not None:
            self.version = version
        batch = self.batch  # Batch.is_full, inlined with the append: this runs once per record
        records = batch.records
        if not records:
            batch.first_at = time.monotonic()
        records.append(record)
        batch.size_bytes += size
        policy = self.policy
        return len(records) >= policy.max_rows or batch.size_bytes >= policy.max_bytes

    def stamp(self, record: dict[str, Any], version: int | None, time_extracted: str | None) -> None:
        """The _sdc_* metadata fields a record gets with add_record_metadata."""
        record["_sdc_extracted_at"] = time_extracted
        if self.stamp_load_times:
            record["_sdc_received_at"] = self._clock.now()
        record.setdefault("_sdc_deleted_at", None)
        record["_sdc_table_version"] = version

    def check_keys(self, record: dict[str, Any], line: int) -> None:
        for key in self.key_properties:
            if record.get(key) is None:
                raise DataError(f"line {line}, stream {self.stream!r}: record has no value for key property {key!r}")

    def is_full(self) -> bool:
        return self.batch.is_full(self.policy)

    def add_raw_record(self, line: bytes) -> bool:
        """A BATCH file's record line, taken without decoding (True), or left to be decoded."""
        return False

    def load_files(self, manifest: BatchManifest, stores: ObjectStores, where: str) -> bool:
        """A BATCH's files loaded by the destination itself, without their rows passing through here
        (True), or left to be read and added as records (False, the default)."""
        return False

    def has_rows(self) -> bool:
        """True while records received are only in memory."""
        return bool(self.batch.records)

    def batch_age(self) -> float:
        return self.batch.age()

    def drain(self) -> None:
        """Commit the current batch; afterwards nothing received so far is only in memory."""
        records = self.batch.records
        if not records:
            return
        if self.add_metadata and self.stamp_load_times:
            batched_at = _now_iso()
            for record in records:
                record["_sdc_batched_at"] = batched_at
        self.write_batch(records)
        self.batch = Batch()

    # -- hooks -------------------------------------------------------------------
    def on_schema(self) -> None:
        """The schema was set or changed (after a drain): create or evolve the destination."""

    @abstractmethod
    def write_batch(self, records: list[dict[str, Any]]) -> None:
        """Commit these records in the destination, all or nothing."""

    def pending_commit(self) -> bool:
        """True while loaded data is not yet visible (e.g. a full refresh awaiting its swap)."""
        return False

    def commit_mark(self) -> int:
        """A token for "every batch handed over so far"; see is_committed."""
        return 0

    def is_committed(self, mark: int) -> bool:
        """True once the batches handed over up to `mark` are committed and visible."""
        return not self.pending_commit()

    def settle(self) -> None:
        """Wait for work in flight (a background commit), raising its error."""

    def activate_version(self, version: int) -> None:
        """ACTIVATE_VERSION: rows of older versions are now obsolete."""

    def finish(self) -> None:
        """End of input: complete what the stream started (e.g. swap a full refresh)."""

    def close(self) -> None:
        """Release resources; called once, after success or failure."""
