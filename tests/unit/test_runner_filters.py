"""The runner's in-stream filters: select, rename, drop and hash properties."""

from __future__ import annotations

import hashlib
import hmac
import logging
import re

import pytest

from dpone_protocol.config import Redactor
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


HASH_KEY = "k3y-for-hmac-tests-0123456789"


def test_keyed_hash_is_hmac_sha256_with_the_key_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPONE_TEST_HASH_KEY", HASH_KEY)
    spec = {"type": "hash", "stream": "customers", "properties": ["email", "id"], "key_env": "DPONE_TEST_HASH_KEY"}
    _, rec = run([spec], SCHEMA, record(id=7, email="kofi.muller1@example.com"))
    expected = hmac.new(HASH_KEY.encode(), b"kofi.muller1@example.com", hashlib.sha256).hexdigest()
    assert rec.record["email"] == expected
    assert rec.record["email"] != hashlib.sha256(b"kofi.muller1@example.com").hexdigest()
    assert rec.record["id"] == hmac.new(HASH_KEY.encode(), b"7", hashlib.sha256).hexdigest()


def test_keyed_hash_key_in_the_spec_expands_env_and_is_redacted(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PII_KEY", HASH_KEY)
    redactor = Redactor()
    chain = build_filters([{"type": "hash", "properties": ["email"], "key": "${PII_KEY}"}], redactor)
    (rec,) = list(apply_chain(chain, record(id=1, email="a@b")))
    assert isinstance(rec, RecordMessage)
    assert rec.record["email"] == hmac.new(HASH_KEY.encode(), b"a@b", hashlib.sha256).hexdigest()
    assert redactor(f"oops {HASH_KEY} leaked") == "oops *** leaked"
    assert HASH_KEY not in repr(chain)


@pytest.mark.parametrize(
    ("spec", "says"),
    [
        ({"key_env": "DPONE_TEST_UNSET_KEY"}, "environment variable DPONE_TEST_UNSET_KEY is not set or empty"),
        ({"key": "${DPONE_TEST_UNSET_KEY}"}, "environment variable DPONE_TEST_UNSET_KEY is not set"),
        ({"key": ""}, "key must be a non-empty string"),
        ({"key": "short"}, "must be at least 16 characters"),
        ({"key": HASH_KEY, "key_env": "X"}, "'key' or 'key_env', not both"),
    ],
)
def test_missing_or_weak_hash_key_is_a_config_error(
    monkeypatch: pytest.MonkeyPatch, spec: dict[str, str], says: str
) -> None:
    monkeypatch.delenv("DPONE_TEST_UNSET_KEY", raising=False)
    with pytest.raises(ConfigError, match=re.escape(says)) as caught:
        build_filters([{"type": "hash", "properties": ["email"], **spec}])
    assert caught.value.exit_code == 78
    assert HASH_KEY not in str(caught.value)


def test_unkeyed_hash_warns_that_it_can_be_reversed(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="dpone.filters"):
        build_filters([{"type": "hash", "properties": ["email"]}])
    assert "without a key is plain SHA-256: anyone with a list of candidate values can reverse it" in caplog.text
