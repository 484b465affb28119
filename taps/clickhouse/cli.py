"""Entry point for `tap-clickhouse`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.clickhouse.tap import ClickHouseTap  # noqa: PLC0415 - keep --help fast
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415

    sys.exit(run(ClickHouseTap))
