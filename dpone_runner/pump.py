"""Moves the tap's bytes to every target; decodes only what it must.

Without filters a line is only peeked at (type and stream, for counting and for STATE
bookkeeping) and forwarded as is, in chunks. A RECORD of a stream with a data contract is
decoded once and checked (dpone_runner/contracts/); when it passes, its original bytes go on.
With filters, every message is decoded and re-encoded, and contracts check what the filters
put out. Each target has a bounded queue and its own writer thread: the slowest target sets
the pace and memory stays bounded. A last line without its newline is held back until the
tap's exit says what it is: the end of a message (exit 0), or a cut (the tap died), which each
target then sees as CUT_MARK instead of the fragment.
"""

from __future__ import annotations

import collections
import logging
import os
import queue
import re
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from dpone_protocol.batch_manifest import DELETE_ON_SUCCESS
from dpone_protocol.codec import DEFAULT_CODEC, Frame, decode_line
from dpone_protocol.errors import ProtocolError
from dpone_protocol.messages import BatchMessage, MessageType, RecordMessage, SchemaMessage, StateMessage, from_dict
from dpone_protocol.wire import CUT_MARK, peek_record_stream
from dpone_runner.contracts import ContractStage
from dpone_runner.filters import Filter, apply_chain
from dpone_runner.processes import Connector
from dpone_runner.state_commit import StateLedger

log = logging.getLogger("dpone.pump")
CHUNK_BYTES = 256 * 1024
QUEUE_CHUNKS = 32  # per target: at most ~8 MB in flight
_KNOWN = {t.value for t in MessageType}
# _blockscan.scan(block, heads, start) -> (RECORD lines per head, offset of the first other line)
Scan = Callable[[bytes, tuple[bytes, ...], int], tuple[list[int], int]]


def echoed_state(obj: Any) -> dict[str, Any] | None:
    """A state a target printed: the bare value (the Singer convention, ours too) or a STATE message."""
    if not isinstance(obj, dict):
        return None
    value = obj.get("value")
    if obj.get("type") == "STATE" and isinstance(value, dict):
        return value
    return None if "type" in obj else obj


class TargetChannel:
    """The pipe into one target and the reader of the states it echoes."""

    def __init__(self, connector: Connector, index: int, ledger: StateLedger) -> None:
        self.connector = connector
        self.index = index
        self.ledger = ledger
        self.failed = threading.Event()
        self.echoed = 0
        self._queue: queue.Queue[bytes | None] = queue.Queue(maxsize=QUEUE_CHUNKS)
        self._writer = threading.Thread(target=self._write, name=f"{connector.name}-stdin", daemon=True)
        self._reader = threading.Thread(target=self._read, name=f"{connector.name}-stdout", daemon=True)
        self._writer.start()
        self._reader.start()

    def send(self, chunk: bytes) -> None:
        if not self.failed.is_set():
            self._queue.put(chunk)

    def close(self, cut: bool = False) -> None:
        """No more input: the target commits what it has and echoes its last state.

        cut: the input is incomplete (the tap died or was stopped). The target's input then ends
        inside a line, so it commits only what the last state covers (never a full-refresh swap
        of a partial table) and exits 74.
        """
        if cut:
            self.send(CUT_MARK)
        self._queue.put(None)

    def join(self) -> None:
        self._writer.join()
        self._reader.join()

    def _write(self) -> None:
        stdin = self.connector.proc.stdin
        assert stdin is not None
        while True:
            chunk = self._queue.get()
            if chunk is None:
                break
            if self.failed.is_set():
                continue  # keep draining so the pump never blocks on a dead target
            try:
                stdin.write(chunk)
                # A chunk is a checkpoint's worth or 256 KB: the target gets it now, not when the
                # pipe's buffer happens to fill (a slow tap's states would wait for it).
                stdin.flush()
            except (BrokenPipeError, OSError):
                self.failed.set()
        try:
            stdin.close()
        except (BrokenPipeError, OSError):
            self.failed.set()

    def _read(self) -> None:
        stdout = self.connector.proc.stdout
        assert stdout is not None
        for line in stdout:
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError:
                log.warning("%s printed a non-JSON line on stdout; ignored", self.connector.name)
                continue
            value = echoed_state(obj)
            if value is not None:
                self.echoed += 1
                self.ledger.echo(self.index, value)


@dataclass
class Counts:
    rows_in: collections.Counter[str] = field(default_factory=collections.Counter)
    rows_out: collections.Counter[str] = field(default_factory=collections.Counter)
    bytes_in: int = 0
    lines: int = 0
    states: int = 0
    started: float = field(default_factory=time.monotonic)


class Pump:
    def __init__(
        self,
        source: Iterable[bytes],
        channels: Sequence[TargetChannel],
        ledger: StateLedger,
        filters: Sequence[Filter] = (),
        contracts: ContractStage | None = None,
    ) -> None:
        self.source = source
        self.channels = channels
        self.ledger = ledger
        self.filters = list(filters)
        self.contracts = contracts
        if contracts is not None:
            contracts.attach(self._emit)
        self.counts = Counts()
        self.batch_files: list[dict[str, Any]] = []  # the BATCH files announced (uri, rows, sha256)
        self.stopped = threading.Event()
        self.tail = b""  # a last line without its newline, held back: see take_tail()
        # The newest SCHEMA per stream as the tap sent it, and as the targets get it (after filters).
        self.schemas_in: dict[str, dict[str, Any]] = {}
        self.schemas_out: dict[str, dict[str, Any]] = {}
        self._buffer: list[bytes] = []
        self._size = 0
        # Rows counted on the fast path, by the stream name's bytes (decoded once, at the end).
        self._fast_counts: collections.Counter[bytes] = collections.Counter()
        # The block lane's view of those streams: each one's RECORD line opening (_scanned), or
        # openings and a pattern of the other lines (_counted).
        self._heads: dict[bytes, bytes] = {}
        self._opens: list[tuple[bytes, bytes, bytes]] = []
        self._others: re.Pattern[bytes] | None = None

    def live_counts(self) -> dict[str, int]:
        """Rows per stream so far, for the progress line (read from another thread: a best-effort copy)."""
        out = dict(self.counts.rows_in)
        for key, n in list(self._fast_counts.items()):
            name = key.decode("utf-8", "replace")
            out[name] = out.get(name, 0) + n
        return out

    def _flush(self) -> None:
        if self._buffer:
            chunk = b"".join(self._buffer)
            self._buffer.clear()
            self._size = 0
            for channel in self.channels:
                channel.send(chunk)

    def _emit(self, line: bytes) -> None:
        self._buffer.append(line)
        self._size += len(line)
        if self._size >= CHUNK_BYTES:
            self._flush()

    def any_target_failed(self) -> bool:
        return any(c.failed.is_set() or c.connector.proc.poll() not in (None, 0) for c in self.channels)

    def run(self) -> None:
        """Pump until the tap's stdout ends, a target fails, or stop() is called.

        A last line without its newline stays in self.tail; then take_tail() or a cut, and finish().
        """
        read = getattr(self.source, "read1", None)
        try:
            if read is not None and not self.filters and self.contracts is None:
                self._pump_blocks(read)
            else:
                self._pump(self.source)
        finally:
            self._flush()

    def take_tail(self) -> None:
        """The tap exited cleanly: its last line lacked only the newline; forward it as a message."""
        tail, self.tail = self.tail, b""
        if tail:
            try:
                self._pump((tail + b"\n",))
            finally:
                self._flush()

    def finish(self) -> None:
        """No more input: close the contract stage and settle the counts for the report."""
        counts = self.counts
        stage = self.contracts
        if stage is not None:
            stage.close()
        for key, n in self._fast_counts.items():
            counts.rows_in[key.decode()] += n
        self._fast_counts.clear()
        if not self.filters:
            counts.rows_out = counts.rows_in.copy()
            if stage is not None:
                counts.rows_out.subtract(stage.dropped())

    def _pump(self, source: Iterable[bytes]) -> None:
        counts = self.counts
        by_bytes = self._fast_counts
        stage = self.contracts
        # Filled by the stage as contracted streams' SCHEMAs go by; empty, it costs one test per RECORD.
        guards = stage.guards if stage is not None else {}
        peek = peek_record_stream
        for raw in source:
            if not raw.endswith(b"\n"):
                # Only the last read lacks the newline: a message, or what a dying tap cut off.
                self.tail = raw
                break
            counts.lines += 1
            counts.bytes_in += len(raw)
            line = raw
            if self.filters:
                self._filtered(line, counts.lines)
            elif (name := peek(line)) is not None:
                by_bytes[name] = by_bytes.get(name, 0) + 1
                if not guards or (guard := guards.get(name)) is None or guard(line, counts.lines):
                    self._emit(line)
            elif line.strip():
                self._peeked(line, counts.lines)
            if (not counts.lines & 1023 and self.any_target_failed()) or self.stopped.is_set():
                self.stopped.set()  # what the tap writes from here on is not forwarded: the input is cut
                break

    def _pump_blocks(self, read: Callable[[int], bytes]) -> None:
        """The lane with nothing to decode (no filters, no contracts), over the tap's stdout in blocks.

        Lines that are compact RECORDs of streams already seen (nearly all) are counted per stream
        and forwarded in runs: no Python work per line. The others (a STATE, a SCHEMA, a new stream,
        a line in another layout) go through the line loop one by one, in their place."""
        scan = _block_scanner()
        carry = b""
        while chunk := read(CHUNK_BYTES):
            block = carry + chunk if carry else chunk
            end = block.rfind(b"\n") + 1
            carry = block[end:]
            if not end:
                continue
            body = block[:end] if carry else block
            if scan is not None:
                self._scanned(body, scan)
            else:
                self._counted(body)
            if self.stopped.is_set() or self.any_target_failed():
                self.stopped.set()  # what the tap writes from here on is not forwarded: the input is cut
                return
        if carry:
            self.tail = carry  # a last line without its newline: see take_tail()

    def _scanned(self, body: bytes, scan: Scan) -> None:
        """The block's lines told apart in C (dpone_runner/blockscan/): one pass at memchr's speed."""
        at = 0
        while at < len(body):
            if len(self._heads) != len(self._fast_counts):
                self._heads = {n: _head(n) for n in self._fast_counts}
            counts, stop = scan(body, tuple(self._heads.values()), at)
            if stop > at:
                run = body if at == 0 and stop == len(body) else body[at:stop]
                self._run_of_records(run, sum(counts), dict(zip(self._heads, counts, strict=True)))
            if stop == len(body):
                return
            at = body.index(b"\n", stop) + 1
            self._pump((body[stop:at],))

    def _counted(self, body: bytes) -> None:
        """The block's lines told apart with bytes.count (no compiled scanner): a pass per stream and one
        for the newlines; where they disagree, a pattern finds the other lines."""
        if self._others is None or len(self._opens) != len(self._fast_counts):
            self._opens, self._others = _openings(self._fast_counts)
        opens, others = self._opens, self._others
        lines = body.count(b"\n")
        counted = _count(body, opens, lines)
        if sum(counted.values()) == lines:
            self._run_of_records(body, lines, counted)
            return
        at = 0
        for match in others.finditer(body):
            if match.start() > at:
                run = body[at : match.start()]
                self._run_of_records(run, run.count(b"\n"), _count(run, opens, -1))
            self._pump((match[0],))
            at = match.end()
        if at < len(body):
            run = body[at:]
            self._run_of_records(run, run.count(b"\n"), _count(run, opens, -1))

    def _run_of_records(self, run: bytes, lines: int, counted: dict[bytes, int]) -> None:
        counts = self.counts
        counts.lines += lines
        counts.bytes_in += len(run)
        for name, n in counted.items():
            self._fast_counts[name] += n
        self._emit(run)

    def _peeked(self, line: bytes, number: int) -> None:
        """Any line but a plain RECORD: look at its type and stream, act on SCHEMA and STATE, forward it."""
        kind, stream = Frame(number, line.strip()).peek()
        if kind not in _KNOWN:
            raise ProtocolError(f"unknown message type {kind!r} from the tap", line=number)
        stage = self.contracts
        if kind == "RECORD" and stream is not None:
            self.counts.rows_in[stream] += 1
            if stage is not None and not stage.check_line(stream, line, number):
                return
        elif kind == "SCHEMA":
            schema = decode_line(line.strip(), number)
            self._keep_schema(schema, self.schemas_in)
            self._keep_schema(schema, self.schemas_out)
            if stage is not None:
                stage.on_schema(schema, number)
        elif kind == "BATCH" and stream is not None:
            # A few messages a run: its manifest (a dpone tap's) says how many rows the report counts.
            self._on_manifest(stream, decode_line(line.strip(), number).get("dpone_manifest"), self.counts.rows_in)
        elif kind == "STATE":
            if stage is not None:
                stage.on_state()
            self._offer(line, number)
        self._emit(line)
        if kind == "STATE":
            # A checkpoint: hand it over now, so a slow tap's progress is committed (and saved)
            # as it goes rather than when 256 KB have piled up.
            self._flush()

    def _on_manifest(self, stream: str, manifest: Any, counts: collections.Counter[str]) -> None:
        """Count a BATCH's rows; with several targets, its files wait for the runner to delete them."""
        if not isinstance(manifest, dict):
            return
        if isinstance(manifest.get("rows"), int):
            counts[stream] += manifest["rows"]
        for f in manifest.get("files") or []:
            if isinstance(f, dict) and isinstance(f.get("uri"), str):
                self.batch_files.append({"uri": f["uri"], "rows": f.get("rows"), "sha256": f.get("sha256")})
        if manifest.get("cleanup") == DELETE_ON_SUCCESS:
            files = [f.get("uri") for f in manifest.get("files") or [] if isinstance(f, dict)]
            uris = [u for u in [*files, manifest.get("uri")] if isinstance(u, str)]
            self.ledger.hold_files(uris)

    @staticmethod
    def _keep_schema(message: dict[str, Any], into: dict[str, dict[str, Any]]) -> None:
        """The newest SCHEMA of each stream, for the report's readers (lineage's schema facets)."""
        stream = message.get("stream")
        if isinstance(stream, str) and isinstance(message.get("schema"), dict):
            into[stream] = {"schema": message["schema"], "key_properties": message.get("key_properties") or []}

    def _offer(self, line: bytes, number: int) -> None:
        value = decode_line(line.strip(), number).get("value")
        if not isinstance(value, dict):
            raise ProtocolError("STATE message needs a 'value' object", line=number)
        self.counts.states += 1
        self.ledger.offer(value)

    def _filtered(self, line: bytes, number: int) -> None:
        stripped = line.strip()
        if not stripped:
            return
        message = from_dict(decode_line(stripped, number), number)
        if isinstance(message, SchemaMessage):
            self._keep_schema(message.to_dict(), self.schemas_in)
        if isinstance(message, RecordMessage):
            self.counts.rows_in[message.stream] += 1
        elif isinstance(message, BatchMessage):
            self._on_manifest(message.stream, message.checked, self.counts.rows_in)
        stage = self.contracts
        for out in apply_chain(self.filters, message):
            # Contracts see what the filters put out: the stream as the target will name it.
            as_dict = out.to_dict()
            data = DEFAULT_CODEC.dumps(as_dict) + b"\n"
            if isinstance(out, RecordMessage):
                if stage is not None and not stage.check_message(out.stream, as_dict, data, number):
                    continue
                self.counts.rows_out[out.stream] += 1
            elif isinstance(out, BatchMessage) and isinstance(out.checked, dict):
                self.counts.rows_out[out.stream] += int(out.checked.get("rows") or 0)
            elif isinstance(out, StateMessage):
                if stage is not None:
                    stage.on_state()
                self.counts.states += 1
                self.ledger.offer(out.value)
            elif isinstance(out, SchemaMessage):
                self._keep_schema(as_dict, self.schemas_out)
                if stage is not None:
                    stage.on_schema(as_dict, number)
            self._emit(data)
            if isinstance(out, StateMessage):
                self._flush()


def _head(name: bytes) -> bytes:
    """A stream's compact RECORD line opening, to its name's closing quote: no name is another's prefix."""
    return b'{"type":"RECORD","stream":"' + name + b'"'


def _block_scanner() -> Scan | None:
    """The compiled scanner, or None where it was not built or DPONE_PURE_PYTHON=1 asks for Python."""
    if os.environ.get("DPONE_PURE_PYTHON", "") not in ("", "0"):
        return None
    try:
        from dpone_runner._blockscan import scan  # noqa: PLC0415
    except ImportError:
        return None
    return scan


def _openings(seen: Iterable[bytes]) -> tuple[list[tuple[bytes, bytes, bytes]], re.Pattern[bytes]]:
    """Each stream's compact RECORD line opening (alone, and after a newline), and a pattern of the
    lines that open otherwise."""
    names = list(seen)
    opens = [(n, _head(n), b"\n" + _head(n)) for n in names]
    alternatives = b"|".join(re.escape(n) for n in names) or b"(?!)"
    others = re.compile(rb'^(?!\{"type":"RECORD","stream":"(?:' + alternatives + rb')").*\n', re.MULTILINE)
    return opens, others


def _count(run: bytes, opens: list[tuple[bytes, bytes, bytes]], lines: int) -> dict[bytes, int]:
    """RECORD lines per stream in `run` (a stream's opening with its closing quote: no name is another's
    prefix); stops once `lines` are found. With one stream, every line of a run of records is its."""
    if len(opens) == 1 and lines < 0:
        return {opens[0][0]: run.count(b"\n")}
    counted: dict[bytes, int] = {}
    total = 0
    for name, head, inner in opens:
        n = run.count(inner) + run.startswith(head)
        if n:
            counted[name] = n
            total += n
            if total == lines:
                break
    return counted
