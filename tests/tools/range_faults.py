"""Wrappers a partitioned-load test puts in place of tap-postgres or target-postgres, to stop a worker
at a chosen point. Each fault fires once: its marker file (in the working directory) is removed when
it fires, so the retry that follows runs clean.

- `python -m tests.tools.range_faults tap ARGS...`: tap-postgres; with `pause-tap` present, after
  PAUSE_AFTER records of a range read it writes `paused` and sleeps (the test then kills the worker).
- `python -m tests.tools.range_faults target ARGS...`: target-postgres; with `kill-after-commit`
  present, once the real target exited 0 (the range committed) it SIGKILLs the dpone worker that
  started it, before the worker records the range in the manifest.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

BIN = Path(sys.executable).parent
PAUSE_AFTER = 700


def _take(marker: str) -> bool:
    try:
        os.unlink(marker)
    except FileNotFoundError:
        return False
    return True


def tap(args: list[str]) -> int:
    proc = subprocess.Popen([str(BIN / "tap-postgres"), *args], stdout=subprocess.PIPE)
    assert proc.stdout is not None
    pause = "--discover" not in args and _take("pause-tap")
    records = 0
    out = sys.stdout.buffer
    for line in proc.stdout:
        out.write(line)
        if line.startswith(b'{"type":"RECORD"'):
            records += 1
            if pause and records == PAUSE_AFTER:
                out.flush()
                Path("paused").write_text(str(os.getpid()))
                time.sleep(3600)
    out.flush()
    return proc.wait()


def target(args: list[str]) -> int:
    program = str(BIN / "target-postgres")
    if "--ops" in args or not _take("kill-after-commit"):
        # Without a fault the target is the runner's own child, as always: it tells a dead runner by that.
        os.execv(program, [program, *args])
    runner = os.getppid()
    code = subprocess.run([program, *args], check=False).returncode
    if code == 0:
        os.kill(runner, signal.SIGKILL)
        time.sleep(5)  # the runner is gone; stay out of its way
    return code


if __name__ == "__main__":
    role, rest = sys.argv[1], sys.argv[2:]
    sys.exit(tap(rest) if role == "tap" else target(rest))
