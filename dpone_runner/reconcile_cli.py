"""`dpone reconcile PIPELINE`: row counts and key-range checksums, source vs destination.

Exit 0 when every compared stream is equal, 65 when any differs, 78 when nothing could be
compared (no connector of the pipeline answers reconcile).
"""

from __future__ import annotations

import argparse
import contextlib
import uuid
from collections.abc import Iterator
from typing import IO, Any

from dpone_protocol.config import Redactor
from dpone_protocol.errors import EXIT_CODES, ConfigError, ErrorKind

DEFAULT_RANGES = 16


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if not 1 <= value <= 1000:
        raise argparse.ArgumentTypeError(f"a whole number from 1 to 1000, not {text!r}")
    return value


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "reconcile",
        parents=[common],
        help="compare source and destination after a run: row counts (and checksums) per key range",
    )
    parser.add_argument("pipeline", metavar="PIPELINE", help="a pipeline of dpone.yml, or TAP-to-TARGET")
    parser.add_argument(
        "--stream", action="append", default=[], metavar="PATTERN", help="only streams matching (repeatable)"
    )
    parser.add_argument("--checksum", action="store_true", help="also compare values: a checksum per key range")
    parser.add_argument(
        "--ranges", type=_positive, default=DEFAULT_RANGES, metavar="N", help="key ranges per stream (default 16)"
    )
    parser.add_argument(
        "--deletes", action="store_true", help="list destination keys missing at the source (deleted there)"
    )
    parser.add_argument(
        "--apply-deletes",
        action="store_true",
        help="remove those keys from the destination (soft delete where the table has _sdc_deleted_at)",
    )
    parser.add_argument("--format", choices=("text", "json"), default="text")


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone_runner import ops_client  # noqa: PLC0415 - keep --help fast
    from dpone_runner.project import EXTRACTORS, LOADERS, load_project  # noqa: PLC0415
    from dpone_runner.reconcile.compare import Options, Side, StreamComparison  # noqa: PLC0415
    from dpone_runner.reconcile.render import render_json, render_text  # noqa: PLC0415
    from dpone_runner.reconcile.streams import selected_streams  # noqa: PLC0415

    project = load_project(args.project)
    pipeline = project.pipeline(args.pipeline)
    tap = project.plugin(pipeline.tap, EXTRACTORS)
    targets = [project.plugin(name, LOADERS) for name in pipeline.targets]
    catalog = ops_client.selected_catalog(project, tap, redactor)
    specs = selected_streams(catalog, args.stream)

    def asker(plugin: Any, with_catalog: bool) -> Any:
        def ask(request: dict[str, Any]) -> dict[str, Any]:
            return ops_client.ask(project, plugin, request, redactor, catalog=catalog if with_catalog else None)

        return ask

    options = Options(args.checksum, args.ranges, args.deletes or args.apply_deletes, args.apply_deletes)
    source = Side(tap.name, asker(tap, True))
    with _pipeline_lock(project, pipeline.id, args.state_backend, args.apply_deletes):
        results = [
            StreamComparison(spec, source, Side(target.name, asker(target, False), destination=True), options).run()
            for target in targets
            for spec in specs
        ]
    render = render_json if args.format == "json" else render_text
    out.write(redactor(render(pipeline.id, tap.name, results)))
    out.flush()
    if all(r.status == "not available" for r in results):
        reasons = sorted({r.unavailable for r in results})
        raise ConfigError(f"nothing could be compared: {'; '.join(reasons)}")
    return EXIT_CODES[ErrorKind.DATA] if any(r.status == "different" for r in results) else 0


@contextlib.contextmanager
def _pipeline_lock(project: Any, pipeline_id: str, backend: str | None, wanted: bool) -> Iterator[None]:
    """Deletes are applied under the pipeline's lock, as a run's loads are: a run loading between
    the key reads and the delete could have its new rows taken for rows deleted at the source."""
    if not wanted:
        yield
        return
    from dpone.state.store import new_lock, open_store  # noqa: PLC0415
    from dpone_runner.project import state_backend_uri  # noqa: PLC0415

    store = open_store(state_backend_uri(project.root, backend, project.state_backend))
    owner = f"reconcile-{uuid.uuid4().hex[:8]}"
    try:
        store.acquire_lock(new_lock(pipeline_id, owner))  # LockedError: a run is going (exit 75)
        try:
            yield
        finally:
            store.release_lock(pipeline_id, owner)
    finally:
        store.close()
