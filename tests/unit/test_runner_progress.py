"""The progress reporter off a terminal: one log line per interval, with rows, rate and states saved."""

from __future__ import annotations

import io
import logging
import time

import pytest

from dpone_runner.report import Progress


def test_off_a_terminal_each_interval_logs_rows_per_stream_rate_and_states_saved(
    caplog: pytest.LogCaptureFixture,
) -> None:
    rows = {"orders": 0, "customers": 1200}
    saved = [0]

    def grow() -> dict[str, int]:
        rows["orders"] += 1000
        saved[0] += 1
        return dict(rows)

    out = io.StringIO()  # not a terminal
    progress = Progress(grow, out, saved=lambda: saved[0], log_every=0.05)
    with caplog.at_level(logging.INFO, logger="dpone.progress"):
        progress.start()
        time.sleep(0.28)
        progress.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "dpone.progress"]
    assert len(lines) >= 3, lines
    assert lines[0].startswith("progress after 0s: 2,200 records (customers 1,200, orders 1,000); ")
    assert lines[0].endswith("; 1 state saved")
    assert lines[1].endswith("; 2 states saved")
    assert " rows/s; " in lines[1]
    assert out.getvalue() == ""  # the live line is for terminals only


def test_zero_interval_starts_nothing(caplog: pytest.LogCaptureFixture) -> None:
    progress = Progress(lambda: {"s": 1}, io.StringIO(), log_every=0)
    with caplog.at_level(logging.INFO, logger="dpone.progress"):
        progress.start()
        time.sleep(0.05)
        progress.stop()
    assert not [r for r in caplog.records if r.name == "dpone.progress"]
