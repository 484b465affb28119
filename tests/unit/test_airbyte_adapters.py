"""The Airbyte adapters added for the spec/check/discover/read/write commands: names, configured
catalogs, state in both directions, spec, error mapping and well-known types."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dpone_protocol.airbyte import (
    StreamNames,
    airbyte_state_input,
    airbyte_states_to_singer,
    configure_catalog,
    connection_specification,
    failure_type,
    plain_json_schema,
    singer_state_to_airbyte,
    spec_message,
    to_airbyte_catalog,
)
from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL, Catalog, CatalogEntry, standard_metadata
from dpone_protocol.errors import ConfigError, DataError, FatalError, ProtocolError, TransientError
from dpone_protocol.settings import Setting

ORDERS = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "notes": {"type": "string"}, "updated_at": {"type": "string"}},
}


def _discovered() -> Catalog:
    pg_md = standard_metadata(ORDERS, ["id"], None, ["updated_at"])
    pg_md[()].update({"schema-name": "public", "table-name": "orders", "row-count": 12})
    csv_md = standard_metadata(ORDERS, ["id"], "updated_at", ["updated_at"])
    return Catalog(
        [
            CatalogEntry("public-orders", copy.deepcopy(ORDERS), "public-orders", ["id"], metadata=pg_md),
            CatalogEntry("orders", copy.deepcopy(ORDERS), "orders", ["id"], "INCREMENTAL", "updated_at", csv_md),
        ]
    )


def _configured(stream: dict[str, Any], **choices: Any) -> dict[str, Any]:
    return {"streams": [{"stream": stream, "destination_sync_mode": "append", **choices}]}


def test_database_streams_get_a_namespace() -> None:
    streams = to_airbyte_catalog(_discovered())["streams"]
    assert (streams[0]["namespace"], streams[0]["name"]) == ("public", "orders")
    assert "namespace" not in streams[1]
    names = StreamNames(_discovered())
    assert names.descriptor("public-orders") == {"name": "orders", "namespace": "public"}
    assert names.stream_id({"name": "orders", "namespace": "public"}) == "public-orders"
    assert names.stream_id({"name": "orders"}) == "orders"
    assert names.descriptor("unknown") == {"name": "unknown"}
    assert names.stream_id({"name": "other", "namespace": "x"}) == "other"
    assert names.stream_id({"namespace": "x"}) is None


def test_configure_catalog_selects_streams_properties_and_modes() -> None:
    stream = {"name": "orders", "namespace": "public", "json_schema": {"properties": {"id": {}, "updated_at": {}}}}
    catalog = configure_catalog(
        _discovered(), _configured(stream, sync_mode="incremental", cursor_field=["updated_at"], primary_key=[["id"]])
    )
    (entry,) = catalog.selected()
    assert entry.tap_stream_id == "public-orders"
    assert entry.selected_properties() == ["id", "updated_at"]
    assert entry.effective_replication_method() == INCREMENTAL
    assert entry.effective_replication_key() == "updated_at"
    assert entry.stream_metadata()["row-count"] == 12  # discovery metadata is kept


def test_full_refresh_drops_the_discovered_replication_key() -> None:
    catalog = configure_catalog(_discovered(), _configured({"name": "orders"}, sync_mode="full_refresh"))
    (entry,) = catalog.selected()
    assert entry.tap_stream_id == "orders"
    assert entry.effective_replication_method() == FULL_TABLE
    assert entry.effective_replication_key() is None
    assert entry.selected_properties() == ["id", "notes", "updated_at"]


def test_incremental_falls_back_to_the_source_cursor() -> None:
    catalog = configure_catalog(_discovered(), _configured({"name": "orders"}, sync_mode="incremental"))
    assert catalog.selected()[0].effective_replication_key() == "updated_at"


@pytest.mark.parametrize(
    ("configured", "message"),
    [
        ([], "'streams' list"),
        ({"streams": [{"stream": {}}]}, r"streams\[0\] needs stream.name"),
        (_configured({"name": "missing"}), r"'missing', which the source does not have \(available: public.orders"),
        (_configured({"name": "orders", "namespace": "public"}, sync_mode="incremental"), "needs a cursor_field"),
        (_configured({"name": "orders"}, sync_mode="incremental", cursor_field=["a", "b"]), "one top-level"),
        (_configured({"name": "orders"}, sync_mode="sometimes"), "unknown sync_mode"),
        (_configured({"name": "orders"}, primary_key=[["a", "b"]]), "top-level fields"),
    ],
)
def test_configure_catalog_errors(configured: Any, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        configure_catalog(_discovered(), configured)


def test_state_round_trip_with_namespaces() -> None:
    names = StreamNames(_discovered())
    value = {"bookmarks": {"public-orders": {"xmin": 5}, "orders": {"replication_key_value": "2024"}}}
    messages = singer_state_to_airbyte(value, names)
    assert messages[0]["state"]["stream"]["stream_descriptor"] == {"name": "orders", "namespace": "public"}
    assert messages[1]["state"]["stream"]["stream_descriptor"] == {"name": "orders"}
    assert airbyte_states_to_singer(messages, names) == value
    # and back again gives the same messages
    assert singer_state_to_airbyte(airbyte_states_to_singer(messages, names), names) == messages


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        (None, []),
        ([], []),
        ({}, []),
        ([{"type": "STREAM"}], [{"type": "STREAM"}]),
        ({"type": "GLOBAL", "global": {}}, [{"type": "GLOBAL", "global": {}}]),
        ({"type": "STATE", "state": {}}, [{"type": "STATE", "state": {}}]),
        ({"data": {"bookmarks": {}}}, [{"type": "LEGACY", "data": {"bookmarks": {}}}]),
        ({"bookmarks": {"a": {}}}, [{"type": "LEGACY", "data": {"bookmarks": {"a": {}}}}]),
    ],
)
def test_state_file_shapes(obj: Any, expected: list[dict[str, Any]]) -> None:
    assert airbyte_state_input(obj) == expected


def test_legacy_data_blob_becomes_the_singer_state() -> None:
    legacy = {"bookmarks": {"orders": {"replication_key_value": 3}}}
    assert airbyte_states_to_singer(airbyte_state_input({"data": legacy})) == legacy


@pytest.mark.parametrize(
    "states",
    [
        [7],
        [{"type": "STREAM", "stream": None}],
        [{"type": "STREAM", "stream": {"stream_descriptor": {}}}],
        [{"type": "WHATEVER"}],
    ],
)
def test_bad_states_are_config_errors(states: list[Any]) -> None:
    with pytest.raises(ConfigError, match="Airbyte state"):
        airbyte_states_to_singer(states)
    with pytest.raises(ConfigError):
        airbyte_state_input("not a state")


def test_connection_specification_from_settings() -> None:
    settings = [
        Setting("host", "string", "Server host.", required=True),
        Setting("password", "string", "Password.", secret=True),
        Setting("port", "integer", default=5432),
        Setting("mode", "string", choices=("a", "b"), default="a"),
    ]
    spec = connection_specification(settings, "tap-x")
    assert spec["required"] == ["host"]
    assert spec["properties"]["password"]["airbyte_secret"] is True
    assert "airbyte_secret" not in spec["properties"]["host"]
    assert spec["properties"]["port"] == {"type": "integer", "title": "port", "order": 2, "default": 5432}
    assert spec["properties"]["mode"]["enum"] == ["a", "b"]
    message = spec_message(settings, "target-x", ["append", "overwrite"])
    assert message["spec"]["supported_destination_sync_modes"] == ["append", "overwrite"]
    assert "supported_destination_sync_modes" not in spec_message(settings, "tap-x")["spec"]


@pytest.mark.parametrize(
    ("exc", "kind"),
    [
        (ConfigError("x"), "config_error"),
        (TransientError("x"), "transient_error"),
        (ConnectionResetError("x"), "transient_error"),
        (DataError("x"), "system_error"),
        (ProtocolError("x"), "system_error"),
        (FatalError("x"), "system_error"),
        (RuntimeError("x"), "system_error"),
    ],
)
def test_failure_type_follows_the_error_taxonomy(exc: Exception, kind: str) -> None:
    assert failure_type(exc) == kind


def test_well_known_types_become_plain_json_schema() -> None:
    schema = {
        "type": "object",
        "properties": {
            "id": {"$ref": "WellKnownTypes.json#/definitions/Integer"},
            "at": {"$ref": "WellKnownTypes.json#/definitions/TimestampWithTimezone", "description": "when"},
            "tags": {"type": "array", "items": {"$ref": "WellKnownTypes.json#/definitions/String"}},
            "other": {"$ref": "#/definitions/Mine"},
        },
    }
    props = plain_json_schema(schema)["properties"]
    assert props["id"] == {"type": "integer"}
    assert props["at"] == {"type": "string", "format": "date-time", "description": "when"}
    assert props["tags"]["items"] == {"type": "string"}
    assert props["other"] == {"$ref": "#/definitions/Mine"}
