"""JSON Schema -> logical column types: the one mapping every target starts from."""

from __future__ import annotations

from typing import Any

import pytest

from dpone_protocol.errors import DataError
from dpone_protocol.json_schema import ColumnType, Logical, column_type, stream_columns


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        ({"type": "string"}, ColumnType(Logical.STRING, nullable=False)),
        ({"type": ["string", "null"]}, ColumnType(Logical.STRING)),
        ({"type": ["null", "string"], "maxLength": 40}, ColumnType(Logical.STRING, max_length=40)),
        ({"type": "boolean"}, ColumnType(Logical.BOOLEAN, nullable=False)),
        ({"type": ["boolean", "null"]}, ColumnType(Logical.BOOLEAN)),
        ({"type": "number"}, ColumnType(Logical.NUMBER, nullable=False)),
        ({"type": ["number", "null"]}, ColumnType(Logical.NUMBER)),
        ({"type": "object", "properties": {"a": {"type": "string"}}}, ColumnType(Logical.OBJECT, nullable=False)),
        ({"type": ["object", "null"]}, ColumnType(Logical.OBJECT)),
        ({"properties": {"a": {}}}, ColumnType(Logical.OBJECT, nullable=False)),
        (
            {"type": ["array", "null"], "items": {"type": "integer"}},
            ColumnType(Logical.ARRAY, items=ColumnType(Logical.INTEGER, nullable=False, bits=64)),
        ),
        (
            {"items": {"type": "string"}},
            ColumnType(Logical.ARRAY, nullable=False, items=ColumnType(Logical.STRING, nullable=False)),
        ),
        ({"type": "array", "items": {}}, ColumnType(Logical.ARRAY, nullable=False)),
        ({}, ColumnType(Logical.JSON)),
        ({"type": "null"}, ColumnType(Logical.JSON)),
        ({"description": "anything"}, ColumnType(Logical.JSON)),
    ],
)
def test_plain_types_and_nullability(schema: dict[str, Any], expected: ColumnType) -> None:
    assert column_type(schema) == expected


@pytest.mark.parametrize(
    ("fmt", "logical"),
    [
        ("date-time", Logical.TIMESTAMP),
        ("date", Logical.DATE),
        ("time", Logical.TIME),
        ("uuid", Logical.UUID),
        ("email", Logical.STRING),
    ],
)
def test_string_formats(fmt: str, logical: Logical) -> None:
    assert column_type({"type": ["string", "null"], "format": fmt}) == ColumnType(logical)
    assert column_type({"type": "string", "format": fmt}) == ColumnType(logical, nullable=False)


def test_max_length_only_applies_to_plain_strings() -> None:
    assert column_type({"type": "string", "format": "date-time", "maxLength": 30}).max_length is None
    assert column_type({"type": "string", "maxLength": "40"}).max_length is None


def test_singer_decimal_keeps_precision_and_scale() -> None:
    schema = {"type": ["string", "null"], "format": "singer.decimal", "precision": 38, "scale": 9}
    assert column_type(schema) == ColumnType(Logical.DECIMAL, precision=38, scale=9)
    assert column_type({"type": "string", "format": "singer.decimal"}) == ColumnType(Logical.DECIMAL, nullable=False)


@pytest.mark.parametrize(
    ("minimum", "maximum", "bits"),
    [
        (-32768, 32767, 16),
        (0, 32767, 16),
        (-32769, 0, 32),
        (0, 32768, 32),
        (-(2**31), 2**31 - 1, 32),
        (0, 2**31, 64),
        (-(2**63), 2**63 - 1, 64),
    ],
)
def test_integer_bits_from_minimum_and_maximum(minimum: int, maximum: int, bits: int) -> None:
    schema = {"type": "integer", "minimum": minimum, "maximum": maximum}
    assert column_type(schema) == ColumnType(Logical.INTEGER, nullable=False, bits=bits)


@pytest.mark.parametrize(
    "schema",
    [
        {"type": "integer"},
        {"type": "integer", "minimum": 0},
        {"type": "integer", "maximum": 10},
    ],
)
def test_integer_without_both_limits_is_64_bits(schema: dict[str, Any]) -> None:
    assert column_type(schema) == ColumnType(Logical.INTEGER, nullable=False, bits=64)


@pytest.mark.parametrize(
    ("minimum", "maximum"),
    [(0, 2**63), (0, 2**64 - 1), (-(2**63) - 1, 0), (-(10**30), 10**30)],
)
def test_integer_wider_than_64_bits_is_an_exact_decimal_of_scale_zero(minimum: int, maximum: int) -> None:
    schema = {"type": ["integer", "null"], "minimum": minimum, "maximum": maximum}
    assert column_type(schema) == ColumnType(Logical.DECIMAL, precision=None, scale=0)


@pytest.mark.parametrize(
    ("schema", "precision", "scale"),
    [
        ({"multipleOf": 0.01}, None, 2),
        ({"multipleOf": 0.01, "maximum": 999.99, "minimum": -999.99}, 5, 2),
        ({"multipleOf": 0.0001, "maximum": 1e10}, 15, 4),
        ({"multipleOf": 1e-10, "minimum": -100}, 13, 10),
        ({"multipleOf": 1}, None, 0),
        ({"multipleOf": 5, "maximum": 1000}, 4, 0),
    ],
)
def test_number_with_multiple_of_is_a_decimal(schema: dict[str, Any], precision: int | None, scale: int) -> None:
    result = column_type({"type": ["number", "null"], **schema})
    assert result == ColumnType(Logical.DECIMAL, precision=precision, scale=scale)


@pytest.mark.parametrize(
    ("schema", "expected"),
    [
        (
            {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string"}, {"type": "null"}]},
            ColumnType(Logical.STRING),
        ),
        (
            {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "string"}]},
            ColumnType(Logical.STRING, nullable=False),
        ),
        (
            {"anyOf": [{"type": ["string", "null"], "format": "date-time"}, {"type": ["string", "null"]}]},
            ColumnType(Logical.STRING),
        ),
        (
            {"anyOf": [{"type": "object", "properties": {}}, {"type": "string"}]},
            ColumnType(Logical.JSON, nullable=False),
        ),
        ({"anyOf": [{"type": "array"}, {"type": "integer"}, {"type": "null"}]}, ColumnType(Logical.JSON)),
        (
            {"anyOf": [{"type": "string", "format": "date-time"}, {"type": "null"}]},
            ColumnType(Logical.TIMESTAMP),
        ),
        ({"oneOf": [{"type": "integer"}, {"type": "number"}]}, ColumnType(Logical.NUMBER, nullable=False)),
        (
            {"anyOf": [{"type": "integer"}, {"type": "number", "multipleOf": 0.01}]},
            ColumnType(Logical.DECIMAL, nullable=False),
        ),
        ({"anyOf": [{"type": "null"}]}, ColumnType(Logical.JSON)),
        ({"anyOf": [{}, {"type": "string"}]}, ColumnType(Logical.JSON)),
        ({"anyOf": [{"type": "boolean"}, {"type": "integer"}]}, ColumnType(Logical.STRING, nullable=False)),
    ],
)
def test_unions(schema: dict[str, Any], expected: ColumnType) -> None:
    assert column_type(schema) == expected


@pytest.mark.parametrize(
    ("types", "logical"),
    [
        (["string", "integer"], Logical.STRING),
        (["boolean", "number", "null"], Logical.STRING),
        (["integer", "number"], Logical.NUMBER),
        (["integer", "string", "object"], Logical.JSON),
        (["array", "null"], Logical.ARRAY),
    ],
)
def test_type_lists_merge_like_unions(types: list[str], logical: Logical) -> None:
    assert column_type({"type": types}) == ColumnType(logical, nullable="null" in types)


@pytest.mark.parametrize(
    ("alternatives", "expected"),
    [
        (
            [{"type": "string", "maxLength": 10}, {"type": "string", "maxLength": 100}],
            ColumnType(Logical.STRING, nullable=False, max_length=100),
        ),
        (
            [{"type": "string", "maxLength": 10}, {"type": "string"}],
            ColumnType(Logical.STRING, nullable=False, max_length=None),
        ),
        (
            [{"type": "integer", "minimum": 0, "maximum": 100}, {"type": "integer"}],
            ColumnType(Logical.INTEGER, nullable=False, bits=64),
        ),
    ],
)
def test_union_of_one_kind_is_as_wide_as_its_widest_alternative(
    alternatives: list[dict[str, Any]], expected: ColumnType
) -> None:
    assert column_type({"anyOf": alternatives}) == expected


def test_column_type_rejects_a_non_object_schema() -> None:
    with pytest.raises(DataError, match="property schema must be an object, got str"):
        column_type("string")  # type: ignore[arg-type]


def test_stream_columns_in_declaration_order() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"type": "integer", "minimum": 1, "maximum": 1000},
            "created_at": {"type": ["string", "null"], "format": "date-time"},
            "amount": {"type": ["number", "null"], "multipleOf": 0.01},
            "payload": {},
        },
    }
    columns = stream_columns(schema, "orders")
    assert list(columns) == ["id", "created_at", "amount", "payload"]
    assert columns == {
        "id": ColumnType(Logical.INTEGER, nullable=False, bits=16),
        "created_at": ColumnType(Logical.TIMESTAMP),
        "amount": ColumnType(Logical.DECIMAL, scale=2),
        "payload": ColumnType(Logical.JSON),
    }


@pytest.mark.parametrize("schema", [{"type": "object"}, {"type": "object", "properties": []}, {}])
def test_stream_columns_needs_properties(schema: dict[str, Any]) -> None:
    with pytest.raises(DataError, match=r"^stream 'orders': SCHEMA has no 'properties' object"):
        stream_columns(schema, "orders")
