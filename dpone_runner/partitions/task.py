"""What a run needs to load one key range instead of the whole pipeline."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from dpone_protocol.catalog import Catalog
from dpone_protocol.errors import ConfigError
from dpone_protocol.key_ranges import RANGE_METADATA, KeyRange


@dataclass(frozen=True, slots=True)
class RangeTask:
    stream: str
    key_range: KeyRange
    token: str | None  # the range's ledger token; None: no ledger (the destination is only prepared)
    label: str  # r0003, or "prepare"

    def adjust(self, catalog: Catalog) -> None:
        """Only the stream, and only its range."""
        found = False
        for entry in catalog:
            metadata = entry.stream_metadata()
            if entry.tap_stream_id == self.stream:
                if not entry.is_selected():
                    raise ConfigError(f"stream {self.stream!r} is not selected in this pipeline")
                metadata[RANGE_METADATA] = self.key_range.to_metadata()
                found = True
            else:
                metadata["selected"] = False
        if not found:
            raise ConfigError(f"the tap has no stream {self.stream!r}")


def leave_out(catalog: Catalog, streams: Iterable[str]) -> None:
    """Deselect `streams` (their partitioned loads are not finished)."""
    chosen = set(streams)
    for entry in catalog:
        if entry.tap_stream_id in chosen:
            entry.stream_metadata()["selected"] = False
