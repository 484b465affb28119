"""Singer <-> Airbyte adapters: catalogs, configured catalogs, records and state."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from dpone_protocol.airbyte import (
    airbyte_record_to_singer,
    airbyte_states_to_singer,
    from_configured_airbyte_catalog,
    record_to_airbyte,
    singer_state_to_airbyte,
    to_airbyte_catalog,
    to_configured_airbyte_catalog,
)
from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL, Catalog, CatalogEntry, standard_metadata
from dpone_protocol.errors import ProtocolError
from dpone_protocol.messages import RecordMessage

ORDERS = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "notes": {"type": ["string", "null"]},
        "updated_at": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "notes"],
}
EVENTS = {"type": "object", "properties": {"ts": {"type": "string"}, "payload": {}}}
COUNTRIES = {"type": "object", "properties": {"code": {"type": "string"}}}


def _catalog() -> Catalog:
    orders_md = standard_metadata(ORDERS, ["id"], "updated_at", ["updated_at"])
    orders_md[()]["selected"] = True
    orders_md[("properties", "notes")]["selected"] = False
    events_md = standard_metadata(EVENTS, [])
    events_md[()]["selected"] = True
    countries_md = standard_metadata(COUNTRIES, ["code"])
    countries_md[()]["selected"] = False
    return Catalog(
        [
            CatalogEntry("orders", copy.deepcopy(ORDERS), "orders", ["id"], metadata=orders_md),
            CatalogEntry("events", copy.deepcopy(EVENTS), "events", [], metadata=events_md),
            CatalogEntry("countries", copy.deepcopy(COUNTRIES), "countries", ["code"], metadata=countries_md),
        ]
    )


def test_to_airbyte_catalog_lists_every_stream() -> None:
    assert to_airbyte_catalog(_catalog()) == {
        "streams": [
            {
                "name": "orders",
                "json_schema": ORDERS,
                "supported_sync_modes": ["full_refresh", "incremental"],
                "source_defined_primary_key": [["id"]],
                "source_defined_cursor": True,
                "default_cursor_field": ["updated_at"],
            },
            {
                "name": "events",
                "json_schema": EVENTS,
                "supported_sync_modes": ["full_refresh"],
                "source_defined_primary_key": [],
            },
            {
                "name": "countries",
                "json_schema": COUNTRIES,
                "supported_sync_modes": ["full_refresh"],
                "source_defined_primary_key": [["code"]],
            },
        ]
    }


def test_valid_replication_keys_alone_allow_incremental() -> None:
    md = standard_metadata(EVENTS, [], valid_replication_keys=["ts"])
    (stream,) = to_airbyte_catalog(Catalog([CatalogEntry("events", EVENTS, metadata=md)]))["streams"]
    assert stream["supported_sync_modes"] == ["full_refresh", "incremental"]
    assert "default_cursor_field" not in stream


def test_to_configured_airbyte_catalog_keeps_only_selected_streams_and_properties() -> None:
    configured = to_configured_airbyte_catalog(_catalog())
    assert [s["stream"]["name"] for s in configured["streams"]] == ["orders", "events"]
    orders, events = configured["streams"]
    assert orders["sync_mode"] == "incremental"
    assert orders["destination_sync_mode"] == "append_dedup"
    assert orders["primary_key"] == [["id"]]
    assert orders["cursor_field"] == ["updated_at"]
    assert list(orders["stream"]["json_schema"]["properties"]) == ["id", "updated_at"]
    assert orders["stream"]["json_schema"]["required"] == ["id"]
    assert events["sync_mode"] == "full_refresh"
    assert events["destination_sync_mode"] == "overwrite"
    assert events["primary_key"] == []
    assert "cursor_field" not in events


def test_incremental_stream_without_keys_appends() -> None:
    md = standard_metadata(EVENTS, [], "ts")
    md[()]["selected"] = True
    (configured,) = to_configured_airbyte_catalog(Catalog([CatalogEntry("events", EVENTS, metadata=md)]))["streams"]
    assert configured["sync_mode"] == "incremental"
    assert configured["destination_sync_mode"] == "append"


def test_configured_catalog_round_trip_preserves_selection() -> None:
    back = from_configured_airbyte_catalog(to_configured_airbyte_catalog(_catalog()))
    assert [e.tap_stream_id for e in back] == ["orders", "events"]
    assert [e.tap_stream_id for e in back.selected()] == ["orders", "events"]
    orders = back.get("orders")
    events = back.get("events")
    assert orders is not None
    assert events is not None
    assert orders.name == "orders"
    assert orders.selected_properties() == ["id", "updated_at"]
    assert orders.key_properties == ["id"]
    assert orders.effective_key_properties() == ["id"]
    assert orders.effective_replication_method() == INCREMENTAL
    assert orders.effective_replication_key() == "updated_at"
    assert events.selected_properties() == ["ts", "payload"]
    assert events.effective_replication_method() == FULL_TABLE
    assert events.effective_replication_key() is None
    # and forward again gives the same configured catalog
    assert to_configured_airbyte_catalog(back) == to_configured_airbyte_catalog(_catalog())


def test_from_configured_catalog_uses_user_choices() -> None:
    obj = {
        "streams": [
            {
                "stream": {
                    "name": "orders",
                    "json_schema": ORDERS,
                    "supported_sync_modes": ["full_refresh", "incremental"],
                    "source_defined_primary_key": [["id"]],
                    "default_cursor_field": ["updated_at"],
                },
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite",
            },
            {
                "stream": {"name": "events", "json_schema": EVENTS, "supported_sync_modes": ["incremental"]},
                "sync_mode": "incremental",
                "cursor_field": ["ts"],
                "primary_key": [["ts"]],
                "destination_sync_mode": "append_dedup",
            },
        ]
    }
    catalog = from_configured_airbyte_catalog(obj)
    orders, events = catalog.streams
    assert orders.key_properties == ["id"]  # source-defined key when the user set none
    assert orders.effective_replication_method() == FULL_TABLE  # full_refresh ignores the default cursor
    assert orders.effective_replication_key() is None
    assert events.key_properties == ["ts"]
    assert events.effective_replication_method() == INCREMENTAL
    assert events.effective_replication_key() == "ts"
    assert events.is_property_selected("ts")


def test_record_conversion_both_ways() -> None:
    msg = RecordMessage("orders", {"id": 1, "nested": {"a": [1, 2]}}, 3, "2024-01-01T00:00:00Z")
    wire = record_to_airbyte(msg, 1700000000123)
    assert wire == {
        "type": "RECORD",
        "record": {"stream": "orders", "data": {"id": 1, "nested": {"a": [1, 2]}}, "emitted_at": 1700000000123},
    }
    assert airbyte_record_to_singer(wire) == RecordMessage("orders", {"id": 1, "nested": {"a": [1, 2]}})


@pytest.mark.parametrize(
    "obj",
    [
        {"type": "RECORD"},
        {"type": "RECORD", "record": {"data": {}}},
        {"type": "RECORD", "record": {"stream": "s"}},
        {"type": "RECORD", "record": None},
    ],
)
def test_bad_airbyte_record(obj: dict[str, Any]) -> None:
    with pytest.raises(ProtocolError, match=r"^Airbyte RECORD needs record\.stream and record\.data$"):
        airbyte_record_to_singer(obj)


def test_singer_state_to_airbyte_per_stream() -> None:
    value = {"bookmarks": {"orders": {"replication_key_value": "2024-05-01"}, "events": {"offset": 7}}}
    assert singer_state_to_airbyte(value) == [
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {
                    "stream_descriptor": {"name": "orders"},
                    "stream_state": {"replication_key_value": "2024-05-01"},
                },
            },
        },
        {
            "type": "STATE",
            "state": {
                "type": "STREAM",
                "stream": {"stream_descriptor": {"name": "events"}, "stream_state": {"offset": 7}},
            },
        },
    ]
    assert singer_state_to_airbyte({}) == []
    assert singer_state_to_airbyte({"bookmarks": None}) == []


def test_state_round_trip_through_airbyte() -> None:
    value = {"bookmarks": {"orders": {"replication_key_value": "2024-05-01"}, "events": {"offset": 7}}}
    assert airbyte_states_to_singer(singer_state_to_airbyte(value)) == value


def test_airbyte_stream_states_to_singer() -> None:
    states = [
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "a"}, "stream_state": {"v": 1}}},
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "b", "namespace": "public"}}},
        {"type": "STREAM", "stream": {"stream_descriptor": {"name": "a"}, "stream_state": {"v": 2}}},
    ]
    assert airbyte_states_to_singer(states) == {"bookmarks": {"a": {"v": 2}, "b": {}}}


def test_airbyte_global_state_to_singer() -> None:
    states = [
        {
            "type": "STATE",
            "state": {
                "type": "GLOBAL",
                "global": {
                    "shared_state": {"lsn": 42},
                    "stream_states": [
                        {"stream_descriptor": {"name": "orders"}, "stream_state": {"cursor": "x"}},
                        {"stream_descriptor": {"name": "events"}, "stream_state": None},
                    ],
                },
            },
        }
    ]
    assert airbyte_states_to_singer(states) == {"bookmarks": {"orders": {"cursor": "x"}, "events": {}}}


def test_airbyte_legacy_state_to_singer() -> None:
    legacy = {"bookmarks": {"orders": {"replication_key_value": 5}}, "currently_syncing": None}
    assert airbyte_states_to_singer([{"type": "STATE", "state": {"data": legacy}}]) == legacy
    assert airbyte_states_to_singer([{"type": "LEGACY", "data": {"cursor": 3}}]) == {"cursor": 3}
    assert airbyte_states_to_singer([{"state": {"type": "LEGACY", "data": None}}]) == {"bookmarks": {}}


def test_legacy_and_stream_states_merge_stream_wins() -> None:
    states = [
        {"type": "STATE", "state": {"data": {"bookmarks": {"a": {"v": 1}, "b": {"v": 1}}, "other": "kept"}}},
        {
            "type": "STATE",
            "state": {"type": "STREAM", "stream": {"stream_descriptor": {"name": "a"}, "stream_state": {"v": 9}}},
        },
    ]
    assert airbyte_states_to_singer(states) == {"other": "kept", "bookmarks": {"a": {"v": 9}, "b": {"v": 1}}}


def test_no_states_is_an_empty_bookmarks_state() -> None:
    assert airbyte_states_to_singer([]) == {"bookmarks": {}}
