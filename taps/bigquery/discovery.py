"""What tap-bigquery reads: the configured `streams` (a table or a query each), else every table
and view of `dataset` (narrowed by `tables`).

A table's columns come from `tables.get`; a query's from the query run with LIMIT 0. Key
properties are the stream's `key_properties` setting, else the table's PRIMARY KEY constraint
(BigQuery does not enforce it, but whoever declared it says the rows are unique by it), else none.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dpone.taps.bigquery.reader import QueryRead, read_error
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError

QUERY = "QUERY"


@dataclass(slots=True)
class StreamSpec:
    name: str
    fields: list[Any]  # google.cloud.bigquery SchemaFields, in column order
    source: str  # the FROM item of a query: a quoted table, or the configured query in parentheses
    kind: str  # TABLE, VIEW, MATERIALIZED_VIEW, EXTERNAL, SNAPSHOT... or QUERY
    table: Any = None  # the Table (for a TABLE read whole through tabledata.list or a read session)
    key_properties: list[str] = field(default_factory=list)
    replication_key: str | None = None
    num_rows: int | None = None
    dataset: str = ""
    table_name: str = ""

    @property
    def label(self) -> str:
        """How messages name what the stream reads."""
        return f"{self.dataset}.{self.table_name}" if self.table_name else f"the query of stream {self.name!r}"


def _quoted(project: str, dataset: str, table: str) -> str:
    return f"`{project}.{dataset}.{table}`"


def _primary_key(table: Any) -> list[str]:
    constraints = getattr(table, "table_constraints", None)
    primary = getattr(constraints, "primary_key", None) if constraints is not None else None
    return list(getattr(primary, "columns", None) or [])


def _from_table(client: Any, name: str, ref: str, redactor: Redactor, key: list[str] | None) -> StreamSpec:
    try:
        table = client.get_table(ref)
    except Exception as exc:  # every driver error is classified
        raise read_error(exc, redactor, f"reading table {ref}") from None
    return StreamSpec(
        name=name,
        fields=list(table.schema),
        source=_quoted(table.project, table.dataset_id, table.table_id),
        kind=str(table.table_type or "TABLE"),
        table=table,
        key_properties=list(key) if key is not None else _primary_key(table),
        num_rows=None if table.num_rows is None else int(table.num_rows),
        dataset=table.dataset_id,
        table_name=table.table_id,
    )


def _table_ref(config: Mapping[str, Any], text: str) -> str:
    parts = text.strip("`").split(".")
    if len(parts) == 1:
        return f"{config['project']}.{config['dataset']}.{parts[0]}"
    if len(parts) == 2:
        return f"{config['project']}.{text.strip('`')}"
    return text.strip("`")


def configured(client: Any, config: Mapping[str, Any], redactor: Redactor) -> list[StreamSpec]:
    """The `streams` setting's streams, each checked against BigQuery."""
    found: list[StreamSpec] = []
    for i, entry in enumerate(config.get("streams") or []):
        if not isinstance(entry, Mapping) or not entry.get("name"):
            raise ConfigError(f"streams[{i}]: each stream needs a 'name' (and a 'table' or a 'query')")
        name = str(entry["name"])
        if bool(entry.get("table")) == bool(entry.get("query")):
            raise ConfigError(f"streams[{i}] ({name!r}): give exactly one of 'table' and 'query'")
        keys = entry.get("key_properties")
        if keys is not None and not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
            raise ConfigError(f"streams[{i}] ({name!r}): 'key_properties' must be a list of column names")
        if entry.get("table"):
            spec = _from_table(client, name, _table_ref(config, str(entry["table"])), redactor, keys)
        else:
            query = str(entry["query"]).strip().rstrip(";")
            read = QueryRead(client, query, [], 1)
            try:
                fields = read.schema()
            except Exception as exc:
                raise read_error(exc, redactor, f"stream {name!r}: checking its query", read.job) from None
            spec = StreamSpec(name, fields, f"({query})", QUERY, key_properties=list(keys or []))
        spec.replication_key = entry.get("replication_key") or None
        columns = {f.name for f in spec.fields}
        for column in [*spec.key_properties, *([spec.replication_key] if spec.replication_key else [])]:
            if column not in columns:
                raise ConfigError(f"stream {name!r}: {column!r} is not a column of {spec.label}")
        found.append(spec)
    names = [s.name for s in found]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ConfigError(f"streams: the names {duplicates} are used more than once")
    return found


def dataset_tables(client: Any, config: Mapping[str, Any], redactor: Redactor) -> list[StreamSpec]:
    """Every table and view of `dataset` whose name matches a `tables` glob (default: all), by name."""
    dataset = f"{config['project']}.{config['dataset']}"
    wanted = [str(p) for p in config.get("tables") or ["*"]]
    try:
        client.get_dataset(dataset)  # a missing dataset lists no tables on some endpoints: say so instead
        items = sorted(client.list_tables(dataset), key=lambda t: t.table_id)
    except Exception as exc:
        raise read_error(exc, redactor, f"listing the tables of dataset {dataset}") from None
    return [
        _from_table(client, f"{config['dataset']}-{item.table_id}", f"{dataset}.{item.table_id}", redactor, None)
        for item in items
        if any(fnmatch.fnmatchcase(item.table_id, p) for p in wanted)
    ]
