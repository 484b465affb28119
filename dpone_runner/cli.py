"""The `dpone` command line: option tables, parsing, and programs that return exit codes."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import IO, Any

import orjson

from dpone_protocol.config import Redactor, load_json_file
from dpone_protocol.entrypoint import guarded
from dpone_protocol.errors import ConfigError
from dpone_runner import (
    certify_cli,
    connectors_cli,
    doctor_cli,
    history_cli,
    partitions_cli,
    plan_cli,
    quarantine_cli,
    reconcile_cli,
    replay_cli,
)

# Commands that live in their own module: `add_parser(sub, common)` and `program(args, out, redactor)`.
# Each keeps its imports inside `program`, so `dpone --help` stays fast.
COMMANDS = {
    "quarantine": quarantine_cli,
    "doctor": doctor_cli,
    "plan": plan_cli,
    "reconcile": reconcile_cli,
    "certify": certify_cli,
    "runs": history_cli,
    "report": history_cli,
    "partitions": partitions_cli,
}

_PRETTY = orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS


class _Version(argparse.Action):
    """argparse's version action, the version looked up only when asked for (it costs start-up time)."""

    def __init__(self, option_strings: Sequence[str], dest: str = argparse.SUPPRESS, **kwargs: Any) -> None:
        super().__init__(option_strings, dest=dest, default=argparse.SUPPRESS, nargs=0, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *args: Any, **kwargs: Any) -> None:
        from dpone_protocol.about import dpone_version  # noqa: PLC0415

        print(f"dpone {dpone_version()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="dpone", description="Run Singer taps into targets; state is saved only after the targets commit."
    )
    parser.add_argument("--version", action=_Version, help="show dpone's version and exit")
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--project", default=".", metavar="DIR", help="directory holding meltano.yml")
    common.add_argument(
        "--state-backend",
        metavar="URI",
        help="sqlite:///PATH (default .dpone/state.db), file:///PATH.json, postgresql://... or mssql://...",
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser(
        "run", parents=[common], help="run a tap into one or more targets, or a pipeline declared in dpone.yml"
    )
    run.add_argument("tap", metavar="TAP|PIPELINE")
    run.add_argument("targets", nargs="*", metavar="target")
    run.add_argument("--tap-config", metavar="FILE", help="JSON whose keys override the tap's project config")
    run.add_argument(
        "--target-config",
        metavar="FILE",
        action="append",
        help="JSON overriding a target's config (repeat in target order)",
    )
    run.add_argument("--pipeline-id", help="state key (default TAP-to-TARGET)")
    run.add_argument("--full-refresh", action="store_true", help="ignore saved state for this run")
    run.add_argument("--format", choices=("text", "json"), default="text", help="run report format")
    run.add_argument("--no-progress", action="store_true", help="no live progress line on a terminal")
    run.add_argument(
        "--retries", type=int, metavar="N", help="tries in all for a run failing with a transient error (exit 75)"
    )

    plan = sub.add_parser(
        "schema-plan", parents=[common], help="show what a run would change in the targets' tables; change nothing"
    )
    plan.add_argument("tap")
    plan.add_argument("targets", nargs="+", metavar="target")
    plan.add_argument("--stream", action="append", default=[], metavar="PATTERN", help="only these streams")
    plan.add_argument("--format", choices=("text", "json"), default="text")
    plan.add_argument("--check", action="store_true", help="exit 65 when a plan would stop the load")

    state = sub.add_parser("state", help="inspect and manage saved state")
    state_sub = state.add_subparsers(dest="action", required=True)
    state_sub.add_parser("list", parents=[common], help="pipelines with saved state")
    for name, text in (
        ("get", "print a pipeline's state"),
        ("clear", "delete a pipeline's state"),
        ("set", "replace a pipeline's state from a JSON file (- for stdin)"),
        ("runs", "reports of the latest runs"),
        ("unlock", "break a pipeline's lock"),
    ):
        p = state_sub.add_parser(name, parents=[common], help=text)
        p.add_argument("pipeline_id")
        if name in ("get", "clear", "set"):
            p.add_argument("--stream", help="only this stream's bookmark")
        if name == "set":
            p.add_argument("file")
        if name == "runs":
            p.add_argument("--last", type=int, default=5)
    export = state_sub.add_parser("export", parents=[common], help="every pipeline's state as JSON")
    export.add_argument("pipeline_id", nargs="?")
    replay_cli.add_parser(state_sub, common)
    for module in dict.fromkeys(COMMANDS.values()):
        module.add_parser(sub, common)
    connectors_cli.add_parser(sub)
    return parser


def _run(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    import dataclasses  # noqa: PLC0415

    from dpone.state.store import open_store  # noqa: PLC0415
    from dpone_protocol.errors import DponeError  # noqa: PLC0415
    from dpone_runner import pipeline  # noqa: PLC0415 - keep --help fast
    from dpone_runner.observe import observers_for  # noqa: PLC0415
    from dpone_runner.project import load_project, override_config, state_backend_uri  # noqa: PLC0415
    from dpone_runner.report import RunReport  # noqa: PLC0415
    from dpone_runner.retries import run_with_retries  # noqa: PLC0415

    project = load_project(args.project)
    if args.targets:
        chosen = project.implied(args.tap, args.targets, args.pipeline_id)
    else:
        chosen = project.pipeline(args.tap)  # `dpone run PIPELINE`
        if args.pipeline_id and args.pipeline_id != chosen.id:
            raise ConfigError(f"pipeline {chosen.id!r} keeps its state under its own id: drop --pipeline-id")
    policy = chosen.retries
    if args.retries is not None:
        if args.retries < 1:
            raise ConfigError(f"--retries counts tries in all: 1 or more, not {args.retries}")
        policy = dataclasses.replace(policy, attempts=args.retries)
    observers = observers_for(project)
    store = open_store(state_backend_uri(project.root, args.state_backend, project.state_backend))
    last: list[RunReport] = []

    def attempt(number: int, earlier: list[dict[str, Any]]) -> tuple[RunReport, DponeError | None]:
        options = pipeline.RunOptions(
            chosen.id,
            args.full_refresh,
            not args.no_progress,
            number,
            earlier,
            observers,
        )
        run = pipeline.prepare(project, store, chosen.tap, chosen.targets, options, redactor)
        override_config(run.tap, args.tap_config)
        overrides = args.target_config or []
        if len(overrides) > len(run.targets):
            raise ConfigError(f"{len(overrides)} --target-config files for {len(run.targets)} target(s)")
        for target, path in zip(run.targets, overrides, strict=False):
            override_config(target, path)
        last[:] = [run.report]
        try:
            run.execute()
        except DponeError as exc:
            return run.report, exc
        return run.report, None

    try:
        run_with_retries(policy, attempt)
    finally:
        if last and last[0].started_at:
            report = last[0]
            out.write(redactor(report.to_json().decode() if args.format == "json" else report.render_text()))
            out.flush()
        store.close()
    return 0


def _schema_plan(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone_runner import schema_plan  # noqa: PLC0415 - keep --help fast
    from dpone_runner.project import load_project  # noqa: PLC0415

    documents = schema_plan.schema_plan(load_project(args.project), args.tap, args.targets, args.stream, redactor)
    if args.format == "json":
        out.write(orjson.dumps(documents, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        out.write(schema_plan.render(documents))
    out.flush()
    if args.check:
        schema_plan.check(documents)
    return 0


def _read_stdin_json() -> Any:
    data = sys.stdin.buffer.read()
    if not data.strip():
        # An empty pipe is a mistake upstream, not a request to erase the state.
        raise ConfigError("no state on stdin: expected a JSON object")
    try:
        return orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ConfigError(f"the state on stdin is not valid JSON: {exc}") from None


def _stream_bookmark(value: dict[str, Any], pipeline: str, stream: str) -> Any:
    bookmarks = value.get("bookmarks")
    if not isinstance(bookmarks, dict) or stream not in bookmarks:
        names = ", ".join(sorted(bookmarks)) if isinstance(bookmarks, dict) and bookmarks else "none"
        raise ConfigError(f"the state of pipeline {pipeline!r} has no stream {stream!r} (streams: {names})")
    return bookmarks[stream]


def _state(args: argparse.Namespace, out: IO[str]) -> int:
    from pathlib import Path  # noqa: PLC0415

    from dpone.state.merge import clear_stream, merge_state  # noqa: PLC0415
    from dpone.state.store import open_store  # noqa: PLC0415
    from dpone_runner.project import load_project, state_backend_uri  # noqa: PLC0415

    configured = None
    if args.state_backend is None:
        try:
            configured = load_project(args.project).state_backend
        except ConfigError:
            configured = None  # no project there: the default store (in DIR) still works
    store = open_store(state_backend_uri(Path(args.project).resolve(), args.state_backend, configured))

    def dump(value: Any) -> None:
        out.write(orjson.dumps(value, option=_PRETTY).decode() + "\n")

    try:
        action = args.action
        if action == "list":
            for item in store.list():
                lock = store.get_lock(item.pipeline_id)
                suffix = f"\t{lock.describe()}" if lock else ""
                out.write(f"{item.pipeline_id}\t{item.updated_at}{suffix}\n")
        elif action == "export":
            items = store.list()
            dump({i.pipeline_id: i.value for i in items if args.pipeline_id in (None, i.pipeline_id)})
        elif action == "get":
            found = store.get(args.pipeline_id)
            if found is None:
                raise ConfigError(f"no saved state for pipeline {args.pipeline_id!r}")
            dump(_stream_bookmark(found.value, args.pipeline_id, args.stream) if args.stream else found.value)
        elif action == "set":
            value = _read_stdin_json() if args.file == "-" else load_json_file(args.file, "state")
            if not isinstance(value, dict):
                raise ConfigError("state must be a JSON object")
            if args.stream:
                current = store.get(args.pipeline_id)
                value = merge_state(current.value if current else None, {"bookmarks": {args.stream: value}})
            store.put(args.pipeline_id, value)
        elif action == "clear":
            if args.stream:
                current = store.get(args.pipeline_id)
                if current is not None:
                    store.put(args.pipeline_id, clear_stream(current.value, args.stream))
            else:
                store.delete(args.pipeline_id)
        elif action == "unlock":
            lock = store.break_lock(args.pipeline_id)
            out.write(f"removed lock: {lock.describe()}\n" if lock else "no lock was held\n")
        elif action == "runs":
            for record in store.runs(args.pipeline_id, args.last):
                dump(record.report)
    finally:
        store.close()
    return 0


def run(argv: Sequence[str] | None = None, stdout: IO[str] | None = None, stderr: IO[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    out = stdout or sys.stdout

    def program(redactor: Redactor) -> int:
        if args.command == "run":
            return _run(args, out, redactor)
        if args.command == "schema-plan":
            return _schema_plan(args, out, redactor)
        if args.command in COMMANDS:
            return int(COMMANDS[args.command].program(args, out, redactor))
        if args.command == "connectors":
            return connectors_cli.program(args, out)
        if args.action == "replay-plan":
            return replay_cli.program(args, out, redactor)
        return _state(args, out)

    return guarded(program, "dpone", stderr)


def main() -> None:
    sys.exit(run())
