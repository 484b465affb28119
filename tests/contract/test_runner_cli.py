"""The `dpone` command line as an operator meets it: errors, exit codes, reports, state commands.

Runs are in-process (`dpone_runner.cli.run(argv, stdout=..., stderr=...)`) where that is
enough, and `dpone` subprocesses where signals, hangs or the real stderr matter. Misbehaving
taps and targets are small scripts written into the test's project directory; the fault
target is tests/crash/fault_target.py (real target-duckdb plus an optional SIGKILL, and an
`echo_log` of every STATE it echoed).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone.state.sqlite_store import SqliteStore
from dpone.state.store import StoredState
from dpone_runner import cli

DPONE = str(Path(sys.executable).parent / "dpone")
FAULT_TARGET = Path(__file__).resolve().parent.parent / "crash" / "fault_target.py"
ROWS = 150
EXIT_DATA = 65
EXIT_FATAL = 70
EXIT_CONFIG = 78
SECRET = "hunter2-secret"
SENSITIVE = "opaque-blob-7781"  # a value whose setting name says nothing; declared sensitive
ENV = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}

FAKE_TAP = """\
import argparse, json, os, sys, time

parser = argparse.ArgumentParser()
parser.add_argument("--config", action="append", required=True)
parser.add_argument("--state")
args = parser.parse_args()
config = {}
for path in args.config:
    with open(path) as fh:
        config.update(json.load(fh))
if config.get("pid_file"):
    with open(config["pid_file"] + ".tmp", "w") as fh:
        fh.write(str(os.getpid()))
    os.replace(config["pid_file"] + ".tmp", config["pid_file"])
if "password" in config:
    print(f"connecting with password={config['password']}", file=sys.stderr, flush=True)
    print(f"credential in use: {config['password']} / {config.get('blob')}", file=sys.stderr, flush=True)
out = sys.stdout.buffer
if config.get("garbage") is not None:
    out.write(config["garbage"].encode() + b"\\n")
    out.flush()
    sys.exit(0)
stream = config.get("stream", "items")
start = 0
if args.state:
    with open(args.state) as fh:
        start = json.load(fh).get("bookmarks", {}).get(stream, {}).get("upto", 0)
rows = config.get("rows")  # None: forever
every = config.get("state_every", 5)
interval = config.get("interval", 0)
schema = {"type": "object", "properties": {"id": {"type": "integer"}, "name": {"type": "string"}}}
head = {"type": "SCHEMA", "stream": stream, "schema": schema, "key_properties": ["id"]}
out.write(json.dumps(head).encode() + b"\\n")
i = start
while rows is None or i < rows:
    i += 1
    record = {"type": "RECORD", "stream": stream, "record": {"id": i, "name": f"row {i}"}}
    out.write(json.dumps(record).encode() + b"\\n")
    if i % every == 0:
        out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {stream: {"upto": i}}}}).encode() + b"\\n")
    if interval:
        out.flush()
        time.sleep(interval)
    if config.get("fail_after") and i >= config["fail_after"]:
        out.flush()
        why = f"error: source connection lost after row {i} ({config.get('password', '')})"
        print(why, file=sys.stderr, flush=True)
        sys.exit(config.get("exit_code", 3))
out.write(json.dumps({"type": "STATE", "value": {"bookmarks": {stream: {"upto": i}}}}).encode() + b"\\n")
out.flush()
"""


@dataclass
class Result:
    rc: int
    out: str
    err: str

    @property
    def error_lines(self) -> list[str]:
        return [line for line in self.err.splitlines() if line.startswith("dpone:")]


class Project:
    """meltano.yml with tap-csv, a scriptable fake tap, target-duckdb, target-jsonl, two fault
    targets (target-a, target-b) and targets that die at once (target-broken) or after 0.5 s."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.state_db = root / "state.db"
        self.backend = f"sqlite:///{self.state_db}"
        with (root / "rows.csv").open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "updated_at", "name", "note"])
            for i in range(1, ROWS + 1):
                writer.writerow([i, f"2024-01-01T{i // 60:02d}:{i % 60:02d}:00", f"row {i}", f"note {i}"])
        with (root / "other.csv").open("w", newline="") as fh:
            csv.writer(fh).writerows([["code", "label"], ["a", "A"], ["b", "B"]])
        (root / "fake_tap.py").write_text(FAKE_TAP)
        scripts = {
            "tap-fake": f'#!/bin/sh\nexec "{sys.executable}" "{root / "fake_tap.py"}" "$@"\n',
            "target-fault": f'#!/bin/sh\nexec "{sys.executable}" "{FAULT_TARGET}" "$@"\n',
            "target-broken": '#!/bin/sh\necho "fatal error: cannot reach the warehouse" >&2\nexit 1\n',
            "target-broken-later": '#!/bin/sh\nsleep 0.5\necho "fatal error: lost the warehouse" >&2\nexit 1\n',
        }
        for name, text in scripts.items():
            path = root / name
            path.write_text(text)
            path.chmod(0o755)
        rows = {"entity": "rows", "path": "rows.csv", "keys": ["id"], "replication_key": "updated_at"}
        other = {"entity": "other", "path": "other.csv", "keys": ["code"]}
        csv_config = {"base_path": str(root), "state_every_rows": 50, "files": [rows]}
        fake = str(root / "tap-fake")
        fault = str(root / "target-fault")
        project = {
            "version": 1,
            "plugins": {
                "extractors": [
                    {"name": "tap-csv", "executable": "tap-csv", "config": csv_config},
                    {
                        "name": "tap-csv-select",
                        "executable": "tap-csv",
                        "config": {**csv_config, "files": [rows, other]},
                        "select": ["rows.name"],
                    },
                    {"name": "tap-csv-nofiles", "executable": "tap-csv", "config": {"base_path": str(root)}},
                    {"name": "tap-fake", "executable": fake, "capabilities": ["state"], "config": {"rows": 20}},
                    {
                        "name": "tap-secret",
                        "executable": fake,
                        "capabilities": ["state"],
                        "settings": [{"name": "password", "kind": "password"}, {"name": "blob", "sensitive": True}],
                        "config": {"rows": 3, "fail_after": 3, "exit_code": 1, "password": SECRET, "blob": SENSITIVE},
                    },
                ],
                "loaders": [
                    {"name": "target-duckdb", "executable": "target-duckdb", "config": {"filepath": self.db("out")}},
                    {
                        "name": "target-jsonl",
                        "executable": "target-jsonl",
                        "config": {"destination_path": str(root / "jsonl"), "add_record_metadata": False},
                    },
                    {
                        "name": "target-a",
                        "executable": fault,
                        "config": {"filepath": self.db("a"), "echo_log": self.log("a")},
                    },
                    {
                        "name": "target-b",
                        "executable": fault,
                        "config": {"filepath": self.db("b"), "echo_log": self.log("b")},
                    },
                    {"name": "target-broken", "executable": str(root / "target-broken")},
                    {"name": "target-broken-later", "executable": str(root / "target-broken-later")},
                ],
            },
        }
        (root / "meltano.yml").write_bytes(orjson.dumps(project, option=orjson.OPT_INDENT_2))

    def db(self, name: str) -> str:
        return str(self.root / f"{name}.duckdb")

    def log(self, name: str) -> str:
        return str(self.root / f"{name}.echo")

    def config(self, name: str, value: dict[str, Any]) -> str:
        path = self.root / f"{name}.json"
        path.write_bytes(orjson.dumps(value))
        return str(path)

    # -- running dpone -----------------------------------------------------------------
    def common(self) -> list[str]:
        return ["--project", str(self.root), "--state-backend", self.backend]

    def run_argv(self, tap: str, *targets: str, tap_config: dict[str, Any] | None = None) -> list[str]:
        argv = ["run", tap, *targets, *self.common(), "--no-progress"]
        if tap_config is not None:
            argv += ["--tap-config", self.config("tap-override", tap_config)]
        return argv

    def inproc(self, *argv: str) -> Result:
        out, err = io.StringIO(), io.StringIO()
        rc = cli.run(list(argv), stdout=out, stderr=err)
        return Result(rc, out.getvalue(), err.getvalue())

    def state_cmd(self, *argv: str) -> Result:
        return self.inproc("state", *argv, "--state-backend", self.backend)

    def subproc(self, *argv: str, timeout: float = 60, log_level: str = "WARNING") -> Result:
        env = {**ENV, "DPONE_LOG_LEVEL": log_level}
        proc = subprocess.run([DPONE, *argv], capture_output=True, text=True, env=env, timeout=timeout)
        return Result(proc.returncode, proc.stdout, proc.stderr)

    def popen(self, *argv: str) -> subprocess.Popen[str]:
        return subprocess.Popen([DPONE, *argv], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV)

    # -- what it left behind -------------------------------------------------------------
    @contextlib.contextmanager
    def store(self) -> Iterator[SqliteStore]:
        store = SqliteStore(self.state_db)
        try:
            yield store
        finally:
            store.close()

    def saved(self, pipeline: str) -> StoredState | None:
        with self.store() as store:
            return store.get(pipeline)

    def put_state(self, pipeline: str, value: dict[str, Any]) -> StoredState:
        with self.store() as store:
            store.put(pipeline, value)
            found = store.get(pipeline)
        assert found is not None
        return found

    def ids(self, name: str, table: str = "items") -> list[int]:
        path = Path(self.db(name))
        if not path.exists():
            return []
        with duckdb.connect(str(path), read_only=True) as conn:
            if table not in {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}:
                return []
            return [r[0] for r in conn.execute(f"SELECT id FROM {table} ORDER BY id").fetchall()]

    def echoes(self, name: str) -> list[dict[str, Any]]:
        path = Path(self.log(name))
        return [orjson.loads(line) for line in path.read_bytes().splitlines()] if path.exists() else []

    def runs(self, pipeline: str, *extra: str) -> list[dict[str, Any]]:
        res = self.state_cmd("runs", pipeline, *extra)
        assert res.rc == 0, res.err
        return parse_documents(res.out)


def parse_documents(text: str) -> list[dict[str, Any]]:
    """Back-to-back indented JSON documents, as `dpone state runs` prints them."""
    decoder = json.JSONDecoder()
    docs, pos = [], 0
    text = text.strip()
    while pos < len(text):
        doc, pos = decoder.raw_decode(text, pos)
        docs.append(doc)
        while pos < len(text) and text[pos].isspace():
            pos += 1
    return docs


def upto(value: int) -> dict[str, Any]:
    return {"bookmarks": {"items": {"upto": value}}}


def alive(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat.rsplit(")", 1)[1].split()[0] not in ("Z", "X")


def wait_for_file(path: Path, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@pytest.fixture
def project(tmp_path: Path) -> Project:
    return Project(tmp_path)


PRESET = {"bookmarks": {"items": {"upto": 5}, "rows": {"replication_key": "updated_at", "replication_key_value": "x"}}}


# -- configuration and input errors ---------------------------------------------------------
def test_unknown_tap_is_named_with_the_known_ones(project: Project) -> None:
    res = project.inproc(*project.run_argv("tap-nope", "target-duckdb"))
    assert res.rc == EXIT_CONFIG
    assert res.err.count("\n") == 1, res.err
    assert res.err.startswith("dpone: config error: unknown extractor (tap) 'tap-nope'; ")
    assert "known: tap-csv, tap-csv-nofiles, tap-csv-select, tap-fake, tap-secret in " in res.err
    assert res.out == ""


def test_unknown_target_is_named_with_the_known_ones(project: Project) -> None:
    res = project.inproc(*project.run_argv("tap-csv", "target-duckdb", "target-nope"))
    assert res.rc == EXIT_CONFIG
    assert res.err.count("\n") == 1, res.err
    assert "unknown loader (target) 'target-nope'; known: target-a, target-b, " in res.err
    assert "target-broken, target-broken-later, target-duckdb, target-jsonl in " in res.err


def test_missing_required_tap_setting_fails_clearly_and_keeps_state(project: Project) -> None:
    before = project.put_state("tap-csv-nofiles-to-target-duckdb", PRESET)
    res = project.inproc(*project.run_argv("tap-csv-nofiles", "target-duckdb"))
    assert res.rc == EXIT_CONFIG
    assert len(res.error_lines) == 1, res.err
    assert "missing required setting 'files'" in res.error_lines[0]
    assert project.saved("tap-csv-nofiles-to-target-duckdb") == before  # same value, same updated_at
    assert not Path(project.db("out")).exists()


@pytest.mark.parametrize(("line", "says"), [("hello", "malformed JSON"), ('{"foo":1}', "unknown message type")])
def test_tap_printing_garbage_stops_the_run_naming_the_line(project: Project, line: str, says: str) -> None:
    before = project.put_state("tap-fake-to-target-duckdb", PRESET)
    res = project.inproc(*project.run_argv("tap-fake", "target-duckdb", tap_config={"garbage": line}))
    assert res.rc == EXIT_DATA
    assert len(res.error_lines) == 1, res.err
    error = res.error_lines[0]
    assert error.startswith("dpone: data error: line 1: tap-fake wrote invalid output: "), error
    assert says in error
    if line == "hello":
        assert "'hello'" in error  # the offending text is quoted
    assert project.saved("tap-fake-to-target-duckdb") == before
    assert project.ids("out") == []


def test_target_dying_at_once_stops_the_tap_and_keeps_state(project: Project) -> None:
    before = project.put_state("tap-fake-to-target-broken", PRESET)
    pid_file = project.root / "tap.pid"
    tap = {"rows": None, "pid_file": str(pid_file)}  # would run forever
    res = project.subproc(*project.run_argv("tap-fake", "target-broken", tap_config=tap), timeout=60)
    assert res.rc == EXIT_FATAL
    assert "target-broken failed (exit 1): fatal error: cannot reach the warehouse" in res.err
    if pid_file.exists():  # the tap may be stopped before it got as far as writing it
        assert not alive(int(pid_file.read_text()))
    assert project.saved("tap-fake-to-target-broken") == before
    (report,) = project.runs("tap-fake-to-target-broken")
    assert report["status"] == "failed"
    assert report["exit_codes"]["target-broken"] == 1
    assert report["exit_codes"]["tap-fake"] == -signal.SIGTERM


def test_target_dying_mid_run_stops_a_slow_tap_promptly(project: Project) -> None:
    pid_file = project.root / "tap.pid"
    tap = {"rows": None, "interval": 0.05, "pid_file": str(pid_file)}  # a line every 50 ms, forever
    proc = project.popen(*project.run_argv("tap-fake", "target-broken-later", tap_config=tap))
    wait_for_file(pid_file)
    tap_pid = int(pid_file.read_text())
    try:
        err = proc.communicate(timeout=3)[1]  # the target dies 0.5 s after it starts
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        with contextlib.suppress(ProcessLookupError):
            os.kill(tap_pid, signal.SIGKILL)
        pytest.fail("the runner was still feeding a dead target 2.5 s after it died")
    assert proc.returncode == EXIT_FATAL
    assert "target-broken-later failed (exit 1): fatal error: lost the warehouse" in err
    assert not alive(tap_pid)


def test_tap_failing_midway_saves_the_state_the_target_echoed(project: Project) -> None:
    tap = {"rows": 100, "state_every": 10, "fail_after": 12, "exit_code": 3}
    res = project.inproc(*project.run_argv("tap-fake", "target-a", tap_config=tap))
    assert res.rc == EXIT_FATAL
    assert len(res.error_lines) == 1, res.err
    assert "tap-fake failed (exit 3): error: source connection lost after row 12" in res.error_lines[0]
    echoed = project.echoes("a")
    assert echoed[-1] == upto(10)
    saved = project.saved("tap-fake-to-target-a")
    assert saved is not None and saved.value == upto(10)
    assert project.ids("a")[:10] == list(range(1, 11))  # the target committed what the saved state covers
    (report,) = project.runs("tap-fake-to-target-a")
    assert report["status"] == "failed"
    # Told its input was cut, the target answers 74: expected after a tap failure, not blamed.
    assert report["exit_codes"] == {"tap-fake": 3, "target-a": 74}
    assert report["state_after"] == upto(10)


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_the_run_and_saves_what_the_target_committed(
    project: Project, sig: signal.Signals, code: int
) -> None:
    pid_file = project.root / "tap.pid"
    tap = {"rows": None, "interval": 0.05, "state_every": 1, "pid_file": str(pid_file)}
    proc = project.popen(*project.run_argv("tap-fake", "target-a", tap_config=tap))
    wait_for_file(pid_file)
    time.sleep(0.4)  # a few records and states
    proc.send_signal(sig)
    err = proc.communicate(timeout=60)[1]
    assert proc.returncode == code, err
    assert not alive(int(pid_file.read_text()))
    assert f"interrupted by {sig.name}; committed state saved" in err
    saved = project.saved("tap-fake-to-target-a")
    assert saved is not None
    echoed = project.echoes("a")
    assert saved.value == echoed[-1]
    last = saved.value["bookmarks"]["items"]["upto"]
    assert last >= 3
    assert project.ids("a")[:last] == list(range(1, last + 1))
    (report,) = project.runs("tap-fake-to-target-a")
    assert report["status"] == "interrupted"


def test_slow_tap_state_is_saved_while_it_runs(project: Project) -> None:
    pid_file = project.root / "tap.pid"
    tap = {"rows": 40, "interval": 0.05, "state_every": 1, "pid_file": str(pid_file)}
    argv = project.run_argv("tap-fake", "target-a", tap_config=tap)
    argv += ["--target-config", project.config("a-override", {"batch_size_rows": 1})]
    proc = project.popen(*argv)
    wait_for_file(pid_file)
    tap_pid = int(pid_file.read_text())
    seen_while_tap_ran = None
    while alive(tap_pid):
        found = project.saved("tap-fake-to-target-a")
        if found is not None:
            seen_while_tap_ran = found.value
            break
        time.sleep(0.05)
    proc.communicate(timeout=60)
    assert proc.returncode == 0
    assert seen_while_tap_ran is not None, "no state was saved while the tap ran (2 s, a STATE every 50 ms)"


# -- several targets --------------------------------------------------------------------------
def test_fan_out_saves_the_last_state_every_target_echoed(project: Project) -> None:
    pipeline = "tap-fake-to-target-a-target-b"
    tap = {"rows": ROWS, "state_every": 5}
    argv = project.run_argv("tap-fake", "target-a", "target-b", tap_config=tap)
    killed = {"batch_size_rows": 10, "fault_point": "mid_batch", "fault_after_records": 60}
    argv += ["--target-config", project.config("a-crash", killed)]
    argv += ["--target-config", project.config("b-healthy", {"batch_size_rows": 7})]
    res = project.inproc(*argv)
    assert res.rc == EXIT_FATAL
    assert res.error_lines[0] == "dpone: fatal error: target-a was killed by signal 9 (SIGKILL)"
    saved = project.saved(pipeline)
    assert saved is not None
    # target-a died at record 60 in a batch of 10: its last echo covers record 50.
    assert project.echoes("a")[-1] == upto(50)
    assert saved.value == upto(50)
    healthy = project.echoes("b")
    assert max(e["bookmarks"]["items"]["upto"] for e in healthy) >= 50
    assert project.ids("b") == list(range(1, ROWS + 1))  # the healthy target kept all it committed
    assert project.ids("a") == list(range(1, 51))

    # A re-run resumes both from the common state and completes both.
    argv = project.run_argv("tap-fake", "target-a", "target-b", tap_config=tap)
    argv += ["--target-config", project.config("a-ok", {"fault_point": "none"}), "--format", "json"]
    res = project.inproc(*argv)
    assert res.rc == 0, res.err
    report = orjson.loads(res.out)
    assert report["state_before"] == upto(50)
    assert report["streams"][0]["rows_in"] == ROWS - 50
    assert report["exit_codes"] == {"tap-fake": 0, "target-a": 0, "target-b": 0}
    assert project.ids("a") == list(range(1, ROWS + 1))
    assert project.ids("b") == list(range(1, ROWS + 1))
    saved = project.saved(pipeline)
    assert saved is not None and saved.value == upto(ROWS)


# -- reports, refresh, selection ------------------------------------------------------------
def test_json_report_and_saved_runs(project: Project) -> None:
    pipeline = "tap-csv-to-target-duckdb"
    first = project.inproc(*project.run_argv("tap-csv", "target-duckdb"), "--format", "json")
    assert first.rc == 0, first.err
    report = orjson.loads(first.out)
    bookmark = {
        "bookmarks": {"rows": {"replication_key": "updated_at", "replication_key_value": "2024-01-01T02:30:00"}}
    }
    assert report["pipeline_id"] == pipeline
    assert report["status"] == "success"
    assert report["streams"] == [{"stream": "rows", "rows_in": ROWS, "rows_out": ROWS, "quarantined": 0}]
    assert report["exit_codes"] == {"tap-csv": 0, "target-duckdb": 0}
    assert report["state_before"] is None
    assert report["state_after"] == bookmark
    assert report["states_received"] >= 2
    assert report["bytes_in"] > 0 and report["duration_seconds"] > 0 and report["error"] is None

    second = orjson.loads(project.inproc(*project.run_argv("tap-csv", "target-duckdb"), "--format", "json").out)
    assert second["state_before"] == bookmark
    assert second["streams"][0]["rows_in"] == 1  # only the row at the bookmark is read again
    assert project.ids("out", "rows") == list(range(1, ROWS + 1))

    runs = project.runs(pipeline)
    assert [r["run_id"] for r in runs] == [second["run_id"], report["run_id"]]
    assert runs[1] == report
    assert [r["run_id"] for r in project.runs(pipeline, "--last", "1")] == [second["run_id"]]


def test_text_report_is_the_default(project: Project) -> None:
    res = project.inproc(*project.run_argv("tap-csv", "target-duckdb"))
    assert res.rc == 0, res.err
    assert res.out.startswith("pipeline tap-csv-to-target-duckdb: success in ")
    assert "exit codes: tap-csv 0, target-duckdb 0" in res.out
    assert "state: saved (" in res.out


def test_full_refresh_ignores_saved_state(project: Project) -> None:
    pipeline = "tap-csv-to-target-duckdb"
    assert project.inproc(*project.run_argv("tap-csv", "target-duckdb")).rc == 0
    saved = project.saved(pipeline)
    assert saved is not None
    res = project.inproc(*project.run_argv("tap-csv", "target-duckdb"), "--full-refresh", "--format", "json")
    assert res.rc == 0, res.err
    report = orjson.loads(res.out)
    assert report["state_before"] == saved.value
    assert report["streams"][0]["rows_in"] == ROWS
    assert report["state_after"] == saved.value
    assert project.ids("out", "rows") == list(range(1, ROWS + 1))  # merged, not duplicated


def test_select_patterns_narrow_streams_and_properties(project: Project) -> None:
    res = project.inproc(*project.run_argv("tap-csv-select", "target-jsonl"), "--format", "json")
    assert res.rc == 0, res.err
    assert [s["stream"] for s in orjson.loads(res.out)["streams"]] == ["rows"]
    out = project.root / "jsonl"
    assert sorted(p.name for p in out.iterdir()) == ["rows.jsonl"]
    records = [orjson.loads(line) for line in (out / "rows.jsonl").read_bytes().splitlines()]
    assert len(records) == ROWS
    # `rows.name` plus the key and the replication key, which are always included.
    assert {frozenset(r) for r in records} == {frozenset({"id", "updated_at", "name"})}


# -- state commands ---------------------------------------------------------------------------
def test_state_set_get_clear_export_round_trip(project: Project, monkeypatch: pytest.MonkeyPatch) -> None:
    value = {"bookmarks": {"a": {"x": 1}}, "currently_syncing": "a"}
    assert project.state_cmd("set", "p1", project.config("p1", value)).rc == 0
    assert orjson.loads(project.state_cmd("get", "p1").out) == value
    assert project.state_cmd("set", "p1", "--stream", "b", project.config("b", {"y": 2})).rc == 0
    assert orjson.loads(project.state_cmd("get", "p1", "--stream", "b").out) == {"y": 2}
    both = {"bookmarks": {"a": {"x": 1}, "b": {"y": 2}}, "currently_syncing": "a"}
    assert orjson.loads(project.state_cmd("get", "p1").out) == both

    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b'{"bookmarks": {"z": {"n": 3}}}')))
    assert project.state_cmd("set", "p2", "-").rc == 0
    assert orjson.loads(project.state_cmd("export").out) == {"p1": both, "p2": {"bookmarks": {"z": {"n": 3}}}}
    assert orjson.loads(project.state_cmd("export", "p2").out) == {"p2": {"bookmarks": {"z": {"n": 3}}}}
    listed = project.state_cmd("list").out.splitlines()
    assert [line.split("\t")[0] for line in listed] == ["p1", "p2"]

    assert project.state_cmd("clear", "p1", "--stream", "a").rc == 0
    assert orjson.loads(project.state_cmd("get", "p1").out) == {"bookmarks": {"b": {"y": 2}}}
    assert project.state_cmd("clear", "p1").rc == 0
    gone = project.state_cmd("get", "p1")
    assert gone.rc == EXIT_CONFIG
    assert gone.err.strip() == "dpone: config error: no saved state for pipeline 'p1'"

    bad = project.state_cmd("set", "p3", project.config("list", [1, 2]))  # type: ignore[arg-type]
    assert bad.rc == EXIT_CONFIG
    assert "state must be a JSON object" in bad.err


# -- secrets ----------------------------------------------------------------------------------
def test_secrets_never_reach_the_runners_output(project: Project) -> None:
    pipeline = "tap-secret-to-target-duckdb"
    res = project.subproc(*project.run_argv("tap-secret", "target-duckdb"), log_level="INFO")
    assert res.rc == EXIT_FATAL
    assert "tap-secret | connecting with password=***" in res.err
    assert "tap-secret | credential in use: *** / ***" in res.err
    assert "tap-secret failed (exit 1): error: source connection lost after row 3 (***)" in res.err
    for text in (res.out, res.err, json.dumps(project.runs(pipeline))):
        assert SECRET not in text
        assert SENSITIVE not in text


def test_secret_in_invalid_tap_output_is_redacted_in_json_report_and_run_history(project: Project) -> None:
    pipeline = "tap-secret-to-target-duckdb"
    res = project.subproc(
        *project.run_argv("tap-secret", "target-duckdb", tap_config={"garbage": f"oops {SECRET}"}),
        "--format",
        "json",
        log_level="INFO",
    )
    assert res.rc == EXIT_DATA
    assert "'oops ***'" in orjson.loads(res.out)["error"]
    assert SECRET not in res.err
    assert SECRET not in res.out
    assert SECRET not in json.dumps(project.runs(pipeline))


def test_connector_stderr_is_forwarded_at_warning_level(project: Project) -> None:
    res = project.subproc(*project.run_argv("tap-secret", "target-duckdb"), log_level="WARNING")
    assert res.rc == EXIT_FATAL
    assert "tap-secret | error: source connection lost after row 3 (***)" in res.err  # an error line
    assert "connecting with password" not in res.err  # a plain line counts as INFO
