"""Entry point for `tap-bigquery`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.bigquery.tap import BigQueryTap  # noqa: PLC0415 - keep --help fast
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415

    sys.exit(run(BigQueryTap))


if __name__ == "__main__":
    main()
