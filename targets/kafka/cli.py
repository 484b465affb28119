"""Entry point for `target-kafka`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.targets.kafka.target import KafkaTarget  # noqa: PLC0415

    sys.exit(run(KafkaTarget))


if __name__ == "__main__":
    main()
