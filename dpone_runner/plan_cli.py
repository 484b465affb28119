"""`dpone plan PIPELINE`: what a run would do, before it runs."""

from __future__ import annotations

import argparse
from typing import IO

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ERROR_CLASSES


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "plan",
        parents=[common],
        help="what a run would read, from where, and change in the targets; change nothing",
        description="Per selected stream: columns, key, replication method and bookmark, estimated rows, and per "
        "target the load method and the schema plan; the state the run would start from, and the lock.",
    )
    parser.add_argument("pipeline", metavar="PIPELINE", help="a pipeline of dpone.yml, or TAP-to-TARGET")
    parser.add_argument("--stream", action="append", default=[], metavar="PATTERN", help="only these streams (glob)")
    parser.add_argument("--format", choices=("text", "json"), default="text")


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone.state.store import open_store  # noqa: PLC0415 - keep --help fast
    from dpone_runner.project import load_project, state_backend_uri  # noqa: PLC0415
    from dpone_runner.run_plan import plan_pipeline, render  # noqa: PLC0415

    project = load_project(args.project)
    pipeline = project.pipeline(args.pipeline)
    store = open_store(state_backend_uri(project.root, args.state_backend, project.state_backend))
    try:
        plan = plan_pipeline(project, store, pipeline, args.stream, redactor)
    finally:
        store.close()
    out.write(redactor(plan.to_json() if args.format == "json" else render(plan)))
    out.flush()
    if plan.failure_kind is not None:
        # A target that cannot answer now would fail the run too: exit as that failure would.
        raise ERROR_CLASSES[plan.failure_kind]("; ".join(plan.failures))
    return 0
