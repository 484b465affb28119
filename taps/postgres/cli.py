"""Entry point for `tap-postgres`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.taps.postgres.tap import PostgresTap  # noqa: PLC0415

    sys.exit(run(PostgresTap))
