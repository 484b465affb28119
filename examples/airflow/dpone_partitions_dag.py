"""An Airflow 2.x DAG that loads one large stream as dpone partitions: one mapped task per key range.

    ranges (plan once, then read the manifest) -> load_range x N (dynamic task mapping) -> finalize

Each mapped task calls dpone_runner.partitions.api.run_range, the code path of `dpone partitions
run --range KEY`: it claims the range (a lease in the state store), loads it into the destination in
one transaction, and records the outcome in the manifest. Airflow's executor (Celery, Kubernetes,
local) runs the mapped tasks side by side, at most `max_active_tis_per_dagrun` at a time, and
retries a failed one: a transient failure (a dropped connection, a deadlock, a range whose lease a
dead worker still holds) raises for a retry; any other fails the task at once. `finalize` moves the
stream's bookmark once every range is in.

Copy it into your DAGs folder and set the four constants below. Every Airflow worker needs dpone
installed (pip install 'dpone[postgres]'), the project directory, and a state store that all of
them reach: the PostgreSQL one (`state_backend: postgresql://...` in dpone.yml) for workers on
several machines. Not run by dpone's tests (they run Dagster); a unit test checks that it parses.
"""

# dpone is imported inside the tasks: the scheduler parses this file often, and only workers load ranges.
# ruff: noqa: PLC0415

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

import pendulum
from airflow.decorators import dag, task
from airflow.exceptions import AirflowFailException

PROJECT_DIR = "/srv/dpone-project"  # holds meltano.yml and dpone.yml
PIPELINE = "orders"
STREAM = "public-orders"
PLAN = ["--by", "id", "--ranges", "32"]  # how `dpone partitions plan` splits the stream when no plan exists


@dag(
    dag_id="dpone_partitions_orders",
    schedule=None,
    start_date=pendulum.datetime(2024, 1, 1, tz="UTC"),
    catchup=False,
    max_active_runs=1,  # one partitioned load of the stream at a time
    tags=["dpone"],
)
def dpone_partitions_orders() -> None:
    @task
    def ranges() -> list[str]:
        """The plan's range keys (r0000, r0001, ...), planning the stream first when it has no plan."""
        from dpone_protocol.errors import ConfigError
        from dpone_runner import cli
        from dpone_runner.partitions.api import range_keys

        try:
            return range_keys(PROJECT_DIR, PIPELINE, STREAM)
        except ConfigError:
            argv = ["partitions", "plan", PIPELINE, "--stream", STREAM, *PLAN, "--project", PROJECT_DIR]
            if cli.run(argv) != 0:
                raise AirflowFailException(f"dpone partitions plan {PIPELINE} --stream {STREAM} failed") from None
            return range_keys(PROJECT_DIR, PIPELINE, STREAM)

    @task(
        retries=3,
        # Longer than the range's lease (120 s): a range whose worker died is claimable again only then.
        retry_delay=timedelta(minutes=3),
        retry_exponential_backoff=True,
        max_active_tis_per_dagrun=8,
    )
    def load_range(key: str, run_id: str | None = None) -> dict[str, Any]:
        """Claim and load one range; a range already loaded returns at once."""
        from dpone_protocol.errors import ErrorKind, exit_code_for, kind_for_exit
        from dpone_runner.partitions.api import run_range

        try:
            outcome = run_range(PROJECT_DIR, PIPELINE, STREAM, key, worker=f"airflow-{run_id}")
        except Exception as exc:
            kind = kind_for_exit(exit_code_for(exc))
            if kind in (ErrorKind.TRANSIENT, ErrorKind.INPUT_CUT):
                raise  # Airflow retries the task
            raise AirflowFailException(f"range {key}: {exc}") from exc  # a retry would fail the same way
        if outcome.status != "success":
            raise AirflowFailException(f"range {key} is {outcome.status} in the plan")
        return dataclasses.asdict(outcome)

    @task(retries=3, retry_delay=timedelta(minutes=1))
    def finalize(outcomes: list[dict[str, Any]]) -> int:
        """Move the stream's bookmark now that every range is in; the rows loaded, for the logs."""
        from dpone_runner.partitions import api

        if not api.finalize(PROJECT_DIR, PIPELINE, STREAM):
            raise RuntimeError(f"every range of {STREAM} is loaded, but its bookmark could not move yet")
        return sum(int(o["rows_loaded"]) for o in outcomes)

    finalize(load_range.expand(key=ranges()))


dpone_partitions_orders()
