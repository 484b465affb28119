"""Entry point for `target-jsonl`."""

from __future__ import annotations

import sys


def main() -> None:
    from dpone.targets.framework.target_cli import run  # noqa: PLC0415 - keep --help fast
    from dpone.targets.jsonl.target import JsonlTarget  # noqa: PLC0415

    sys.exit(run(JsonlTarget))
