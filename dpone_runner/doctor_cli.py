"""`dpone doctor [PIPELINE...]`: will each pipeline work? Checks with a fix hint each.

Exit 0 when no check failed (warnings allowed), 78 when one did (docs/operations.md).
"""

from __future__ import annotations

import argparse
from typing import IO

from dpone_protocol.config import Redactor


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("doctor", parents=[common], help="check that pipelines can run; a fix for each problem")
    parser.add_argument(
        "pipelines", nargs="*", metavar="PIPELINE", help="pipeline ids, or TAP-to-TARGET (default: every declared one)"
    )
    parser.add_argument(
        "--format", choices=("text", "json"), default="text", help="text (default), or a JSON list of check groups"
    )


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone_runner.doctor import groups, pipeline_checks, render  # noqa: PLC0415 - keep --help fast
    from dpone_runner.project import load_project, state_backend_uri  # noqa: PLC0415

    project = load_project(args.project)
    pipelines = pipeline_checks.chosen_pipelines(project, args.pipelines)
    uri = state_backend_uri(project.root, args.state_backend, project.state_backend)
    found = pipeline_checks.Doctor(project, uri, redactor).run(pipelines)
    out.write(redactor(render.json_text(found) if args.format == "json" else render.text(found)))
    out.flush()
    return groups.exit_code(found)
