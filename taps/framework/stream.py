"""A tap stream: what a connector fills in (schema and records), nothing about the loop."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from dpone.state.records import Bookmark, RawBookmark
from dpone_protocol.batch_files import JsonlBatchWriter
from dpone_protocol.batch_manifest import RETAIN, BatchFile, BatchLayout
from dpone_protocol.key_ranges import KeyRange
from dpone_protocol.messages import ActivateVersionMessage, BatchEncoding, SchemaMessage
from dpone_protocol.object_store import ObjectStores
from dpone_protocol.wire import record_tail


@dataclass(frozen=True, slots=True)
class BatchSpec:
    """Where and how BATCH files go (the tap's batch_config), for a stream that writes them itself."""

    layout: BatchLayout
    prefix: str
    stream: str
    max_rows: int
    compression: str
    stores: ObjectStores = field(default_factory=ObjectStores)
    cleanup: str = RETAIN

    def writer(self, part: str = "") -> JsonlBatchWriter:
        """A writer of this stream's files; `part` tells apart files written at the same time."""
        layout = self.layout
        return JsonlBatchWriter(
            layout.directory,
            f"{self.prefix}{part}",
            self.stream,
            self.max_rows,
            self.compression,
            self.stores,
            layout.spool,
        )


@dataclass(slots=True)
class WrittenBatch:
    """Batch files a stream wrote and closed itself: the tap announces them, then checkpoints."""

    files: list[BatchFile]
    rows: int
    encoding: BatchEncoding


@dataclass(slots=True)
class ReadContext:
    """What a stream needs to know to read: where to start and which columns."""

    config: Mapping[str, Any]
    selected: list[str]
    replication_method: str
    replication_key: str | None = None
    start_value: Any = None  # last committed replication-key value (read rows >= it)
    # The stream's committed bookmark, as its replication method's record (dpone.state.records).
    bookmark: Bookmark = field(default_factory=lambda: RawBookmark("", {}))
    version: int | None = None  # set by a stream: RECORDs carry it (for ACTIVATE_VERSION)
    # Set in BATCH mode when rows need no per-row work by the tap (no stream map projects them):
    # a stream may then write the files itself and yield WrittenBatch.
    batch: BatchSpec | None = None
    # Set with `batch`: the loop's own file writer. Rows a stream writes into it are announced at the
    # loop's next checkpoint (the file full, the end of the read); a file the stream closes itself
    # goes out as a WrittenBatch.
    batch_writer: JsonlBatchWriter | None = None
    # Set when RECORD lines go out as the tap writes them (no BATCH files, no stream map, no
    # projection): the bytes before and after a record's JSON object on its line, through the newline
    # (`record_head(name)`, `record_tail(time_extracted, version)`). A stream may then yield
    # EncodedLines made with them. Set again when the stream changes `version`.
    envelope: tuple[bytes, bytes] | None = None
    # Set when the catalog asks for one key range of the stream (a partitioned load): only its rows,
    # no bookmark and no ACTIVATE_VERSION (dpone_protocol/key_ranges.py).
    key_range: KeyRange | None = None
    time_extracted: str | None = None  # in every RECORD's envelope

    def set_version(self, version: int | None) -> None:
        """The table version the stream's next RECORDs carry (and the envelope's tail with it)."""
        self.version = version
        if self.envelope is not None:
            self.envelope = (self.envelope[0], record_tail(self.time_extracted, version))


@dataclass(slots=True)
class EncodedRecord:
    """A record already serialized as a JSON object (e.g. by the database): written as is."""

    json: bytes


@dataclass(slots=True)
class EncodedLines:
    """`count` whole RECORD lines, each `head + json + tail` of `ReadContext.envelope`: written as they
    are. Only while the envelope is set; the stream's position() covers them all once it yields them."""

    data: bytes
    count: int


class Stream:
    """Subclass and fill in `name`, `schema`, and :meth:`records`.

    Set `is_sorted = True` when records come in ascending replication-key order; then the
    bookmark advances mid-stream. Unsorted streams only advance it at stream end.
    """

    name: str = ""
    schema: dict[str, Any] = {}
    key_properties: ClassVar[list[str]] = []
    replication_key: str | None = None  # suggested in discovery
    valid_replication_keys: ClassVar[list[str]] = []
    is_sorted: bool = False
    # Records hold the selected properties only (the stream reads no others): the loop need not project.
    reads_selected: bool = False

    def records(
        self, ctx: ReadContext
    ) -> Iterator[
        dict[str, Any] | EncodedRecord | EncodedLines | ActivateVersionMessage | WrittenBatch | SchemaMessage
    ]:
        """Rows as dicts or pre-encoded JSON (a record, or whole lines); an ActivateVersionMessage starts
        (or completes) a version: RECORDs that follow carry it. While `ctx.envelope` is set, a
        SchemaMessage replaces the stream's schema for the records after it (fields found mid-read)."""
        raise NotImplementedError

    def discovery_metadata(self) -> dict[str, Any]:
        """Extra stream-level catalog metadata (e.g. row-count, is-view)."""
        return {}

    def stream_schema(self, method: str, schema: dict[str, Any]) -> dict[str, Any]:
        """The SCHEMA sent for this run (e.g. CDC adds _sdc_deleted_at); `schema` is the selected one."""
        return schema

    def position(self, final: bool) -> Bookmark | None:
        """The stream's whole bookmark for the next STATE, when the stream tracks its own position
        (resume keys, LSNs...): usually `ctx.bookmark` with its fields moved on (a None field is left
        out). None lets the framework bookmark the replication key. Called at each checkpoint and at the end.
        """
        return None

    def bookmark_key(self, value: Any) -> Any:
        """How replication-key values compare (e.g. parse date-times); the value itself is kept."""
        return value
