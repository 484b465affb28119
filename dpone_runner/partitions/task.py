"""What a run needs for partitioned loads: one key range of a stream, the streams an ordinary run leaves out
while their ranges load, and the private files of range runs whose worker is gone."""

from __future__ import annotations

import glob
import logging
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from dpone.state.manifest import unfinished_plans
from dpone.state.store import StateStore
from dpone_protocol.catalog import Catalog
from dpone_protocol.errors import ConfigError
from dpone_protocol.key_ranges import RANGE_METADATA, KeyRange
from dpone_protocol.local_process import process_exists

log = logging.getLogger("dpone.run")


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


def streams_to_leave_out(store: StateStore, pipeline_id: str) -> list[str]:
    """Streams whose partitioned load is not finished: this run leaves them out (their bookmark moves
    when the last range is in). A log-based one stops the run: the slot is shared by every stream."""
    plans = unfinished_plans(store, pipeline_id)
    for plan in plans:
        if plan.replication_method == "LOG_BASED":
            raise ConfigError(
                f"stream {plan.stream!r} of pipeline {pipeline_id!r} has an unfinished partitioned load; its "
                "replication slot must keep the changes from where the load began, so no run of the "
                f"pipeline may advance it: finish it (`dpone partitions run {pipeline_id} --stream {plan.stream}`) "
                f"or drop it (`dpone partitions drop {pipeline_id} --stream {plan.stream}`)"
            )
        done = plan.counts()["success"]
        log.warning(
            "stream %s left out: its partitioned load is not finished (%d of %d ranges loaded); see "
            "`dpone partitions status %s`",
            plan.stream,
            done,
            len(plan.ranges),
            pipeline_id,
        )
    return [plan.stream for plan in plans]


def sweep_dead_range_dirs(runs: Path, pipeline: str) -> None:
    """Remove the private files (configs with secrets) of key-range runs whose process is gone."""
    if not runs.is_dir():
        return
    for path in runs.glob(f"{glob.escape(pipeline)}.*.*.*"):
        pid = path.name.rsplit(".", 2)[-2]
        if pid.isdigit() and not process_exists(int(pid)):
            shutil.rmtree(path, ignore_errors=True)
