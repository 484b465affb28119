#!/usr/bin/env python3
"""A target that fails with a transient error (exit 75) on its first runs, then works: the
runner-retry tests' target.

    python tests/crash/flaky_target.py --config FILE

Settings (the rest of the config goes to the real target-duckdb it wraps):

* ``flaky_counter``: a file counting this target's runs across attempts.
* ``flaky_failures``: how many runs fail (default 2).
* ``flaky_forward_lines``: a failing run first hands this many input lines to a real
  target-duckdb and lets it commit them and echo their states (0: nothing is committed), then
  exits 75 as a dropped connection would.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import orjson

EXIT_TRANSIENT = 75


def main() -> int:
    config_path = sys.argv[sys.argv.index("--config") + 1]
    config = orjson.loads(Path(config_path).read_bytes())
    counter = Path(config.pop("flaky_counter"))
    failures = int(config.pop("flaky_failures", 2))
    forward = int(config.pop("flaky_forward_lines", 0))
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    target = shutil.which("target-duckdb") or str(Path(sys.executable).parent / "target-duckdb")
    with tempfile.NamedTemporaryFile("wb", suffix=".json", delete=False) as fh:
        fh.write(orjson.dumps(config))
    if runs > failures:
        return subprocess.call([target, "--config", fh.name])
    if forward:
        lines = [sys.stdin.buffer.readline() for _ in range(forward)]
        subprocess.run([target, "--config", fh.name], input=b"".join(lines), check=True)
    print("error: connection to the warehouse reset by peer (transient)", file=sys.stderr, flush=True)
    return EXIT_TRANSIENT


if __name__ == "__main__":
    sys.exit(main())
