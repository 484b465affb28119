"""Entry point for `target-postgres`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.targets.postgres.target import PostgresTarget  # noqa: PLC0415

    sys.exit(run(PostgresTarget))
