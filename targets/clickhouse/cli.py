"""Entry point for `target-clickhouse`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.clickhouse.target import ClickHouseTarget  # noqa: PLC0415 - keep --help fast
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415

    sys.exit(run(ClickHouseTarget))


if __name__ == "__main__":
    main()
