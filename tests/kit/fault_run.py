"""Any target, killed with SIGKILL at a chosen point: the shared suite's crash runner.

    python -m tests.kit.fault_run PACKAGE.MODULE:CLASS POINT N --config FILE

The target runs unchanged through its framework CLI; only its stdin and stdout are wrapped, so the
kill comes from outside the connector's code and works for any target:

* ``record``: die when the Nth RECORD line arrives, before the target reads it; the batch in
  memory is lost.
* ``echo``: die when the target writes its Nth STATE echo, before a byte of it is out. A target
  echoes a state only once what it covers is committed, so this is "killed after commit, before
  the echo".
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from collections.abc import Iterator
from typing import IO

from dpone.targets.framework.target_cli import run
from dpone_protocol.wire import peek_head

RECORD = "record"
ECHO = "echo"


def die() -> None:
    """SIGKILL: no finally blocks, no flush, no atexit; what a crash looks like."""
    os.kill(os.getpid(), signal.SIGKILL)


def lines_until(stdin: IO[bytes], n: int) -> Iterator[bytes]:
    seen = 0
    for line in stdin:
        head = peek_head(line)
        if head is not None and head[0] == "RECORD":
            seen += 1
            if seen == n:
                die()
        yield line


class EchoKiller:
    """The target's stdout: it dies instead of writing the Nth state."""

    def __init__(self, out: IO[bytes], n: int) -> None:
        self._out = out
        self._left = n

    def write(self, data: bytes) -> int:
        if data.startswith(b"{"):  # a target prints nothing but the states it echoes
            self._left -= 1
            if self._left == 0:
                die()
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


def main(argv: list[str]) -> int:
    where, point, n, *flags = argv
    module, _, name = where.partition(":")
    target_cls = getattr(importlib.import_module(module), name)
    if point == RECORD:
        return run(target_cls, flags, stdin=lines_until(sys.stdin.buffer, int(n)))  # type: ignore[arg-type]
    if point == ECHO:
        return run(target_cls, flags, stdout=EchoKiller(sys.stdout.buffer, int(n)))  # type: ignore[arg-type]
    raise SystemExit(f"unknown fault point {point!r}")


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
