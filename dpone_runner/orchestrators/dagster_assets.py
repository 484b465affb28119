"""A stream's partitioned load as Dagster assets: the ranges of `dpone partitions plan`, run by Dagster.

Two shapes of the same destination table; choose one per stream:

- `partitioned_asset`: one Dagster partition per range (r0000, r0001, ...), read from the manifest when
  the definitions load. A backfill launches a run per range, so the run launcher (Kubernetes, Celery,
  Docker) spreads the ranges over machines; each run loads its range, then finalizes if it was the last.
- `ranges_asset`: one run loads every range. An op fans out over the manifest's ranges (dynamic
  outputs), the run's executor (multiprocess, k8s_job_executor, celery_executor) runs the loads side by
  side, and a last op moves the stream's bookmark once all of them succeeded.

Both call dpone_runner.partitions.api, the code path of `dpone partitions run`: claims, leases, the
destination's range ledger and the bookmark stay dpone's; retries and concurrency are Dagster's. A
failure dpone calls transient (a dropped connection, a deadlock, a range whose lease a dead worker
still holds) is raised for the op's RetryPolicy; any other (settings, refused data, a bug) fails the
step without retries, since a retry would fail the same way.

Needs the `dagster` extra (pip install 'dpone[dagster]'); nothing else in dpone imports this module.
"""

# No `from __future__ import annotations`: Dagster reads the ops' annotations (the context's type, the
# inputs' and outputs' types) as objects, not as strings.

import os
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

import dagster as dg

from dpone_protocol.errors import ErrorKind, TransientError, exit_code_for, kind_for_exit
from dpone_runner.partitions.api import RangeOutcome, finalize, range_keys, run_range

# What another attempt can fix: the network, a lock, a sender that died mid-stream.
RETRYABLE_KINDS = frozenset({ErrorKind.TRANSIENT, ErrorKind.INPUT_CUT})

# A range whose worker died is claimable again only once its lease lapsed: the delays leave time for it.
DEFAULT_RETRY_POLICY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL)

T = TypeVar("T")


def asset_name(stream: str) -> str:
    """A stream's name as a Dagster name (letters, digits, underscores): public-orders -> public_orders."""
    return re.sub(r"[^A-Za-z0-9_]", "_", stream)


def worker_id(run_id: str) -> str:
    """The name the manifest records for the worker holding a range: the Dagster run that loads it."""
    return f"dagster-{run_id}"


def for_dagster(step: Callable[[], T], what: str) -> T:
    """Run `step`; a failure another attempt cannot fix becomes a Failure that the RetryPolicy skips."""
    try:
        return step()
    except Exception as exc:
        kind = kind_for_exit(exit_code_for(exc)) or ErrorKind.FATAL
        if kind in RETRYABLE_KINDS:
            raise
        raise dg.Failure(
            description=f"{what}: {exc}",
            metadata={"error_kind": kind.value, "exit_code": exit_code_for(exc)},
            allow_retries=False,
        ) from exc


def load(project: str, pipeline: str, stream: str, key: str, worker: str) -> RangeOutcome:
    """Load one range for a step: a range the plan skips fails it, since it is not (and will not be) loaded."""
    outcome = for_dagster(
        lambda: run_range(project, pipeline, stream, key, worker=worker), f"loading range {key} of {stream}"
    )
    if outcome.status != "success":
        raise dg.Failure(
            description=f"range {key} of {stream} is {outcome.status} in the plan (`dpone partitions reset` loads it)",
            metadata=outcome_metadata(outcome),
            allow_retries=False,
        )
    return outcome


def outcome_metadata(outcome: RangeOutcome) -> dict[str, Any]:
    return {name: value for name, value in asdict(outcome).items() if value is not None}


def _tags(pipeline: str, stream: str) -> dict[str, str]:
    # Op tags: an executor's tag_concurrency_limits can cap the loads of one stream or pipeline.
    return {"dpone/pipeline": pipeline, "dpone/stream": stream}


def _description(pipeline: str, stream: str, how: str) -> str:
    return f"Stream {stream!r} of dpone pipeline {pipeline!r}, loaded {how} (dpone partitions)."


def partitioned_asset(
    pipeline: str,
    stream: str,
    *,
    project_dir: str | os.PathLike[str],
    name: str | None = None,
    key_prefix: str | Sequence[str] | None = None,
    group_name: str | None = None,
    retry_policy: dg.RetryPolicy | None = DEFAULT_RETRY_POLICY,
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """The stream's destination table as an asset with one static partition per planned range.

    The partitions are the manifest's range keys when the definitions load: plan first
    (`dpone partitions plan`), and reload the code location after a new plan. Materializing a
    partition claims and loads that range (a range already loaded returns at once), then finalizes:
    the run that loads the last range moves the stream's bookmark. A backfill of every partition runs
    one range per run (Dagster's default backfill policy); `pool` caps how many load at once across runs.

        from dagster import Definitions, RetryPolicy
        from dpone_runner.orchestrators.dagster_assets import partitioned_asset

        orders = partitioned_asset(
            "orders",
            "public-orders",
            project_dir="/srv/dpone-project",
            retry_policy=RetryPolicy(max_retries=3, delay=60),
            pool="dpone-orders",
        )
        defs = Definitions(assets=[orders])
    """
    project = os.fspath(project_dir)
    partitions = dg.StaticPartitionsDefinition(range_keys(project, pipeline, stream))

    @dg.asset(
        name=name or asset_name(stream),
        key_prefix=key_prefix,
        group_name=group_name,
        description=_description(pipeline, stream, "one range per partition"),
        partitions_def=partitions,
        retry_policy=retry_policy,
        pool=pool,
        op_tags=_tags(pipeline, stream),
        kinds={"dpone"},
    )
    def load_partition(context: dg.AssetExecutionContext) -> dg.MaterializeResult[Any]:
        key = context.partition_key
        worker = worker_id(context.run.run_id)
        outcome = load(project, pipeline, stream, key, worker)
        finalized = for_dagster(lambda: finalize(project, pipeline, stream), f"finalizing {stream}")
        context.log.info(
            f"range {key}: {outcome.rows_loaded} rows loaded, attempt {outcome.attempts}"
            + (" (already loaded)" if outcome.already_loaded else "")
            + ("; every range is in: the stream's bookmark moved" if finalized else "")
        )
        return dg.MaterializeResult(metadata={**outcome_metadata(outcome), "worker": worker, "finalized": finalized})

    return load_partition


def ranges_asset(
    pipeline: str,
    stream: str,
    *,
    project_dir: str | os.PathLike[str],
    name: str | None = None,
    key_prefix: str | Sequence[str] | None = None,
    group_name: str | None = None,
    retry_policy: dg.RetryPolicy | None = DEFAULT_RETRY_POLICY,
    pool: str | None = None,
) -> dg.AssetsDefinition:
    """The stream's destination table as a graph-backed asset: every range of the plan in one run.

    Its graph: `<name>__ranges` reads the manifest's range keys when the run starts and fans out (one
    dynamic output per range); `<name>__load_range` loads one range, with `retry_policy`, in parallel
    as far as the executor allows (its max_concurrent, its tag_concurrency_limits on the op tags
    dpone/pipeline and dpone/stream, or `pool`); `<name>__finalize` moves the stream's bookmark once
    every range succeeded. Re-executing a failed run from failure loads only the ranges still missing.

        from dagster import Definitions, RetryPolicy, define_asset_job, multiprocess_executor
        from dpone_runner.orchestrators.dagster_assets import ranges_asset

        orders = ranges_asset(
            "orders",
            "public-orders",
            project_dir="/srv/dpone-project",
            retry_policy=RetryPolicy(max_retries=3, delay=60),
        )
        defs = Definitions(
            assets=[orders],
            jobs=[
                define_asset_job(
                    "load_orders",
                    selection=[orders],
                    executor_def=multiprocess_executor.configured({"max_concurrent": 4}),
                )
            ],
        )
    """
    project = os.fspath(project_dir)
    asset = name or asset_name(stream)
    prefix = [key_prefix] if isinstance(key_prefix, str) else list(key_prefix or [])
    ops = "__".join([*prefix, asset])  # op names are unique across a code location
    tags = _tags(pipeline, stream)

    @dg.op(name=f"{ops}__ranges", out=dg.DynamicOut(str), tags=tags)
    def list_ranges(context: dg.OpExecutionContext) -> Iterator[dg.DynamicOutput[str]]:
        keys = for_dagster(lambda: range_keys(project, pipeline, stream), f"reading the ranges of {stream}")
        context.log.info(f"{len(keys)} ranges of {stream} to load")
        for key in keys:
            yield dg.DynamicOutput(key, mapping_key=key)

    @dg.op(name=f"{ops}__load_range", retry_policy=retry_policy, pool=pool, tags=tags)
    def load_range(context: dg.OpExecutionContext, key: str) -> dict[str, Any]:
        worker = worker_id(context.run.run_id)
        outcome = load(project, pipeline, stream, key, worker)
        found = outcome_metadata(outcome)
        context.add_output_metadata({**found, "worker": worker})
        return found

    @dg.op(name=f"{ops}__finalize", out=dg.Out(dg.Nothing), retry_policy=retry_policy, tags=tags)
    def finalize_stream(context: dg.OpExecutionContext, outcomes: list[dict[str, Any]]) -> None:
        # Every range loaded, so only a busy pipeline lock (a finalize or `dpone run` elsewhere) holds
        # the bookmark back: worth a retry.
        if not for_dagster(lambda: finalize(project, pipeline, stream), f"finalizing {stream}"):
            raise TransientError(f"every range of {stream} is loaded, but its bookmark could not move yet")
        context.add_output_metadata(
            {
                "ranges": len(outcomes),
                "rows_extracted": sum(int(o["rows_extracted"]) for o in outcomes),
                "rows_loaded": sum(int(o["rows_loaded"]) for o in outcomes),
                "retried_ranges": sorted(str(o["key"]) for o in outcomes if int(o["attempts"]) > 1),
            }
        )

    @dg.graph_asset(
        name=asset,
        key_prefix=key_prefix,
        group_name=group_name,
        description=_description(pipeline, stream, "all ranges in one run"),
        kinds={"dpone"},
    )
    def load_all_ranges() -> Any:
        return finalize_stream(list_ranges().map(load_range).collect())

    return load_all_ranges
