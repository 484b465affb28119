"""Entry point for `target-sqlite` (python -m examples.target_sqlite.cli)."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415 - keep --help fast
    from examples.target_sqlite.target import SqliteTarget  # noqa: PLC0415

    sys.exit(run(SqliteTarget))


if __name__ == "__main__":
    main()
