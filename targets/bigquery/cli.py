"""Entry point for `target-bigquery`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.bigquery.target import BigQueryTarget  # noqa: PLC0415 - keep --help fast
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415

    sys.exit(run(BigQueryTarget))


if __name__ == "__main__":
    main()
