"""`dpone certify [CONNECTOR]`: each connector's capabilities and the evidence behind them.

Test evidence is what `make test` records (tests/certify_evidence.py, under DPONE_EVIDENCE_DIR,
build/evidence by default); benchmark figures are bench/results/*.json (bench/evidence.py).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path
from typing import IO

from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DataError

EVIDENCE_ENV = "DPONE_EVIDENCE_DIR"
# The checkout this dpone runs from: where `make test` leaves build/evidence and bench/ keeps results.
CHECKOUT = Path(__file__).resolve().parents[1]


def add_parser(sub: argparse._SubParsersAction, common: argparse.ArgumentParser) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("certify", help="capability matrix with the evidence behind each cell")
    parser.add_argument("connector", nargs="?", help="only this connector, with the evidence of each cell")
    parser.add_argument("--format", choices=("text", "json", "markdown"), default="text")
    parser.add_argument(
        "--evidence",
        metavar="DIR",
        help=f"test evidence written by pytest (default ${EVIDENCE_ENV}, else build/evidence of the checkout)",
    )
    parser.add_argument(
        "--bench-results", metavar="DIR", help="benchmark figures (default bench/results of the checkout)"
    )
    parser.add_argument("--strict", action="store_true", help="exit 65 when a declared cell is failed or unproven")


def program(args: argparse.Namespace, out: IO[str], redactor: Redactor) -> int:
    from dpone_runner.certify import render  # noqa: PLC0415 - keep `dpone --help` fast
    from dpone_runner.certify.declared import load_declared  # noqa: PLC0415
    from dpone_runner.certify.evidence import read_benchmarks, read_tests  # noqa: PLC0415
    from dpone_runner.certify.matrix import build, not_proven, shown  # noqa: PLC0415

    evidence = _directory(args.evidence, "--evidence", os.environ.get(EVIDENCE_ENV), CHECKOUT / "build" / "evidence")
    bench = _directory(args.bench_results, "--bench-results", None, CHECKOUT / "bench" / "results")
    declared = load_declared()
    if args.connector:
        names = [d.name for d in declared]
        if args.connector not in names:
            raise ConfigError(f"no connector {args.connector!r}; known: {', '.join(names)}")
        declared = [d for d in declared if d.name == args.connector]
    tests = read_tests(evidence) if evidence.is_dir() else []
    benchmarks = read_benchmarks(bench) if bench.is_dir() else {}
    matrix = build(declared, tests, benchmarks, shown(evidence, CHECKOUT), shown(bench, CHECKOUT))
    if args.format == "json":
        out.write(render.as_json(matrix))
    elif args.format == "markdown":
        out.write(render.markdown(matrix))
    else:
        out.write(render.text(matrix, one=bool(args.connector)))
    out.flush()
    missing = not_proven(matrix)
    if args.strict and missing:
        cells = ", ".join(f"{name} {cell} ({verdict.status})" for name, cell, verdict in missing[:5])
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        are = "cell is" if len(missing) == 1 else "cells are"
        raise DataError(f"{len(missing)} declared {are} not proven: {cells}{more}")
    return 0


def _directory(given: str | None, option: str, env: str | None, default: Path) -> Path:
    """A directory named on the command line must exist; the defaults may not (then nothing is proven)."""
    if given is None:
        return Path(env) if env else default
    path = Path(given)
    if not path.is_dir():
        raise ConfigError(f"{option} {given}: no such directory")
    return path
