"""Entry point for `target-duckdb`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.duckdb.target import DuckDBTarget  # noqa: PLC0415 - keep --help fast
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415

    sys.exit(run(DuckDBTarget))
