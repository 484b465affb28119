"""What a run tells its operator besides the final report: the error of any failed run in the
report itself, and progress log lines while a run goes when stderr is not a terminal."""

from __future__ import annotations

import io
import re
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest

from dpone_runner import cli

SLOW_TAP = """\
import json, sys, time
out = sys.stdout.buffer
schema = {"type": "object", "properties": {"id": {"type": "integer"}}}
head = {"type": "SCHEMA", "stream": "ticks", "schema": schema, "key_properties": ["id"]}
out.write(json.dumps(head).encode() + b"\\n")
for i in range(1, 13):
    out.write(json.dumps({"type": "RECORD", "stream": "ticks", "record": {"id": i}}).encode() + b"\\n")
    if i % 3 == 0:
        out.write(json.dumps({"type": "STATE", "value": {"upto": i}}).encode() + b"\\n")
    out.flush()
    time.sleep(0.1)
"""


def make_project(root: Path, settings: dict[str, Any] | None = None) -> Path:
    (root / "slow_tap.py").write_text(SLOW_TAP)
    tap = root / "tap-slow"
    tap.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{root / "slow_tap.py"}" "$@"\n')
    tap.chmod(0o755)
    broken = root / "tap-nodiscover"
    broken.write_text("#!/bin/sh\necho 'tap-nodiscover: config error: no such host' >&2\nexit 78\n")
    broken.chmod(0o755)
    jsonl = {"destination_path": str(root / "out"), "add_record_metadata": False}
    project = {
        "plugins": {
            "extractors": [
                {"name": "tap-slow", "executable": str(tap), "capabilities": ["state"]},
                {"name": "tap-nodiscover", "executable": str(broken), "capabilities": ["discover", "catalog"]},
            ],
            "loaders": [{"name": "target-jsonl", "executable": "target-jsonl", "config": jsonl}],
        }
    }
    (root / "meltano.yml").write_bytes(orjson.dumps(project))
    if settings is not None:
        (root / "dpone.yml").write_bytes(orjson.dumps(settings))
    return root


def dpone(root: Path, *argv: str) -> tuple[int, str, str]:
    out, err = io.StringIO(), io.StringIO()
    backend = f"sqlite:///{root / 'state.db'}"
    rc = cli.run([*argv, "--project", str(root), "--state-backend", backend], stdout=out, stderr=err)
    return rc, out.getvalue(), err.getvalue()


def test_a_run_failing_before_the_pump_has_its_error_in_the_json_report(tmp_path: Path) -> None:
    root = make_project(tmp_path)
    rc, out, err = dpone(root, "run", "tap-nodiscover", "target-jsonl", "--format", "json")
    assert rc == 78, err
    report = orjson.loads(out)
    assert report["status"] == "failed"
    assert report["error"] is not None
    assert "tap-nodiscover --discover failed (exit 78): tap-nodiscover: config error: no such host" in report["error"]
    assert f"dpone: config error: {report['error']}" in err


def progress_lines(err: str) -> list[str]:
    return [line for line in err.splitlines() if "dpone.progress" in line]


def test_progress_is_logged_every_interval_off_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPONE_LOG_LEVEL", "INFO")
    root = make_project(tmp_path, {"progress_interval_seconds": 0.3})
    rc, _, err = dpone(root, "run", "tap-slow", "target-jsonl")  # about 1.2 s
    assert rc == 0, err
    lines = progress_lines(err)
    assert len(lines) >= 2, err
    pattern = (
        r"INFO dpone.progress: progress after \d+s: ([\d,]+) records \(ticks \1\); [\d,]+ rows/s; \d+ states? saved$"
    )
    for line in lines:
        assert re.search(pattern, line), line
    counts = [int(re.search(r"after \d+s: ([\d,]+) records", line).group(1)) for line in lines]  # type: ignore[union-attr]
    assert counts == sorted(counts) and counts[-1] > 0


@pytest.mark.parametrize("settings", [{"progress_interval_seconds": 0}, None])
def test_no_progress_lines_when_disabled_or_the_run_is_shorter(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, settings: dict[str, Any] | None
) -> None:
    monkeypatch.setenv("DPONE_LOG_LEVEL", "INFO")
    root = make_project(tmp_path, settings)  # None: the default interval (30 s) is longer than the run
    rc, _, err = dpone(root, "run", "tap-slow", "target-jsonl")
    assert rc == 0, err
    assert progress_lines(err) == []


def test_no_progress_flag_turns_the_log_lines_off(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DPONE_LOG_LEVEL", "INFO")
    root = make_project(tmp_path, {"progress_interval_seconds": 0.2})
    rc, _, err = dpone(root, "run", "tap-slow", "target-jsonl", "--no-progress")
    assert rc == 0, err
    assert progress_lines(err) == []


def test_a_bad_interval_is_a_config_error(tmp_path: Path) -> None:
    root = make_project(tmp_path, {"progress_interval_seconds": "often"})
    rc, out, err = dpone(root, "run", "tap-slow", "target-jsonl")
    assert rc == 78
    assert "progress_interval_seconds must be a number of seconds" in err
    assert out == ""
