"""The tap loop: discovery, catalog selection, records, bookmarks and STATE cadence.

A connector subclasses :class:`Tap`, declares its settings, and returns its streams from
:meth:`Tap.discover_streams`. Everything else here is final.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import time
from collections.abc import Iterable, Iterator, Mapping
from typing import Any, ClassVar

import orjson

from dpone.taps.framework.bookmarks import BookmarkTracker, committed_position, start_value, with_bookmark
from dpone.taps.framework.stream import BatchSpec, EncodedLines, EncodedRecord, ReadContext, Stream, WrittenBatch
from dpone.taps.framework.stream_maps import StreamMap, StreamMaps, check_unique_names
from dpone_protocol.batch_manifest import CLEANUP_POLICIES, RETAIN, BatchFile, BatchLayout, BatchManifest
from dpone_protocol.catalog import INCREMENTAL, Catalog, CatalogEntry, standard_metadata
from dpone_protocol.codec import MessageWriter
from dpone_protocol.errors import ConfigError, DponeError
from dpone_protocol.key_ranges import stream_range
from dpone_protocol.messages import BatchEncoding, BatchMessage, RecordMessage, SchemaMessage, StateMessage
from dpone_protocol.object_store import ObjectStores, is_remote, local_path
from dpone_protocol.ops import Operable
from dpone_protocol.settings import Setting
from dpone_protocol.wire import record_head, record_tail

log = logging.getLogger(__name__)

# Settings every tap accepts, on top of its own.
COMMON_SETTINGS: tuple[Setting, ...] = (
    Setting("state_every_rows", "integer", "Emit STATE after this many records (sorted streams).", default=10_000),
    Setting("state_every_seconds", "number", "Emit STATE at least this often (sorted streams).", default=60),
    Setting("start_date", "string", "Lower bound for the replication key on a first run."),
    Setting(
        "batch_config",
        "object",
        "Write BATCH messages (gzip JSONL files + manifest) instead of RECORDs, under "
        "<root>/<pipeline>/<run id>/ in a local folder, S3, GCS or Azure (docs/object-storage.md): "
        '{"encoding": {"format": "jsonl", "compression": "gzip"}, '
        '"storage": {"root": "s3://bucket/dpone", "prefix": "", "cleanup": "delete_on_success", "options": {}}, '
        '"batch_size": 100000}',
    ),
    Setting(
        "stream_maps",
        "object",
        "Rename streams (__alias__), drop properties (null), keep only listed ones (__else__: null), "
        "override keys (__key_properties__): the Meltano SDK's stream maps without expressions.",
    ),
    Setting("stream_map_config", "object", "Accepted for Meltano SDK compatibility; no expression reads it."),
)


class Tap(Operable):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings: ClassVar[tuple[Setting, ...]] = ()
    capabilities: ClassVar[tuple[str, ...]] = ("catalog", "discover", "state", "about", "batch", "stream-maps")
    replication_methods: ClassVar[tuple[str, ...]] = ("FULL_TABLE", INCREMENTAL)  # what a catalog may ask for

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.input_state: dict[str, Any] = {}  # the committed state this run started from
        self._batch_layout: BatchLayout | None = None
        self._batch_stores: ObjectStores | None = None

    # -- hooks ------------------------------------------------------------------
    def discover_streams(self) -> list[Stream]:
        raise NotImplementedError

    def check(self) -> None:
        """Prove the source answers with this config (Airbyte `check`); raise a DponeError if not.

        The default runs discovery: it connects, and finds the tables or files. Override it for a
        cheaper or a truer probe.
        """
        self.discover_streams()

    # -- final -------------------------------------------------------------------
    @classmethod
    def all_settings(cls) -> tuple[Setting, ...]:
        own = {s.name for s in cls.settings}
        return cls.settings + tuple(s for s in COMMON_SETTINGS if s.name not in own)

    def batch_layout(self, storage: Mapping[str, Any]) -> BatchLayout:
        """Where this run's BATCH files go: one pipeline and run folder for all its streams."""
        if self._batch_layout is None:
            self._batch_layout = BatchLayout.from_config(storage, self.name or type(self).__name__)
        return self._batch_layout

    def batch_stores(self, options: Mapping[str, Any]) -> ObjectStores:
        if self._batch_stores is None:
            self._batch_stores = ObjectStores(options)
        return self._batch_stores

    def discover(self) -> Catalog:
        entries = []
        for stream in self.discover_streams():
            metadata = standard_metadata(
                stream.schema,
                stream.key_properties,
                stream.replication_key,
                stream.valid_replication_keys or ([stream.replication_key] if stream.replication_key else []),
            )
            metadata[()].update(stream.discovery_metadata())
            entries.append(
                CatalogEntry(
                    tap_stream_id=stream.name,
                    stream=stream.name,
                    schema=stream.schema,
                    key_properties=list(stream.key_properties),
                    replication_key=stream.replication_key,
                    replication_method=metadata[()].get("replication-method")
                    or (INCREMENTAL if stream.replication_key else "FULL_TABLE"),
                    metadata=metadata,
                )
            )
        return Catalog(entries)

    def sync(
        self, writer: MessageWriter, catalog: Catalog | None = None, state: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Emit every selected stream; returns the final state."""
        self.input_state = dict(state or {})
        streams = {s.name: s for s in self.discover_streams()}
        catalog = catalog or self.discover()
        state = dict(state or {})
        selected = catalog.selected()
        if not selected:
            log.warning("no stream is selected in the catalog; nothing to do")
        maps = StreamMaps.from_config(self.config)
        plan: list[tuple[Stream, CatalogEntry, StreamMap]] = []
        for entry in selected:
            stream = streams.get(entry.tap_stream_id)
            if stream is None:
                raise ConfigError(
                    f"catalog selects stream {entry.tap_stream_id!r}, which the source does not have "
                    f"(available: {', '.join(sorted(streams)) or 'none'}); re-run discovery"
                )
            # Every map and bookmark is checked before the first message, so a bad one leaves no partial output.
            committed_position(state, stream.name, entry.effective_replication_method())
            schema = stream.stream_schema(entry.effective_replication_method(), entry.selected_schema())
            plan.append((stream, entry, maps.bind(stream.name, schema, entry.effective_key_properties())))
        check_unique_names(m for _, _, m in plan)
        ran = False
        for stream, entry, stream_map in plan:
            if stream_map.removed:
                log.info("stream %s: removed by stream_maps", stream.name)
                continue
            state = _StreamSync(self, stream, entry, state, writer, stream_map).run()
            ran = True
        if not ran:
            writer.write(StateMessage(state))
        writer.flush()
        return state


class _StreamSync:
    """One stream's pass: SCHEMA, then RECORDs (or BATCHes) with STATE checkpoints."""

    def __init__(
        self,
        tap: Tap,
        stream: Stream,
        entry: CatalogEntry,
        state: dict[str, Any],
        writer: MessageWriter,
        stream_map: StreamMap | None = None,
    ) -> None:
        self.tap = tap
        self.stream = stream
        self.map = stream_map
        self.entry = entry
        self.state = state
        self.writer = writer
        self.out = writer.stream
        config = tap.config
        self.every_rows = int(config.get("state_every_rows") or 10_000)
        self.every_seconds = float(config.get("state_every_seconds") or 60)
        self.batch_spec = self._batch_spec(config.get("batch_config"))
        self.batch = self.batch_spec.writer() if self.batch_spec is not None else None

    def _batch_spec(self, batch_config: Any) -> BatchSpec | None:
        if not batch_config:
            return None
        encoding = batch_config.get("encoding") or {}
        if encoding.get("format", "jsonl") != "jsonl":
            raise ConfigError("batch_config.encoding.format: taps write 'jsonl' batch files (gzip or plain)")
        compression = encoding.get("compression", "gzip")
        storage = batch_config.get("storage") or {}
        cleanup = str(storage.get("cleanup") or RETAIN)
        if cleanup not in CLEANUP_POLICIES:
            raise ConfigError(f"batch_config.storage.cleanup must be one of {', '.join(CLEANUP_POLICIES)}")
        layout = self.tap.batch_layout(storage)
        size = batch_config.get("batch_size")
        size = 1_000_000 if size is None else size
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ConfigError(f"batch_config.batch_size must be a positive integer (rows per file); got {size!r}")
        return BatchSpec(
            layout,
            str(storage.get("prefix", "")),
            self.map.name if self.map is not None else self.stream.name,  # the name its BATCH goes by
            size,
            # "none" (the SDK's word; null too): plain .jsonl, for when compressing costs more than disk.
            "none" if compression is None else str(compression),
            self.tap.batch_stores(layout.options),
            cleanup,
        )

    def run(self) -> dict[str, Any]:
        entry, stream, writer = self.entry, self.stream, self.writer
        method = entry.effective_replication_method()
        rk = entry.effective_replication_key() if method == INCREMENTAL else None
        if method == INCREMENTAL and not rk:
            raise ConfigError(f"stream {stream.name!r}: INCREMENTAL replication needs a replication-key")
        bookmark = committed_position(self.state, stream.name, method)
        start = start_value(bookmark, rk)
        if start is None and rk:
            start = self.tap.config.get("start_date")
        selected = entry.selected_properties()
        all_props = list(stream.schema.get("properties", {}))
        project = selected != all_props
        schema = stream.stream_schema(method, entry.selected_schema())
        keys = entry.effective_key_properties()
        smap = self.map
        mapped = smap is not None and not smap.identity
        # Files the stream may write itself: rows then reach them without passing through this loop.
        direct = None if mapped else self.batch_spec
        extracted = dt.datetime.now(dt.UTC).isoformat()
        # RECORD lines written as they come (no files, no map, no projection): the stream may make whole
        # lines itself, in the envelope this loop would put round its records.
        as_is = self.batch is None and not mapped and (not project or stream.reads_selected)
        envelope = (record_head(stream.name), record_tail(extracted)) if as_is else None
        ctx = ReadContext(
            self.tap.config,
            selected,
            method,
            rk,
            start,
            bookmark,
            batch=direct,
            batch_writer=self.batch if direct is not None else None,
            envelope=envelope,
            time_extracted=extracted,
        )
        ctx.key_range = stream_range(stream.name, entry.stream_metadata())
        if ctx.key_range is not None:
            ctx.start_value = start = None  # every row of the range, whatever the bookmark says
        tracker = BookmarkTracker(rk, start, stream.is_sorted, stream.bookmark_key, stream.name)
        source: Iterable[Any] = self._checkpoint_on_error(stream.records(ctx), tracker)
        name = stream.name
        track = rk
        if smap is not None and mapped:
            # The map projects and tracks the bookmark itself; without one the loop below is untouched.
            source = smap.rows(source, selected if project else None, tracker if rk else None)
            name, schema, keys = smap.name, smap.schema, smap.key_properties
            project, track = False, None
        bookmarks = [rk] if rk and rk in schema.get("properties", {}) else None
        writer.write(SchemaMessage(name, schema, keys, bookmarks))
        rows = 0
        since_state = 0
        last_state = time.monotonic()
        if ctx.key_range is not None:
            log.info("stream %s: key range %s", stream.name, ctx.key_range.describe())
        else:
            log.info(
                "stream %s: %s%s", stream.name, method, f" from {rk} >= {start!r}" if rk and start is not None else ""
            )
        head = record_head(name)
        tail = record_tail(extracted)
        version: int | None = None
        out = self.out
        for row in source:
            if ctx.version != version:
                version = ctx.version
                tail = record_tail(extracted, version)
                if ctx.envelope is not None:
                    ctx.envelope = (head, tail)
            if isinstance(row, dict):
                record = {k: row[k] for k in selected if k in row} if project else row
                if track:
                    tracker.observe(record)
                if self.batch is not None:
                    self.batch.write(record)
                elif version is None:
                    writer.write_record(name, record, extracted)
                else:
                    writer.write(RecordMessage(name, record, version, extracted))
            elif isinstance(row, WrittenBatch):
                # Files the stream wrote and closed: announce them, then the STATE that covers them.
                self._announce(name, row.encoding, row.files)
                rows += row.rows
                since_state = 0
                last_state = time.monotonic()
                self._checkpoint(tracker, final=False)
                continue
            elif isinstance(row, EncodedRecord):
                # Serialized by the source: no decoding here; the stream tracks its own position.
                if self.batch is not None:
                    self.batch.write_encoded(row.json)
                else:
                    out.write(head + row.json + tail)
            elif isinstance(row, EncodedLines):
                # Whole RECORD lines in ctx.envelope, and position() covers them all: a block of rows.
                if ctx.envelope is None:
                    raise RuntimeError(f"stream {stream.name!r} wrote lines of its own without an envelope")
                out.write(row.data)
                rows += row.count
                since_state += row.count
                if since_state >= self.every_rows or time.monotonic() - last_state >= self.every_seconds:
                    since_state = 0
                    last_state = time.monotonic()
                    self._checkpoint(tracker, final=False)
                continue
            elif isinstance(row, SchemaMessage):
                # The stream's schema grew mid-read (fields its sample had not seen): the records
                # before were written under the old one; a target evolves its table before the next.
                if ctx.envelope is None:
                    raise RuntimeError(f"stream {stream.name!r} sent a SCHEMA of its own without an envelope")
                schema = row.schema
                writer.write(SchemaMessage(name, schema, keys, bookmarks))
                continue
            else:
                if self.batch is not None:
                    # Rows in BATCH files carry no table version: activating one would mark them all deleted.
                    continue
                writer.write(row)
                continue
            rows += 1
            since_state += 1
            # In BATCH mode a checkpoint closes the file: one comes when the file is full, not every
            # state_every_rows rows (which would cap batch_size at it).
            if (self.batch.full() if self.batch is not None else since_state >= self.every_rows) or (
                not rows & 1023 and time.monotonic() - last_state >= self.every_seconds
            ):
                since_state = 0
                last_state = time.monotonic()
                self._checkpoint(tracker, final=False)
        self._checkpoint(tracker, final=True)
        log.info("stream %s: %d records", stream.name, rows)
        return self.state

    def _checkpoint_on_error(self, records: Iterable[Any], tracker: BookmarkTracker) -> Iterator[Any]:
        """The stream's rows; when reading stops on an error, a STATE first covers every row before it
        (all written by then), so the next run does not read them again."""
        try:
            yield from records
        except DponeError:
            with contextlib.suppress(Exception):  # the error that stopped the read is the one to report
                self._checkpoint(tracker, final=False)
            raise

    def _flush_batch(self) -> None:
        if self.batch is None:
            return
        files = self.batch.close()
        if files:
            name = self.map.name if self.map is not None else self.stream.name
            self._announce(name, self.batch.encoding, files)

    def _announce(self, name: str, encoding: BatchEncoding, files: list[BatchFile]) -> None:
        """The BATCH message of closed files, with their manifest, also written beside them."""
        spec = self.batch_spec
        assert spec is not None
        manifest = BatchManifest(name, encoding.format, encoding.compression, files, spec.cleanup)
        first = files[0].uri
        manifest.uri = first[: first.rindex(".jsonl")] + ".manifest.json"
        data = orjson.dumps(manifest.to_dict(), option=orjson.OPT_INDENT_2)
        if is_remote(manifest.uri):
            spec.stores.put_bytes(data, manifest.uri)
        else:
            local_path(manifest.uri).write_bytes(data)
        self.writer.write(BatchMessage(name, encoding, [f.uri for f in files], manifest.to_dict()))

    def _checkpoint(self, tracker: BookmarkTracker, *, final: bool) -> None:
        if self.batch is not None:
            self._flush_batch()
        # A stream that tracks its own position (resume keys, LSNs) says where it is; else the tracker does.
        bookmark = self.stream.position(final) or tracker.bookmark(final=final)
        if bookmark is not None or final:
            self.state = with_bookmark(self.state, self.stream.name, bookmark)
        self.writer.write(StateMessage(self.state))
        self.writer.flush()
