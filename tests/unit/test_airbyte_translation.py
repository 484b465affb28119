"""The byte-level translators: a tap's Singer output as Airbyte messages, Airbyte destination
input as Singer lines, and the target's echoed states back as Airbyte STATEs."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest

from dpone.taps.framework.airbyte_writer import AirbyteOutput
from dpone.targets.framework.airbyte_input import AirbyteInput, StateEcho, configured_streams
from dpone.targets.framework.capabilities import APPEND, OVERWRITE, UPSERT
from dpone_protocol.airbyte import StreamNames
from dpone_protocol.catalog import Catalog, CatalogEntry
from dpone_protocol.codec import MessageWriter
from dpone_protocol.errors import ConfigError, ProtocolError
from dpone_protocol.messages import RecordMessage, SchemaMessage, StateMessage


def _lines(data: bytes) -> list[dict[str, Any]]:
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def _names() -> StreamNames:
    entry = CatalogEntry("public-orders", {"properties": {}})
    entry.stream_metadata().update({"schema-name": "public", "table-name": "orders"})
    return StreamNames(Catalog([entry]))


def test_records_are_spliced_with_every_digit_and_a_namespace() -> None:
    out = io.BytesIO()
    output = AirbyteOutput(out, _names())
    wide = b'{"type":"RECORD","stream":"public-orders","record":{"n":12345678901234567890.123456789,"s":"a\\"b"},'
    output.write(wide + b'"version":3,"time_extracted":"2024-01-01T00:00:00+00:00"}\n')
    (message,) = _lines(out.getvalue())
    assert message["record"]["namespace"] == "public"
    assert message["record"]["stream"] == "orders"
    assert b'"data":{"n":12345678901234567890.123456789,"s":"a\\"b"}}}' in out.getvalue()
    assert isinstance(message["record"]["emitted_at"], int)


def test_lines_split_across_writes_and_other_layouts_are_decoded() -> None:
    out = io.BytesIO()
    output = AirbyteOutput(out, StreamNames())
    writer = MessageWriter(output)  # type: ignore[arg-type]
    writer.write(SchemaMessage("s", {"properties": {}}))
    line = b'{"record":{"v":0.1000000000000000055511151231257827},"stream":"s","type":"RECORD"}\n'
    output.write(line[:10])
    output.write(line[10:])
    writer.write(RecordMessage("s", {"v": 2}))  # no time_extracted: not the framework's hot layout
    writer.write(StateMessage({"bookmarks": {"s": {"at": 2}}}))
    kinds = [(m["type"], m.get("trace", {}).get("type")) for m in _lines(out.getvalue())]
    assert kinds == [("TRACE", "STREAM_STATUS"), ("RECORD", None), ("RECORD", None), ("STATE", None)]
    assert b'"data":{"v":0.1000000000000000055511151231257827}' in out.getvalue()


def test_state_is_sent_per_stream_when_it_moves_or_has_records() -> None:
    out = io.BytesIO()
    output = AirbyteOutput(out, StreamNames(), {"a": {"v": 1}, "b": {"v": 1}})
    writer = MessageWriter(output)  # type: ignore[arg-type]
    writer.write(StateMessage({"bookmarks": {"a": {"v": 1}, "b": {"v": 1}}}))  # nothing new
    writer.write(StateMessage({"bookmarks": {"a": {"v": 2}, "b": {"v": 1}}}))
    writer.write_record("b", {"x": 1}, "2024-01-01T00:00:00+00:00")
    writer.write(StateMessage({"bookmarks": {"a": {"v": 2}, "b": {"v": 1}}}))
    states = [m["state"] for m in _lines(out.getvalue()) if m["type"] == "STATE"]
    assert [(s["stream"]["stream_descriptor"]["name"], s["sourceStats"]["recordCount"]) for s in states] == [
        ("a", 0.0),
        ("b", 1.0),
    ]


def test_batch_messages_are_refused() -> None:
    output = AirbyteOutput(io.BytesIO(), StreamNames())
    with pytest.raises(ConfigError, match="batch_config is Singer-only"):
        output.write(b'{"type":"BATCH","stream":"s","encoding":{},"manifest":[]}\n')


def _catalog(mode: str = "append_dedup", **stream: Any) -> dict[str, Any]:
    return {
        "streams": [
            {
                "stream": {
                    "name": "orders",
                    "json_schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
                    "supported_sync_modes": ["full_refresh"],
                    **stream,
                },
                "sync_mode": "full_refresh",
                "destination_sync_mode": mode,
                "primary_key": [["id"]],
            }
        ]
    }


@pytest.mark.parametrize(("mode", "method"), [("append", APPEND), ("overwrite", OVERWRITE), ("append_dedup", UPSERT)])
def test_destination_sync_modes_map_to_load_methods(mode: str, method: str) -> None:
    (stream,) = configured_streams(_catalog(mode, namespace="public"), (APPEND, OVERWRITE, UPSERT))
    assert stream.load_method == method
    assert stream.singer_stream == "public-orders"
    assert stream.key_properties == ["id"]


def test_unsupported_modes_and_missing_keys_are_config_errors() -> None:
    with pytest.raises(ConfigError, match=r"'append_dedup' is not supported \(supported: append, overwrite\)"):
        configured_streams(_catalog(), (APPEND, OVERWRITE))
    with pytest.raises(ConfigError, match="'update' is not supported"):
        configured_streams(_catalog("update"), (APPEND, OVERWRITE, UPSERT))
    catalog = _catalog()
    catalog["streams"][0]["primary_key"] = []
    with pytest.raises(ConfigError, match="append_dedup needs a primary_key"):
        configured_streams(catalog, (UPSERT,))
    with pytest.raises(ConfigError, match="two streams"):
        configured_streams({"streams": _catalog()["streams"] * 2}, (UPSERT,))


def _input(*messages: Any) -> list[bytes]:
    streams = configured_streams(_catalog(namespace="public"), (UPSERT,))
    raw = [m if isinstance(m, bytes) else orjson.dumps(m) for m in messages]
    return list(AirbyteInput(raw, streams).lines())


def test_input_keeps_one_line_per_line() -> None:
    out = _input(
        {"type": "RECORD", "record": {"stream": "orders", "namespace": "public", "data": {"id": 1}, "emitted_at": 0}},
        b"",
        {"type": "LOG", "log": {"level": "INFO", "message": "hi"}},
        {"type": "STATE", "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": "orders"}}}},
    )
    assert len(out) == 4
    record = orjson.loads(out[0])
    assert record == {
        "type": "RECORD",
        "stream": "public-orders",
        "record": {"id": 1},
        "time_extracted": "1970-01-01T00:00:00+00:00",
    }
    assert out[1].strip() == out[2].strip() == b""
    assert orjson.loads(out[3])["type"] == "STATE"


@pytest.mark.parametrize(
    ("message", "error"),
    [
        (b"{not json", r"line 2: malformed JSON"),
        ({"record": {}}, "line 2: Airbyte message has no 'type'"),
        ({"type": "SPEC", "spec": {}}, "'SPEC' has no place"),
        ({"type": "RECORD", "record": {"stream": "orders", "data": {}}}, "'orders', which the configured catalog"),
        ({"type": "RECORD", "record": {"stream": "orders", "namespace": "public"}}, "needs record.stream and"),
        ({"type": "STATE"}, "needs a 'state' object"),
        ({"type": "STATE", "state": {"type": "STREAM", "stream": {}}}, "stream_descriptor.name"),
        ({"type": "STATE", "state": {"type": "GLOBAL"}}, "needs a 'global' object"),
        ({"type": "STATE", "state": {"type": "NEW"}}, "unknown Airbyte state type"),
    ],
)
def test_malformed_input_names_the_line(message: Any, error: str) -> None:
    with pytest.raises(ProtocolError, match=error):
        _input({"type": "TRACE", "trace": {}}, message)


def test_echo_sends_each_new_state_once_in_arrival_order() -> None:
    a1 = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "a"}, "stream_state": {"v": 1}}}
    b1 = {"type": "STREAM", "stream": {"stream_descriptor": {"name": "b"}, "stream_state": {"v": 1}}}
    legacy = {"type": "LEGACY", "data": {"x": 1}}
    singer = _input(*({"type": "STATE", "state": s} for s in (a1, b1, legacy, a1)))
    out = io.BytesIO()
    echo = StateEcho(out)
    echo.write(singer[1])  # the loop coalesced a1 into b1
    echo.write(singer[2][:5])
    echo.write(singer[2][5:])
    echo.write(singer[3])  # the same a1 again, after more records: echoed again
    assert [m["state"] for m in _lines(out.getvalue())] == [a1, b1, legacy, a1]
    assert echo.echoed == 4
