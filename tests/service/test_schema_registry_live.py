"""The schema registry client and the Avro encoder/decoder against a real Confluent Schema Registry,
when DPONE_TEST_SCHEMA_REGISTRY_URL is set (e.g. http://localhost:8081, or
https://key:secret@host for a hosted one): register, latest, fetch by id, a record through the wire
format, and an incompatible change, under a subject of its own that is deleted afterwards."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from dpone_drivers.avro import AvroDecoder, AvroEncoder
from dpone_drivers.avro_schema import avro_schema_for
from dpone_drivers.schema_registry import SchemaRegistry, subject_for
from dpone_protocol.config import Redactor
from dpone_protocol.errors import DataError

URL = os.environ.get("DPONE_TEST_SCHEMA_REGISTRY_URL", "")
pytestmark = [
    pytest.mark.service,
    pytest.mark.skipif(not URL, reason="set DPONE_TEST_SCHEMA_REGISTRY_URL to run against a real schema registry"),
]
PROPERTIES = {
    "id": {"type": "integer"},
    "amount": {"type": ["null", "string"], "format": "singer.decimal", "precision": 38, "scale": 10},
    "at": {"type": ["null", "string"], "format": "date-time"},
    "meta": {"type": ["null", "object"]},
}


@pytest.fixture
def subject() -> Iterator[tuple[SchemaRegistry, str]]:
    import requests

    registry = SchemaRegistry(URL, Redactor())
    name = subject_for(f"dpone_test_{uuid.uuid4().hex[:8]}")
    try:
        yield registry, name
    finally:
        # Through the client's own session (its credentials); soft delete first, as the API requires.
        session: requests.Session = registry._session
        session.delete(f"{registry.url}/subjects/{name}", timeout=10)
        session.delete(f"{registry.url}/subjects/{name}?permanent=true", timeout=10)
        registry.close()


def test_register_latest_and_fetch_by_id(subject: tuple[SchemaRegistry, str]) -> None:
    registry, name = subject
    assert registry.latest(name) is None
    schema = avro_schema_for("live", {"properties": PROPERTIES})
    schema_id = registry.register(name, schema)
    assert registry.register(name, schema) == schema_id
    latest = registry.latest(name)
    assert latest is not None and latest[0] == schema_id
    assert [f["name"] for f in latest[1]["fields"]] == list(PROPERTIES)
    fresh = SchemaRegistry(URL, Redactor())
    assert [f["name"] for f in fresh.schema_by_id(schema_id)["fields"]] == list(PROPERTIES)

    record: dict[str, Any] = {
        "id": 1,
        "amount": "1234567890123456789012345678.1234567891",
        "at": "2024-01-01T00:00:00.000001Z",
    }
    data = AvroEncoder(schema, schema_id).encode({**record, "meta": {"k": [1]}})
    assert AvroDecoder(fresh).decode(data) == {
        **record,
        "amount": Decimal(record["amount"]),
        "at": "2024-01-01T00:00:00.000001+00:00",
        "meta": {"k": [1]},
    }

    grown = avro_schema_for("live", {"properties": {**PROPERTIES, "extra": {"type": "string"}}})
    assert registry.register(name, grown) != schema_id


def test_an_incompatible_change_is_a_data_error(subject: tuple[SchemaRegistry, str]) -> None:
    registry, name = subject
    registry.register(name, avro_schema_for("live", {"properties": PROPERTIES}))
    level = registry.compatibility(name)
    if level is None or level.startswith("NONE") or level.startswith("FORWARD"):
        pytest.skip(f"the registry's compatibility level ({level}) accepts a changed type")
    changed = avro_schema_for("live", {"properties": {**PROPERTIES, "id": {"type": "boolean"}}})
    with pytest.raises(DataError, match=rf"schema for subject '{name}' is incompatible .*compatibility level {level}"):
        registry.register(name, changed)
