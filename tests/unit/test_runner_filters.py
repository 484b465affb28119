"""The runner's in-stream filters: select, rename, drop and hash properties."""

from __future__ import annotations

import hashlib

import pytest

from dpone_protocol.errors import ConfigError
from dpone_protocol.messages import ActivateVersionMessage, RecordMessage, SchemaMessage, StateMessage
from dpone_runner.filters import apply_chain, build_filters

SCHEMA = SchemaMessage(
    "customers",
    {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "email": {"type": "string"}, "notes": {"type": "string"}},
    },
    ["id"],
)


def record(**values: object) -> RecordMessage:
    return RecordMessage("customers", dict(values))


def run(specs: list[dict], *messages):
    chain = build_filters(specs)
    return [out for m in messages for out in apply_chain(chain, m)]


def test_select_keeps_matching_streams_and_every_state():
    out = run(
        [{"type": "select", "streams": ["cust*"]}],
        SCHEMA,
        record(id=1),
        RecordMessage("orders", {"id": 1}),
        ActivateVersionMessage("orders", 1),
        StateMessage({"a": 1}),
    )
    assert [type(m).__name__ for m in out] == ["SchemaMessage", "RecordMessage", "StateMessage"]


def test_rename_applies_to_schema_records_and_versions():
    out = run(
        [{"type": "rename", "stream": "customers", "to": "clients"}],
        SCHEMA,
        record(id=1),
        ActivateVersionMessage("customers", 3),
    )
    assert {m.stream for m in out} == {"clients"}


def test_drop_removes_property_from_schema_and_records():
    schema, rec = run(
        [{"type": "drop", "stream": "customers", "properties": ["notes"]}],
        SCHEMA,
        record(id=1, email="a@b", notes="secret"),
    )
    assert "notes" not in schema.schema["properties"]
    assert rec.record == {"id": 1, "email": "a@b"}


def test_dropping_a_key_property_is_refused():
    with pytest.raises(ConfigError, match="key properties"):
        run([{"type": "drop", "properties": ["id"]}], SCHEMA)


def test_hash_replaces_values_and_types():
    schema, rec, none = run(
        [{"type": "hash", "stream": "*", "properties": ["email"]}],
        SCHEMA,
        record(id=1, email="a@b"),
        record(id=2, email=None),
    )
    assert schema.schema["properties"]["email"] == {"type": ["string", "null"]}
    assert rec.record["email"] == hashlib.sha256(b"a@b").hexdigest()
    assert none.record["email"] is None


def test_filters_compose_in_order():
    out = run(
        [
            {"type": "rename", "stream": "customers", "to": "clients"},
            {"type": "drop", "stream": "clients", "properties": ["notes"]},
        ],
        record(id=1, notes="x"),
    )
    assert out[0].stream == "clients" and out[0].record == {"id": 1}


@pytest.mark.parametrize("spec", [{"type": "explode"}, {"type": "rename"}, {"type": "drop", "properties": []}])
def test_bad_filter_specs_are_config_errors(spec):
    with pytest.raises(ConfigError):
        build_filters([spec])
