"""Messages: wire dicts identical to singer-python / the Singer SDK, and checked decoding."""

from __future__ import annotations

from typing import Any

import pytest
from singer_sdk.singerlib import messages as sdk

from dpone_protocol.errors import ProtocolError
from dpone_protocol.messages import (
    ActivateVersionMessage,
    BatchEncoding,
    BatchMessage,
    MessageType,
    RecordMessage,
    SchemaMessage,
    StateMessage,
    from_dict,
)

SCHEMA = {"type": "object", "properties": {"id": {"type": "integer"}}}


def _sdk_wire(message: Any) -> dict[str, Any]:
    """The SDK's to_dict with its enum `type` turned into the plain string that goes on the wire."""
    out = message.to_dict()
    out["type"] = str(getattr(out["type"], "value", out["type"]))
    return out


def test_schema_to_dict_omits_empty_bookmark_properties() -> None:
    msg = SchemaMessage("orders", SCHEMA, ["id"])
    assert msg.to_dict() == {"type": "SCHEMA", "stream": "orders", "schema": SCHEMA, "key_properties": ["id"]}
    assert "bookmark_properties" not in SchemaMessage("orders", SCHEMA, ["id"], []).to_dict()
    assert msg.to_dict() == _sdk_wire(sdk.SchemaMessage(stream="orders", schema=SCHEMA, key_properties=["id"]))


def test_schema_to_dict_keeps_bookmark_properties() -> None:
    msg = SchemaMessage("orders", SCHEMA, ["id"], ["updated_at"])
    assert msg.to_dict()["bookmark_properties"] == ["updated_at"]
    expected = sdk.SchemaMessage(
        stream="orders", schema=SCHEMA, key_properties=["id"], bookmark_properties=["updated_at"]
    )
    assert msg.to_dict() == _sdk_wire(expected)


def test_schema_key_properties_default_to_empty_list_on_the_wire() -> None:
    assert SchemaMessage("s", SCHEMA).to_dict()["key_properties"] == []


def test_record_to_dict_omits_version_and_time_extracted_when_none() -> None:
    msg = RecordMessage("orders", {"id": 1})
    assert msg.to_dict() == {"type": "RECORD", "stream": "orders", "record": {"id": 1}}
    assert msg.to_dict() == _sdk_wire(sdk.RecordMessage(stream="orders", record={"id": 1}))


def test_record_to_dict_keeps_version_zero_and_time_extracted() -> None:
    msg = RecordMessage("orders", {"id": 1}, 0, "2024-01-02T03:04:05+00:00")
    assert msg.to_dict() == {
        "type": "RECORD",
        "stream": "orders",
        "record": {"id": 1},
        "version": 0,
        "time_extracted": "2024-01-02T03:04:05+00:00",
    }
    assert RecordMessage("s", {}, 5).to_dict() == _sdk_wire(sdk.RecordMessage(stream="s", record={}, version=5))


def test_state_and_activate_version_to_dict_match_the_sdk() -> None:
    value = {"bookmarks": {"orders": {"replication_key_value": 10}}}
    assert StateMessage(value).to_dict() == {"type": "STATE", "value": value}
    assert StateMessage(value).to_dict() == _sdk_wire(sdk.StateMessage(value=value))
    assert ActivateVersionMessage("orders", 3).to_dict() == {
        "type": "ACTIVATE_VERSION",
        "stream": "orders",
        "version": 3,
    }
    assert ActivateVersionMessage("orders", 3).to_dict() == _sdk_wire(
        sdk.ActivateVersionMessage(stream="orders", version=3)
    )


def test_batch_to_dict_is_the_sdk_batch_shape() -> None:
    msg = BatchMessage("orders", BatchEncoding("jsonl", "gzip"), ["file:///tmp/a.jsonl.gz"])
    assert msg.to_dict() == {
        "type": "BATCH",
        "stream": "orders",
        "encoding": {"format": "jsonl", "compression": "gzip"},
        "manifest": ["file:///tmp/a.jsonl.gz"],
    }


def test_batch_encoding_defaults() -> None:
    assert BatchEncoding() == BatchEncoding("jsonl", "gzip")


def test_message_type_values_are_the_wire_strings() -> None:
    assert [t.value for t in MessageType] == ["SCHEMA", "RECORD", "STATE", "BATCH", "ACTIVATE_VERSION"]
    assert MessageType.RECORD == "RECORD"


def test_from_dict_batch_with_encoding_and_manifest() -> None:
    msg = from_dict(
        {
            "type": "BATCH",
            "stream": "orders",
            "encoding": {"format": "parquet", "compression": None},
            "manifest": ["file:///tmp/1.parquet", "file:///tmp/2.parquet"],
        }
    )
    assert msg == BatchMessage(
        "orders", BatchEncoding("parquet", None), ["file:///tmp/1.parquet", "file:///tmp/2.parquet"]
    )


def test_from_dict_batch_encoding_defaults_to_uncompressed_jsonl() -> None:
    msg = from_dict({"type": "BATCH", "stream": "s", "encoding": {}, "manifest": []})
    assert isinstance(msg, BatchMessage)
    assert msg.encoding == BatchEncoding("jsonl", None)


@pytest.mark.parametrize(
    "message",
    [
        SchemaMessage("orders", SCHEMA, ["id"], ["updated_at"]),
        SchemaMessage("orders", SCHEMA, []),
        RecordMessage("orders", {"id": 1, "nested": {"a": [1, None]}}),
        RecordMessage("orders", {"id": 1}, 7, "2024-01-01T00:00:00Z"),
        StateMessage({"bookmarks": {}}),
        BatchMessage("orders", BatchEncoding("jsonl", "gzip"), ["file:///x.jsonl.gz"]),
        ActivateVersionMessage("orders", 1700000000000),
    ],
)
def test_from_dict_inverts_to_dict(message: Any) -> None:
    assert from_dict(message.to_dict()) == message


def test_from_dict_schema_with_null_key_properties() -> None:
    msg = from_dict({"type": "SCHEMA", "stream": "s", "schema": SCHEMA, "key_properties": None})
    assert msg == SchemaMessage("s", SCHEMA, [])


def test_from_dict_record_ignores_a_non_integer_version() -> None:
    msg = from_dict({"type": "RECORD", "stream": "s", "record": {}, "version": "3"})
    assert msg == RecordMessage("s", {})


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        ([1, 2], "line 4: expected a JSON object, got list"),
        ({"stream": "s"}, "line 4, stream 's': message has no 'type'"),
        ({"type": "HELLO", "stream": "s"}, "line 4, stream 's': unknown message type 'HELLO'"),
        ({"type": "RECORD", "record": {}}, "line 4: RECORD message has no 'stream'"),
        ({"type": "RECORD", "stream": "s"}, "line 4, stream 's': RECORD message has no 'record'"),
        (
            {"type": "RECORD", "stream": "s", "record": [1]},
            "line 4, stream 's': RECORD message field 'record' must be dict, got list",
        ),
        ({"type": "RECORD", "stream": 5, "record": {}}, "line 4: RECORD message field 'stream' must be str, got int"),
        ({"type": "STATE"}, "line 4: STATE message has no 'value'"),
        ({"type": "STATE", "value": "x"}, "line 4: STATE message field 'value' must be dict, got str"),
        ({"type": "SCHEMA", "stream": "s"}, "line 4, stream 's': SCHEMA message has no 'schema'"),
        (
            {"type": "SCHEMA", "stream": "s", "schema": {}, "key_properties": "id"},
            "line 4, stream 's': key_properties must be a list of strings",
        ),
        (
            {"type": "SCHEMA", "stream": "s", "schema": {}, "key_properties": [1]},
            "line 4, stream 's': key_properties must be a list of strings",
        ),
        ({"type": "ACTIVATE_VERSION", "stream": "s"}, "line 4, stream 's': ACTIVATE_VERSION message has no 'version'"),
        (
            {"type": "ACTIVATE_VERSION", "stream": "s", "version": "1"},
            "line 4, stream 's': ACTIVATE_VERSION message field 'version' must be int, got str",
        ),
        ({"type": "BATCH", "stream": "s", "manifest": []}, "line 4, stream 's': BATCH message has no 'encoding'"),
        (
            {"type": "BATCH", "stream": "s", "encoding": {}, "manifest": "x"},
            "line 4, stream 's': BATCH message field 'manifest' must be list, got str",
        ),
    ],
)
def test_from_dict_rejects_bad_messages_naming_line_and_stream(obj: Any, text: str) -> None:
    with pytest.raises(ProtocolError) as info:
        from_dict(obj, line=4)
    assert str(info.value) == text
    assert info.value.line == 4
