"""The envelope's bytes (dpone_protocol/wire.py): what the writers splice, what the readers peek at,
and that every peek is either right or unsure (None), never wrong, so callers can fall back."""

from __future__ import annotations

import io
import threading
import types
from decimal import Decimal
from typing import Any

import orjson
import pytest

from dpone.taps.framework.airbyte_writer import AirbyteOutput
from dpone.targets.framework.sink import Sink
from dpone.targets.framework.target import Target
from dpone_protocol.airbyte import StreamNames
from dpone_protocol.catalog import Catalog
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC, Frame, MessageWriter
from dpone_protocol.messages import RecordMessage, SchemaMessage
from dpone_protocol.wire import (
    CUT_MARK,
    airbyte_record,
    airbyte_record_head,
    opens_as_record,
    peek_head,
    peek_record_stream,
    record_head,
    record_tail,
    split_record,
)
from dpone_runner.pump import Pump
from dpone_runner.state_commit import StateLedger

EXTRACTED = "2024-05-01T12:00:00+00:00"
# Names a peek must get right, or decline: plain, unicode, JSON escapes, a prefix of another name.
NAMES = [
    "orders",
    "public-orders",
    "Zoë",
    "日本語",
    "emoji 🦆",
    "",
    'quote"d',
    "back\\slash",
    "tab\tand\nnewline",
    "control\x01",
    "ord",
    "orders_archive",
]


def _line(name: str, record: dict[str, Any], *, version: int | None = None, extracted: str | None = EXTRACTED) -> bytes:
    return record_head(name) + DEFAULT_CODEC.dumps(record) + record_tail(extracted, version)


# -- record_head / record_tail --------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("version", [None, 0, 7, -3])
@pytest.mark.parametrize("extracted", [None, EXTRACTED])
def test_a_spliced_record_is_byte_for_byte_what_the_codec_writes(
    name: str, version: int | None, extracted: str | None
) -> None:
    record = {"id": 1, "name": "Zoë", "nested": {"a": [1, 2]}}
    spliced = _line(name, record, version=version, extracted=extracted)
    assert spliced == DEFAULT_CODEC.dumps(RecordMessage(name, record, version, extracted).to_dict()) + b"\n"
    assert orjson.loads(spliced) == RecordMessage(name, record, version, extracted).to_dict()


def test_the_tail_ends_the_line_and_the_head_leaves_room_for_the_record() -> None:
    assert record_head("s").endswith(b'"record":')
    assert record_tail() == b"}\n"
    assert record_tail(None, 5) == b',"version":5}\n'
    assert record_tail('a"b') == b',"time_extracted":"a\\"b"}\n'  # escaped like any JSON string


def test_the_head_matches_what_message_writer_write_record_writes() -> None:
    out = io.BytesIO()
    MessageWriter(out).write_record("Zoë", {"a": 1}, EXTRACTED)
    assert out.getvalue() == _line("Zoë", {"a": 1})


# -- peek_record_stream ---------------------------------------------------------------------------------


@pytest.mark.parametrize("name", NAMES)
def test_peek_record_stream_is_right_or_unsure(name: str) -> None:
    line = _line(name, {"id": 1, "stream": "not this one"})
    peeked = peek_record_stream(line)
    if peeked is not None:
        assert peeked == name.encode()
    if "\\" not in orjson.dumps(name).decode():
        assert peeked == name.encode(), "a name written without escapes is read on the fast path"


@pytest.mark.parametrize("name", ['quote"d', "back\\slash", "tab\tand\nnewline", "control\x01"])
def test_a_name_with_escapes_is_left_to_the_decoder(name: str) -> None:
    assert peek_record_stream(_line(name, {})) is None


def test_a_non_ascii_name_written_as_escapes_is_left_to_the_decoder() -> None:
    line = b'{"type":"RECORD","stream":"Zo\\u00eb","record":{}}\n'
    assert peek_record_stream(line) is None
    assert orjson.loads(line)["stream"] == "Zoë"


def test_a_name_that_is_a_prefix_of_another_is_read_whole() -> None:
    assert peek_record_stream(_line("ord", {})) == b"ord"
    assert peek_record_stream(_line("orders", {})) == b"orders"
    assert peek_record_stream(_line("orders_archive", {})) == b"orders_archive"


@pytest.mark.parametrize(
    "line",
    [
        b'{ "type":"RECORD","stream":"s","record":{}}\n',  # a space
        b'{"type": "RECORD", "stream": "s", "record": {}}\n',  # json.dumps' default separators
        b'{"stream":"s","type":"RECORD","record":{}}\n',  # another key order
        b'{"type":"RECORD","record":{},"stream":"s"}\n',
        b'{"type":"STATE","value":{"stream":"s"}}\n',
        b'{"type":"SCHEMA","stream":"s","schema":{},"key_properties":[]}\n',
        b'{"type":"RECORDS","stream":"s","record":{}}\n',  # not the type RECORD
        b'{"type":"RECORD","stream":"s',  # cut inside the name
        b"",
        CUT_MARK,
    ],
)
def test_peek_record_stream_declines_every_other_line(line: bytes) -> None:
    assert peek_record_stream(line) is None


# -- opens_as_record -------------------------------------------------------------------------------------


def test_opens_as_record() -> None:
    assert opens_as_record(_line("s", {"a": 1}))
    assert opens_as_record(_line('quote"d', {}))  # the name does not matter: the line will be decoded
    assert not opens_as_record(b'{"type": "RECORD","stream":"s","record":{}}')
    assert not opens_as_record(b'{"stream":"s","type":"RECORD","record":{}}')
    assert not opens_as_record(b'{"type":"RECORDS","stream":"s","record":{}}')
    assert not opens_as_record(b'{"type":"STATE","value":{}}')
    assert not opens_as_record(CUT_MARK)
    assert not opens_as_record(b"")


# -- peek_head --------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"type":"RECORD","stream":"s","record":{}}', ("RECORD", "s")),
        (b'{ "type" : "RECORD" , "stream" : "s", "record": {}}', ("RECORD", "s")),
        (b'{"type":"SCHEMA","stream":"Zo\xc3\xab","schema":{}}', ("SCHEMA", "Zoë")),
        (b'{"type":"ACTIVATE_VERSION","stream":"s","version":1}', ("ACTIVATE_VERSION", "s")),
        (b'{"type":"BATCH","stream":"s","encoding":{},"manifest":[]}', ("BATCH", "s")),
        (b'{"type":"STATE","value":{"bookmarks":{}}}', ("STATE", None)),
        (b'{"type":"STATE","stream":"s","value":{}}', ("STATE", None)),
    ],
)
def test_peek_head_reads_the_type_and_stream(line: bytes, expected: tuple[str, str | None]) -> None:
    assert peek_head(line) == expected


@pytest.mark.parametrize(
    "line",
    [
        b'{"stream":"s","type":"RECORD","record":{}}',  # another key order
        b'{"type":"RECORD","record":{},"stream":"s"}',
        b'{"type":"RECORD","stream":"a\\"b","record":{}}',  # an escaped name
        b'{"type":"RECORD","stream":"Zo\\u00eb","record":{}}',
        b'{"type":"record","stream":"s","record":{}}',  # not a type we name
        b'{"type":"RECORD"}',  # no stream
        b"[1, 2]",
        CUT_MARK,
    ],
)
def test_peek_head_is_unsure_rather_than_wrong(line: bytes) -> None:
    assert peek_head(line) is None


def test_frame_peek_decodes_what_peek_head_declines() -> None:
    assert Frame(1, b'{"stream":"s","type":"RECORD","record":{}}').peek() == ("RECORD", "s")
    assert Frame(1, b'{"type":"RECORD","stream":"a\\"b","record":{}}').peek() == ("RECORD", 'a"b')


# -- split_record -----------------------------------------------------------------------------------------


@pytest.mark.parametrize("version", [None, 3, -1])
def test_split_record_finds_the_record_bytes_of_the_frameworks_own_line(version: int | None) -> None:
    # Keys inside the record named like the envelope's own must stay in the record.
    body = b'{"n":12345678901234567890.123456789,"version":2,"time_extracted":"x","s":"a\\"b}"}'
    line = record_head("public-orders") + body + record_tail(EXTRACTED, version)
    assert split_record(line) == (b"public-orders", body)
    assert split_record(line.rstrip(b"\n")) == (b"public-orders", body)


def test_split_record_keeps_unicode_names_as_utf8() -> None:
    assert split_record(_line("日本語", {"a": 1})) == ("日本語".encode(), b'{"a":1}')


@pytest.mark.parametrize(
    "line",
    [
        _line('quote"d', {"a": 1}),  # an escaped name
        _line("s", {"a": 1}, extracted=None),  # no time_extracted: not the tap's layout
        _line("s", {"a": 1}, extracted='a"b'),  # an escaped time_extracted
        b'{"type": "RECORD", "stream": "s", "record": {}, "time_extracted": "t"}',
        b'{"stream":"s","type":"RECORD","record":{},"time_extracted":"t"}',
        b'{"type":"RECORD","stream":"s","record":[1],"time_extracted":"t"}',  # not an object
        b'{"type":"RECORD","stream":"s","record":{},"time_extracted":"t"}trailing',
        b'{"type":"STATE","value":{}}',
    ],
)
def test_split_record_declines_any_other_layout(line: bytes) -> None:
    assert split_record(line) is None


# -- airbyte_record_head / airbyte_record -----------------------------------------------------------------


@pytest.mark.parametrize("namespace", [None, "public", 'sch"ema'])
@pytest.mark.parametrize("name", ["orders", "Zoë", 'quote"d'])
def test_an_airbyte_record_is_one_json_line(name: str, namespace: str | None) -> None:
    line = airbyte_record(airbyte_record_head(name, namespace), 1714564800000, b'{"n":1.10}')
    assert line.endswith(b"}}\n") and line.count(b"\n") == 1
    expected: dict[str, Any] = {"stream": name, "emitted_at": 1714564800000, "data": {"n": Decimal("1.10")}}
    if namespace is not None:
        expected["namespace"] = namespace
    assert EXACT_CODEC.loads(line) == {"type": "RECORD", "record": expected}
    assert line.endswith(b'"data":{"n":1.10}}}\n')  # the data's bytes go through as they came


# -- CUT_MARK ----------------------------------------------------------------------------------------------


def test_the_cut_mark_is_a_fragment_no_decoder_accepts() -> None:
    assert not CUT_MARK.endswith(b"\n")
    with pytest.raises(ValueError):
        DEFAULT_CODEC.loads(CUT_MARK)


# -- the callers fall back when a peek is unsure -----------------------------------------------------------

ODD_LAYOUTS = [
    b'{"type":"SCHEMA","stream":"s","schema":{"properties":{}},"key_properties":[]}\n',
    b'{"type":"RECORD","stream":"s","record":{"i":1}}\n',
    b'{ "type": "RECORD", "stream": "s", "record": {"i": 2}}\n',
    b'{"stream":"s","type":"RECORD","record":{"i":3}}\n',
    b'{"type":"RECORD","stream":"Zo\\u00eb","record":{"i":4}}\n',
    b'{"type":"RECORD","stream":"Zo\xc3\xab","record":{"i":5}}\n',
    b'{"type":"STATE","value":{"n":1}}\n',
]


def test_the_pump_counts_and_forwards_every_layout() -> None:
    sent: list[bytes] = []
    channel = types.SimpleNamespace(
        send=sent.append, failed=threading.Event(), connector=types.SimpleNamespace(proc=types.SimpleNamespace())
    )
    states: list[dict[str, Any]] = []
    pump = Pump(ODD_LAYOUTS, [channel], StateLedger(0, states.append))  # type: ignore[list-item]
    pump.run()
    pump.finish()
    assert b"".join(sent) == b"".join(ODD_LAYOUTS)  # forwarded byte for byte
    assert pump.counts.rows_in == {"s": 3, "Zoë": 2}
    assert pump.counts.states == 1


def test_the_airbyte_writer_decodes_what_it_cannot_splice() -> None:
    out = io.BytesIO()
    output = AirbyteOutput(out, StreamNames(Catalog([])))
    output.write(b"".join(ODD_LAYOUTS[1:6]) + _line("s", {"n": Decimal("0.10000000000000000001")}))
    records = [EXACT_CODEC.loads(line)["record"] for line in out.getvalue().splitlines()]
    records = [r for r in records if "data" in r]
    assert [(r["stream"], r["data"]) for r in records] == [
        ("s", {"i": 1}),
        ("s", {"i": 2}),
        ("s", {"i": 3}),
        ("Zoë", {"i": 4}),
        ("Zoë", {"i": 5}),
        ("s", {"n": Decimal("0.10000000000000000001")}),
    ]


class _KeptSink(Sink):
    def write_batch(self, records: list[dict[str, Any]]) -> None:
        self.config["kept"].extend(records)  # type: ignore[attr-defined]


class _KeepingTarget(Target):
    name = "target-keep"

    def make_sink(self, schema: SchemaMessage) -> Sink:
        return _KeptSink(self.config, schema, self.policy)


def test_the_target_keeps_every_digit_of_an_exact_stream_in_any_layout() -> None:
    # A number without a format is exact (DESIGN rule 7): no layout may send it through the float decoder.
    digits = b"0.10000000000000000001"
    stream = [
        b'{"type":"SCHEMA","stream":"s","schema":{"properties":{"n":{"type":"number"}}},"key_properties":[]}\n',
        b'{"type":"RECORD","stream":"s","record":{"n":' + digits + b"}}\n",
        b'{ "type": "RECORD", "stream": "s", "record": {"n": ' + digits + b"}}\n",
        b'{"stream":"s","type":"RECORD","record":{"n":' + digits + b"}}\n",
    ]
    kept: list[dict[str, Any]] = []
    target = _KeepingTarget({"kept": kept, "add_record_metadata": False})
    target.run(stream, io.BytesIO())
    assert [r["n"] for r in kept] == [Decimal(digits.decode())] * 3
