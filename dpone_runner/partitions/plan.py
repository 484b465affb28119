"""`dpone partitions plan`: ask the tap for key ranges, prepare the destination, store the manifest."""

from __future__ import annotations

import logging
import uuid
from dataclasses import dataclass
from typing import Any

from dpone.state import partitions as p
from dpone.state.manifest import Manifest
from dpone.state.store import StateStore, utc_now
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError
from dpone_protocol.key_ranges import KeyRange
from dpone_protocol.ops import PARTITION_PLAN, RANGE_LEDGER
from dpone_runner import ops_client
from dpone_runner.partitions.task import RangeTask
from dpone_runner.project import EXTRACTORS, LOADERS, Pipeline, Plugin, Project

log = logging.getLogger("dpone.partitions")


@dataclass(frozen=True, slots=True)
class PlanRequest:
    stream: str
    by: str
    ranges: int | None = None
    rows_per_range: int | None = None
    method: str = "auto"
    replace: bool = False


def plugins(project: Project, pipeline: Pipeline) -> tuple[Plugin, Plugin]:
    """The pipeline's tap and its one target: a range commits in one destination, or its ledger means nothing."""
    if len(pipeline.targets) != 1:
        raise ConfigError(
            f"pipeline {pipeline.id!r} has {len(pipeline.targets)} targets; a partitioned load writes to one "
            "(declare a pipeline per destination)"
        )
    return project.plugin(pipeline.tap, EXTRACTORS), project.plugin(pipeline.targets[0], LOADERS)


def check_target(project: Project, target: Plugin, redactor: Redactor) -> None:
    """The target loads a range in one transaction (it keeps a range ledger, made here) and not by overwrite."""
    if str(target.config.get("load_method") or "") == "overwrite":
        raise ConfigError(
            f"{target.name} has load_method overwrite, which replaces the whole table: a partitioned load appends "
            "(append-only) or merges (upsert) each range"
        )
    answer = ops_client.ask(project, target, {"op": RANGE_LEDGER, "prepare": True}, redactor)
    if not answer.get("supported"):
        raise ConfigError(
            f"{answer.get('reason') or target.name + ' cannot load key ranges'}: partitioned loads need one"
        )


def make_plan(
    project: Project, store: StateStore, pipeline: Pipeline, request: PlanRequest, redactor: Redactor
) -> p.PartitionPlan:
    from dpone_runner.pipeline import Run, RunOptions  # noqa: PLC0415 - pipeline imports this package

    tap, target = plugins(project, pipeline)
    manifest = Manifest(store, pipeline.id, request.stream)
    existing = manifest.get()
    if existing is not None and existing.unfinished() and not request.replace:
        manifest.save(existing, replace=False)  # raises the "unfinished plan" error, with its counts
    catalog = ops_client.selected_catalog(project, tap, redactor)
    if catalog.get(request.stream) is None or not catalog.get(request.stream).is_selected():  # type: ignore[union-attr]
        selected = ", ".join(e.tap_stream_id for e in catalog.selected()) or "none"
        raise ConfigError(
            f"stream {request.stream!r} is not selected in pipeline {pipeline.id!r} (selected: {selected})"
        )
    question: dict[str, Any] = {
        "op": PARTITION_PLAN,
        "stream": request.stream,
        "by": request.by,
        "ranges": request.ranges,
        "rows_per_range": request.rows_per_range,
        "method": request.method,
    }
    answer = ops_client.ask(project, tap, question, redactor, catalog=catalog)
    if not answer.get("supported"):
        raise ConfigError(str(answer.get("reason") or f"{tap.name} cannot split a stream into key ranges"))
    cuts: list[str] = list(answer["cuts"])
    if len(cuts) + 1 > p.MAX_RANGES:
        raise ConfigError(f"{len(cuts) + 1} ranges: plan at most {p.MAX_RANGES} (use --rows-per-range with more rows)")
    check_target(project, target, redactor)
    bounds = [None, *cuts], [*cuts, None]
    rows = answer.get("rows")
    each = None if rows is None else -(-int(rows) // (len(cuts) + 1))
    plan = p.PartitionPlan(
        pipeline_id=pipeline.id,
        stream=request.stream,
        plan_id=uuid.uuid4().hex[:12],
        column=str(answer["column"]),
        column_type=str(answer["type"]),
        method=str(answer["method"]),
        created_at=utc_now(),
        ranges=[p.PartitionRange(i, low, high, each) for i, (low, high) in enumerate(zip(*bounds, strict=True))],
        bookmark=answer.get("bookmark"),
        replication_method=answer.get("replication_method"),
        target=target.name,
        notes=list(answer.get("notes") or []),
    )
    if cuts:
        # The table (and its schema changes) made once, now: workers starting together would race to
        # create it. An empty range sends the SCHEMA and no rows.
        empty = KeyRange(plan.column, plan.column_type, cuts[0], cuts[0])
        task = RangeTask(request.stream, empty, None, "prepare")
        options = RunOptions(pipeline.id, progress=False, key_range=task, catalog=catalog)
        Run(project, store, tap, [target], options, redactor).execute()
    manifest.save(plan, replace=request.replace)
    for note in plan.notes:
        log.warning("%s", note)
    return plan
