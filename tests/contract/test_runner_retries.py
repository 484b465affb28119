"""Runner retries: a run failing with a transient error (exit 75) is run again from the committed
state, per the pipeline's `retries` in dpone.yml (or `--retries`); config and data errors are not.

The flaky target (tests/crash/flaky_target.py) wraps the real target-duckdb: its first runs fail
with exit 75, optionally after a real target-duckdb committed part of the input.
"""

from __future__ import annotations

import io
import subprocess
import sys
from datetime import datetime
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest
import yaml

from dpone.state.sqlite_store import SqliteStore
from dpone.state.store import new_lock
from dpone_runner import cli

FLAKY = Path(__file__).resolve().parent.parent / "crash" / "flaky_target.py"
DPONE = str(Path(sys.executable).parent / "dpone")
ROWS = 20

FAKE_TAP = """\
import argparse, json, sys
parser = argparse.ArgumentParser()
parser.add_argument("--config", action="append")
parser.add_argument("--state")
args = parser.parse_args()
config = json.load(open(args.config[0]))
start = json.load(open(args.state))["bookmarks"]["items"]["upto"] if args.state else 0
with open(config["log"], "a") as fh:
    fh.write(f"{start}\\n")
if config.get("exit_code"):
    print("error: bad config: no such table", file=sys.stderr)
    sys.exit(config["exit_code"])
out = sys.stdout
schema = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
print(json.dumps({"type": "SCHEMA", "stream": "items", "schema": schema, "key_properties": ["id"]}), file=out)
for i in range(start + 1, config["rows"] + 1):
    print(json.dumps({"type": "RECORD", "stream": "items", "record": {"id": i, "name": f"row {i}"}}), file=out)
    if i % 5 == 0:
        print(json.dumps({"type": "STATE", "value": {"bookmarks": {"items": {"upto": i}}}}), file=out)
"""


class Project:
    def __init__(self, root: Path, *, failures: int, forward: int = 0, retries: dict[str, Any] | None) -> None:
        self.root = root
        (root / "fake_tap.py").write_text(FAKE_TAP)
        for name, script in (("tap-fake", root / "fake_tap.py"), ("target-flaky", FLAKY)):
            (root / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" "{script}" "$@"\n')
            (root / name).chmod(0o755)
        self.tap_log = root / "tap.log"
        self.counter = root / "target.runs"
        self.db = root / "out.duckdb"
        flaky = {
            "filepath": str(self.db),
            "flaky_counter": str(self.counter),
            "flaky_failures": failures,
            "flaky_forward_lines": forward,
        }
        meltano = {
            "plugins": {
                "extractors": [
                    {
                        "name": "tap-fake",
                        "executable": str(root / "tap-fake"),
                        "capabilities": ["state"],
                        "config": {"rows": ROWS, "log": str(self.tap_log)},
                    }
                ],
                "loaders": [{"name": "target-flaky", "executable": str(root / "target-flaky"), "config": flaky}],
            }
        }
        (root / "meltano.yml").write_text(yaml.safe_dump(meltano))
        pipeline: dict[str, Any] = {"tap": "tap-fake", "targets": ["target-flaky"]}
        if retries is not None:
            pipeline["retries"] = retries
        (root / "dpone.yml").write_text(
            yaml.safe_dump({"state_backend": "sqlite:///state.db", "pipelines": {"items": pipeline}})
        )

    def run(self, *extra: str) -> tuple[int, dict[str, Any], str]:
        out, err = io.StringIO(), io.StringIO()
        argv = ["run", "items", "--project", str(self.root), "--no-progress", "--format", "json", *extra]
        rc = cli.run(argv, stdout=out, stderr=err)
        return rc, orjson.loads(out.getvalue()), err.getvalue()

    def runs(self) -> list[dict[str, Any]]:
        store = SqliteStore(self.root / "state.db")
        try:
            return [r.report for r in reversed(store.runs("items", 20))]
        finally:
            store.close()

    def state(self) -> Any:
        store = SqliteStore(self.root / "state.db")
        try:
            found = store.get("items")
            return found.value if found else None
        finally:
            store.close()

    def loaded_ids(self) -> list[int]:
        with duckdb.connect(str(self.db), read_only=True) as conn:
            return [r[0] for r in conn.execute("SELECT id FROM items ORDER BY id").fetchall()]

    def tap_starts(self) -> list[int]:
        return [int(x) for x in self.tap_log.read_text().split()]


NO_WAIT = {"attempts": 3, "backoff_seconds": 0, "max_backoff_seconds": 0}


def test_two_transient_failures_then_success_commit_state_once(tmp_path: Path) -> None:
    project = Project(tmp_path, failures=2, retries=NO_WAIT)
    rc, report, err = project.run()
    assert rc == 0, err
    assert report["status"] == "success" and report["attempt"] == 3
    assert [(a["attempt"], a["status"], a["exit_code"]) for a in report["attempts"]] == [
        (1, "failed", 75),
        (2, "failed", 75),
        (3, "success", None),
    ]
    assert "reset by peer" in report["attempts"][0]["error"]
    assert err.count("retrying from the committed state") == 2
    # Every attempt is a run of its own in the history; only the last one moved the state.
    runs = project.runs()
    assert [r["status"] for r in runs] == ["failed", "failed", "success"]
    assert [r["state_after"] for r in runs[:2]] == [None, None]
    assert runs[2]["state_after"] == {"bookmarks": {"items": {"upto": ROWS}}}
    assert project.state() == {"bookmarks": {"items": {"upto": ROWS}}}
    assert project.tap_starts() == [0, 0, 0]
    assert project.loaded_ids() == list(range(1, ROWS + 1))


def test_a_retry_resumes_from_what_the_failed_attempt_committed(tmp_path: Path) -> None:
    # The first attempt's target commits the first 11 lines (SCHEMA, 10 records with two STATEs
    # among them) and then fails: the second attempt starts from upto=10, not from the start.
    project = Project(tmp_path, failures=1, forward=13, retries=NO_WAIT)
    rc, report, err = project.run()
    assert rc == 0, err
    assert [a["status"] for a in report["attempts"]] == ["failed", "success"]
    first, second = project.runs()
    assert first["state_after"] == {"bookmarks": {"items": {"upto": 10}}}
    assert second["state_before"] == {"bookmarks": {"items": {"upto": 10}}}
    assert project.tap_starts() == [0, 10]
    assert project.loaded_ids() == list(range(1, ROWS + 1))


def test_attempts_used_up_end_with_the_transient_exit_code(tmp_path: Path) -> None:
    project = Project(tmp_path, failures=5, retries=NO_WAIT)
    rc, report, _ = project.run()
    assert rc == 75
    assert report["status"] == "failed"
    assert [a["status"] for a in report["attempts"]] == ["failed"] * 3
    assert project.state() is None
    assert project.counter.read_text() == "3"


@pytest.mark.parametrize(("exit_code", "expected"), [(65, 65), (78, 78), (70, 70)])
def test_data_config_and_fatal_errors_are_not_retried(tmp_path: Path, exit_code: int, expected: int) -> None:
    project = Project(tmp_path, failures=0, retries=NO_WAIT)
    override = tmp_path / "override.json"
    override.write_bytes(orjson.dumps({"exit_code": exit_code}))
    rc, report, err = project.run("--tap-config", str(override))
    assert rc == expected
    assert len(report["attempts"]) == 1 and "retrying" not in err
    assert len(project.runs()) == 1


def test_no_retries_unless_configured(tmp_path: Path) -> None:
    project = Project(tmp_path, failures=1, retries=None)
    rc, report, _ = project.run()
    assert rc == 75 and len(report["attempts"]) == 1
    # --retries turns them on for one run.
    rc, report, _ = project.run("--retries", "2")
    assert rc == 0 and report["attempt"] == 1  # the flaky target failed only once in all


def test_backoff_waits_between_attempts(tmp_path: Path) -> None:
    project = Project(tmp_path, failures=1, retries={"attempts": 2, "backoff_seconds": 0.5})
    rc, report, _ = project.run()
    assert rc == 0
    first, second = report["attempts"]
    gap = datetime.fromisoformat(second["started_at"]) - datetime.fromisoformat(first["started_at"])
    assert gap.total_seconds() >= 0.5 + first["duration_seconds"] - 0.05


@pytest.mark.parametrize(
    "retries",
    [{"attempts": 0}, {"attempts": "3"}, {"attempts": 2, "backoff_seconds": -1}, {"attempts": 2, "wait": 1}],
)
def test_bad_retry_settings_are_config_errors(tmp_path: Path, retries: dict[str, Any]) -> None:
    project = Project(tmp_path, failures=0, retries=retries)
    proc = subprocess.run(
        [DPONE, "run", "items", "--project", str(tmp_path)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 78
    assert "retries" in proc.stderr and "Traceback" not in proc.stderr
    assert not (project.root / "state.db").exists() or project.runs() == []


def test_text_report_lists_the_attempts_from_the_installed_command(tmp_path: Path) -> None:
    Project(tmp_path, failures=2, retries=NO_WAIT)
    proc = subprocess.run(
        [DPONE, "run", "items", "--project", str(tmp_path), "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "attempts: 3 (1 failed; 2 failed; 3 success)" in proc.stdout
    assert "attempt 1 of 3 failed with a transient error" in proc.stderr


def test_runs_refused_at_the_lock_are_retried_and_kept_in_the_history(tmp_path: Path) -> None:
    # A live run holds the lock (transient: it ends on its own): each attempt is refused, saved as a
    # failed run with the lock in its error, and the last report lists them.
    project = Project(tmp_path, failures=0, retries=NO_WAIT)
    store = SqliteStore(tmp_path / "state.db")
    try:
        store.acquire_lock(new_lock("items", "run-holder"))
        rc, report, _ = project.run()
    finally:
        store.release_lock("items", "run-holder")
        store.close()
    assert rc == 75
    assert [(a["status"], a["exit_code"]) for a in report["attempts"]] == [("failed", 75)] * 3
    assert "locked by run run-holder" in report["error"]
    assert [r["status"] for r in project.runs()] == ["failed"] * 3
    assert not project.tap_log.exists()  # no attempt started the tap


def test_an_attempt_that_fails_before_any_process_carries_its_exit_code(tmp_path: Path) -> None:
    # The tap's executable is gone: nothing ran, the report still says why and with which code.
    project = Project(tmp_path, failures=0, retries=None)
    (tmp_path / "tap-fake").unlink()
    rc, report, _ = project.run()
    assert rc == 78
    assert report["exit_code"] == 78 and report["exit_codes"] == {}
    assert report["attempts"][0]["exit_code"] == 78
    out = io.StringIO()
    cli.run(["run", "items", "--project", str(tmp_path), "--no-progress"], stdout=out, stderr=io.StringIO())
    assert "pipeline items: failed" in out.getvalue() and "exit codes" not in out.getvalue()
