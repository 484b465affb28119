"""The `dpone` command line."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dpone", description="Run Singer taps into targets with safe state.")
    parser.add_argument("--version", action="store_true", help="print the version")
    return parser


def run(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.version:
        from dpone_protocol.about import dpone_version  # noqa: PLC0415

        print(f"dpone {dpone_version()}")
    return 0


def main() -> None:
    sys.exit(run())
