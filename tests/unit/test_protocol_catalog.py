"""Singer catalog: wire form, selection rules, Meltano select patterns, replication settings."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from dpone_protocol.catalog import (
    FULL_TABLE,
    INCREMENTAL,
    LOG_BASED,
    Catalog,
    CatalogEntry,
    apply_selection,
    standard_metadata,
)
from dpone_protocol.errors import ConfigError

ORDERS_SCHEMA = {
    "type": "object",
    "properties": {
        "id": {"type": "integer"},
        "customer_id": {"type": "integer"},
        "notes": {"type": ["string", "null"]},
        "updated_at": {"type": "string", "format": "date-time"},
    },
    "required": ["id", "notes", "updated_at"],
}
CUSTOMERS_SCHEMA = {
    "type": "object",
    "properties": {"id": {"type": "integer"}, "name": {"type": "string"}, "email": {"type": "string"}},
}


def _catalog_dict() -> dict[str, Any]:
    return {
        "streams": [
            {
                "tap_stream_id": "public-orders",
                "stream": "orders",
                "schema": copy.deepcopy(ORDERS_SCHEMA),
                "key_properties": ["id"],
                "replication_method": "INCREMENTAL",
                "replication_key": "updated_at",
                "metadata": [
                    {"breadcrumb": [], "metadata": {"selected": True, "table-key-properties": ["id"]}},
                    {"breadcrumb": ["properties", "notes"], "metadata": {"selected": False}},
                ],
            },
            {
                "tap_stream_id": "customers",
                "stream": "customers",
                "schema": copy.deepcopy(CUSTOMERS_SCHEMA),
                "key_properties": [],
                "metadata": [],
            },
        ]
    }


def _entry(metadata: dict[tuple[str, ...], dict[str, Any]] | None = None, **kwargs: Any) -> CatalogEntry:
    return CatalogEntry("orders", copy.deepcopy(ORDERS_SCHEMA), metadata=metadata or {}, **kwargs)


def _meltano_catalog() -> Catalog:
    return Catalog(
        [
            CatalogEntry("orders", copy.deepcopy(ORDERS_SCHEMA), key_properties=["id"]),
            CatalogEntry("customers", copy.deepcopy(CUSTOMERS_SCHEMA), key_properties=["id"]),
            CatalogEntry("order_items", {"type": "object", "properties": {"sku": {}, "qty": {}}}),
        ]
    )


# -- wire form -----------------------------------------------------------------------


def test_from_dict_to_dict_round_trip() -> None:
    original = _catalog_dict()
    catalog = Catalog.from_dict(copy.deepcopy(original))
    assert catalog.to_dict() == original
    assert Catalog.from_dict(catalog.to_dict()) == catalog


def test_from_dict_reads_fields_and_metadata() -> None:
    catalog = Catalog.from_dict(_catalog_dict())
    orders = catalog.get("public-orders")
    assert orders is not None
    assert orders.name == "orders"
    assert orders.key_properties == ["id"]
    assert orders.replication_method == "INCREMENTAL"
    assert orders.replication_key == "updated_at"
    assert orders.metadata[("properties", "notes")] == {"selected": False}
    assert catalog.get("nope") is None
    assert [e.tap_stream_id for e in catalog] == ["public-orders", "customers"]


def test_stream_falls_back_to_tap_stream_id_and_back() -> None:
    entry = CatalogEntry.from_dict({"stream": "orders", "schema": {}})
    assert entry.tap_stream_id == "orders"
    entry2 = CatalogEntry.from_dict({"tap_stream_id": "t-orders", "schema": {}})
    assert entry2.name == "t-orders"
    assert entry2.to_dict()["stream"] == "t-orders"


def test_to_dict_omits_unset_replication_fields() -> None:
    out = CatalogEntry("s", {}).to_dict()
    assert "replication_method" not in out
    assert "replication_key" not in out
    assert out == {"tap_stream_id": "s", "stream": "s", "schema": {}, "key_properties": [], "metadata": []}


@pytest.mark.parametrize(
    ("obj", "text"),
    [
        ([], "catalog must be a JSON object with a 'streams' list"),
        ({}, "catalog must be a JSON object with a 'streams' list"),
        ({"streams": {"orders": {}}}, "catalog must be a JSON object with a 'streams' list"),
        ({"streams": [{"schema": {}}]}, "catalog stream is missing 'stream'"),
        ({"streams": [{"tap_stream_id": "orders"}]}, "catalog stream is missing 'schema'"),
    ],
)
def test_bad_catalog_raises_config_error(obj: Any, text: str) -> None:
    with pytest.raises(ConfigError, match=f"^{re.escape(text)}$"):
        Catalog.from_dict(obj)


@pytest.mark.parametrize(
    "obj",
    [
        {"streams": ["orders"]},
        {"streams": [{"tap_stream_id": "s", "schema": {}, "metadata": ["not-an-object"]}]},
    ],
)
def test_malformed_stream_entries_raise_config_error(obj: Any) -> None:
    with pytest.raises(ConfigError):
        Catalog.from_dict(obj)


# -- selection ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("root", "selected"),
    [
        ({}, False),
        ({"selected": True}, True),
        ({"selected": False}, False),
        ({"selected-by-default": True}, True),
        ({"selected-by-default": False}, False),
        ({"selected": False, "selected-by-default": True}, False),
        ({"selected": True, "selected-by-default": False}, True),
    ],
)
def test_stream_selection(root: dict[str, Any], selected: bool) -> None:
    assert _entry({(): root}).is_selected() is selected


def test_catalog_selected_lists_selected_streams() -> None:
    catalog = Catalog.from_dict(_catalog_dict())
    assert [e.tap_stream_id for e in catalog.selected()] == ["public-orders"]


@pytest.mark.parametrize(
    ("prop_md", "selected"),
    [
        ({}, True),  # properties default to selected
        ({"selected": False}, False),
        ({"selected-by-default": False}, False),
        ({"selected-by-default": False, "selected": True}, True),
        ({"inclusion": "automatic", "selected": False}, True),
        ({"inclusion": "unsupported", "selected": True}, False),
        ({"inclusion": "available", "selected": False}, False),
    ],
)
def test_property_selection(prop_md: dict[str, Any], selected: bool) -> None:
    entry = _entry({("properties", "notes"): prop_md})
    assert entry.is_property_selected("notes") is selected


def test_key_and_replication_key_properties_are_always_selected() -> None:
    entry = _entry(
        {
            (): {"table-key-properties": ["id"], "replication-key": "updated_at"},
            ("properties", "id"): {"selected": False},
            ("properties", "updated_at"): {"selected": False},
            ("properties", "customer_id"): {"selected": False},
        }
    )
    assert entry.is_property_selected("id")
    assert entry.is_property_selected("updated_at")
    assert not entry.is_property_selected("customer_id")
    # key_properties on the entry count when the metadata names none
    plain = _entry({("properties", "customer_id"): {"selected": False}}, key_properties=["customer_id"])
    assert plain.is_property_selected("customer_id")


def test_selected_schema_narrows_properties_and_required() -> None:
    entry = _entry(
        {
            (): {"table-key-properties": ["id"]},
            ("properties", "notes"): {"selected": False},
            ("properties", "customer_id"): {"selected": False},
        }
    )
    narrowed = entry.selected_schema()
    assert list(narrowed["properties"]) == ["id", "updated_at"]
    assert narrowed["required"] == ["id", "updated_at"]
    assert narrowed["type"] == "object"
    assert list(entry.schema["properties"]) == list(ORDERS_SCHEMA["properties"])  # the entry is untouched
    assert entry.schema["required"] == ORDERS_SCHEMA["required"]


def test_selected_schema_without_required_does_not_add_it() -> None:
    entry = CatalogEntry("c", copy.deepcopy(CUSTOMERS_SCHEMA), metadata={("properties", "email"): {"selected": False}})
    assert entry.selected_schema() == {
        "type": "object",
        "properties": {"id": {"type": "integer"}, "name": {"type": "string"}},
    }


# -- Meltano select patterns -------------------------------------------------------------


def _selection(catalog: Catalog) -> dict[str, list[str] | None]:
    return {e.tap_stream_id: (e.selected_properties() if e.is_selected() else None) for e in catalog}


def test_apply_selection_stream_wildcard_and_single_property() -> None:
    catalog = _meltano_catalog()
    selected = apply_selection(catalog, ["orders.*", "customers.name"])
    assert _selection(selected) == {
        "orders": ["id", "customer_id", "notes", "updated_at"],
        "customers": ["id", "name"],  # id is the key: always selected
        "order_items": None,
    }
    assert _selection(catalog) == {"orders": None, "customers": None, "order_items": None}  # a new catalog


def test_apply_selection_exclude_pattern() -> None:
    selected = apply_selection(_meltano_catalog(), ["orders.*", "!orders.notes"])
    assert _selection(selected)["orders"] == ["id", "customer_id", "updated_at"]
    orders = selected.get("orders")
    assert orders is not None
    assert orders.metadata[("properties", "notes")]["selected"] is False
    assert orders.stream_metadata()["selected"] is True


def test_apply_selection_key_property_survives_exclusion() -> None:
    selected = apply_selection(_meltano_catalog(), ["customers.*", "!customers.id", "!customers.email"])
    assert _selection(selected)["customers"] == ["id", "name"]


def test_apply_selection_wildcard_streams() -> None:
    selected = apply_selection(_meltano_catalog(), ["*.*", "!order_items.*"])
    assert _selection(selected) == {
        "orders": ["id", "customer_id", "notes", "updated_at"],
        "customers": ["id", "name", "email"],
        "order_items": None,
    }


def test_apply_selection_glob_in_stream_and_property() -> None:
    selected = apply_selection(_meltano_catalog(), ["order*.*id"])
    assert _selection(selected) == {"orders": ["id", "customer_id"], "customers": None, "order_items": []}


def test_apply_selection_bare_stream_name_means_all_properties() -> None:
    assert _selection(apply_selection(_meltano_catalog(), ["customers"]))["customers"] == ["id", "name", "email"]


def test_apply_selection_without_patterns_selects_nothing() -> None:
    selected = apply_selection(Catalog.from_dict(_catalog_dict()), [])
    assert selected.selected() == []


def test_apply_selection_overrides_earlier_metadata() -> None:
    catalog = Catalog.from_dict(_catalog_dict())  # notes deselected in metadata
    selected = apply_selection(catalog, ["public-orders.*"])
    orders = selected.get("public-orders")
    assert orders is not None
    assert orders.selected_properties() == ["id", "customer_id", "notes", "updated_at"]


# -- replication --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "root", "method", "key"),
    [
        ({}, {}, FULL_TABLE, None),
        ({"replication_key": "updated_at"}, {}, INCREMENTAL, "updated_at"),
        ({}, {"replication-key": "updated_at"}, INCREMENTAL, "updated_at"),
        ({"replication_method": "log_based"}, {}, LOG_BASED, None),
        ({"replication_method": "FULL_TABLE"}, {"replication-method": "INCREMENTAL"}, INCREMENTAL, None),
        ({"replication_key": "id"}, {"replication-key": "updated_at"}, INCREMENTAL, "updated_at"),
        ({}, {"replication-method": "FULL_TABLE", "replication-key": "updated_at"}, FULL_TABLE, "updated_at"),
    ],
)
def test_effective_replication_method_and_key(
    kwargs: dict[str, Any], root: dict[str, Any], method: str, key: str | None
) -> None:
    entry = _entry({(): root}, **kwargs)
    assert entry.effective_replication_method() == method
    assert entry.effective_replication_key() == key


def test_effective_key_properties_prefer_metadata() -> None:
    assert _entry({(): {"table-key-properties": ["a", "b"]}}, key_properties=["id"]).effective_key_properties() == [
        "a",
        "b",
    ]
    assert _entry({(): {"table-key-properties": []}}, key_properties=["id"]).effective_key_properties() == []
    assert _entry({}, key_properties=["id"]).effective_key_properties() == ["id"]


def test_standard_metadata() -> None:
    md = standard_metadata(ORDERS_SCHEMA, ["id"], "updated_at", ["updated_at"], selected_by_default=False)
    assert md[()] == {
        "inclusion": "available",
        "selected-by-default": False,
        "table-key-properties": ["id"],
        "valid-replication-keys": ["updated_at"],
        "replication-key": "updated_at",
        "replication-method": INCREMENTAL,
    }
    assert md[("properties", "id")] == {"inclusion": "automatic", "selected-by-default": True}
    assert md[("properties", "updated_at")]["inclusion"] == "automatic"
    assert md[("properties", "notes")] == {"inclusion": "available", "selected-by-default": True}
    entry = CatalogEntry("orders", ORDERS_SCHEMA, metadata=md)
    assert not entry.is_selected()
    assert entry.effective_replication_method() == INCREMENTAL


def test_standard_metadata_without_replication_key() -> None:
    md = standard_metadata(CUSTOMERS_SCHEMA, ["id"])
    assert md[()] == {"inclusion": "available", "selected-by-default": True, "table-key-properties": ["id"]}
    assert CatalogEntry("customers", CUSTOMERS_SCHEMA, metadata=md).effective_replication_method() == FULL_TABLE
