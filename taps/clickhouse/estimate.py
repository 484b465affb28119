"""Rows per selected stream as ClickHouse keeps them in system.tables (`total_rows`), without a scan.

For MergeTree-family and Memory tables the figure is the stored row count (exact once merges and
lightweight deletes settle; a ReplacingMergeTree counts rows FINAL would still collapse); views and
engines that keep no count give NULL: unknown (None), never 0.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dpone.taps.framework.estimates import Table, per_stream, selected_tables
from dpone_protocol.catalog import Catalog

if TYPE_CHECKING:
    from dpone.taps.clickhouse.tap import ClickHouseTap

_ESTIMATES = """
SELECT database, name, total_rows FROM system.tables
WHERE database IN {databases:Array(String)} AND name IN {names:Array(String)}
"""


def estimate_rows(tap: ClickHouseTap, catalog: Catalog | None) -> dict[str, int | None]:
    """Stream -> stored rows (None: unknown) for each selected stream of `catalog`."""
    tables = selected_tables(catalog)
    wanted = {t for t in tables.values() if t is not None}
    found: dict[Table, int | None] = {}
    if wanted:
        params = {"databases": sorted({d for d, _ in wanted}), "names": sorted({n for _, n in wanted})}
        try:
            rows = tap.conn.client.query(_ESTIMATES, parameters=params).result_rows
        except tap.dialect.driver_errors() as exc:
            raise tap.dialect.error(exc, tap.redactor, "reading row counts (system.tables)") from None
        found = {(d, n): None if total is None else int(total) for d, n, total in rows}
    return per_stream(tables, found)
