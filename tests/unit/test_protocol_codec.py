"""The codec and the line reader/writer: round trips, codec conformance, errors, and peeking."""

from __future__ import annotations

import datetime as dt
import io
from decimal import Decimal
from typing import Any

import pytest

from dpone_protocol.codec import (
    DEFAULT_CODEC,
    Codec,
    ExactCodec,
    Frame,
    MessageReader,
    MessageWriter,
    OrjsonCodec,
    StdlibCodec,
    decode_line,
)
from dpone_protocol.errors import ProtocolError
from dpone_protocol.messages import (
    ActivateVersionMessage,
    BatchEncoding,
    BatchMessage,
    Message,
    RecordMessage,
    SchemaMessage,
    StateMessage,
)

CODECS = [pytest.param(OrjsonCodec(), id="orjson"), pytest.param(StdlibCodec(), id="stdlib")]
SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}}

ALL_MESSAGES: list[Message] = [
    SchemaMessage("orders", SCHEMA, ["id"], ["updated_at"]),
    SchemaMessage("customers", SCHEMA),
    RecordMessage("orders", {"id": 1, "name": "Zoë", "tags": ["a", "b"], "meta": {"x": None}}),
    RecordMessage("orders", {"id": 2, "name": None}, 17, "2024-05-01T10:00:00+00:00"),
    StateMessage({"bookmarks": {"orders": {"replication_key_value": "2024-05-01"}}}),
    BatchMessage("orders", BatchEncoding("jsonl", "gzip"), ["file:///tmp/orders-1.jsonl.gz"]),
    BatchMessage("orders", BatchEncoding("parquet", None), []),
    ActivateVersionMessage("orders", 17),
]


def _read(data: bytes, codec: Codec = DEFAULT_CODEC, **kwargs: Any) -> list[Message]:
    return list(MessageReader(io.BytesIO(data), codec, **kwargs))


def _error(data: bytes, codec: Codec = DEFAULT_CODEC, **kwargs: Any) -> str:
    with pytest.raises(ProtocolError) as info:
        _read(data, codec, **kwargs)
    return str(info.value)


class CountingCodec:
    """Wraps a codec and counts full decodes, to prove when peek avoids one."""

    name = "counting"

    def __init__(self) -> None:
        self.loads_calls = 0

    def loads(self, data: bytes) -> Any:
        self.loads_calls += 1
        return DEFAULT_CODEC.loads(data)

    def dumps(self, obj: Any) -> bytes:
        return DEFAULT_CODEC.dumps(obj)


# -- round trips -------------------------------------------------------------------


@pytest.mark.parametrize("codec", CODECS)
def test_every_message_type_round_trips(codec: Codec) -> None:
    out = io.BytesIO()
    writer = MessageWriter(out, codec)
    for message in ALL_MESSAGES:
        writer.write(message)
    writer.flush()
    data = out.getvalue()
    assert data.count(b"\n") == len(ALL_MESSAGES)
    assert data.endswith(b"\n")
    assert _read(data, codec) == ALL_MESSAGES


@pytest.mark.parametrize("codec", CODECS)
def test_write_record_fast_path_matches_write(codec: Codec) -> None:
    fast, slow = io.BytesIO(), io.BytesIO()
    MessageWriter(fast, codec).write_record("s", {"id": 1}, "2024-01-01T00:00:00Z")
    MessageWriter(slow, codec).write(RecordMessage("s", {"id": 1}, None, "2024-01-01T00:00:00Z"))
    assert fast.getvalue() == slow.getvalue()
    fast2 = io.BytesIO()
    MessageWriter(fast2, codec).write_record("s", {"id": 1})
    assert b"time_extracted" not in fast2.getvalue()


def test_orjson_output_is_compact_and_ordered() -> None:
    out = io.BytesIO()
    MessageWriter(out).write(RecordMessage("orders", {"id": 1}))
    assert out.getvalue() == b'{"type":"RECORD","stream":"orders","record":{"id":1}}\n'


def test_write_raw_adds_a_newline_only_when_missing() -> None:
    out = io.BytesIO()
    writer = MessageWriter(out)
    writer.write_raw(b'{"type":"STATE","value":{}}')
    writer.write_raw(b'{"type":"STATE","value":{"a":1}}\n')
    assert out.getvalue() == b'{"type":"STATE","value":{}}\n{"type":"STATE","value":{"a":1}}\n'


def test_reader_accepts_any_iterable_of_lines() -> None:
    lines = [b'{"type":"STATE","value":{"a":1}}\n', b'{"type":"STATE","value":{"a":2}}\r\n']
    assert list(MessageReader(lines)) == [StateMessage({"a": 1}), StateMessage({"a": 2})]


# -- codec conformance ---------------------------------------------------------------

TRICKY_LINES: list[tuple[str, bytes, Message]] = [
    (
        "unicode-raw-and-escaped",
        '{"type":"RECORD","stream":"s","record":{"raw":"Zoë 中文 😀","esc":"\\u00e9\\ud83d\\ude00\\n\\t"}}'.encode(),
        RecordMessage("s", {"raw": "Zoë 中文 😀", "esc": "é😀\n\t"}),
    ),
    (
        "escaped-quote-and-backslash-in-stream",
        b'{"type":"RECORD","stream":"we\\"ird\\\\name","record":{"id":1}}',
        RecordMessage('we"ird\\name', {"id": 1}),
    ),
    (
        "big-ints-within-64-bits",
        b'{"type":"RECORD","stream":"s","record":{"i64min":-9223372036854775808,"u64max":18446744073709551615}}',
        RecordMessage("s", {"i64min": -(2**63), "u64max": 2**64 - 1}),
    ),
    (
        "nested-objects-and-arrays",
        b'{"type":"RECORD","stream":"s","record":{"a":{"b":{"c":[1,{"d":null},[true,false]]}},"e":[]}}',
        RecordMessage("s", {"a": {"b": {"c": [1, {"d": None}, [True, False]]}}, "e": []}),
    ),
    (
        "floats",
        b'{"type":"RECORD","stream":"s","record":{"f":0.1,"g":-1.5e-7,"h":1E+3,"i":-0.0}}',
        RecordMessage("s", {"f": 0.1, "g": -1.5e-7, "h": 1000.0, "i": -0.0}),
    ),
    (
        "singer-python-spacing",
        b'{"type": "SCHEMA", "stream": "x", "schema": {"type": "object"}, "key_properties": ["id"]}',
        SchemaMessage("x", {"type": "object"}, ["id"]),
    ),
    (
        "key-order-and-extra-fields",
        b'{"record":{"id":1},"extra":"ignored","stream":"x","type":"RECORD","version":3}',
        RecordMessage("x", {"id": 1}, 3),
    ),
    (
        "state",
        b'{"type":"STATE","value":{"bookmarks":{"a":{"v":"2024-01-01"}},"currently_syncing":null}}',
        StateMessage({"bookmarks": {"a": {"v": "2024-01-01"}}, "currently_syncing": None}),
    ),
    (
        "batch",
        b'{"type":"BATCH","stream":"s","encoding":{"format":"jsonl","compression":"gzip"},"manifest":["file:///a"]}',
        BatchMessage("s", BatchEncoding("jsonl", "gzip"), ["file:///a"]),
    ),
    (
        "activate-version",
        b'{"type":"ACTIVATE_VERSION","stream":"s","version":1700000000000}',
        ActivateVersionMessage("s", 1700000000000),
    ),
]


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(("raw", "expected"), [pytest.param(r, e, id=i) for i, r, e in TRICKY_LINES])
def test_codecs_decode_tricky_lines_identically(codec: Codec, raw: bytes, expected: Message) -> None:
    assert _read(raw + b"\n", codec, require_schema=False) == [expected]


@pytest.mark.parametrize("codec", CODECS)
def test_codecs_agree_on_what_they_write(codec: Codec) -> None:
    record = {
        "s": 'quote " backslash \\ newline \n ctrl \x01 Zoë 😀',
        "i": 2**63 - 1,
        "f": 0.1,
        "n": None,
        "ts": dt.datetime(2024, 1, 2, 3, 4, 5, 123456, tzinfo=dt.UTC),
        "d": dt.date(2024, 1, 2),
        "t": dt.time(3, 4, 5),
        "nested": {"k": [1, "two", {"three": 3.0}]},
    }
    expected = {
        **record,
        "ts": "2024-01-02T03:04:05.123456+00:00",
        "d": "2024-01-02",
        "t": "03:04:05",
    }
    line = codec.dumps(record)
    assert b"\n" not in line
    assert OrjsonCodec().loads(line) == expected
    assert StdlibCodec().loads(line) == expected


@pytest.mark.parametrize(
    ("value", "wire"),
    [
        (Decimal("12345678901234567890.123456789"), b"12345678901234567890.123456789"),
        (Decimal("-0.000000001"), b"-0.000000001"),
        (Decimal("1E+3"), b"1000"),
        (Decimal("42"), b"42"),
        (Decimal("0.10"), b"0.10"),
    ],
)
def test_orjson_writes_decimals_as_exact_json_numbers(value: Decimal, wire: bytes) -> None:
    assert OrjsonCodec().dumps({"d": value}) == b'{"d":' + wire + b"}"
    out = io.BytesIO()
    MessageWriter(out, OrjsonCodec()).write_record("s", {"d": value})
    assert out.getvalue() == b'{"type":"RECORD","stream":"s","record":{"d":' + wire + b"}}\n"


def test_a_decimal_of_a_huge_exponent_is_written_in_exponent_form() -> None:
    # Plain digits would take a gigabyte for 1E+999999999; the exponent form is the same JSON number.
    assert OrjsonCodec().dumps({"d": Decimal("1E+999999999")}) == b'{"d":1E+999999999}'
    assert OrjsonCodec().dumps({"d": Decimal("-1E-5000")}) == b'{"d":-1E-5000}'


def test_orjson_writes_non_finite_decimals_as_strings() -> None:
    assert OrjsonCodec().dumps({"a": Decimal("NaN"), "b": Decimal("-Infinity")}) == b'{"a":"NaN","b":"-Infinity"}'


def test_stdlib_codec_keeps_every_decimal_digit() -> None:
    line = StdlibCodec().dumps({"d": Decimal("12345678901234567890.123456789")})
    assert b"12345678901234567890.123456789" in line


def test_orjson_writes_bytes_sets_and_tuples() -> None:
    assert OrjsonCodec().loads(OrjsonCodec().dumps({"b": b"\x00\xff", "t": (1, 2), "s": {3}})) == {
        "b": "AP8=",
        "t": [1, 2],
        "s": [3],
    }


def test_orjson_rejects_unknown_objects() -> None:
    with pytest.raises(TypeError):
        OrjsonCodec().dumps({"x": object()})


@pytest.mark.parametrize("codec", [pytest.param(ExactCodec(), id="exact"), pytest.param(StdlibCodec(), id="stdlib")])
def test_exact_codecs_keep_integers_wider_than_64_bits(codec: Codec) -> None:
    raw = b'{"type":"RECORD","stream":"s","record":{"n":123456789012345678901234567890,"m":-18446744073709551617}}'
    assert _read(raw, codec, require_schema=False) == [
        RecordMessage("s", {"n": 123456789012345678901234567890, "m": -18446744073709551617})
    ]


# -- stream framing and errors ---------------------------------------------------------


def test_blank_lines_are_skipped_but_counted() -> None:
    data = (
        b"\n"
        b'{"type":"SCHEMA","stream":"s","schema":{},"key_properties":[]}\n'
        b"   \n"
        b"\r\n"
        b'{"type":"RECORD","stream":"s","record":{"id":1}}\n'
        b"\n"
    )
    reader = MessageReader(io.BytesIO(data))
    frames = list(reader.frames())
    assert [f.line for f in frames] == [2, 5]
    assert frames[1].raw == b'{"type":"RECORD","stream":"s","record":{"id":1}}'
    assert reader.line == 6
    assert _read(data) == [SchemaMessage("s", {}, []), RecordMessage("s", {"id": 1})]


def test_error_line_number_counts_blank_lines() -> None:
    assert _error(b'\n\n{"type":"STATE","value":{}}\n{oops\n').startswith("line 4: malformed JSON")


@pytest.mark.parametrize("codec", CODECS)
@pytest.mark.parametrize(
    ("data", "text"),
    [
        pytest.param(b'{"type":"STATE","value":{}}\n{"type":"RECORD",', "line 2: malformed JSON (", id="truncated"),
        pytest.param(b"not json at all\n", "line 1: malformed JSON (", id="garbage"),
        pytest.param(b"\xff\xfe{}\n", "line 1: malformed JSON (", id="invalid-utf8"),
        pytest.param(b"[1, 2]\n", "line 1: expected a JSON object, got list", id="array"),
        pytest.param(b'"RECORD"\n', "line 1: expected a JSON object, got str", id="string"),
        pytest.param(b"42\n", "line 1: expected a JSON object, got int", id="number"),
        pytest.param(b"null\n", "line 1: expected a JSON object, got NoneType", id="null"),
        pytest.param(b'{"stream":"s","record":{}}\n', "line 1, stream 's': message has no 'type'", id="no-type"),
        pytest.param(
            b'{"type":"STATE","value":{}}\n{"type":"RECORDS","stream":"s"}\n',
            "line 2, stream 's': unknown message type 'RECORDS'",
            id="unknown-type",
        ),
        pytest.param(b'{"type":"RECORD","record":{}}\n', "line 1: RECORD message has no 'stream'", id="no-stream"),
        pytest.param(
            b'{"type":"SCHEMA","stream":"s","schema":{}}\n{"type":"RECORD","stream":"s"}\n',
            "line 2, stream 's': RECORD message has no 'record'",
            id="no-record",
        ),
        pytest.param(b'{"type":"STATE"}\n', "line 1: STATE message has no 'value'", id="no-value"),
        pytest.param(
            b'{"type":"SCHEMA","stream":"s","schema":{}}\n{"type":"RECORD","stream":"s","record":"x"}\n',
            "line 2, stream 's': RECORD message field 'record' must be dict, got str",
            id="record-not-object",
        ),
        pytest.param(
            b'{"type":"RECORD","stream":["s"],"record":{}}\n',
            "line 1: RECORD message field 'stream' must be str, got list",
            id="stream-not-string",
        ),
        pytest.param(
            b'{"type":"SCHEMA","stream":"s","schema":true}\n',
            "line 1, stream 's': SCHEMA message field 'schema' must be dict, got bool",
            id="schema-not-object",
        ),
        pytest.param(
            b'{"type":"STATE","value":[]}\n', "line 1: STATE message field 'value' must be dict, got list", id="value"
        ),
    ],
)
def test_bad_lines_raise_protocol_error_naming_the_line(codec: Codec, data: bytes, text: str) -> None:
    assert _error(data, codec).startswith(text)


def test_malformed_json_error_shows_a_snippet_of_the_line() -> None:
    text = _error(b'{"type":"RECORD","stream":"orders",' + b"x" * 200 + b"\n")
    assert text.startswith("line 1: malformed JSON (")
    assert '{"type":"RECORD","stream":"orders",xxx' in text
    assert "x" * 100 not in text  # the snippet is cut short


def test_record_before_schema_names_line_and_stream() -> None:
    data = (
        b'{"type":"SCHEMA","stream":"customers","schema":{}}\n'
        b'{"type":"RECORD","stream":"customers","record":{}}\n'
        b'{"type":"RECORD","stream":"orders","record":{"id":1}}\n'
    )
    assert _error(data) == "line 3, stream 'orders': RECORD received before any SCHEMA for this stream"


def test_require_schema_false_allows_records_without_schema() -> None:
    data = b'{"type":"RECORD","stream":"orders","record":{"id":1}}\n'
    assert _read(data, require_schema=False) == [RecordMessage("orders", {"id": 1})]


def test_messages_before_the_error_are_delivered() -> None:
    reader = MessageReader(io.BytesIO(b'{"type":"STATE","value":{"n":1}}\n{bad\n'))
    it = iter(reader)
    assert next(it) == StateMessage({"n": 1})
    with pytest.raises(ProtocolError, match=r"^line 2: "):
        next(it)


def test_decode_line_returns_the_object() -> None:
    assert decode_line(b'{"a":1}', 9) == {"a": 1}
    with pytest.raises(ProtocolError, match=r"^line 9: expected a JSON object, got list$"):
        decode_line(b"[]", 9)


# -- Frame.peek ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b'{"type":"RECORD","stream":"orders","record":{"id":1}}', ("RECORD", "orders"), id="compact"),
        pytest.param(
            b'{"type": "RECORD", "stream": "x", "record": {"id": 1}, "version": 1}', ("RECORD", "x"), id="spaced"
        ),
        pytest.param(b'{"type" : "SCHEMA" ,\t"stream" :  "s", "schema": {}}', ("SCHEMA", "s"), id="odd-spacing"),
        pytest.param(b'{"type":"STATE","value":{"bookmarks":{}}}', ("STATE", None), id="state"),
        pytest.param(b'{"type": "STATE", "value": {}}', ("STATE", None), id="state-spaced"),
        pytest.param(b'{"type":"ACTIVATE_VERSION","stream":"s","version":1}', ("ACTIVATE_VERSION", "s"), id="activate"),
        pytest.param('{"type":"RECORD","stream":"café","record":{}}'.encode(), ("RECORD", "café"), id="utf8-stream"),
    ],
)
def test_peek_fast_path_reads_type_and_stream_without_decoding(raw: bytes, expected: tuple[str, str | None]) -> None:
    codec = CountingCodec()
    assert Frame(1, raw).peek(codec) == expected
    assert codec.loads_calls == 0


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        pytest.param(b'{"type":"RECORD","stream":"a\\"b","record":{}}', ("RECORD", 'a"b'), id="escaped-quote"),
        pytest.param(b'{"type":"RECORD","stream":"caf\\u00e9","record":{}}', ("RECORD", "café"), id="escaped-unicode"),
        pytest.param(
            b'{"record":{"pad":"' + b"p" * 300 + b'"},"type":"RECORD","stream":"late"}',
            ("RECORD", "late"),
            id="stream-beyond-peek-window",
        ),
        pytest.param(b'{"stream":"s","record":{}}', ("None", "s"), id="no-type"),
    ],
)
def test_peek_falls_back_to_a_full_decode(raw: bytes, expected: tuple[str, str | None]) -> None:
    codec = CountingCodec()
    assert Frame(1, raw).peek(codec) == expected
    assert codec.loads_calls == 1


def test_peek_on_a_malformed_line_names_the_line() -> None:
    with pytest.raises(ProtocolError, match=r"^line 12: malformed JSON"):
        Frame(12, b'{"type":"RECORD","stream":"a\\"b",').peek()


def test_peek_of_frames_from_a_reader() -> None:
    data = (
        b'{"type":"SCHEMA","stream":"s","schema":{}}\n\n'
        b'{"type": "RECORD", "stream": "s", "record": {}}\n'
        b'{"type":"STATE","value":{}}\n'
    )
    peeks = [(f.line, f.peek()) for f in MessageReader(io.BytesIO(data)).frames()]
    assert peeks == [(1, ("SCHEMA", "s")), (3, ("RECORD", "s")), (4, ("STATE", None))]


def test_peek_state_has_no_stream_even_when_its_value_names_one() -> None:
    raw = b'{"type":"STATE","value":{"stream":"orders","offset":5}}'
    assert Frame(1, raw).peek() == ("STATE", None)


def test_peek_ignores_keys_nested_in_the_record_when_type_is_not_first() -> None:
    # What `json.dumps(message, sort_keys=True)` (or `jq -S`) writes: the record comes first.
    raw = b'{"record":{"stream":"web","type":"STATE"},"stream":"orders","type":"RECORD"}'
    assert Frame(1, raw).peek() == ("RECORD", "orders")


def test_exact_codec_keeps_every_digit_of_decimals() -> None:
    raw = b'{"type":"RECORD","stream":"s","record":{"x":1.000000000000000000001,"y":2}}'
    (msg,) = _read(raw, ExactCodec(), require_schema=False)
    assert msg.record == {"x": Decimal("1.000000000000000000001"), "y": 2}
    assert ExactCodec().dumps(msg.record) == b'{"x":1.000000000000000000001,"y":2}'


def test_orjson_codec_rounds_what_a_float_cannot_hold() -> None:
    """Documented trade-off: the fast codec is lossy beyond float/int64; targets pick ExactCodec."""
    (msg,) = _read(
        b'{"type":"RECORD","stream":"s","record":{"x":1.000000000000000000001}}', OrjsonCodec(), require_schema=False
    )
    assert msg.record["x"] == 1.0
