"""`dpone runs` and `dpone report --html FILE`: the run history from the state store."""

from __future__ import annotations

import argparse
from typing import IO, TYPE_CHECKING

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError

if TYPE_CHECKING:
    from pathlib import Path

    from dpone_runner.history.records import RunView

RUNS_LAST = 20
REPORT_LAST = 200


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    runs = sub.add_parser("runs", parents=[common], help="the latest runs: when, how long, rows, state, outcome")
    _filters(runs, RUNS_LAST)
    runs.add_argument("--format", choices=("table", "json"), default="table", help="a table (default) or JSON")
    report = sub.add_parser("report", parents=[common], help="write the run history as one HTML page")
    report.add_argument("--html", required=True, metavar="FILE", help="where to write the page (- for stdout)")
    _filters(report, REPORT_LAST)


def _filters(parser: argparse.ArgumentParser, last: int) -> None:
    parser.add_argument("--pipeline", metavar="ID", help="only this pipeline's runs (default: every pipeline)")
    parser.add_argument("--last", type=int, default=last, metavar="N", help=f"the newest N runs (default {last})")


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone.state.store import utc_now  # noqa: PLC0415 - keep --help fast
    from dpone_runner.history import html_page, table  # noqa: PLC0415

    if args.last < 1:
        raise ConfigError(f"--last must be 1 or more, not {args.last}")
    where, runs = _read(args, redactor)
    if args.command == "runs":
        if args.format == "json":
            import orjson  # noqa: PLC0415

            out.write(orjson.dumps([r.document() for r in runs], option=orjson.OPT_INDENT_2).decode() + "\n")
        elif not runs:
            which = f" of pipeline {args.pipeline!r}" if args.pipeline else ""
            out.write(f"no runs{which} recorded in the state store {where}\n")
        else:
            out.write(table.render(runs))
        out.flush()
        return 0
    page = html_page.render(runs, html_page.PageInfo(utc_now(), where, args.pipeline, args.last))
    if args.html == "-":
        out.write(page)
    else:
        path = _write(args.html, page)
        pipelines = len({r.pipeline_id for r in runs})
        out.write(f"wrote {path}: {len(runs)} run(s) of {pipelines} pipeline(s)\n")
    out.flush()
    return 0


def _read(args: argparse.Namespace, redactor: Redactor) -> tuple[str, list[RunView]]:
    """Where the runs came from (redacted), and the runs, newest first."""
    from pathlib import Path  # noqa: PLC0415

    from dpone.state.store import open_store  # noqa: PLC0415
    from dpone_runner.history.records import load_runs  # noqa: PLC0415
    from dpone_runner.project import load_project, state_backend_uri  # noqa: PLC0415

    configured = None
    try:
        project = load_project(args.project)
    except ConfigError:
        project = None  # no project there: --state-backend or the default store still answer
    if project is not None:
        configured = project.state_backend
        # Reports were redacted when saved; masking the project's secrets again costs little.
        for plugin in project.plugins.values():
            try:
                redactor.add_config(project.plugin(plugin.name, plugin.kind).config, plugin.secret_keys)
            except ConfigError:
                continue  # a setting from an unset variable: nothing of it can be in a report
    uri = state_backend_uri(Path(args.project).resolve(), args.state_backend, configured)
    where = redactor(uri)
    local = _local_file(uri)
    if local is not None and not local.exists():
        # Reading the history must not create an empty store where there was none.
        return where, []
    store = open_store(uri)
    try:
        return where, load_runs(store, args.last, args.pipeline, redactor)
    finally:
        store.close()


def _local_file(uri: str) -> Path | None:
    """The file of a sqlite:/// or file:/// store; None for a server."""
    from pathlib import Path  # noqa: PLC0415

    scheme, _, rest = uri.partition("://")
    if scheme not in ("sqlite", "file"):
        return None
    path = rest[1:] if rest.startswith("/") else rest
    return Path(path) if path and path != ":memory:" else None


def _write(name: str, page: str) -> Path:
    """Write the page whole or not at all: a reader never sees half a report."""
    import os  # noqa: PLC0415
    import tempfile  # noqa: PLC0415
    from pathlib import Path  # noqa: PLC0415

    path = Path(name)
    if path.is_dir():
        raise ConfigError(f"--html {name}: that is a directory; name the file to write")
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as exc:
        raise ConfigError(f"cannot write the report {name}: {exc.strerror}") from None
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            fh.write(page)
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except OSError as exc:
        os.unlink(tmp)
        raise ConfigError(f"cannot write the report {name}: {exc.strerror}") from None
    return path
