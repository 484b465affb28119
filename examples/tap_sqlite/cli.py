"""Entry point for `tap-sqlite` (python -m examples.tap_sqlite.cli)."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415 - keep --help fast
    from examples.tap_sqlite.tap import SqliteTap  # noqa: PLC0415

    sys.exit(run(SqliteTap))


if __name__ == "__main__":
    main()
