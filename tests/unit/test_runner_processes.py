"""Why a connector failed, as the run's error says it: the signal by name, else its own error line."""

from __future__ import annotations

import logging
import subprocess
import sys
from typing import Any

import pytest

from dpone_protocol.config import Redactor
from dpone_runner.processes import PIPE_BYTES, Connector, _level_of, start
from dpone_runner.project import Limits

INFO = "2026-01-01 10:00:00,000 INFO dpone.targets.framework.target: loaded 17483 records into 3 streams"


def connector(*stderr: str, name: str = "target-postgres", killed_for: str | None = None) -> Connector:
    proc: Any = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    found = Connector(name, proc, killed_for=killed_for)
    found.stderr_tail.extend(stderr)
    return found


def test_a_signal_is_the_reason_whatever_was_logged_last() -> None:
    dead = connector("2026-01-01 10:00:00,000 ERROR x: retrying", INFO, name="tap-postgres")
    assert dead.describe_exit(-9) == "tap-postgres was killed by signal 9 (SIGKILL)"


def test_a_signal_we_sent_names_why() -> None:
    stopped = connector(INFO, name="tap-x", killed_for="wall time limit 5s")
    assert stopped.describe_exit(-15) == "tap-x was stopped (wall time limit 5s): killed by signal 15 (SIGTERM)"


@pytest.mark.parametrize(
    ("lines", "reason"),
    [
        # The connector's own one-line error wins over anything after it.
        (
            ["target-postgres: data error: line 12: bad value", INFO],
            "target-postgres: data error: line 12: bad value",
        ),
        (["Traceback (most recent call last):", '  File "x.py"', "MemoryError", INFO], "MemoryError"),
        (["error: source connection lost after row 12"], "error: source connection lost after row 12"),
        (
            ["2026-01-01 10:00:00,000 WARNING x: disk almost full", INFO],
            "2026-01-01 10:00:00,000 WARNING x: disk almost full",
        ),
        # An INFO or DEBUG line is never the reason, even if it mentions an error.
        ([INFO, "2026-01-01 DEBUG x: error counters reset"], "no error message"),
        ([], "no error message"),
    ],
)
def test_the_reason_from_stderr_is_never_an_info_line(lines: list[str], reason: str) -> None:
    assert connector(*lines).describe_exit(3) == f"target-postgres failed (exit 3): {reason}"


@pytest.mark.parametrize(
    ("line", "level"),
    [
        (INFO, logging.INFO),
        ("2026-01-01 10:00:00,000 INFO x: retrying after ERROR 500", logging.INFO),  # the first word counts
        ("2026-01-01 10:00:00,000 ERROR x: failed", logging.ERROR),
        ("2026-01-01 10:00:00,000 DEBUG x: y", logging.DEBUG),
        ("tap-x: config error: missing setting", logging.ERROR),
        ("connecting to the warehouse", logging.INFO),
    ],
)
def test_level_of_a_connector_line(line: str, level: int) -> None:
    assert _level_of(line) == level


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="pipe sizes are Linux's")
def test_a_connector_s_pipes_hold_a_megabyte_where_linux_allows_it() -> None:
    import fcntl

    command = [sys.executable, "-c", "import sys; sys.stdin.read()"]
    started = start("reader", command, Limits(), Redactor(), stdin=True)
    try:
        assert started.proc.stdin is not None and started.proc.stdout is not None
        for pipe in (started.proc.stdin, started.proc.stdout):
            assert fcntl.fcntl(pipe.fileno(), fcntl.F_GETPIPE_SZ) == PIPE_BYTES
    finally:
        started.proc.stdin.close()
        assert started.proc.wait(timeout=10) == 0
