"""Entry point for `tap-csv`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.csv.tap import CsvTap  # noqa: PLC0415 - keep --help fast
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415

    sys.exit(run(CsvTap))
