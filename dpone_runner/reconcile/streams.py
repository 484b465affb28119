"""What is compared of each stream: its keys, and its selected columns with the kind of each."""

from __future__ import annotations

import fnmatch
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from dpone_protocol.catalog import Catalog, CatalogEntry
from dpone_protocol.errors import ConfigError, DponeError
from dpone_protocol.json_schema import column_type
from dpone_protocol.ops import RECONCILE
from dpone_protocol.reconcile import JSON, KIND_OF_LOGICAL

METADATA_PREFIX = "_sdc_"  # the targets' own columns (load times, versions, deletes): not the source's


@dataclass(slots=True)
class StreamSpec:
    stream: str
    keys: list[str]
    columns: list[dict[str, str]]  # {name, kind}, in the catalog's order
    key_schema: dict[str, Any]
    skipped: dict[str, str] = field(default_factory=dict)  # column -> why it is not checksummed

    def request(self, checksum: bool) -> dict[str, Any]:
        return {
            "op": RECONCILE,
            "stream": self.stream,
            "keys": self.keys,
            "columns": self.columns,
            "checksum": checksum and bool(self.keys),
        }


def _kind(schema: Any) -> str:
    try:
        return KIND_OF_LOGICAL[column_type(schema).logical]
    except (DponeError, KeyError, TypeError, AttributeError):
        return JSON  # a schema the type model cannot narrow: compared as JSON, i.e. not checksummed


def stream_spec(entry: CatalogEntry) -> StreamSpec:
    properties = entry.selected_schema().get("properties") or {}
    keys = [k for k in entry.effective_key_properties() if k in properties]
    columns, skipped = [], {}
    for name, schema in properties.items():
        if name.startswith(METADATA_PREFIX):
            skipped[name] = "a metadata column the targets write themselves"
            continue
        kind = _kind(schema)
        columns.append({"name": name, "kind": kind})
        if kind == JSON:
            skipped[name] = "JSON values (objects, arrays, unions) are not checksummed"
    return StreamSpec(entry.tap_stream_id, keys, columns, {k: properties[k] for k in keys}, skipped)


def selected_streams(catalog: Catalog, patterns: Sequence[str]) -> list[StreamSpec]:
    """The selected streams whose id matches one of `patterns` (every selected stream without any)."""
    selected = catalog.selected()
    chosen = [e for e in selected if not patterns or any(fnmatch.fnmatchcase(e.tap_stream_id, p) for p in patterns)]
    if not chosen:
        names = ", ".join(e.tap_stream_id for e in selected) or "none"
        wanted = f" matching {', '.join(patterns)}" if patterns else ""
        raise ConfigError(f"no selected stream{wanted} (selected: {names})")
    return [stream_spec(e) for e in chosen]
