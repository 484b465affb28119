"""The target loop: messages in, committed batches out, STATE echoed only after commit.

A STATE is held until every record received before it is committed in the destination
(final table, not staging); then it is written to stdout. Intermediate states are
coalesced: the latest committed one is what matters to the runner.
"""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Iterable, Mapping
from typing import IO, Any, ClassVar, cast

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.capabilities import TargetCapabilities
from dpone.targets.framework.encoded_rows import ADDED_FULL, LineRouter
from dpone.targets.framework.sink import Sink
from dpone_protocol.batch_files import iter_batch_records
from dpone_protocol.batch_manifest import (
    BATCH_CLEANUP_ENV,
    DELETE_ON_SUCCESS,
    BatchFile,
    BatchManifest,
    DeleteAfterCommit,
    fetch,
    usable_dir,
)
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC, Frame, MessageWriter, decode_line
from dpone_protocol.errors import ConfigError, DataError, InputCutError, ProtocolError
from dpone_protocol.key_ranges import RANGE_END, RANGE_TOKEN_ENV
from dpone_protocol.messages import (
    ActivateVersionMessage,
    BatchMessage,
    RecordMessage,
    SchemaMessage,
    StateMessage,
    from_dict,
)
from dpone_protocol.object_store import ObjectStores
from dpone_protocol.ops import Operable
from dpone_protocol.settings import Setting
from dpone_protocol.wire import opens_as_record

log = logging.getLogger(__name__)

COMMON_SETTINGS: tuple[Setting, ...] = (
    Setting("batch_size_rows", "integer", "Commit a stream's batch at this many records.", default=50_000),
    Setting(
        "batch_size_bytes", "integer", "Commit a stream's batch at this many bytes of input.", default=32 * 1024 * 1024
    ),
    Setting("batch_max_age_seconds", "number", "Commit pending records at least this often.", default=60),
    Setting("add_record_metadata", "boolean", "Add _sdc_* metadata columns.", default=True),
    Setting(
        "batch_storage_options",
        "object",
        "Object store settings for reading BATCH files in S3, GCS or Azure (obstore's keys, e.g. endpoint, "
        "region); credentials are read from the environment by default (docs/object-storage.md).",
    ),
    Setting("batch_spool_dir", "string", "Local folder for BATCH files fetched from object storage (default: TMPDIR)."),
    Setting(
        "exact_json_numbers",
        "boolean",
        "Keep every digit of numbers inside object/array columns (slower decoding for those streams).",
        default=True,
    ),
)


class Target(Operable):
    name: ClassVar[str] = ""
    description: ClassVar[str] = ""
    settings: ClassVar[tuple[Setting, ...]] = ()
    capabilities: ClassVar[TargetCapabilities] = TargetCapabilities()

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.config = config
        self.policy = BatchPolicy.from_config(dict(config))
        self.sinks: dict[str, Sink] = {}
        # States whose records are all handed to sinks, oldest first, each with the commit mark of
        # every sink it waits for (batches may still be loading); and the newest state whose
        # records are partly still in memory (it waits for the next drain).
        self._states_after_commit: list[tuple[Any, list[tuple[Sink, int]]]] = []
        self._state_after_drain: Any = None
        self._exact_streams: set[str] = set()
        self.records_in = 0
        # The `dpone run` that started this target (it sets DPONE_RUN_ID): if it dies, a clean end of
        # the input is no proof the input was whole.
        self._runner = os.getppid() if os.environ.get("DPONE_RUN_ID") else None
        # Set by a target whose loader encodes RECORD lines itself (see encoded_rows.py).
        self.router: LineRouter | None = None
        self._line = 0  # input lines read so far
        self._stores: ObjectStores | None = None
        self._cleanup = DeleteAfterCommit(self._batch_stores)  # cleanup: delete_on_success
        self.range_end: Any = None  # the token of the runner's end-of-range STATE (key_ranges.py)

    # -- hooks ------------------------------------------------------------------
    def make_sink(self, schema: SchemaMessage) -> Sink:
        raise NotImplementedError

    def close(self) -> None:
        """Release shared resources (connections) after all sinks are closed."""

    def commit_input(self) -> None:
        """The input ended whole and every stream finished: commit what waits for that (a key range)."""

    def check(self) -> None:
        """Prove the destination takes writes (Airbyte `check`); raise a DponeError if not.

        The default loads a probe row into staging and drops it (targets/framework/probe.py).
        Override it where that leaves something behind, or misses what a load needs.
        """
        from dpone.targets.framework.probe import write_probe  # noqa: PLC0415 - probe imports this module

        write_probe(self)

    def declare_stream(self, message: SchemaMessage) -> None:
        """A stream known before any input (Airbyte's configured catalog), handled as a first SCHEMA."""
        self._on_schema(message, 0)

    def plan_schemas(self, source: IO[bytes], out: IO[bytes], fmt: str) -> None:
        """--schema-plan: print what each SCHEMA would change in the destination."""
        raise ConfigError(f"{self.name} has no tables to plan: --schema-plan is for database targets")

    # -- final ------------------------------------------------------------------
    @classmethod
    def all_settings(cls) -> tuple[Setting, ...]:
        own = {s.name for s in cls.settings}
        return cls.settings + tuple(s for s in COMMON_SETTINGS if s.name not in own)

    def run(self, stdin: IO[bytes] | Iterable[bytes], stdout: IO[bytes]) -> None:
        writer = MessageWriter(stdout)
        failed = True
        cut: str | None = None
        try:
            cut = self._read(stdin, writer)
            if cut is not None:
                # Whoever read our stdout may have died with whoever wrote our stdin: commit all the same.
                writer = _writer_that_may_lose(stdout)
            self._drain_all(writer)
            for sink in self.sinks.values():
                sink.settle()
            if cut is None and self._runner_died():
                # Checked this late on purpose: the kernel closes a dying process's pipes a moment
                # before it hands its children to another parent.
                cut = "the input ended because dpone run, which wrote it, died"
                writer = _writer_that_may_lose(stdout)
            if cut is None:
                for sink in self.sinks.values():
                    sink.finish()
                self.commit_input()
                self._emit_state(writer)
            else:
                # A cut stream is not complete: nothing is finished (a full refresh is not swapped in),
                # but what arrived whole is committed, and the state covering it goes out.
                self._emit_after_failure(writer)
            failed = False
        finally:
            for sink in self.sinks.values():
                try:
                    sink.close()  # waits for batches in flight
                except Exception:  # closing must not hide the error that got us here
                    log.exception("closing sink %s failed", sink.stream)
            if failed:
                self._emit_after_failure(writer)
            self.close()
        log.info("loaded %d records into %d streams", self.records_in, len(self.sinks))
        if cut is not None:
            if os.environ.get(RANGE_TOKEN_ENV):
                raise InputCutError(f"{cut}; nothing of the key range is committed (it loads whole or not at all)")
            raise InputCutError(
                f"{cut}; the records before it are committed and the newest state they cover was echoed; "
                "run again to resume"
            )

    def _runner_died(self) -> bool:
        return self._runner is not None and os.getppid() != self._runner

    def _emit_after_failure(self, writer: MessageWriter) -> None:
        """A run that fails still echoes the newest state whose batches committed before the failure:
        the next run then resumes from there instead of reloading them."""
        try:
            self._promote_if_drained()
            self._emit_state(writer)
        except Exception:  # e.g. stdout closed: the error that stopped the run is the one to report
            log.debug("echoing the last committed state after the failure failed", exc_info=True)

    def _read(self, stdin: IO[bytes] | Iterable[bytes], writer: MessageWriter) -> str | None:
        """The message loop; returns where and how the input was cut (it ended inside a line), else None.

        A file (a pipe, stdin) is read in blocks, so that a router that takes whole runs of RECORD
        lines (`LineRouter.feed_run`) gets them with no Python work per line; every other line goes
        through the line loop. An iterable of lines (a test feeding lines one by one) is the line loop."""
        read = getattr(stdin, "read1", None) or getattr(stdin, "read", None)
        if read is None:
            return self._read_lines(stdin, writer)
        carry = b""
        while chunk := read(_BLOCK_BYTES):
            block = carry + chunk if carry else chunk
            last = block.rfind(b"\n") + 1
            carry = block[last:]
            if last:
                cut = self._read_block(block[:last] if carry else block, writer)
                if cut is not None:
                    return cut
        return self._read_lines((carry,), writer) if carry else None

    def _read_block(self, block: bytes, writer: MessageWriter) -> str | None:
        """Whole lines: runs of RECORD lines to the router's feed_run, the rest to the line loop."""
        at, size = 0, len(block)
        while at < size:
            feed_run = getattr(self.router, "feed_run", None)
            if feed_run is None and self.sinks:
                # No runs to take (the target has no such router): the rest of the block line by line.
                # Lines end at \n only, as a file's do (a \r is JSON whitespace): not splitlines().
                return self._read_lines(io.BytesIO(block[at:]), writer)
            # Before the first SCHEMA there is no router yet: one line at a time until it comes.
            end, count, full = feed_run(block, at, self._line + 1) if feed_run is not None else (at, 0, False)
            if count:
                self._line += count
                self.records_in += count
                if full:
                    self._after_add(True, writer)
                elif self._states_waiting():
                    self._emit_state(writer)  # a batch committing in the background may have finished
                    self._drain_if_old(writer)
                at = end
                continue
            end = block.index(b"\n", at) + 1
            cut = self._read_lines((block[at:end],), writer)
            if cut is not None:
                return cut
            at = end
        return None

    def _read_lines(self, lines: Iterable[bytes], writer: MessageWriter) -> str | None:
        """The line loop. A well-formed RECORD of a known stream is handled inline: no message
        object, no call per layer; per record this loop is most of a target's CPU time."""
        sinks = self.sinks
        exact = self._exact_streams
        loads = DEFAULT_CODEC.loads
        feed = self.router.feed if self.router is not None else None
        line = self._line
        try:
            for raw in lines:
                line += 1
                if raw[-1:] != b"\n" and _is_cut(raw):
                    # Only the last line can lack its newline.
                    return f"line {line}: the input ended inside a line (the process writing it died or was stopped)"
                if feed is not None:
                    added = feed(raw)  # the loader's own encoder: no decoding at all
                    if added:
                        self.records_in += 1
                        if added == ADDED_FULL or (not self.records_in & 4095 and self._states_waiting()):
                            self._after_add(added == ADDED_FULL, writer)
                        continue
                elif not exact and opens_as_record(raw):
                    obj: Any
                    try:
                        obj = loads(raw)
                    except ValueError:
                        obj = None  # the full path below names the problem
                    if obj.__class__ is dict:
                        sink = sinks.get(obj.get("stream"))  # type: ignore[arg-type]
                        record = obj.get("record")
                        if sink is not None and record.__class__ is dict:
                            version, extracted = obj.get("version"), obj.get("time_extracted")
                            full = sink.add_record(
                                record,
                                version if version.__class__ is int else None,
                                extracted if extracted.__class__ is str else None,
                                len(raw),
                                line,
                            )
                            self.records_in += 1
                            if full or (not self.records_in & 4095 and self._states_waiting()):
                                self._after_record(sink, writer)
                            continue
                stripped = raw.strip()
                if stripped:
                    self._handle(stripped, line, writer)
                    # A SCHEMA may have brought the loader, and with it a router.
                    feed = self.router.feed if self.router is not None else None
        finally:
            self._line = line
        return None

    def _handle(self, raw: bytes, line: int, writer: MessageWriter) -> None:
        codec = DEFAULT_CODEC
        if self._exact_streams:
            # Any layout is peeked (another key order costs one more decode): a RECORD of an exact
            # stream must never reach the rounding decoder.
            kind, stream = Frame(line, raw).peek()
            if kind == "RECORD" and stream in self._exact_streams:
                # Exact numeric columns: decode without rounding to float (slower, so only here).
                codec = EXACT_CODEC
        message = from_dict(decode_line(raw, line, codec), line)
        if isinstance(message, RecordMessage):
            sink = self.sinks.get(message.stream)
            if sink is None:
                raise ProtocolError(
                    "RECORD received before any SCHEMA for this stream", line=line, stream=message.stream
                )
            sink.add(message, len(raw), line)
            self.records_in += 1
            self._after_record(sink, writer)
        elif isinstance(message, StateMessage):
            if isinstance(message.value, dict) and RANGE_END in message.value:
                self.range_end = message.value[RANGE_END]
            if any(s.has_rows() for s in self.sinks.values()):
                # Records before this state are still in memory: it waits for the next drain.
                self._state_after_drain = message.value
            else:
                # Everything before it is handed over: it waits only for batches in flight.
                self._state_after_drain = None
                self._hold_for_commit(message.value)
            self._emit_state(writer)
            if self._states_waiting():
                self._drain_if_old(writer)
        elif isinstance(message, SchemaMessage):
            self._on_schema(message, line)
        elif isinstance(message, ActivateVersionMessage):
            sink = self._sink_for(message.stream, line)
            self._drain(sink)
            sink.activate_version(message.version)
        elif isinstance(message, BatchMessage):
            self._on_batch(message, line, writer)

    def _after_record(self, sink: Sink, writer: MessageWriter) -> None:
        self._after_add(sink.is_full(), writer)

    def _after_add(self, full: bool, writer: MessageWriter) -> None:
        if full:
            # Draining every sink lets the pending state go out: it covers all streams.
            self._drain_all(writer)
            self._emit_state(writer)
        elif not self.records_in & 4095 and self._states_waiting():
            self._emit_state(writer)  # a batch committing in the background may have finished
            self._drain_if_old(writer)

    def _sink_for(self, stream: str, line: int) -> Sink:
        sink = self.sinks.get(stream)
        if sink is None:
            raise ProtocolError("message for a stream with no SCHEMA yet", line=line, stream=stream)
        return sink

    def _on_schema(self, message: SchemaMessage, line: int) -> None:
        sink = self.sinks.get(message.stream)
        try:
            if sink is None:
                sink = self.sinks[message.stream] = self.make_sink(message)
            elif sink.schema_differs(message):
                # Rows received under the old schema are committed under it first.
                self._drain(sink)
                sink.set_schema(message)
        except DataError as exc:
            reason = str(exc).removeprefix(f"stream {message.stream!r}: ")
            raise ProtocolError(reason, line=line, stream=message.stream) from None
        if sink.exact_numbers:
            self._exact_streams.add(message.stream)
        else:
            self._exact_streams.discard(message.stream)

    def _on_batch(self, message: BatchMessage, line: int, writer: MessageWriter) -> None:
        sink = self._sink_for(message.stream, line)
        where = f"line {line}, stream {message.stream!r}: BATCH"
        manifest = BatchManifest.from_dict(message.checked, where) if message.checked is not None else None
        if manifest is not None and sink.load_files(manifest, self._batch_stores(), where):
            # The destination read the files itself (each checked against the manifest first).
            self.records_in += manifest.rows
            self._promote_if_drained()
            self._delete_after_commit(sink, manifest)
            return
        read = 0

        def take(raw: bytes) -> bool:  # the sink's own encoder, when it has one: no decoding
            nonlocal read
            if not sink.add_raw_record(raw):
                return False
            read += 1
            self._count_batch_record(sink)
            return True

        files: list[BatchFile] | list[str] = manifest.files if manifest is not None else message.manifest
        spool = usable_dir(self.config.get("batch_spool_dir"), "batch_spool_dir")
        for file in files:
            uri = file.uri if isinstance(file, BatchFile) else str(file)
            read = 0
            with fetch(file, self._batch_stores(), spool, where=where) as path:
                codec = EXACT_CODEC if sink.exact_numbers else DEFAULT_CODEC
                for record in iter_batch_records(str(path), message.encoding, codec.loads, take, uri):
                    sink.add(RecordMessage(message.stream, record), 64, line)
                    read += 1
                    self._count_batch_record(sink)
            if isinstance(file, BatchFile) and read != file.rows:
                raise DataError(f"{where}: {uri} holds {read} rows, its manifest says {file.rows}")
        self._drain(sink)
        if manifest is not None:
            self._delete_after_commit(sink, manifest)

    def _batch_stores(self) -> ObjectStores:
        if self._stores is None:
            self._stores = ObjectStores(self.config.get("batch_storage_options") or {})
        return self._stores

    def _delete_after_commit(self, sink: Sink, manifest: BatchManifest) -> None:
        if manifest.cleanup == DELETE_ON_SUCCESS and os.environ.get(BATCH_CLEANUP_ENV) != "runner":
            uris = [f.uri for f in manifest.files] + ([manifest.uri] if manifest.uri else [])
            mark = sink.commit_mark()
            self._cleanup.add(lambda: sink.is_committed(mark), uris)

    def _count_batch_record(self, sink: Sink) -> None:
        self.records_in += 1
        if sink.is_full():
            self._drain(sink)

    def _drain_if_old(self, writer: MessageWriter) -> None:
        if any(s.batch_age() >= self.policy.max_age_seconds for s in self.sinks.values()):
            self._drain_all(writer)
            self._emit_state(writer)

    def _drain_all(self, writer: MessageWriter) -> None:
        self._emit_state(writer)  # whatever batches in flight have committed meanwhile
        for sink in self.sinks.values():
            sink.drain()
        self._promote_if_drained()
        self._emit_state(writer)  # a drain may have waited for an older batch to commit

    def _drain(self, sink: Sink) -> None:
        """Commit one stream's batch (a SCHEMA change, an ACTIVATE_VERSION, a BATCH file)."""
        sink.drain()
        self._promote_if_drained()

    def _promote_if_drained(self) -> None:
        """Once no stream holds rows only in memory, the state that waited for a drain waits only for
        its batches to commit (whichever drain handed them over: a full batch, a new SCHEMA, ...)."""
        if self._state_after_drain is not None and not any(s.has_rows() for s in self.sinks.values()):
            self._hold_for_commit(self._state_after_drain)
            self._state_after_drain = None

    def _states_waiting(self) -> bool:
        return bool(self._states_after_commit) or self._state_after_drain is not None

    def _hold_for_commit(self, value: Any) -> None:
        """`value`'s records are all handed to sinks: it goes out once the batches they are in commit."""
        marks = [(sink, sink.commit_mark()) for sink in self.sinks.values()]
        held = self._states_after_commit
        if held and held[-1][1] == marks:
            held[-1] = (value, marks)  # no batch handed over since the last one: the newer state replaces it
        else:
            held.append((value, marks))

    def _emit_state(self, writer: MessageWriter) -> None:
        """Echo the newest state whose records are all committed, if any."""
        self._cleanup.sweep()
        held = self._states_after_commit
        for at in range(len(held) - 1, -1, -1):
            value, marks = held[at]
            if all(sink.is_committed(mark) for sink, mark in marks):
                # The bare value, as singer-python and SDK targets print it: Meltano stores the line as
                # is and hands it to the tap as its next --state, which third-party taps read as the value.
                writer.write_raw(DEFAULT_CODEC.dumps(value))
                writer.flush()
                del held[: at + 1]  # older states are covered by this one
                return


# A block read from the input: big enough that a run of RECORD lines costs one call, small enough to stay cheap.
_BLOCK_BYTES = 1 << 20


def _is_cut(raw: bytes) -> bool:
    """True when an unterminated last line is a fragment: the writer died inside it. A whole message
    that merely lacks its final newline (a hand-made file) is read as usual."""
    if not raw.strip():
        return False
    try:
        DEFAULT_CODEC.loads(raw)
    except ValueError:
        return True
    return False


def _writer_that_may_lose(stdout: IO[bytes]) -> MessageWriter:
    return MessageWriter(cast(IO[bytes], _MayBeGone(stdout)))


class _MayBeGone:
    """stdout that stops taking writes, quietly, once its reader is gone."""

    def __init__(self, stream: IO[bytes]) -> None:
        self._stream: IO[bytes] | None = stream

    def write(self, data: bytes) -> None:
        if self._stream is not None:
            try:
                self._stream.write(data)
            except (OSError, ValueError):  # a broken pipe, or a closed file
                self._stream = None

    def flush(self) -> None:
        if self._stream is not None:
            try:
                self._stream.flush()
            except (OSError, ValueError):
                self._stream = None
