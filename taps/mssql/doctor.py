"""tap-mssql's `dpone doctor` checks: it connects, and every selected LOG_BASED stream's table has SQL
Server CDC enabled with a capture instance the tap's user can read: what a run checks before its
first record, asked before the run."""

from __future__ import annotations

from functools import partial
from typing import TYPE_CHECKING

from dpone.taps.mssql.cdc import capture_instance
from dpone.taps.mssql.streams import MssqlStream
from dpone_protocol.catalog import LOG_BASED, Catalog
from dpone_protocol.ops import Check, probe

if TYPE_CHECKING:
    from dpone.taps.framework.stream import Stream
    from dpone.taps.mssql.tap import MssqlTap


def checks(tap: MssqlTap, catalog: Catalog | None) -> list[Check]:
    discovered: list[Stream] = []
    found = [probe("connect", lambda: discovered.extend(tap.discover_streams()), "connected; tables discovered")]
    if found[0].failed or catalog is None:
        return found
    by_name = {stream.name: stream for stream in discovered if isinstance(stream, MssqlStream)}
    for entry in catalog.selected():
        stream = by_name.get(entry.tap_stream_id)
        if stream is None or entry.effective_replication_method() != LOG_BASED:
            continue
        found.append(
            probe(f"CDC {stream.name}", partial(capture_instance, stream), "enabled; capture instance readable")
        )
    return found
