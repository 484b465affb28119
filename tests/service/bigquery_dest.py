"""A BigQuery destination for tests: a dataset of its own on the session's emulator (bqemulator)."""

from __future__ import annotations

import uuid
from typing import Any


class BigQueryDest:
    def __init__(self, emulator: Any) -> None:
        self.emulator = emulator
        self.dataset = f"t_{uuid.uuid4().hex[:12]}"
        self.client = emulator.client()

    def config(self, **extra: Any) -> dict[str, Any]:
        # gzip uploads fail on the emulator ("Malformed JSON ... at byte 1"); the live tests load gzip.
        # BIGNUMERIC columns fail in its load jobs (DuckDB has no DECIMAL(76, 38)): plain numbers as STRING,
        # every digit kept; the live tests load the default, bignumeric.
        base = {"load_compression": "none", "unbounded_numbers": "string"}
        return {**self.emulator.target_config(self.dataset), **base, **extra}

    def tables(self) -> set[str]:
        try:
            return {t.table_id for t in self.client.list_tables(self.dataset)}
        except Exception as exc:
            if getattr(exc, "code", None) == 404:
                return set()
            raise

    def rows(self, table: str) -> list[dict[str, Any]] | None:
        if table not in self.tables():
            return None
        result = self.client.query(f"SELECT * FROM `{self.dataset}`.`{table}`").result()
        return [dict(row.items()) for row in result]

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        return [tuple(row.values()) for row in self.client.query(sql).result()]

    def table(self, table: str) -> Any:
        return self.client.get_table(f"{self.emulator.project}.{self.dataset}.{table}")
