"""Entry point for `tap-mssql`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.taps.mssql.tap import MssqlTap  # noqa: PLC0415

    sys.exit(run(MssqlTap))
