"""Entry point for `tap-kafka`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.taps.framework.tap_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.taps.kafka.tap import KafkaTap  # noqa: PLC0415

    sys.exit(run(KafkaTap))


if __name__ == "__main__":
    main()
