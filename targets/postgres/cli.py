"""Entry point for `target-postgres`."""

from __future__ import annotations

import sys


def main() -> None:
    from targets.framework.target_cli import run  # noqa: PLC0415 - keep --help fast
    from targets.postgres.target import PostgresTarget  # noqa: PLC0415

    sys.exit(run(PostgresTarget))
