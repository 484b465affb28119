"""Adapters between the Singer and Airbyte protocols: specs, catalogs, records, state and errors.

Pure data in, data out: the Airbyte command lines of the tap and target frameworks build on these.
"""

from __future__ import annotations

import copy
import logging
from collections.abc import Callable, Iterable
from typing import Any

from dpone_protocol.catalog import FULL_TABLE, INCREMENTAL, Catalog, CatalogEntry, standard_metadata
from dpone_protocol.errors import EXIT_CODES, ConfigError, ErrorKind, ProtocolError, exit_code_for
from dpone_protocol.messages import RecordMessage
from dpone_protocol.settings import JSON_SCHEMA_TYPES, Setting

Descriptor = dict[str, str]  # an Airbyte StreamDescriptor: name, and namespace when there is one


# -- stream names -------------------------------------------------------------------------------------


def stream_descriptor(entry: CatalogEntry) -> Descriptor:
    """How Airbyte names a Singer stream: database taps' schema and table become namespace and name."""
    md = entry.stream_metadata()
    schema, table = md.get("schema-name"), md.get("table-name")
    if isinstance(schema, str) and isinstance(table, str) and schema and table:
        return {"name": table, "namespace": schema}
    return {"name": entry.tap_stream_id}


def shown(descriptor: dict[str, Any]) -> str:
    """namespace.name, for messages."""
    namespace = descriptor.get("namespace")
    return f"{namespace}.{descriptor['name']}" if namespace else str(descriptor["name"])


class StreamNames:
    """Singer stream ids <-> Airbyte stream descriptors, for the streams of one catalog.

    Streams the catalog does not know keep their name (and have no namespace), both ways.
    """

    def __init__(self, catalog: Catalog | None = None) -> None:
        self._descriptors: dict[str, Descriptor] = {}
        self._ids: dict[tuple[str | None, str], str] = {}
        for entry in catalog or ():
            descriptor = stream_descriptor(entry)
            self._descriptors[entry.tap_stream_id] = descriptor
            self._ids[(descriptor.get("namespace"), descriptor["name"])] = entry.tap_stream_id

    def descriptor(self, stream_id: str) -> Descriptor:
        return dict(self._descriptors.get(stream_id) or {"name": stream_id})

    def stream_id(self, descriptor: Any) -> str | None:
        if not isinstance(descriptor, dict) or not isinstance(descriptor.get("name"), str):
            return None
        name, namespace = descriptor["name"], descriptor.get("namespace")
        return self._ids.get((namespace, name)) or name


def _airbyte_stream(entry: CatalogEntry) -> dict[str, Any]:
    rk = entry.effective_replication_key()
    valid = entry.stream_metadata().get("valid-replication-keys") or ([rk] if rk else [])
    stream: dict[str, Any] = {
        **stream_descriptor(entry),
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


def configure_catalog(discovered: Catalog, configured: Any) -> Catalog:
    """The discovered Singer catalog with what a ConfiguredAirbyteCatalog chose applied.

    Exactly the configured streams are selected, with the properties their json_schema keeps;
    `sync_mode` + `cursor_field` become the replication method and key, `primary_key` the keys.
    Discovery metadata (row counts, valid keys...) is kept.
    """
    if not isinstance(configured, dict) or not isinstance(configured.get("streams"), list):
        raise ConfigError("configured catalog must be a JSON object with a 'streams' list")
    out = copy.deepcopy(discovered)
    names = StreamNames(out)
    for entry in out:
        entry.stream_metadata()["selected"] = False
    for position, item in enumerate(configured["streams"]):
        stream = item.get("stream") if isinstance(item, dict) else None
        if not isinstance(stream, dict) or not isinstance(stream.get("name"), str):
            raise ConfigError(f"configured catalog: streams[{position}] needs stream.name")
        sid = names.stream_id(stream)
        chosen = out.get(sid) if sid else None
        if chosen is None:
            available = ", ".join(shown(names.descriptor(e.tap_stream_id)) for e in out)
            raise ConfigError(
                f"configured catalog names stream {shown(stream)!r}, which the source does not have "
                f"(available: {available or 'none'}); re-run discover"
            )
        _apply_configured_stream(chosen, item, stream)
    return out


def _single_paths(paths: Any, what: str, stream: str) -> list[str]:
    if not paths:
        return []
    if not isinstance(paths, list) or not all(isinstance(p, list) and len(p) == 1 for p in paths):
        raise ConfigError(f'stream {stream!r}: {what} must name top-level fields, e.g. [["id"]]')
    return [str(p[0]) for p in paths]


def _apply_configured_stream(entry: CatalogEntry, item: dict[str, Any], stream: dict[str, Any]) -> None:
    md = entry.stream_metadata()
    md["selected"] = True
    wanted = (stream.get("json_schema") or {}).get("properties")
    for prop in entry.schema.get("properties", {}):
        prop_md = entry.metadata.setdefault(("properties", prop), {})
        prop_md["selected"] = wanted is None or prop in wanted
    keys = _single_paths(item.get("primary_key"), "primary_key", entry.tap_stream_id)
    if keys:
        md["table-key-properties"] = keys
    mode = item.get("sync_mode", "full_refresh")
    if mode == "incremental":
        cursor = item.get("cursor_field") or stream.get("default_cursor_field") or []
        if not cursor and entry.effective_replication_key():
            cursor = [entry.effective_replication_key()]
        if not cursor:
            raise ConfigError(f"stream {entry.tap_stream_id!r}: incremental sync needs a cursor_field")
        if len(cursor) != 1:
            raise ConfigError(f"stream {entry.tap_stream_id!r}: cursor_field must be one top-level field")
        md["replication-method"] = INCREMENTAL
        md["replication-key"] = str(cursor[0])
    elif mode == "full_refresh":
        md["replication-method"] = FULL_TABLE
        md.pop("replication-key", None)
        entry.replication_key = None
    else:
        raise ConfigError(f"stream {entry.tap_stream_id!r}: unknown sync_mode {mode!r}")


# -- records ------------------------------------------------------------------------------------------


def record_to_airbyte(msg: RecordMessage, emitted_at_ms: int, namespace: str | None = None) -> dict[str, Any]:
    record: dict[str, Any] = {"stream": msg.stream, "data": msg.record, "emitted_at": emitted_at_ms}
    if namespace:
        record["namespace"] = namespace
    return {"type": "RECORD", "record": record}


def airbyte_record_to_singer(obj: dict[str, Any]) -> RecordMessage:
    try:
        record = obj["record"]
        return RecordMessage(record["stream"], record["data"])
    except (KeyError, TypeError):
        raise ProtocolError("Airbyte RECORD needs record.stream and record.data") from None


# -- state --------------------------------------------------------------------------------------------


def stream_state_message(descriptor: Descriptor, stream_state: Any) -> dict[str, Any]:
    return {
        "type": "STATE",
        "state": {"type": "STREAM", "stream": {"stream_descriptor": descriptor, "stream_state": stream_state}},
    }


def singer_state_to_airbyte(value: dict[str, Any], names: StreamNames | None = None) -> list[dict[str, Any]]:
    """One Airbyte per-stream STATE message per Singer bookmark."""
    names = names or StreamNames()
    bookmarks = value.get("bookmarks") or {}
    return [stream_state_message(names.descriptor(stream), bookmark) for stream, bookmark in bookmarks.items()]


def airbyte_states_to_singer(states: list[dict[str, Any]], names: StreamNames | None = None) -> dict[str, Any]:
    """Fold Airbyte STATE payloads (STREAM, GLOBAL or LEGACY) into one Singer state value.

    A GLOBAL state's shared_state has no Singer place and is dropped.
    """
    names = names or StreamNames()
    bookmarks: dict[str, Any] = {}
    legacy: dict[str, Any] = {}

    def put(stream: Any) -> None:
        if not isinstance(stream, dict):
            raise ConfigError("Airbyte state: a stream state must be an object with a stream_descriptor")
        sid = names.stream_id(stream.get("stream_descriptor"))
        if sid is None:
            raise ConfigError(f"Airbyte state: stream_descriptor {stream.get('stream_descriptor')!r} needs a name")
        bookmarks[sid] = stream.get("stream_state") or {}

    for item in states:
        state = item.get("state", item) if isinstance(item, dict) else None
        if not isinstance(state, dict):
            raise ConfigError("Airbyte state: every state must be a JSON object")
        kind = state.get("type", "LEGACY")
        if kind == "STREAM":
            put(state.get("stream"))
        elif kind == "GLOBAL":
            for stream in (state.get("global") or {}).get("stream_states") or []:
                put(stream)
        elif kind == "LEGACY":
            legacy.update(state.get("data") or {})
        else:
            raise ConfigError(f"Airbyte state: unknown state type {kind!r}")
    if legacy and not bookmarks:
        return legacy
    return {**legacy, "bookmarks": {**legacy.get("bookmarks", {}), **bookmarks}}


def airbyte_state_input(obj: Any) -> list[dict[str, Any]]:
    """The states a `--state` file holds: a list of state messages, one message, or a legacy blob.

    A legacy blob is `{"data": {...}}` or, as older Airbyte platforms stored it, the bare state object.
    """
    if not obj:
        return []
    if isinstance(obj, list):
        return list(obj)
    if not isinstance(obj, dict):
        raise ConfigError("state file must hold a JSON list of Airbyte states or a JSON object")
    if obj.get("type") in ("STATE", "STREAM", "GLOBAL", "LEGACY") or "state" in obj:
        return [obj]
    if set(obj) == {"data"}:
        return [{"type": "LEGACY", "data": obj["data"]}]
    return [{"type": "LEGACY", "data": obj}]


# -- spec -----------------------------------------------------------------------------------------------


def connection_specification(settings: Iterable[Setting], title: str) -> dict[str, Any]:
    """The JSON Schema of a connector's config, as Airbyte's `connectionSpecification`."""
    settings = list(settings)
    properties: dict[str, Any] = {}
    for order, setting in enumerate(settings):
        prop: dict[str, Any] = {"type": JSON_SCHEMA_TYPES[setting.kind], "title": setting.name, "order": order}
        if setting.description:
            prop["description"] = setting.description
        if setting.default is not None:
            prop["default"] = setting.default
        if setting.choices:
            prop["enum"] = list(setting.choices)
        if setting.secret:
            prop["airbyte_secret"] = True
        properties[setting.name] = prop
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "title": title,
        "type": "object",
        "required": [s.name for s in settings if s.required],
        "additionalProperties": True,
        "properties": properties,
    }


def spec_message(
    settings: Iterable[Setting], title: str, destination_sync_modes: Iterable[str] | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "connectionSpecification": connection_specification(settings, title),
        "supportsIncremental": True,
    }
    if destination_sync_modes is not None:
        spec["supported_destination_sync_modes"] = list(destination_sync_modes)
    return {"type": "SPEC", "spec": spec}


# -- other messages -----------------------------------------------------------------------------------

LOG_LEVELS = {"CRITICAL": "FATAL", "ERROR": "ERROR", "WARNING": "WARN", "INFO": "INFO", "DEBUG": "DEBUG"}


def log_message(level: str, message: str) -> dict[str, Any]:
    """A LOG message; `level` is a Python logging level name."""
    return {"type": "LOG", "log": {"level": LOG_LEVELS.get(level, "INFO"), "message": message}}


class AirbyteLogHandler(logging.Handler):
    """Log records as Airbyte LOG messages, handed to `emit` (which writes them to stdout)."""

    def __init__(self, emit: Callable[[dict[str, Any]], None]) -> None:
        super().__init__()
        self._emit = emit

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = record.getMessage()
            self._emit(log_message(record.levelname, f"{text}\n{record.exc_text}" if record.exc_text else text))
        except Exception:
            self.handleError(record)


def connection_status_message(error: str | None) -> dict[str, Any]:
    status: dict[str, Any] = {"status": "FAILED" if error else "SUCCEEDED"}
    if error:
        status["message"] = error
    return {"type": "CONNECTION_STATUS", "connectionStatus": status}


def catalog_message(catalog: Catalog) -> dict[str, Any]:
    return {"type": "CATALOG", "catalog": to_airbyte_catalog(catalog)}


def failure_type(exc: BaseException) -> str:
    """Airbyte's failure_type for an error, from the same taxonomy that picks the exit code."""
    code = exit_code_for(exc)
    if code == EXIT_CODES[ErrorKind.CONFIG]:
        return "config_error"
    if code == EXIT_CODES[ErrorKind.TRANSIENT]:
        return "transient_error"
    return "system_error"


def error_trace_message(message: str, kind: str, emitted_at_ms: float) -> dict[str, Any]:
    return {
        "type": "TRACE",
        "trace": {
            "type": "ERROR",
            "emitted_at": emitted_at_ms,
            "error": {"message": message, "failure_type": kind},
        },
    }


def estimate_trace_message(descriptor: Descriptor, rows: int, emitted_at_ms: float) -> dict[str, Any]:
    estimate = {**descriptor, "type": "STREAM", "row_estimate": rows}
    return {"type": "TRACE", "trace": {"type": "ESTIMATE", "emitted_at": emitted_at_ms, "estimate": estimate}}


def stream_status_message(descriptor: Descriptor, status: str, emitted_at_ms: float) -> dict[str, Any]:
    return {
        "type": "TRACE",
        "trace": {
            "type": "STREAM_STATUS",
            "emitted_at": emitted_at_ms,
            "stream_status": {"stream_descriptor": descriptor, "status": status},
        },
    }


# -- destination schemas --------------------------------------------------------------------------------

# Airbyte protocol v1 schemas point at well-known types; Singer targets read plain JSON Schema.
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "String": {"type": "string"},
    "BinaryData": {"type": "string"},
    "Date": {"type": "string", "format": "date"},
    "TimestampWithTimezone": {"type": "string", "format": "date-time"},
    "TimestampWithoutTimezone": {"type": "string", "format": "date-time"},
    "TimeWithTimezone": {"type": "string", "format": "time"},
    "TimeWithoutTimezone": {"type": "string", "format": "time"},
    "Number": {"type": "number"},
    "Integer": {"type": "integer"},
    "Boolean": {"type": "boolean"},
}


def plain_json_schema(schema: Any) -> Any:
    """`schema` with WellKnownTypes.json references replaced by the JSON Schema they stand for."""
    if isinstance(schema, list):
        return [plain_json_schema(s) for s in schema]
    if not isinstance(schema, dict):
        return schema
    ref = schema.get("$ref")
    if isinstance(ref, str) and "WellKnownTypes.json" in ref:
        known = _WELL_KNOWN.get(ref.rsplit("/", 1)[-1])
        if known is not None:
            rest = {k: plain_json_schema(v) for k, v in schema.items() if k != "$ref"}
            return {**known, **rest}
    return {k: plain_json_schema(v) for k, v in schema.items()}
