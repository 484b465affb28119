"""`dpone partitions plan|run|status|reset|drop`: one stream loaded as key ranges by parallel workers.

Exit codes: `run` exits 0 when every range it loaded succeeded, else with the kind of the first
failure (65 data, 75 transient, 78 config); `status` exits 0. See docs/scale-out.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
from typing import IO

import orjson

from dpone_protocol.config import Redactor
from dpone_protocol.errors import EXIT_CODES, ConfigError, ErrorKind


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"a whole number of 1 or more, not {text!r}")
    return value


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = 0.0
    if value < 5:
        raise argparse.ArgumentTypeError(f"at least 5 seconds, not {text!r}")
    return value


def _range_keys(values: list[str]) -> list[int]:
    from dpone.state.partitions import index_of  # noqa: PLC0415

    try:
        return [index_of(v) for v in values]
    except ValueError as exc:
        raise ConfigError(str(exc)) from None


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("partitions", help="load one large stream as key ranges, by parallel workers")
    actions = parser.add_subparsers(dest="action", required=True)

    plan = actions.add_parser("plan", parents=[common], help="split a stream into key ranges (the manifest)")
    plan.add_argument("pipeline", metavar="PIPELINE", help="a pipeline of dpone.yml, or TAP-to-TARGET")
    plan.add_argument("--stream", required=True, help="the stream (tap_stream_id) to split")
    plan.add_argument("--by", required=True, metavar="COLUMN", help="the key column (indexed: the primary key)")
    size = plan.add_mutually_exclusive_group(required=True)
    size.add_argument("--ranges", type=_count, metavar="N", help="about N ranges of equal row counts")
    size.add_argument("--rows-per-range", type=_count, metavar="R", help="ranges of about R rows each")
    plan.add_argument(
        "--method",
        choices=("auto", "statistics", "scan", "even"),
        default="auto",
        help="where the bounds come from (default: statistics when analysed, else a scan of the key)",
    )
    plan.add_argument("--replace", action="store_true", help="replace an unfinished plan (its loaded ranges reload)")

    run = actions.add_parser("run", parents=[common], help="claim and load ranges until none is left")
    run.add_argument("pipeline", metavar="PIPELINE")
    run.add_argument("--stream", required=True)
    run.add_argument("--worker", metavar="ID", help="this worker's name in the manifest (default host-pid)")
    run.add_argument("--range", action="append", default=[], metavar="KEY", help="only this range, e.g. r0003")
    run.add_argument(
        "--lease-seconds", type=_seconds, default=120.0, metavar="S", help="a dead worker's range is retried after this"
    )
    run.add_argument(
        "--max-attempts", type=_count, default=3, metavar="N", help="tries per range before it stays failed"
    )
    run.add_argument(
        "--retry-backoff-seconds",
        type=float,
        default=15.0,
        metavar="S",
        help="a transient failure is tried again after S seconds, doubled per attempt (at most 300)",
    )
    run.add_argument("--no-progress", action="store_true", help="no live progress line")

    status = actions.add_parser("status", parents=[common], help="the ranges of a pipeline's plans")
    status.add_argument("pipeline", metavar="PIPELINE")
    status.add_argument("--stream")
    status.add_argument("--format", choices=("text", "json"), default="text")

    reset = actions.add_parser("reset", parents=[common], help="put ranges back to pending (failed ones by default)")
    reset.add_argument("pipeline", metavar="PIPELINE")
    reset.add_argument("--stream", required=True)
    reset.add_argument("--range", action="append", default=[], metavar="KEY", help="only these ranges")
    reset.add_argument("--all", action="store_true", help="every range not running (loaded ones reload)")
    reset.add_argument("--skip", action="store_true", help="mark the ranges skipped instead (the bookmark then stays)")

    drop = actions.add_parser("drop", parents=[common], help="forget a plan (loaded rows stay in the destination)")
    drop.add_argument("pipeline", metavar="PIPELINE")
    drop.add_argument("--stream", required=True)


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone.state import partitions as p  # noqa: PLC0415 - keep --help fast
    from dpone.state.manifest import Manifest  # noqa: PLC0415
    from dpone.state.store import open_store  # noqa: PLC0415
    from dpone_runner.project import load_project, state_backend_uri  # noqa: PLC0415

    project = load_project(args.project)
    pipeline = project.pipeline(args.pipeline)
    store = open_store(state_backend_uri(project.root, args.state_backend, project.state_backend))
    try:
        if args.action == "plan":
            from dpone_runner.partitions.plan import PlanRequest, make_plan  # noqa: PLC0415

            request = PlanRequest(args.stream, args.by, args.ranges, args.rows_per_range, args.method, args.replace)
            plan = make_plan(project, store, pipeline, request, redactor)
            out.write(f"planned {len(plan.ranges)} ranges of {plan.stream} by {plan.column} ({plan.method})\n")
            _status(out, [plan])
            return 0
        if args.action == "run":
            return _run(args, out, redactor, project, store, pipeline)
        if args.action == "status":
            docs = store.partition_plans(pipeline.id)
            plans = [p.PartitionPlan.from_dict(d) for d in docs if args.stream in (None, d.get("stream"))]
            if args.stream and not plans:
                raise ConfigError(f"pipeline {pipeline.id!r} has no partition plan for stream {args.stream!r}")
            if args.format == "json":
                from dpone_runner.partitions.status import render_json  # noqa: PLC0415

                out.write(orjson.dumps(render_json(plans), option=orjson.OPT_INDENT_2).decode() + "\n")
            else:
                _status(out, plans)
            return 0
        manifest = Manifest(store, pipeline.id, args.stream)
        if args.action == "reset":
            chosen = _range_keys(args.range) if args.range else None
            if args.skip:
                if chosen is None:
                    raise ConfigError("--skip needs the ranges to skip: --range KEY")
                changed = manifest.skip(chosen)
                out.write(f"{len(changed)} ranges skipped: the stream's bookmark will not move for this plan\n")
            else:
                statuses = p.STATUSES if args.all else (p.FAILED, p.SKIPPED)
                changed = manifest.reset(chosen, statuses)
                out.write(f"{len(changed)} ranges back to pending: {', '.join(map(p.range_key, changed)) or 'none'}\n")
            return 0
        dropped = manifest.drop()
        out.write(
            f"dropped plan {dropped.plan_id} of {dropped.stream} ({dropped.counts()[p.SUCCESS]} of "
            f"{len(dropped.ranges)} ranges were loaded; their rows stay in the destination)\n"
        )
        return 0
    finally:
        store.close()


def _status(out: IO[str], plans: list) -> None:  # type: ignore[type-arg]
    from dpone_runner.partitions.status import render_text  # noqa: PLC0415

    out.write(render_text(plans, dt.datetime.now(dt.UTC)))
    out.flush()


def _run(args: argparse.Namespace, out: IO[str], redactor: Redactor, project, store, pipeline) -> int:  # type: ignore[no-untyped-def]
    from dpone.state import partitions as p  # noqa: PLC0415
    from dpone_runner.observe import observers_for  # noqa: PLC0415
    from dpone_runner.partitions.worker import Worker, WorkerOptions, default_worker  # noqa: PLC0415

    options = WorkerOptions(
        args.worker or default_worker(),
        args.lease_seconds,
        args.max_attempts,
        progress=not args.no_progress,
        retry_backoff=max(0.0, args.retry_backoff_seconds),
    )
    worker = Worker(project, store, pipeline, args.stream, options, redactor, observers_for(project))
    outcomes = [worker.run_one(i) for i in _range_keys(args.range)] if args.range else worker.run_all()
    for o in outcomes:
        what = "already loaded" if o.already_loaded else o.status
        error = f": {o.error}" if o.error and o.status != p.SUCCESS else ""
        out.write(f"{o.key}: {what}, {o.rows_loaded:,} rows, attempt {o.attempts}{error}\n")
    plan = worker.manifest.require()
    counts = plan.counts()
    state = "bookmark moved" if plan.finalized_at else "bookmark not moved yet"
    out.write(
        f"{options.worker}: {len(outcomes)} ranges; plan {counts[p.SUCCESS]}/{len(plan.ranges)} loaded, "
        f"{counts[p.FAILED]} failed, {counts[p.RUNNING]} running; {state}\n"
    )
    out.flush()
    # A range left failed (by this worker or another) waits for someone: a Job must not end green. One
    # that failed and then loaded on a retry is no failure.
    failed = [r.error_kind for r in plan.ranges if r.status == p.FAILED]
    if failed:
        return EXIT_CODES[ErrorKind(failed[0] or ErrorKind.FATAL.value)]
    return 0
