"""SQL text and table definitions for target-bigquery.

BigQuery has no DDL inside a transaction, and one DML statement (INSERT, MERGE, DELETE, UPDATE) is
atomic on its own: each batch's move into its table is one statement, and the additive schema
changes before it (ADD COLUMN IF NOT EXISTS, DROP NOT NULL, SET DATA TYPE to a wider type) run in
the same script, ahead of it. A failure after them leaves a wider table and no row of the batch.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from dpone.targets.bigquery.type_map import array_item
from dpone.targets.framework.sql_dialect import SqlDialect
from dpone_drivers.sql_names import BACKTICKS
from dpone_protocol.errors import ConfigError

PARTITION_TYPES = ("HOUR", "DAY", "MONTH", "YEAR")
_OPTION_KEYS = ("partition_by", "partition_type", "cluster_by", "require_partition_filter")


@dataclass(frozen=True, slots=True)
class TableOptions:
    """A stream's table layout (the `table_options` setting), applied when the table is created."""

    partition_by: str | None = None
    partition_type: str = "DAY"
    cluster_by: tuple[str, ...] = field(default_factory=tuple)
    require_partition_filter: bool = False

    @classmethod
    def for_stream(cls, config: Mapping[str, Any], stream: str) -> TableOptions:
        spec = config.get("table_options") or {}
        if not isinstance(spec, Mapping):
            raise ConfigError("setting 'table_options' must map stream names (or patterns) to table options")
        found = spec.get(stream)
        if found is None:
            found = next((v for k, v in spec.items() if fnmatch.fnmatchcase(stream, k)), None)
        if found is None:
            return cls()
        if not isinstance(found, Mapping):
            raise ConfigError(f"table_options[{stream!r}] must be an object")
        unknown = set(found) - set(_OPTION_KEYS)
        if unknown:
            raise ConfigError(
                f"table_options[{stream!r}]: unknown keys {sorted(unknown)} (use {', '.join(_OPTION_KEYS)})"
            )
        kind = str(found.get("partition_type") or "DAY").upper()
        if kind not in PARTITION_TYPES:
            raise ConfigError(f"table_options[{stream!r}].partition_type must be one of {', '.join(PARTITION_TYPES)}")
        cluster = found.get("cluster_by") or ()
        if isinstance(cluster, str):
            cluster = (cluster,)
        if not all(isinstance(c, str) for c in cluster) or len(cluster) > 4:
            raise ConfigError(f"table_options[{stream!r}].cluster_by must list at most 4 column names")
        partition = found.get("partition_by")
        return cls(
            str(partition) if partition else None, kind, tuple(cluster), bool(found.get("require_partition_filter"))
        )

    def check(self, stream: str, columns: Mapping[str, str]) -> None:
        """Before anything is created: the columns named exist and can partition or cluster."""
        if self.partition_by is not None:
            type_ = columns.get(self.partition_by)
            if type_ not in ("TIMESTAMP", "DATE"):
                raise ConfigError(
                    f"table_options[{stream!r}].partition_by: {self.partition_by!r} must be a TIMESTAMP or DATE "
                    f"column of the table (it is {type_ or 'not a column'})"
                )
            if type_ == "DATE" and self.partition_type == "HOUR":
                raise ConfigError(
                    f"table_options[{stream!r}].partition_type: a DATE column ({self.partition_by!r}) partitions "
                    "by DAY, MONTH or YEAR, not HOUR"
                )
        for name in self.cluster_by:
            type_ = columns.get(name)
            if type_ is None or type_ in ("JSON", "FLOAT64") or array_item(type_) is not None:
                raise ConfigError(
                    f"table_options[{stream!r}].cluster_by: {name!r} must be a column of a clusterable type "
                    f"(it is {type_ or 'not a column'})"
                )

    def clauses(self, columns: Mapping[str, str]) -> str:
        """The DDL words of the layout (for the plan shown to people; the table is made through the API)."""
        words = []
        if self.partition_by:
            col = BACKTICKS.q(self.partition_by)
            if columns.get(self.partition_by) == "DATE" and self.partition_type == "DAY":
                words.append(f"PARTITION BY {col}")
            else:
                words.append(f"PARTITION BY TIMESTAMP_TRUNC({col}, {self.partition_type})")
        if self.cluster_by:
            words.append("CLUSTER BY " + ", ".join(BACKTICKS.q(c) for c in self.cluster_by))
        return (" " + " ".join(words)) if words else ""


def labels_of(config: Mapping[str, Any]) -> dict[str, str]:
    """The job_labels setting, checked: every job the target runs carries them."""
    raw = config.get("job_labels") or {}
    if not isinstance(raw, Mapping) or not all(isinstance(v, str) for v in raw.values()):
        raise ConfigError('setting \'job_labels\' must map label keys to strings, e.g. {"team": "data"}')
    return {str(k): v for k, v in raw.items()}


def schema_fields(bigquery: Any, columns: Mapping[str, str], required: frozenset[str] = frozenset()) -> list[Any]:
    """SchemaFields of `columns` (name -> standard SQL type); ARRAY<T> is a REPEATED T."""
    fields = []
    for name, type_ in columns.items():
        item = array_item(type_)
        if item is not None:
            fields.append(bigquery.SchemaField(name, item, mode="REPEATED"))
        else:
            fields.append(bigquery.SchemaField(name, type_, mode="REQUIRED" if name in required else "NULLABLE"))
    return fields


class BigQuerySql(SqlDialect):
    quoting = BACKTICKS
    transactional = False  # DDL cannot run in a transaction; each DML statement is atomic
    max_name_bytes = 1024  # table names
    has_merge = True
    merge_into = "MERGE"

    def add_column(self, table: str, column: str, type_: str) -> str:
        # IF NOT EXISTS: a retried batch whose script added it before failing adds nothing.
        return f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {self.q(column)} {type_}"

    def alter_type(self, table: str, column: str, type_: str) -> str:
        return f"ALTER TABLE {table} ALTER COLUMN {self.q(column)} SET DATA TYPE {type_}"

    def drop_not_null(self, table: str, column: str, type_: str = "") -> str:
        return f"ALTER TABLE {table} ALTER COLUMN {self.q(column)} DROP NOT NULL"

    def create_text(self, table: str, columns: Mapping[str, str], options: TableOptions) -> str:
        cols = ", ".join(f"{self.q(c)} {t}" for c, t in columns.items())
        return f"CREATE TABLE IF NOT EXISTS {table} ({cols}){options.clauses(columns)}"

    def now(self) -> str:
        return "CURRENT_TIMESTAMP()"

    def duplicate_keys(self, source: str, keys: list[str]) -> str:
        """One row: how many rows, how many distinct keys (a direct file load checks it before a merge)."""
        key = f"TO_JSON_STRING(STRUCT({self.column_list(keys)}))"
        return f"SELECT COUNT(*), COUNT(DISTINCT {key}) FROM {source}"


SQL = BigQuerySql()
