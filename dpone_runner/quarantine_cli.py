"""`dpone quarantine list` and `dpone quarantine replay FILE TARGET`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import IO

from dpone_protocol.config import Redactor
from dpone_runner.project import LOADERS, load_project, override_config


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("quarantine", help="records that broke a data contract: list and replay them")
    actions = parser.add_subparsers(dest="action", required=True)
    listing = actions.add_parser("list", parents=[common], help="quarantine files with their row counts")
    listing.add_argument("--all", action="store_true", help="also files already replayed")
    again = actions.add_parser(
        "replay", parents=[common], help="load a (fixed) quarantine file into a target through the same contracts"
    )
    again.add_argument("file")
    again.add_argument("target")
    again.add_argument("--target-config", metavar="FILE", help="JSON whose keys override the target's project config")


def _shown(path: Path) -> str:
    relative = os.path.relpath(path)
    return relative if not relative.startswith("..") else str(path)


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone_runner.contracts.quarantine import find_files  # noqa: PLC0415 (dpone --help stays fast)
    from dpone_runner.contracts.spec import DEFAULT_QUARANTINE_PATH, parse_contracts  # noqa: PLC0415

    project = load_project(args.project)
    contracts = parse_contracts(project.contracts, project.root)
    if args.action == "list":
        roots = sorted({project.root / DEFAULT_QUARANTINE_PATH, *contracts.quarantine_paths()})
        for found in find_files(roots):
            if found.replayed and not args.all:
                continue
            rules = ", ".join(f"{rule} {n}" for rule, n in sorted(found.rules.items()))
            status = "replayed" if found.replayed else "pending"
            out.write(f"{_shown(found.path)}\t{found.pipeline}\t{found.stream}\t{found.rows} rows\t{status}\t{rules}\n")
        return 0
    from dpone_runner.contracts.replay import replay  # noqa: PLC0415 - starts processes; keep `list` light

    target = project.plugin(args.target, LOADERS)
    override_config(target, args.target_config)
    result = replay(project, contracts, Path(args.file).resolve(), target, redactor)
    out.write(f"replayed {result.rows} row(s) of stream {result.stream!r} into {target.name}: {result.loaded} loaded")
    if result.still_bad:
        files = sorted({r.quarantine for r in result.reports.values() if r.quarantine})
        out.write(f", {result.still_bad} still break the contract -> {', '.join(_shown(Path(f)) for f in files)}")
    out.write("\n")
    if result.renamed_to is not None:
        out.write(f"{_shown(result.path)} renamed to {result.renamed_to.name}\n")
    return 0
