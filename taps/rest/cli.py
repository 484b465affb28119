"""Entry point for `tap-rest`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.taps.rest.tap import RestTap  # noqa: PLC0415

    sys.exit(run(RestTap))


if __name__ == "__main__":
    main()
