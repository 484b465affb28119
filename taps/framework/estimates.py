"""The tables behind a database tap's selected streams, for `estimate_rows` (dpone_protocol/ops.py).

A database tap's discovery names each stream's table in its metadata (`schema-name`, `table-name`,
sql_discovery.discovery_metadata); a connector looks those up in its own statistics and hands the
figures back per table, and `per_stream` answers per stream: None wherever the source keeps none.
"""

from __future__ import annotations

from collections.abc import Mapping

from dpone_protocol.catalog import Catalog

Table = tuple[str, str]  # (schema or database, table)


def selected_tables(catalog: Catalog | None) -> dict[str, Table | None]:
    """Stream -> its table, for each selected stream (None: the stream names no table)."""
    found: dict[str, Table | None] = {}
    for entry in catalog.selected() if catalog else []:
        metadata = entry.stream_metadata()
        schema, table = metadata.get("schema-name"), metadata.get("table-name")
        found[entry.tap_stream_id] = (str(schema), str(table)) if schema and table else None
    return found


def per_stream(tables: Mapping[str, Table | None], rows: Mapping[Table, int | None]) -> dict[str, int | None]:
    return {stream: rows.get(table) if table else None for stream, table in tables.items()}
