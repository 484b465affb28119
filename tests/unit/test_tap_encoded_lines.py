"""The tap framework's EncodedLines: whole RECORD lines a stream writes itself, in the envelope the
framework gives it (ReadContext.envelope), only while RECORD lines go out as they come. The output is the
per-record path's, byte for byte (but time_extracted); STATEs come as per record, at block ends."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone.state.records import Bookmark, RawBookmark
from dpone.taps.framework.stream import EncodedLines, EncodedRecord, ReadContext, Stream
from dpone.taps.framework.tap import Tap
from dpone_protocol.messages import ActivateVersionMessage, SchemaMessage
from dpone_protocol.wire import record_head, record_tail

_EXTRACTED = re.compile(rb',"time_extracted":"[^"]*"')


class _Blocks(Stream):
    """Rows {"id": i} as EncodedLines of `block` rows when it may, else one EncodedRecord each; its
    position is the number of rows it yielded."""

    name = "things"
    schema = {"type": "object", "properties": {"id": {"type": "integer"}, "v": {"type": "string"}}}
    key_properties = ["id"]

    def __init__(self, rows: int, block: int, *, lines: bool = True, version: int | None = None) -> None:
        self.rows, self.block, self.lines, self.version = rows, block, lines, version
        self.done = 0
        self.envelopes: list[tuple[bytes, bytes] | None] = []

    def records(self, ctx: ReadContext) -> Iterator[Any]:
        self.envelopes.append(ctx.envelope)
        if self.version is not None:
            ctx.version = self.version
            yield ActivateVersionMessage(self.name, self.version)
            self.envelopes.append(ctx.envelope)
        for start in range(0, self.rows, self.block):
            values = [b'{"id":%d,"v":"x\\ny"}' % i for i in range(start, min(self.rows, start + self.block))]
            if self.lines and ctx.envelope is not None:
                head, tail = ctx.envelope
                self.done += len(values)
                yield EncodedLines(b"".join(head + v + tail for v in values), len(values))
            else:
                for value in values:
                    self.done += 1
                    yield EncodedRecord(value)

    def position(self, final: bool) -> Bookmark | None:
        return RawBookmark(self.name, {"done": self.done})


def tap_of(stream: _Blocks) -> type[Tap]:
    class _Tap(Tap):
        name = "tap-blocks"

        def discover_streams(self) -> list[Stream]:
            return [stream]

    return _Tap


def normalized(stdout: bytes) -> bytes:
    return _EXTRACTED.sub(b"", stdout)


def states(run: Any) -> list[int]:
    return [s["bookmarks"]["things"]["done"] for s in run.states]


@pytest.mark.parametrize(("rows", "block", "every"), [(10, 3, 4), (10, 5, 5), (7, 100, 3), (0, 3, 2), (9, 1, 2)])
def test_lines_give_the_per_record_bytes_and_a_state_at_the_first_block_end_past_every_rows(
    run_tap: Any, rows: int, block: int, every: int
) -> None:
    config = {"state_every_rows": every}
    lines, per_record = _Blocks(rows, block), _Blocks(rows, block, lines=False)
    with_lines, without = run_tap(tap_of(lines), config), run_tap(tap_of(per_record), config)
    assert with_lines.rc == without.rc == 0, with_lines.stderr + without.stderr
    assert [m["type"] for m in with_lines.messages if m["type"] == "RECORD"] == ["RECORD"] * rows
    expected, since = [], 0
    for start in range(0, rows, block):
        since += min(block, rows - start)
        if since >= every:
            expected.append(start + min(block, rows - start))
            since = 0
    assert states(with_lines) == [*expected, rows]
    if block == 1:
        assert normalized(with_lines.stdout) == normalized(without.stdout)
    else:
        records = [line for line in normalized(with_lines.stdout).splitlines() if b'"RECORD"' in line]
        assert records == [line for line in normalized(without.stdout).splitlines() if b'"RECORD"' in line]
    head, tail = lines.envelopes[0] or (b"", b"")
    assert head == record_head("things")
    assert tail.startswith(record_tail(None)[:-2]) and tail.endswith(b"}\n") and b'"time_extracted"' in tail


def test_a_version_set_by_the_stream_is_in_the_envelope_it_reads_next(run_tap: Any) -> None:
    stream = _Blocks(4, 2, version=12)
    run = run_tap(tap_of(stream), {})
    assert run.rc == 0, run.stderr
    assert [m.get("version") for m in run.messages if m["type"] == "RECORD"] == [12] * 4
    before, after = stream.envelopes
    assert before is not None and after is not None and b'"version"' not in before[1]
    assert after[1].startswith(b',"version":12,"time_extracted":')


@pytest.mark.parametrize(
    "config",
    [
        {"stream_maps": {"things": {"__alias__": "renamed"}}},
        {"stream_maps": {"things": {"v": None}}},
        {"batch_config": "FILES"},
    ],
    ids=["alias", "dropped-property", "batch-files"],
)
def test_no_envelope_where_the_framework_reshapes_or_files_records(
    run_tap: Any, tmp_path: Path, config: dict[str, Any]
) -> None:
    if config.get("batch_config"):
        config = {"batch_config": {"storage": {"root": tmp_path.as_uri()}}}
    stream = _Blocks(5, 2)
    run = run_tap(tap_of(stream), config)
    assert run.rc == 0, run.stderr
    assert stream.envelopes == [None]


def test_no_envelope_when_the_catalog_projects(run_tap: Any, tmp_path: Path) -> None:
    stream = _Blocks(5, 2)
    catalog = tap_of(stream)({}).discover().to_dict()
    for md in catalog["streams"][0]["metadata"]:
        if md["breadcrumb"] == ["properties", "v"]:
            md["metadata"]["selected"] = False
        if md["breadcrumb"] == []:
            md["metadata"]["selected"] = True
    path = tmp_path / "catalog.json"
    path.write_bytes(orjson.dumps(catalog))
    run = run_tap(tap_of(stream), {}, "--catalog", str(path))
    assert run.rc == 0, run.stderr
    assert stream.envelopes == [None]


def test_lines_without_an_envelope_are_a_bug_said_as_such(run_tap: Any) -> None:
    class _Rogue(_Blocks):
        def records(self, ctx: ReadContext) -> Iterator[Any]:
            yield EncodedLines(b'{"type":"RECORD","stream":"things","record":{"id":1}}\n', 1)

    run = run_tap(tap_of(_Rogue(1, 1)), {"stream_maps": {"things": {"__alias__": "renamed"}}})
    assert run.rc != 0
    assert "without an envelope" in run.stderr


class _Growing(_Blocks):
    """Its first block under the declared schema, then a SCHEMA with a field found in the rest."""

    def records(self, ctx: ReadContext) -> Iterator[Any]:
        blocks = super().records(ctx)
        yield next(blocks)
        grown = {**self.schema, "properties": {**self.schema["properties"], "w": {"type": ["null", "string"]}}}
        yield SchemaMessage(self.name, grown, ["id"])
        yield from blocks


def test_a_schema_the_stream_grows_goes_out_between_its_records(run_tap: Any) -> None:
    run = run_tap(tap_of(_Growing(4, 2)), {})
    kinds = [m["type"] for m in run.messages]
    assert kinds[:6] == ["SCHEMA", "RECORD", "RECORD", "SCHEMA", "RECORD", "RECORD"]
    first, grown = run.of_type("SCHEMA")
    assert list(grown["schema"]["properties"]) == ["id", "v", "w"]
    assert grown["key_properties"] == first["key_properties"] == ["id"]


def test_a_schema_of_its_own_without_an_envelope_is_a_bug_said_as_such(run_tap: Any) -> None:
    run = run_tap(tap_of(_Growing(4, 2, lines=False)), {"stream_maps": {"things": {"__alias__": "renamed"}}})
    assert run.rc == 70
    assert "sent a SCHEMA of its own without an envelope" in run.stderr
