"""Entry point for `target-mssql`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.targets.mssql.target import MssqlTarget  # noqa: PLC0415

    sys.exit(run(MssqlTarget))
