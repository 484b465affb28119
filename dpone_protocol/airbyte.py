"""Adapters between the Singer and Airbyte protocols: catalogs, records and state."""

from __future__ import annotations

from typing import Any

from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL, Catalog, CatalogEntry, standard_metadata
from dpone_protocol.errors import ProtocolError
from dpone_protocol.messages import RecordMessage


def _airbyte_stream(entry: CatalogEntry) -> dict[str, Any]:
    rk = entry.effective_replication_key()
    valid = entry.stream_metadata().get("valid-replication-keys") or ([rk] if rk else [])
    stream: dict[str, Any] = {
        "name": entry.tap_stream_id,
        "json_schema": entry.schema,
        "supported_sync_modes": ["full_refresh", "incremental"] if valid else ["full_refresh"],
        "source_defined_primary_key": [[k] for k in entry.effective_key_properties()],
    }
    if rk:
        stream["source_defined_cursor"] = True
        stream["default_cursor_field"] = [rk]
    return stream


def to_airbyte_catalog(catalog: Catalog) -> dict[str, Any]:
    """The AirbyteCatalog a `discover` answers with."""
    return {"streams": [_airbyte_stream(e) for e in catalog]}


def to_configured_airbyte_catalog(catalog: Catalog) -> dict[str, Any]:
    """The ConfiguredAirbyteCatalog equivalent of a Singer catalog's selected streams."""
    streams = []
    for entry in catalog.selected():
        incremental = entry.effective_replication_method() == INCREMENTAL
        keys = entry.effective_key_properties()
        configured: dict[str, Any] = {
            "stream": _airbyte_stream(entry),
            "sync_mode": "incremental" if incremental else "full_refresh",
            "destination_sync_mode": "append_dedup" if keys else ("append" if incremental else "overwrite"),
            "primary_key": [[k] for k in keys],
        }
        rk = entry.effective_replication_key()
        if rk:
            configured["cursor_field"] = [rk]
        schema = entry.selected_schema()
        configured["stream"]["json_schema"] = schema
        streams.append(configured)
    return {"streams": streams}


def from_configured_airbyte_catalog(obj: dict[str, Any]) -> Catalog:
    """A Singer catalog with exactly the configured streams selected."""
    entries = []
    for configured in obj.get("streams", []):
        stream = configured["stream"]
        keys = [path[0] for path in configured.get("primary_key") or stream.get("source_defined_primary_key") or []]
        cursor = configured.get("cursor_field") or stream.get("default_cursor_field") or []
        rk = cursor[0] if cursor and configured.get("sync_mode") == "incremental" else None
        metadata = standard_metadata(stream["json_schema"], keys, rk)
        metadata[()]["selected"] = True
        metadata[()]["replication-method"] = INCREMENTAL if rk else FULL_TABLE
        entries.append(
            CatalogEntry(
                tap_stream_id=stream["name"],
                schema=stream["json_schema"],
                stream=stream["name"],
                key_properties=keys,
                replication_key=rk,
                metadata=metadata,
            )
        )
    return Catalog(entries)


def record_to_airbyte(msg: RecordMessage, emitted_at_ms: int) -> dict[str, Any]:
    return {
        "type": "RECORD",
        "record": {"stream": msg.stream, "data": msg.record, "emitted_at": emitted_at_ms},
    }


def airbyte_record_to_singer(obj: dict[str, Any]) -> RecordMessage:
    try:
        record = obj["record"]
        return RecordMessage(record["stream"], record["data"])
    except (KeyError, TypeError):
        raise ProtocolError("Airbyte RECORD needs record.stream and record.data") from None


def singer_state_to_airbyte(value: dict[str, Any]) -> list[dict[str, Any]]:
    """One Airbyte per-stream STATE message per Singer bookmark."""
    out = []
    for stream, bookmark in (value.get("bookmarks") or {}).items():
        out.append(
            {
                "type": "STATE",
                "state": {
                    "type": "STREAM",
                    "stream": {"stream_descriptor": {"name": stream}, "stream_state": bookmark},
                },
            }
        )
    return out


def airbyte_states_to_singer(states: list[dict[str, Any]]) -> dict[str, Any]:
    """Fold Airbyte STATE payloads (STREAM, GLOBAL or LEGACY) into one Singer state value."""
    bookmarks: dict[str, Any] = {}
    legacy: dict[str, Any] = {}
    for item in states:
        state = item.get("state", item)
        kind = state.get("type", "LEGACY")
        if kind == "STREAM":
            stream = state["stream"]
            bookmarks[stream["stream_descriptor"]["name"]] = stream.get("stream_state") or {}
        elif kind == "GLOBAL":
            for stream in state.get("global", {}).get("stream_states", []):
                bookmarks[stream["stream_descriptor"]["name"]] = stream.get("stream_state") or {}
        else:
            legacy.update(state.get("data") or {})
    if legacy and not bookmarks:
        return legacy
    return {**legacy, "bookmarks": {**legacy.get("bookmarks", {}), **bookmarks}}
