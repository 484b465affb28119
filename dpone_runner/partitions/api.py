"""What an orchestrator calls (Dagster assets, Airflow tasks): the code path of `dpone partitions run`.

Each call opens the project and its state store, does one thing and closes them, so it can run in
any worker process or machine that has the project and reaches the store and the databases.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from dpone.state import partitions as p
from dpone.state.manifest import Manifest
from dpone.state.store import StateStore, open_store
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ErrorKind
from dpone_runner.partitions.worker import RangeFailed, RangeOutcome, Worker, WorkerOptions, default_worker
from dpone_runner.project import Pipeline, Project, load_project, state_backend_uri

__all__ = ["RangeFailed", "RangeOutcome", "finalize", "range_keys", "run_range"]


@contextlib.contextmanager
def _opened(project_dir: str | os.PathLike[str], pipeline: str) -> Iterator[tuple[Project, StateStore, Pipeline]]:
    project = load_project(Path(project_dir))
    store = open_store(state_backend_uri(project.root, None, project.state_backend))
    try:
        yield project, store, project.pipeline(pipeline)
    finally:
        store.close()


def range_keys(project_dir: str | os.PathLike[str], pipeline: str, stream: str) -> list[str]:
    """The plan's ranges as partition keys: r0000, r0001, ... (ConfigError when there is no plan)."""
    with _opened(project_dir, pipeline) as (_, store, chosen):
        return [r.key for r in Manifest(store, chosen.id, stream).require().ranges]


def run_range(
    project_dir: str | os.PathLike[str],
    pipeline: str,
    stream: str,
    key: str,
    *,
    worker: str | None = None,
    lease_seconds: float = 120.0,
) -> RangeOutcome:
    """Claim and load one range; a range already loaded returns at once (`already_loaded`). Raises
    RangeFailed (a DponeError: `.kind`, `.exit_code`) when it fails; calling again retries it."""
    redactor = Redactor()
    with _opened(project_dir, pipeline) as (project, store, chosen):
        options = WorkerOptions(worker or default_worker(), lease_seconds)
        outcome = Worker(project, store, chosen, stream, options, redactor).run_one(p.index_of(key))
    if outcome.status == p.FAILED:
        raise RangeFailed(outcome, ErrorKind(outcome.error_kind or ErrorKind.FATAL.value))
    return outcome


def finalize(project_dir: str | os.PathLike[str], pipeline: str, stream: str) -> bool:
    """Move the stream's bookmark if every range is loaded (idempotent); True once it has moved."""
    with _opened(project_dir, pipeline) as (project, store, chosen):
        options = WorkerOptions(default_worker())
        return Worker(project, store, chosen, stream, options, Redactor()).finalize()
