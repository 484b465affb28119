"""Schema inference from sampled records: widening, nullability, formats, nesting, and what targets make of it."""

from __future__ import annotations

import itertools
from collections import OrderedDict
from decimal import Decimal
from typing import Any

import orjson
import pytest

from dpone.taps.framework.schema_inference import SchemaInferrer, infer_schema
from dpone_protocol.codec import ExactCodec, OrjsonCodec
from dpone_protocol.errors import DataError
from dpone_protocol.json_schema import ColumnType, Logical, column_type, stream_columns

ANY: dict[str, Any] = {}


def prop(*values: Any, max_depth: int = 3) -> dict[str, Any]:
    """The inferred schema of field `x` holding each value in turn."""
    schema: dict[str, Any] = infer_schema([{"x": v} for v in values], max_depth=max_depth)["properties"]["x"]
    return schema


# -- scalar types and widening -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([1, 2], {"type": ["null", "integer"]}),
        ([1.5], {"type": ["null", "number"]}),
        ([True, False], {"type": ["null", "boolean"]}),
        (["a"], {"type": ["null", "string"]}),
        ([{"a": 1}], {"type": ["null", "object"], "properties": {"a": {"type": ["null", "integer"]}}}),
        ([[1]], {"type": ["null", "array"], "items": {"type": ["null", "integer"]}}),
    ],
)
def test_single_types_are_nullable(values: list[Any], expected: dict[str, Any]) -> None:
    assert prop(*values) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        (1, 2.5, {"type": ["null", "number"]}),
        (1, True, {"type": ["null", "boolean", "integer"]}),
        (2.5, True, {"type": ["null", "boolean", "number"]}),
        (1, "a", {"type": ["null", "integer", "string"]}),
        (2.5, "a", {"type": ["null", "number", "string"]}),
        (True, "a", {"type": ["null", "boolean", "string"]}),
        (1, {"a": 1}, ANY),
        (2.5, {"a": 1}, ANY),
        (True, {"a": 1}, ANY),
        ("a", {"a": 1}, ANY),
        (1, [1], ANY),
        (2.5, [1], ANY),
        (True, [1], ANY),
        ("a", [1], ANY),
        ({"a": 1}, [1], ANY),
    ],
)
def test_every_widening_pair_in_either_order(a: Any, b: Any, expected: dict[str, Any]) -> None:
    assert prop(a, b) == expected
    assert prop(b, a) == expected
    assert prop(a, None, b) == expected


def test_integer_number_and_string_widen_to_number_and_string() -> None:
    assert prop(1, 2.5, "x") == {"type": ["null", "number", "string"]}


@pytest.mark.parametrize(
    ("schema", "logical"),
    [
        ({"type": ["null", "boolean", "integer"]}, Logical.STRING),
        ({"type": ["null", "integer", "string"]}, Logical.STRING),
        ({"type": ["null", "number", "string"]}, Logical.STRING),
        (ANY, Logical.JSON),
    ],
)
def test_unions_map_to_a_string_or_json_column(schema: dict[str, Any], logical: Logical) -> None:
    assert column_type(schema) == ColumnType(logical)


def test_a_bool_is_not_an_integer() -> None:
    assert prop(True) == {"type": ["null", "boolean"]}
    assert prop(0, 1) == {"type": ["null", "integer"]}


def test_decimals_from_exact_decoding() -> None:
    assert prop(Decimal("1.10")) == {"type": ["null", "number"]}
    assert prop(Decimal("1E+5")) == {"type": ["null", "number"]}
    assert prop(Decimal("12"), 3) == {"type": ["null", "integer"]}  # integer text, as exact_int makes it
    assert prop(Decimal("1.5"), 3) == {"type": ["null", "number"]}


def test_integers_beyond_64_bits_get_bounds_that_mean_an_exact_decimal() -> None:
    assert prop(2**63 - 1, -(2**63)) == {"type": ["null", "integer"]}
    wide = prop(1, 2**64)
    assert wide == {"type": ["null", "integer"], "minimum": -1e38, "maximum": 1e38}
    assert column_type(wide) == ColumnType(Logical.DECIMAL, scale=0)
    assert column_type(prop(1)) == ColumnType(Logical.INTEGER, bits=64)
    assert prop(Decimal("-123456789012345678901234567890")) == wide  # exact decoding's wide integer
    assert prop(-(10**50))["minimum"] == -1e51  # 51 digits, more than 38: the bounds grow
    assert orjson.loads(OrjsonCodec().dumps(wide)) == wide  # bounds the fast codec can write


def test_a_wide_integer_mixed_with_a_number_is_a_number() -> None:
    assert prop(2**70, 1.5) == {"type": ["null", "number"]}


# -- nullability ---------------------------------------------------------------------------------


def test_fields_missing_or_null_are_nullable_and_so_are_the_others() -> None:
    schema = infer_schema([{"a": 1, "b": "x"}, {"a": 2}, {"a": 3, "b": None, "c": True}])
    assert schema["properties"] == {
        "a": {"type": ["null", "integer"]},
        "b": {"type": ["null", "string"]},
        "c": {"type": ["null", "boolean"]},
    }
    assert all(col.nullable for col in stream_columns(schema, "s").values())


def test_a_field_only_ever_null_is_any_json() -> None:
    assert prop(None, None) == ANY
    assert prop(None, 5) == {"type": ["null", "integer"]}


# -- string formats ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01T10:20:30Z",
        "2024-03-01T10:20:30.123456Z",
        "2024-03-01T10:20:30+05:30",
        "2024-03-01T10:20:30-0800",
        "2024-03-01T10:20:30",
        "2024-03-01 10:20:30",
        "2024-03-01T10:20",
        "2024-03-01T10:20Z",
    ],
)
def test_date_times_with_or_without_offset(value: str) -> None:
    assert prop(value) == {"type": ["null", "string"], "format": "date-time"}


@pytest.mark.parametrize(
    "value",
    [
        "2024-03-01T10",  # hours only
        "20240301T1020",  # basic format
        "2024-03-01T25:00",  # no such hour
        "2024-03-01T10:20:30.123456789Z",  # nanoseconds: a target's timestamp would drop them
        "2024-03-01T10:20:30 UTC",
        "2024-03-01t10:20:30",
        "1",
    ],
)
def test_not_date_times(value: str) -> None:
    assert prop(value) == {"type": ["null", "string"]}


def test_dates() -> None:
    assert prop("2024-03-01", "1999-12-31") == {"type": ["null", "string"], "format": "date"}
    assert prop("2024-02-30") == {"type": ["null", "string"]}
    assert prop("2024-3-1") == {"type": ["null", "string"]}


@pytest.mark.parametrize(
    "values",
    [
        ["2024-03-01T10:20:30Z", "2024-03-01T10:20:30+01:00", "soon"],
        ["soon", "2024-03-01T10:20:30Z"],
        ["2024-03-01", "2024-03-01T10:20:30Z"],
        ["2024-03-01T10:20:30Z", "2024-03-01"],
        ["2024-03-01", "2024-03-02", "n/a"],
    ],
)
def test_one_value_that_does_not_parse_drops_the_format(values: list[str]) -> None:
    assert prop(*values) == {"type": ["null", "string"]}


def test_nulls_do_not_drop_the_format_and_columns_become_timestamps() -> None:
    schema = prop("2024-03-01T10:20:30Z", None, "2024-03-01 10:20:30")
    assert schema == {"type": ["null", "string"], "format": "date-time"}
    assert column_type(schema).logical is Logical.TIMESTAMP
    assert column_type(prop("2024-03-01")).logical is Logical.DATE


# -- objects and arrays --------------------------------------------------------------------------


def test_nested_objects_merge_their_fields() -> None:
    schema = prop({"a": 1, "b": {"c": "2024-01-01"}}, {"a": 2.5, "d": None}, None)
    assert schema == {
        "type": ["null", "object"],
        "properties": {
            "a": {"type": ["null", "number"]},
            "b": {"type": ["null", "object"], "properties": {"c": {"type": ["null", "string"], "format": "date"}}},
            "d": ANY,
        },
    }


def nest(levels: int) -> Any:
    value: Any = 1
    for _ in range(levels):
        value = {"n": value}
    return value


def test_depth_limit_leaves_an_object_without_properties() -> None:
    schema = prop(nest(5))  # x is 1 level below the record, x.n 2, x.n.n 3, x.n.n.n 4
    level3 = schema["properties"]["n"]["properties"]["n"]
    assert level3["type"] == ["null", "object"]
    assert level3["properties"]["n"] == {"type": ["null", "object"]}
    assert column_type(level3["properties"]["n"]).logical is Logical.OBJECT  # stored as JSON

    assert prop(nest(2), max_depth=1) == {
        "type": ["null", "object"],
        "properties": {"n": {"type": ["null", "object"]}},
    }
    assert infer_schema([{"x": {"a": 1}, "y": [1]}], max_depth=0)["properties"] == {
        "x": {"type": ["null", "object"]},
        "y": {"type": ["null", "array"]},
    }
    with pytest.raises(ValueError, match="max_depth"):
        SchemaInferrer(max_depth=-1)


def test_arrays() -> None:
    assert prop([1, 2], [3.5]) == {"type": ["null", "array"], "items": {"type": ["null", "number"]}}
    assert prop(["a", None]) == {"type": ["null", "array"], "items": {"type": ["null", "string"]}}
    assert prop([], []) == {"type": ["null", "array"], "items": ANY}
    assert prop([], [True]) == {"type": ["null", "array"], "items": {"type": ["null", "boolean"]}}
    assert prop([1, "a"]) == {"type": ["null", "array"], "items": ANY}  # unrelated items
    assert prop([1], [[1]]) == {"type": ["null", "array"], "items": ANY}
    assert prop(["2024-01-01", "2024-01-02"])["items"] == {"type": ["null", "string"], "format": "date"}
    assert prop([[1, 2], [3]]) == {
        "type": ["null", "array"],
        "items": {"type": ["null", "array"], "items": {"type": ["null", "integer"]}},
    }


def test_arrays_of_objects_merge_every_item() -> None:
    schema = prop([{"id": 1}, {"id": 2, "tags": ["a"]}], [{"id": 2.5}])
    assert schema == {
        "type": ["null", "array"],
        "items": {
            "type": ["null", "object"],
            "properties": {
                "id": {"type": ["null", "number"]},
                "tags": {"type": ["null", "array"], "items": {"type": ["null", "string"]}},
            },
        },
    }
    assert column_type(schema) == ColumnType(Logical.ARRAY, items=ColumnType(Logical.OBJECT))


def test_mappings_and_tuples_that_are_not_dicts_and_lists() -> None:
    assert prop(OrderedDict(a=1)) == prop({"a": 1})
    assert prop((1, 2)) == prop([1, 2])


# -- the inferrer itself -------------------------------------------------------------------------


def test_empty_sample() -> None:
    assert infer_schema([]) == {"type": "object", "properties": {}}
    inferrer = SchemaInferrer()
    assert inferrer.count == 0
    assert inferrer.schema() == {"type": "object", "properties": {}}
    assert stream_columns(inferrer.schema(), "s") == {}


def test_count_and_incremental_schema() -> None:
    inferrer = SchemaInferrer()
    inferrer.observe({"a": 1})
    assert inferrer.schema()["properties"] == {"a": {"type": ["null", "integer"]}}
    inferrer.observe({"a": "x", "b": 1})
    assert inferrer.count == 2
    assert inferrer.schema()["properties"] == {
        "a": {"type": ["null", "integer", "string"]},
        "b": {"type": ["null", "integer"]},
    }


def test_a_record_must_be_an_object_and_values_json() -> None:
    inferrer = SchemaInferrer()
    with pytest.raises(DataError, match="JSON object"):
        inferrer.observe([1, 2])  # type: ignore[arg-type]
    with pytest.raises(DataError, match="bytes"):
        inferrer.observe({"a": b"raw"})


def test_observe_does_not_change_or_keep_the_record() -> None:
    record = {"a": {"b": [1, {"c": 2}]}}
    before = orjson.dumps(record)
    inferrer = SchemaInferrer()
    inferrer.observe(record)
    record["a"]["b"].append("later")
    assert orjson.dumps({"a": {"b": [1, {"c": 2}]}}) == before
    assert inferrer.schema()["properties"]["a"]["properties"]["b"]["items"] == ANY


SAMPLE: list[dict[str, Any]] = [
    {"id": 1, "at": "2024-01-01T00:00:00Z", "tags": ["a"], "meta": {"k": 1}},
    {"id": 2.5, "at": None, "price": Decimal("9.99"), "meta": {"j": "x"}},
    {"id": 3, "name": "z", "tags": [], "meta": None, "flag": True},
]


def test_same_order_same_schema_other_orders_differ_only_in_property_order() -> None:
    first = infer_schema(SAMPLE)
    assert orjson.dumps(infer_schema(SAMPLE)) == orjson.dumps(first)
    assert list(first["properties"]) == ["id", "at", "tags", "meta", "price", "name", "flag"]
    assert list(first["properties"]["meta"]["properties"]) == ["k", "j"]

    def sort_keys(value: Any) -> Any:
        return orjson.loads(orjson.dumps(value, option=orjson.OPT_SORT_KEYS))

    for order in itertools.permutations(SAMPLE):
        assert sort_keys(infer_schema(order)) == sort_keys(first)


# -- what the targets make of it -----------------------------------------------------------------

SAMPLES: list[list[dict[str, Any]]] = [
    SAMPLE,
    [{"x": v} for v in (1, 2.5, True, "a", None, {"a": 1}, [1], [], Decimal("1.5"), 2**70)],
    [{"a": 1, "b": [1, "a"], "c": [[]], "d": nest(6), "e": [{"f": [{"g": nest(3)}]}]}, {"a": [], "b": None}],
    [{"w": 2**64, "t": "10:20", "d": "2024-01-01", "n": None, "s": "2024-01-01 10:00:00+01:00"}],
    [],
]


@pytest.mark.parametrize("records", SAMPLES)
@pytest.mark.parametrize("max_depth", [0, 1, 3])
def test_targets_read_every_inferred_schema(records: list[dict[str, Any]], max_depth: int) -> None:
    schema = infer_schema(records, max_depth=max_depth)
    columns = stream_columns(schema, "s")
    assert list(columns) == list(schema["properties"])
    assert all(isinstance(col, ColumnType) and col.nullable for col in columns.values())
    # a SCHEMA message carries it: the codecs write it, and a target decoding it exactly sees the same columns
    assert OrjsonCodec().loads(OrjsonCodec().dumps(schema)) == schema
    assert stream_columns(ExactCodec().loads(ExactCodec().dumps(schema)), "s") == columns
