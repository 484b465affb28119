"""`dpone run` SIGKILLed in the middle of a full refresh never gets the partial refresh swapped in.

The dead runner closes its targets' input at a line boundary, which looks like a clean end. A
target started by `dpone run` sees its parent gone and takes that end as a cut: it commits
nothing of the refresh, and the table stays as the last whole refresh left it.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import duckdb
import orjson

from tests.crash.test_runner_crashes import DPONE, ENV, descendants, kill_quietly, stop, wait_gone

SCHEMA = {
    "type": "SCHEMA",
    "stream": "s",
    "schema": {"type": "object", "properties": {"id": {"type": "integer"}}},
    "key_properties": ["id"],
}


def project(root: Path, rows: int, then_sleep: bool) -> None:
    tap = root / "tap-slow"
    lines = [orjson.dumps(SCHEMA).decode()] + [
        orjson.dumps({"type": "RECORD", "stream": "s", "record": {"id": i}}).decode() for i in range(rows)
    ]
    tap.write_text(
        f"#!{sys.executable}\n"
        + textwrap.dedent(f"""
        import sys, time
        for line in {lines!r}:
            print(line)
        print('{{"type":"STATE","value":{{"rows":{rows}}}}}', flush=True)
        if {then_sleep}:
            time.sleep(60)  # the refresh is still going when the runner dies
        """)
    )
    tap.chmod(0o755)
    config = {"filepath": str(root / "db.duckdb"), "load_method": "overwrite"}
    meltano = {
        "plugins": {
            "extractors": [{"name": "tap-slow", "executable": str(tap), "capabilities": ["state"]}],
            "loaders": [{"name": "target-duckdb", "config": config}],
        }
    }
    (root / "meltano.yml").write_bytes(orjson.dumps(meltano))


def argv(root: Path) -> list[str]:
    backend = f"sqlite:///{root / 'state.db'}"
    return [
        DPONE,
        "run",
        "tap-slow",
        "target-duckdb",
        "--project",
        str(root),
        "--no-progress",
        "--state-backend",
        backend,
    ]


def count(root: Path) -> int:
    with duckdb.connect(str(root / "db.duckdb"), read_only=True) as conn:
        return int(conn.execute("SELECT count(*) FROM s").fetchone()[0])  # type: ignore[index]


def test_a_killed_runner_never_swaps_a_partial_full_refresh_in(tmp_path: Path) -> None:
    project(tmp_path, 50, then_sleep=False)
    done = subprocess.run(argv(tmp_path), capture_output=True, text=True, env=ENV, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    assert count(tmp_path) == 50

    project(tmp_path, 7, then_sleep=True)
    proc = subprocess.Popen(argv(tmp_path), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=ENV)
    time.sleep(2.0)  # the target has the 7 rows (and a state it holds for the swap)
    assert proc.poll() is None
    stop(proc.pid)
    children = descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    for pid in children:  # the tap sleeps on; the target must finish on its own
        argv0 = Path(f"/proc/{pid}/cmdline").read_text(errors="replace").split("\0")[:2]
        if any(arg.endswith("/tap-slow") for arg in argv0):
            kill_quietly(pid, signal.SIGKILL)
    assert wait_gone(children, timeout=30) == []
    assert count(tmp_path) == 50  # the last whole refresh, not the 7 rows of the cut one
