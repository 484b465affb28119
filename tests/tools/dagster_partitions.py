"""Dagster jobs over dpone's partition assets, rebuilt by name in every process Dagster starts.

The multiprocess executor runs each step in a process of its own, which rebuilds the job from a
module-level function and its arguments (`dagster.build_reconstructable_job`): hence this module,
whose functions take only plain values. The executor forks its step processes from a server that
has imported this module (and so dagster and dpone) once, which keeps a step's start-up short.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import dagster as dg

if TYPE_CHECKING:
    from dagster._core.definitions.reconstruct import ReconstructableJob  # dagster exports no name for it

from dpone_runner.orchestrators.dagster_assets import partitioned_asset, ranges_asset

JOB = "load"
MAX_CONCURRENT = 4


def _executor() -> dg.ExecutorDefinition:
    start = {"forkserver": {"preload_modules": [__name__]}}
    return dg.multiprocess_executor.configured({"max_concurrent": MAX_CONCURRENT, "start_method": start})


def _job(asset: dg.AssetsDefinition) -> dg.JobDefinition:
    defs = dg.Definitions(assets=[asset], jobs=[dg.define_asset_job(JOB, selection=[asset], executor_def=_executor())])
    return defs.resolve_job_def(JOB)


def _retries(max_retries: int) -> dg.RetryPolicy | None:
    return dg.RetryPolicy(max_retries=max_retries) if max_retries else None


def ranges_job(project_dir: str, pipeline: str, stream: str, max_retries: int) -> dg.JobDefinition:
    """Every range of the plan in one run (`ranges_asset`), retried without delay."""
    return _job(ranges_asset(pipeline, stream, project_dir=project_dir, retry_policy=_retries(max_retries)))


def partition_job(project_dir: str, pipeline: str, stream: str, max_retries: int) -> dg.JobDefinition:
    """One range per run (`partitioned_asset`): the run's tags name the partition."""
    return _job(partitioned_asset(pipeline, stream, project_dir=project_dir, retry_policy=_retries(max_retries)))


def reconstructable(
    job: str, project_dir: Path, pipeline: str, stream: str, max_retries: int = 0
) -> ReconstructableJob:
    """`job` (ranges_job or partition_job) as the executor's processes rebuild it."""
    return dg.build_reconstructable_job(
        __name__,
        job,
        reconstructable_args=(str(project_dir), pipeline, stream, max_retries),
        reconstructor_working_directory=str(Path(__file__).resolve().parents[2]),
    )
