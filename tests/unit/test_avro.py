"""Avro schemas from Singer schemas and back, and records through Confluent-framed Avro and back via
the stand-in registry: every type, exact decimals, microsecond timestamps, names Avro refuses."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import orjson
import pytest

from dpone_drivers.avro import AvroDecoder, AvroEncoder
from dpone_drivers.avro_schema import avro_name, avro_schema_for, json_schema_for
from dpone_drivers.schema_registry import SchemaRegistry
from dpone_protocol.codec import DEFAULT_CODEC, EXACT_CODEC
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError
from dpone_protocol.json_schema import ColumnType, Logical, column_type, stream_columns
from tests.tools.fake_schema_registry import FakeSchemaRegistry

NULL = ["null"]
PROPERTIES: dict[str, Any] = {
    "id": {"type": "integer"},
    "name": {"type": ["null", "string"]},
    "score": {"type": ["null", "number"]},
    "active": {"type": ["null", "boolean"]},
    "at": {"type": ["null", "string"], "format": "date-time"},
    "day": {"type": ["null", "string"], "format": "date"},
    "clock": {"type": ["null", "string"], "format": "time"},
    "uid": {"type": ["null", "string"], "format": "uuid"},
    "amount": {"type": ["null", "string"], "format": "singer.decimal", "precision": 38, "scale": 10},
    "price": {"type": ["null", "number"], "multipleOf": 0.01, "maximum": 1000000},
    "big": {"type": ["null", "integer"], "minimum": -(10**30), "maximum": 10**30},
    "loose": {"type": ["null", "string"], "format": "singer.decimal"},
    "tags": {"type": ["null", "array"], "items": {"type": "string"}},
    "stamps": {"type": ["null", "array"], "items": {"type": ["null", "string"], "format": "date-time"}},
    "matrix": {"type": ["null", "array"], "items": {"type": "array", "items": {"type": "integer"}}},
    "meta": {"type": ["null", "object"], "properties": {"a": {"type": "integer"}}},
    "anything": {},
    "either": {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]},
    "mixed": {"type": ["string", "number"]},
}
STREAM_SCHEMA = {"type": "object", "properties": PROPERTIES}


def _field(schema: dict[str, Any], name: str) -> dict[str, Any]:
    return next(f for f in schema["fields"] if f.get("dpone.property", f["name"]) == name)


# --- Singer -> Avro ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("prop", "avro_type", "text"),
    [
        ("id", "long", None),
        ("name", "string", None),
        ("score", "double", None),
        ("active", "boolean", None),
        ("at", {"type": "long", "logicalType": "timestamp-micros"}, None),
        ("day", {"type": "int", "logicalType": "date"}, None),
        ("clock", {"type": "long", "logicalType": "time-micros"}, None),
        ("uid", {"type": "string", "logicalType": "uuid"}, None),
        ("amount", {"type": "bytes", "logicalType": "decimal", "precision": 38, "scale": 10}, None),
        ("price", {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2}, None),
        ("big", "string", "decimal"),
        ("loose", "string", "decimal"),
        ("tags", {"type": "array", "items": ["null", "string"]}, None),
        ("stamps", {"type": "array", "items": ["null", {"type": "long", "logicalType": "timestamp-micros"}]}, None),
        ("matrix", "string", "json"),
        ("meta", "string", "json"),
        ("anything", "string", "json"),
        ("either", "string", "json"),
        ("mixed", "string", "json"),
    ],
)
def test_each_json_type_maps_to_a_nullable_avro_field(prop: str, avro_type: Any, text: str | None) -> None:
    field = _field(avro_schema_for("users", STREAM_SCHEMA), prop)
    assert field["type"] == ["null", avro_type]
    assert field["default"] is None
    assert field.get("dpone.text") == text


def test_the_record_is_named_after_the_stream_in_the_namespace() -> None:
    schema = avro_schema_for("public-users", STREAM_SCHEMA, namespace="acme.sales")
    assert (schema["type"], schema["name"], schema["namespace"]) == ("record", "public_users", "acme.sales")
    assert [f.get("dpone.property", f["name"]) for f in schema["fields"]] == list(PROPERTIES)


def test_a_bad_namespace_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="namespace"):
        avro_schema_for("s", STREAM_SCHEMA, namespace="my-team")


def test_a_schema_without_properties_is_a_data_error() -> None:
    with pytest.raises(DataError, match="no 'properties'"):
        avro_schema_for("s", {"type": "object"})


def test_the_same_input_gives_the_same_schema_byte_for_byte() -> None:
    first = json.dumps(avro_schema_for("users", STREAM_SCHEMA))
    again = json.dumps(avro_schema_for("users", json.loads(json.dumps(STREAM_SCHEMA))))
    assert first == again


@pytest.mark.parametrize(
    ("text", "name"),
    [("ok_Name1", "ok_Name1"), ("a-b", "a_b"), ("1st", "_1st"), ("", "_"), ("prix €", "prix__"), ("a.b", "a_b")],
)
def test_names_avro_refuses_are_made_valid(text: str, name: str) -> None:
    assert avro_name(text) == name


def test_renamed_fields_keep_their_property_and_collisions_get_a_suffix() -> None:
    props = {"a-b": {"type": "string"}, "a_b": {"type": "string"}, "a b": {"type": "string"}, "9": {"type": "string"}}
    fields = avro_schema_for("s", {"properties": props})["fields"]
    assert [(f["name"], f.get("dpone.property")) for f in fields] == [
        ("a_b", "a-b"),
        ("a_b_2", "a_b"),
        ("a_b_3", "a b"),
        ("_9", "9"),
    ]


def test_an_appended_property_is_a_backward_compatible_version() -> None:
    with FakeSchemaRegistry() as fake:
        registry = SchemaRegistry(fake.url, Redactor())
        first = registry.register("users-value", avro_schema_for("users", STREAM_SCHEMA))
        grown = {"properties": {**PROPERTIES, "extra": {"type": "integer"}}}
        assert registry.register("users-value", avro_schema_for("users", grown)) != first


# --- Avro -> Singer ----------------------------------------------------------------------------


def test_a_singer_schema_survives_avro_as_the_same_logical_types() -> None:
    back = json_schema_for(avro_schema_for("users", STREAM_SCHEMA))
    assert list(back["properties"]) == list(PROPERTIES)
    before, after = stream_columns(STREAM_SCHEMA, "s"), stream_columns(back, "s")
    for name in ("id", "name", "score", "active", "at", "day", "clock", "uid", "amount", "price", "tags", "stamps"):
        assert (after[name].logical, after[name].precision, after[name].scale) == (
            before[name].logical,
            before[name].precision,
            before[name].scale,
        ), name
        assert after[name].nullable
    assert back["properties"]["loose"] == {"type": ["null", "string"], "format": "singer.decimal"}
    for name in ("matrix", "meta", "anything", "either", "mixed"):
        assert back["properties"][name] == {}


@pytest.mark.parametrize(
    ("avro_type", "expected"),
    [
        ("boolean", {"type": "boolean"}),
        ("int", {"type": "integer", "minimum": -(2**31), "maximum": 2**31 - 1}),
        ("long", {"type": "integer"}),
        ("float", {"type": "number", "format": "float"}),
        ("double", {"type": "number", "format": "double"}),
        ("string", {"type": "string"}),
        ("bytes", {"type": "string", "contentEncoding": "base64"}),
        ({"type": "fixed", "name": "f", "size": 4}, {"type": "string", "contentEncoding": "base64"}),
        ({"type": "enum", "name": "e", "symbols": ["A", "B"]}, {"type": "string", "enum": ["A", "B"]}),
        ({"type": "array", "items": "long"}, {"type": "array", "items": {"type": "integer"}}),
        ({"type": "map", "values": "string"}, {"type": "object", "additionalProperties": {"type": "string"}}),
        ({"type": "long", "logicalType": "timestamp-millis"}, {"type": "string", "format": "date-time"}),
        ({"type": "long", "logicalType": "timestamp-micros"}, {"type": "string", "format": "date-time"}),
        ({"type": "long", "logicalType": "local-timestamp-micros"}, {"type": "string", "format": "date-time"}),
        ({"type": "int", "logicalType": "date"}, {"type": "string", "format": "date"}),
        ({"type": "int", "logicalType": "time-millis"}, {"type": "string", "format": "time"}),
        ({"type": "long", "logicalType": "time-micros"}, {"type": "string", "format": "time"}),
        ({"type": "string", "logicalType": "uuid"}, {"type": "string", "format": "uuid"}),
        ({"type": "string", "logicalType": "no-such-logical-type"}, {"type": "string"}),
        (["null", "string", "long"], {"anyOf": [{"type": "string"}, {"type": "integer"}, {"type": "null"}]}),
        (
            {"type": "record", "name": "inner", "fields": [{"name": "x", "type": ["null", "long"], "doc": "the x"}]},
            {"type": "object", "properties": {"x": {"type": ["null", "integer"], "description": "the x"}}},
        ),
    ],
)
def test_each_avro_type_maps_to_json_schema(avro_type: Any, expected: dict[str, Any]) -> None:
    schema = {"type": "record", "name": "r", "fields": [{"name": "v", "type": avro_type}]}
    assert json_schema_for(schema) == {"type": "object", "properties": {"v": expected}}


def test_a_nullable_enum_admits_null() -> None:
    enum = {"type": "enum", "name": "e", "symbols": ["A"]}
    schema = {"type": "record", "name": "r", "fields": [{"name": "v", "type": ["null", enum]}]}
    assert json_schema_for(schema)["properties"]["v"] == {"type": ["null", "string"], "enum": ["A", None]}


@pytest.mark.parametrize(("precision", "scale"), [(38, 0), (38, 10), (9, 2), (18, 0), (20, 5), (5, 5), (76, 38)])
def test_avro_decimals_read_back_with_their_precision_and_scale(precision: int, scale: int) -> None:
    dec = {"type": "bytes", "logicalType": "decimal", "precision": precision, "scale": scale}
    prop = json_schema_for({"type": "record", "name": "r", "fields": [{"name": "v", "type": dec}]})["properties"]["v"]
    assert prop["type"] == "number"
    orjson.dumps(prop)  # catalogs are written without a hook for Decimal or big ints
    read = column_type(prop)
    assert read.logical is Logical.DECIMAL and read.scale == scale
    # p == s has no integer digit; the bound's leading 0 reads as one, a column wider by one.
    assert read.precision == (precision + 1 if precision == scale else precision)
    top = Decimal(10) ** (precision - scale) - Decimal(10) ** -scale
    if precision <= 15 or (scale == 0 and precision <= 18):
        assert Decimal(str(prop["maximum"])) == top


def test_named_types_can_be_referred_to_by_name() -> None:
    point = {"type": "record", "name": "Point", "namespace": "geo", "fields": [{"name": "x", "type": "double"}]}
    schema = {
        "type": "record",
        "name": "r",
        "namespace": "geo",
        "fields": [{"name": "a", "type": point}, {"name": "b", "type": ["null", "Point"]}],
    }
    props = json_schema_for(schema)["properties"]
    assert props["b"] == {"type": ["null", "object"], "properties": {"x": {"type": "number", "format": "double"}}}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ([{"name": "v", "type": "nosuch"}], r"field 'v': unknown Avro type 'nosuch'"),
        ([{"name": "v", "type": {"items": "long"}}], r"field 'v': not an Avro type"),
        ([{"type": "long"}], r"record 'r': a field without a name"),
        (
            [{"name": "next", "type": ["null", "r"]}],
            r"field 'next': a recursive Avro type",
        ),
    ],
)
def test_unsupported_avro_constructs_are_config_errors_naming_the_field(fields: list[Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        json_schema_for({"type": "record", "name": "r", "fields": fields})


def test_a_schema_that_is_not_a_record_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="must be a record"):
        json_schema_for({"type": "array", "items": "long"})


# --- records through the wire format -----------------------------------------------------------


@pytest.fixture
def registry() -> Iterator[SchemaRegistry]:
    with FakeSchemaRegistry() as fake:
        client = SchemaRegistry(fake.url, Redactor())
        yield client
        client.close()


def _pair(registry: SchemaRegistry, properties: dict[str, Any]) -> tuple[AvroEncoder, AvroDecoder]:
    schema = avro_schema_for("s", {"properties": properties})
    return AvroEncoder(schema, registry.register("s-value", schema)), AvroDecoder(registry)


FULL = {
    "id": 7,
    "name": "Zoë",
    "score": 1.25,
    "active": True,
    "at": "2024-02-29T23:59:59.123456Z",
    "day": "2024-02-29",
    "clock": "12:34:56.789012",
    "uid": "6F1C1C2E-0000-4000-8000-000000000001",
    "amount": "1234567890123456789012345678.1234567891",
    "price": 999999.99,
    "big": 123456789012345678901234567890,
    "loose": "3.14159265358979323846264338327950288419716939937510",
    "tags": ["a", None, "c"],
    "stamps": ["2024-01-01T00:00:00+02:00", None, "2024-01-01 08:00:00"],
    "matrix": [[1, 2], [], [3]],
    "meta": {"a": 1, "nested": {"b": [True, None]}},
    "anything": "text",
    "either": 5,
    "mixed": "five",
}


def test_every_type_round_trips_through_the_registry(registry: SchemaRegistry) -> None:
    encoder, decoder = _pair(registry, PROPERTIES)
    got = decoder.decode(encoder.encode(FULL))
    assert got == {
        **FULL,
        "at": "2024-02-29T23:59:59.123456+00:00",
        "uid": "6f1c1c2e-0000-4000-8000-000000000001",
        "amount": Decimal("1234567890123456789012345678.1234567891"),
        "price": Decimal("999999.99"),
        "big": "123456789012345678901234567890",
        "stamps": ["2023-12-31T22:00:00+00:00", None, "2024-01-01T08:00:00+00:00"],
    }
    assert list(got) == list(PROPERTIES)
    # The codec writes the decimal as an exact JSON number.
    assert b'"amount":1234567890123456789012345678.1234567891' in DEFAULT_CODEC.dumps(got)


def test_38_digit_decimals_keep_every_digit(registry: SchemaRegistry) -> None:
    props = {"d": {"type": "string", "format": "singer.decimal", "precision": 38, "scale": 0}}
    encoder, decoder = _pair(registry, props)
    for text in ("9" * 38, "-" + "9" * 38, "0", "10000000000000000000000000000000000001"):
        assert decoder.decode(encoder.encode({"d": text})) == {"d": Decimal(text)}
        assert decoder.decode(encoder.encode({"d": Decimal(text)})) == {"d": Decimal(text)}
    exact = EXACT_CODEC.loads(b'{"d": 12345678901234567890123456789012345678}')
    assert decoder.decode(encoder.encode(exact)) == {"d": Decimal("12345678901234567890123456789012345678")}


def test_decimal_trailing_zeros_beyond_the_scale_are_exact(registry: SchemaRegistry) -> None:
    encoder, decoder = _pair(registry, {"p": PROPERTIES["price"]})
    assert decoder.decode(encoder.encode({"p": "1.500"})) == {"p": Decimal("1.50")}
    assert decoder.decode(encoder.encode({"p": 3})) == {"p": Decimal("3.00")}


def test_nulls_and_missing_keys_read_back_as_null_and_extra_keys_are_ignored(registry: SchemaRegistry) -> None:
    encoder, decoder = _pair(registry, PROPERTIES)
    got = decoder.decode(encoder.encode({"id": 1, "name": None, "not_in_schema": object()}))
    assert got == {**dict.fromkeys(PROPERTIES), "id": 1}


def test_renamed_fields_read_and_write_under_their_property_names(registry: SchemaRegistry) -> None:
    props = {"a-b": {"type": "integer"}, "a_b": {"type": "string"}, "1st": {"type": "object"}}
    encoder, decoder = _pair(registry, props)
    record = {"a-b": 1, "a_b": "x", "1st": {"k": [1]}}
    assert decoder.decode(encoder.encode(record)) == record


def test_the_exact_codecs_numbers_are_accepted(registry: SchemaRegistry) -> None:
    encoder, decoder = _pair(
        registry,
        {"x": {"type": "number"}, "n": {"type": "integer"}, "xs": {"type": "array", "items": {"type": "number"}}},
    )
    record = EXACT_CODEC.loads(b'{"x": 1.5, "n": 1234567890123456789, "xs": [0.25, 2]}')
    assert decoder.decode(encoder.encode(record)) == {"x": 1.5, "n": 1234567890123456789, "xs": [0.25, 2.0]}
    assert decoder.decode(encoder.encode({"x": 1, "n": 3.0, "xs": None})) == {"x": 1.0, "n": 3, "xs": None}


def test_the_wire_format_is_magic_byte_then_big_endian_id(registry: SchemaRegistry) -> None:
    schema = avro_schema_for("s", {"properties": {"id": {"type": "integer"}}})
    data = AvroEncoder(schema, 258).encode({"id": 1})
    assert data[:5] == b"\x00\x00\x00\x01\x02"
    assert data[5:] == b"\x02\x02"  # union branch 1 (long), then zigzag 1


def test_the_decoder_fetches_each_schema_once() -> None:
    with FakeSchemaRegistry() as fake:
        writer = SchemaRegistry(fake.url, Redactor())
        schema = avro_schema_for("s", {"properties": {"id": {"type": "integer"}}})
        encoder = AvroEncoder(schema, writer.register("s-value", schema))
        decoder = AvroDecoder(SchemaRegistry(fake.url, Redactor()))
        for n in range(3):
            assert decoder.decode(encoder.encode({"id": n})) == {"id": n}
        assert len([r for r in fake.requests if r[1].startswith("/schemas/ids/")]) == 1


def test_decoding_a_foreign_schema_gives_json_ready_values(registry: SchemaRegistry) -> None:
    schema = {
        "type": "record",
        "name": "r",
        "fields": [
            {"name": "blob", "type": "bytes"},
            {"name": "ms", "type": {"type": "long", "logicalType": "timestamp-millis"}},
            {"name": "local", "type": {"type": "long", "logicalType": "local-timestamp-micros"}},
            {"name": "tm", "type": {"type": "int", "logicalType": "time-millis"}},
            {"name": "kind", "type": {"type": "enum", "name": "K", "symbols": ["A", "B"]}},
            {"name": "m", "type": {"type": "map", "values": {"type": "int", "logicalType": "date"}}},
            {
                "name": "inner",
                "type": {
                    "type": "record",
                    "name": "I",
                    "fields": [{"name": "u", "type": {"type": "string", "logicalType": "uuid"}}],
                },
            },
        ],
    }
    u = uuid.uuid4()
    value = {
        "blob": b"\x00\xff",
        "ms": dt.datetime(2024, 1, 1, 12, 0, 0, 5000, tzinfo=dt.timezone(dt.timedelta(hours=1))),
        "local": dt.datetime(2024, 1, 1, 12, 0),
        "tm": dt.time(1, 2, 3, 4000),
        "kind": "B",
        "m": {"x": dt.date(2000, 1, 2)},
        "inner": {"u": u},
    }
    data = AvroEncoder(schema, registry.register("f-value", schema)).encode(value)
    assert AvroDecoder(registry).decode(data) == {
        "blob": "AP8=",
        "ms": "2024-01-01T11:00:00.005000+00:00",
        "local": "2024-01-01T12:00:00",
        "tm": "01:02:03.004000",
        "kind": "B",
        "m": {"x": "2000-01-02"},
        "inner": {"u": str(u)},
    }


@pytest.mark.parametrize(
    ("prop", "value", "message"),
    [
        ("id", "seven", r"field 'id': str value does not fit Avro long"),
        ("id", 2**63, r"field 'id': int value does not fit Avro long"),
        ("name", 5, r"field 'name': int value does not fit Avro string"),
        ("active", "yes", r"field 'active': str value does not fit Avro boolean"),
        ("tags", ["a", 1], r"field 'tags': list value does not fit Avro array of string"),
        ("at", "yesterday at noon", r"field 'at': str value is not an ISO 8601 date-time"),
        ("at", 1700000000, r"field 'at': int value is not an ISO 8601 date-time"),
        ("day", "29/02/2024", r"field 'day': str value is not an ISO 8601 date"),
        ("clock", "noon", r"field 'clock': str value is not an ISO 8601 time"),
        ("uid", "not-a-uuid", r"field 'uid': str value is not a UUID"),
        ("price", "1.005", r"field 'price': str value has more than 2 decimal places"),
        ("price", 12345678.9, r"field 'price': float value does not fit decimal\(9,2\)"),
        ("price", "abc", r"field 'price': str value is not a number"),
        ("price", "NaN", r"field 'price': str value is not a finite number"),
        ("price", True, r"field 'price': bool value is not a number"),
        ("loose", [1], r"field 'loose': list value is not a number"),
        ("meta", {"a": object()}, r"field 'meta': dict value cannot be written as JSON"),
    ],
)
def test_a_value_that_does_not_fit_is_a_short_data_error(
    registry: SchemaRegistry, prop: str, value: Any, message: str
) -> None:
    encoder, _ = _pair(registry, PROPERTIES)
    with pytest.raises(DataError, match=message) as caught:
        encoder.encode({"id": 1, prop: value})
    assert len(str(caught.value)) < 100


def test_a_long_value_is_not_repeated_in_the_error(registry: SchemaRegistry) -> None:
    encoder, _ = _pair(registry, PROPERTIES)
    with pytest.raises(DataError) as caught:
        encoder.encode({"id": "x" * 10_000})
    assert "xxxx" not in str(caught.value)


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "too short"),
        (b"\x00\x00\x00", "too short"),
        (b'{"id": 1}', "first byte is 123, not 0"),
    ],
)
def test_bad_framing_is_a_value_error(registry: SchemaRegistry, data: bytes, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        AvroDecoder(registry).decode(data)


def test_a_payload_that_does_not_decode_is_a_value_error(registry: SchemaRegistry) -> None:
    encoder, decoder = _pair(registry, {"name": {"type": "string"}, "n": {"type": "integer"}})
    good = encoder.encode({"name": "hello", "n": 5})
    with pytest.raises(ValueError, match="does not decode with schema id 1"):
        decoder.decode(good[:8])
    with pytest.raises(ValueError, match="bytes left over"):
        decoder.decode(good + b"\x00\x00")


def test_an_unknown_schema_id_in_a_message_is_a_config_error(registry: SchemaRegistry) -> None:
    with pytest.raises(ConfigError, match="Schema 77 not found"):
        AvroDecoder(registry).decode(b"\x00\x00\x00\x00\x4d\x02\x02")


def test_column_type_of_a_decimal_without_bounds_is_text() -> None:
    # multipleOf with no maximum: the scale is known, the precision not: exact text, not bytes.
    prop = {"type": "number", "multipleOf": 0.001}
    assert column_type(prop) == ColumnType(Logical.DECIMAL, nullable=False, precision=None, scale=3)
    assert _field(avro_schema_for("s", {"properties": {"v": prop}}), "v")["dpone.text"] == "decimal"
