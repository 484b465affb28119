"""`dpone run` under crashes: the saved state never points past committed data.

Each lab is a temporary project: tap-csv over a generated CSV of 150 rows (key `id`,
replication key `updated_at`, a STATE every 5 rows) into tests/crash/fault_target.py (the
real target-duckdb plus a SIGKILL at a chosen point), merge mode, small random batches,
state in `sqlite:///<lab>/state.db`. A lab runs a chain of crashed runs, each resuming from
what the previous one saved, and checks after every crash that every row the saved bookmark
covers is in DuckDB, without duplicates, and that the bookmark never went back. A clean
re-run then has to end with every source row exactly once.

Two taps: `tap-csv` as shipped (CSV streams are not declared sorted, so mid-stream STATEs
repeat the bookmark the run started from and only the final STATE advances it), and
`tap-csv-sorted`, the same tap with its streams declared sorted, whose every STATE advances
the bookmark; that one makes each crash point a different saved state.

Other trials SIGKILL the runner itself, either alone (its tap and targets then see a broken
pipe or end of input and exit on their own) or with its connectors (a power cut). The lock
the dead runner leaves is reported as stale and `dpone state unlock` breaks it.

`bench/crash_soak.py` runs the same trials by the hundred.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import math
import os
import random
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import orjson
import pytest

from dpone.state.sqlite_store import SqliteStore
from dpone.state.store import LockInfo, utc_now
from tests.crash.fault_target import FAULT_POINTS, MID_BATCH

ROWS = 150
STATE_EVERY = 5
PIPELINE = "crash"
STREAM = "rows"
DPONE = str(Path(sys.executable).parent / "dpone")
FAULT_TARGET = Path(__file__).resolve().with_name("fault_target.py")
EXIT_CONFIG = 78
EXIT_FATAL = 70  # what `dpone run` exits with when a connector was killed by a signal
RUN_TIMEOUT = 60.0
ENV = {**os.environ, "DPONE_LOG_LEVEL": "WARNING"}

SORTED_TAP = """\
#!{python}
import sys

from dpone.taps.csv.tap import CsvTap
from dpone.taps.framework.tap_cli import run


class SortedCsvTap(CsvTap):
    # The lab's CSV is written in replication-key order: checkpoint the greatest value seen.
    def discover_streams(self):
        streams = super().discover_streams()
        for stream in streams:
            stream.is_sorted = True
        return streams


sys.exit(run(SortedCsvTap))
"""

TAPS = ("tap-csv", "tap-csv-sorted")


def source_rows(n: int = ROWS) -> list[tuple[int, str]]:
    """(id, updated_at) in replication-key order; updated_at values are unique."""
    start = dt.datetime(2024, 1, 1)
    return [(i, (start + dt.timedelta(minutes=i)).isoformat()) for i in range(1, n + 1)]


def descendants(pid: int) -> list[int]:
    """Every process below `pid`, read from /proc (stop `pid` first so the list holds still)."""
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except FileNotFoundError:
            continue
        for task in tasks:
            try:
                text = Path(f"/proc/{parent}/task/{task}/children").read_text()
            except OSError:
                continue
            for child in map(int, text.split()):
                found.append(child)
                todo.append(child)
    return found


def process_state(pid: int) -> str | None:
    """The one-letter state in /proc/PID/stat (R, S, T, Z, ...), None once the process is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[0]


def alive(pid: int) -> bool:
    """Running (a zombie nobody reaped yet counts as gone)."""
    return process_state(pid) not in (None, "Z", "X")


def stop(pid: int, timeout: float = 10) -> None:
    """SIGSTOP, and wait until every thread has stopped, so no fork is half-way."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + timeout
    while process_state(pid) not in ("T", "t", None) and time.monotonic() < deadline:
        time.sleep(0.001)


def wait_gone(pids: list[int], timeout: float) -> list[int]:
    """Wait for processes that are not our children to exit; returns those still running."""
    deadline = time.monotonic() + timeout
    left = [p for p in pids if alive(p)]
    while left and time.monotonic() < deadline:
        time.sleep(0.01)
        left = [p for p in left if alive(p)]
    return left


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def tail(text: str, lines: int = 6) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


@dataclass
class Trial:
    kind: str  # a fault point, or "runner" / "runner+connectors" for a killed runner
    settings: dict[str, Any]
    crashed: bool
    seconds: float
    violations: list[str] = field(default_factory=list)


class Lab:
    """A temporary project whose pipeline is crashed, checked, and finally completed."""

    def __init__(self, root: Path, tap: str = "tap-csv-sorted", rows: int = ROWS) -> None:
        self.root = root
        self.tap = tap
        self.rows = source_rows(rows)
        self.present = 0  # rows currently in the CSV
        self.db = root / "out.duckdb"
        self.state_db = root / "state.db"
        self.backend = f"sqlite:///{self.state_db}"
        root.mkdir(parents=True, exist_ok=True)
        sorted_tap = root / "tap-csv-sorted"
        sorted_tap.write_text(SORTED_TAP.format(python=sys.executable))
        wrapper = root / "target-fault"
        wrapper.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{FAULT_TARGET}" "$@"\n')
        for script in (sorted_tap, wrapper):
            script.chmod(0o755)
        tap_config = {
            "base_path": str(root),
            "state_every_rows": STATE_EVERY,
            "files": [{"entity": STREAM, "path": "rows.csv", "keys": ["id"], "replication_key": "updated_at"}],
        }
        capabilities = ["catalog", "discover", "state"]
        target_config = {"filepath": str(self.db), "load_method": "upsert"}
        project = {
            "version": 1,
            "plugins": {
                "extractors": [
                    {"name": "tap-csv", "executable": "tap-csv", "capabilities": capabilities, "config": tap_config},
                    {
                        # No discovery, to save a process start per run: the tap reads every stream.
                        "name": "tap-csv-sorted",
                        "executable": str(sorted_tap),
                        "capabilities": ["state"],
                        "config": tap_config,
                    },
                ],
                "loaders": [
                    {"name": "target-fault", "executable": str(wrapper), "config": target_config},
                    {"name": "target-duckdb", "executable": "target-duckdb", "config": target_config},
                ],
            },
        }
        # JSON is YAML.
        (root / "meltano.yml").write_bytes(orjson.dumps(project, option=orjson.OPT_INDENT_2))

    # -- the source ----------------------------------------------------------------
    def write_csv(self, upto: int) -> None:
        path = self.root / "rows.csv"
        tmp = path.with_suffix(".tmp")
        with tmp.open("w", newline="") as fh:
            writer = csv.writer(fh)
            writer.writerow(["id", "updated_at", "name"])
            for i, updated in self.rows[:upto]:
                writer.writerow([i, updated, f"row {i}"])
        tmp.replace(path)
        self.present = upto

    # -- the runner ----------------------------------------------------------------
    def argv(self, target: str, target_config: dict[str, Any] | None) -> list[str]:
        argv = [DPONE, "run", self.tap, target, "--project", str(self.root), "--state-backend", self.backend]
        argv += ["--pipeline-id", PIPELINE, "--no-progress"]
        if target_config is not None:
            override = self.root / "target-override.json"
            override.write_bytes(orjson.dumps(target_config))
            argv += ["--target-config", str(override)]
        return argv

    def run(self, target: str = "target-duckdb", target_config: dict[str, Any] | None = None) -> Any:
        return subprocess.run(
            self.argv(target, target_config), capture_output=True, text=True, env=ENV, timeout=RUN_TIMEOUT
        )

    def dpone(self, *args: str) -> Any:
        argv = [DPONE, *args, "--state-backend", self.backend]
        return subprocess.run(argv, capture_output=True, text=True, env=ENV, timeout=RUN_TIMEOUT)

    # -- what was saved and loaded ---------------------------------------------------
    def store(self) -> SqliteStore:
        return SqliteStore(self.state_db)

    def saved_state(self) -> dict[str, Any] | None:
        store = self.store()
        try:
            found = store.get(PIPELINE)
        finally:
            store.close()
        return found.value if found else None

    @staticmethod
    def bookmark(state: dict[str, Any] | None) -> str | None:
        mark = ((state or {}).get("bookmarks") or {}).get(STREAM) or {}
        value = mark.get("replication_key_value")
        return str(value) if value is not None else None

    def table_ids(self) -> list[int]:
        if not self.db.exists():
            return []
        with duckdb.connect(str(self.db), read_only=True) as conn:
            tables = {r[0] for r in conn.execute("SELECT table_name FROM duckdb_tables()").fetchall()}
            if STREAM not in tables:
                return []
            return [r[0] for r in conn.execute(f"SELECT id FROM {STREAM} ORDER BY id").fetchall()]

    def remaining(self, mark: str | None) -> int:
        """Rows the tap sends when it resumes from `mark` (it re-sends the row equal to it)."""
        return sum(1 for _, updated in self.rows[: self.present] if mark is None or updated >= mark)

    def check(self, before: str | None) -> list[str]:
        """After a crash: the saved bookmark covers only committed rows and never went back."""
        state = self.saved_state()
        mark = self.bookmark(state)
        ids = self.table_ids()
        problems = []
        if len(ids) != len(set(ids)):
            problems.append(f"duplicate ids in merge mode: {len(ids)} rows, {len(set(ids))} distinct")
        if mark is not None:
            covered = {i for i, updated in self.rows[: self.present] if updated <= mark}
            missing = sorted(covered - set(ids))
            if missing:
                problems.append(
                    f"saved state points past committed data: bookmark {mark} covers ids up to "
                    f"{max(covered)} but {len(missing)} are not in DuckDB (first {missing[:5]})"
                )
        if before is not None and (mark is None or mark < before):
            problems.append(f"saved bookmark went back from {before} to {mark}")
        return problems

    # -- trials --------------------------------------------------------------------
    def crash_trial(self, rng: random.Random) -> Trial:
        """One run of the fault target, killed at a random point that the run is sure to reach."""
        before = self.bookmark(self.saved_state())
        remaining = self.remaining(before)
        batch = rng.randint(2, 20)
        point = rng.choice(FAULT_POINTS)
        settings: dict[str, Any] = {"batch_size_rows": batch, "fault_point": point}
        if point == MID_BATCH:
            settings["fault_after_records"] = rng.randint(1, remaining)
        else:
            settings["fault_after_commits"] = rng.randint(1, math.ceil(remaining / batch))
        started = time.monotonic()
        proc = self.run("target-fault", settings)
        trial = Trial(point, settings, crashed=proc.returncode != 0, seconds=time.monotonic() - started)
        if proc.returncode != EXIT_FATAL or "target-fault was killed by signal 9 (SIGKILL)" not in proc.stderr:
            trial.violations.append(
                f"expected exit {EXIT_FATAL} naming the killed target, got {proc.returncode}: {tail(proc.stderr)}"
            )
        trial.violations += self.check(before)
        return trial

    def runner_kill_trial(self, rng: random.Random) -> Trial:
        """SIGKILL `dpone run` after a random delay; maybe its connectors too."""
        before = self.bookmark(self.saved_state())
        batch = rng.randint(1, 10)
        delay = rng.uniform(0.05, 0.7)
        everything = rng.random() < 0.5
        kind = "runner+connectors" if everything else "runner"
        settings = {"batch_size_rows": batch, "kill_after_seconds": round(delay, 3)}
        started = time.monotonic()
        with (self.root / "runner.err").open("w") as err:
            proc = subprocess.Popen(
                self.argv("target-fault", {"batch_size_rows": batch}),
                stdout=subprocess.DEVNULL,
                stderr=err,
                env=ENV,
            )
            time.sleep(delay)
            crashed = False
            violations: list[str] = []
            if proc.poll() is None:
                crashed = True
                stop(proc.pid)  # holds still while its children are listed
                children = descendants(proc.pid)
                os.kill(proc.pid, signal.SIGKILL)
                if everything:
                    for child in children:
                        kill_quietly(child)
                proc.wait(timeout=RUN_TIMEOUT)
                stuck = wait_gone(children, timeout=30)
                if stuck:
                    violations.append(f"connectors still running 30 s after the runner died: {stuck}")
                    for child in stuck:
                        kill_quietly(child)
                    wait_gone(stuck, timeout=10)
            else:
                proc.wait(timeout=RUN_TIMEOUT)
        trial = Trial(kind, settings, crashed, time.monotonic() - started, violations)
        trial.violations += self.check(before)
        shown = self.dpone("state", "get", PIPELINE)
        state = self.saved_state()
        if state is None:
            if shown.returncode != EXIT_CONFIG or "no saved state" not in shown.stderr:
                trial.violations.append(f"`dpone state get` with no state: {shown.returncode} {tail(shown.stderr)}")
        elif shown.returncode != 0 or orjson.loads(shown.stdout) != state:
            trial.violations.append(f"`dpone state get` disagrees with the store: {shown.stdout!r}")
        trial.violations += self.clear_stale_lock()
        return trial

    def clear_stale_lock(self) -> list[str]:
        """A dead runner's lock stops the next run with a clear message; `dpone state unlock` breaks it."""
        store = self.store()
        try:
            lock = store.get_lock(PIPELINE)
        finally:
            store.close()
        if lock is None:
            return []
        problems = []
        refused = self.run()
        message = refused.stderr.strip()
        hint = f"dpone state unlock {PIPELINE}"
        if refused.returncode != EXIT_CONFIG or "stale" not in message or hint not in message or "\n" in message:
            problems.append(f"a stale lock should stop the run with one clear line: {refused.returncode} {message}")
        unlocked = self.dpone("state", "unlock", PIPELINE)
        if unlocked.returncode != 0 or not unlocked.stdout.startswith("removed lock: locked by run"):
            problems.append(f"`dpone state unlock` failed: {unlocked.returncode} {unlocked.stdout} {unlocked.stderr}")
        return problems

    def finish(self) -> list[str]:
        """A clean re-run with plain target-duckdb: every source row exactly once, bookmark at the end."""
        proc = self.run("target-duckdb")
        problems = []
        if proc.returncode != 0:
            problems.append(f"the clean re-run failed ({proc.returncode}): {tail(proc.stderr)}")
        ids = self.table_ids()
        expected = [i for i, _ in self.rows[: self.present]]
        if ids != expected:
            dupes = len(ids) - len(set(ids))
            missing = sorted(set(expected) - set(ids))
            problems.append(f"after the re-run: {len(ids)} rows, {dupes} duplicates, missing {missing[:10]}")
        mark = self.bookmark(self.saved_state())
        if mark != self.rows[self.present - 1][1]:
            problems.append(f"after the re-run the bookmark is {mark}, not the last row's")
        return problems


def start_lab(root: Path, rng: random.Random, tap: str) -> Lab:
    """A lab with the whole CSV; or, half the time, an earlier load of part of it, then the rest
    appended, so the crashed runs are incremental ones resuming from a real bookmark."""
    lab = Lab(root, tap)
    if rng.random() < 0.5:
        lab.write_csv(rng.randint(20, ROWS - 30))
        problems = lab.finish()
        assert not problems, problems
    lab.write_csv(ROWS)
    return lab


# -- the tests ---------------------------------------------------------------------
CHAINS = 10
CRASHES_PER_CHAIN = 5  # 50 crashed runs, plus 12 killed runners
RUNNER_KILLS = 6


@pytest.mark.parametrize("seed", range(CHAINS))
def test_crashed_target_never_leaves_state_past_committed_data(tmp_path: Path, seed: int) -> None:
    rng = random.Random(seed)
    lab = start_lab(tmp_path, rng, TAPS[0] if seed % 3 == 0 else TAPS[1])
    for n in range(CRASHES_PER_CHAIN):
        trial = lab.crash_trial(rng)
        assert trial.crashed, f"crash {n}: {trial.settings} did not crash the target"
        assert not trial.violations, f"crash {n} ({trial.settings}): {trial.violations}"
    assert not lab.finish()


@pytest.mark.parametrize("seed", range(RUNNER_KILLS))
def test_killed_runner_never_leaves_state_past_committed_data(tmp_path: Path, seed: int) -> None:
    rng = random.Random(1000 + seed)
    lab = start_lab(tmp_path, rng, TAPS[seed % 2])
    for _ in range(2):
        trial = lab.runner_kill_trial(rng)
        assert not trial.violations, f"{trial.kind} {trial.settings}: {trial.violations}"
    assert not lab.finish()


def test_runner_refuses_a_lock_held_by_a_live_run(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.write_csv(ROWS)
    first = subprocess.Popen(
        lab.argv("target-fault", {"batch_size_rows": 1}),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=ENV,
    )
    try:
        deadline = time.monotonic() + RUN_TIMEOUT
        lock = None
        while lock is None and time.monotonic() < deadline and first.poll() is None:
            store = lab.store()
            try:
                lock = store.get_lock(PIPELINE)
            finally:
                store.close()
            time.sleep(0.005)
        assert lock is not None, "the first run never took the lock"
        stop(first.pid)  # holds the lock, alive, for as long as we need
        second = lab.run()
    finally:
        kill_quietly(first.pid, signal.SIGCONT)
    assert first.wait(timeout=RUN_TIMEOUT) == 0
    message = second.stderr.strip()
    assert second.returncode == 75  # transient: the live run will finish; retry later
    assert "\n" not in message, message
    assert f"pipeline '{PIPELINE}' is locked by run {lock.owner} (pid {first.pid} on " in message
    assert f"dpone state unlock {PIPELINE}" in message
    assert "stale" not in message
    # Refused before it started: nothing ran, but its report (and the run history) says why.
    assert second.stdout.startswith(f"pipeline {PIPELINE}: failed in ")
    assert f"error: pipeline '{PIPELINE}' is locked by run {lock.owner}" in second.stdout
    store = lab.store()
    try:
        refused = [r.report for r in store.runs(PIPELINE, 5) if r.report["exit_code"] == 75]
    finally:
        store.close()
    assert len(refused) == 1 and refused[0]["streams"] == [] and refused[0]["state_after"] is None
    assert not lab.finish()


def test_stale_lock_is_named_and_unlock_breaks_it(tmp_path: Path) -> None:
    lab = Lab(tmp_path)
    lab.write_csv(ROWS)
    gone = subprocess.Popen(["true"])
    gone.wait()
    store = lab.store()
    try:
        store.acquire_lock(LockInfo(PIPELINE, "deadbeef0000", gone.pid, socket.gethostname(), utc_now()))
    finally:
        store.close()
    problems = lab.clear_stale_lock()
    assert not problems, problems
    store = lab.store()
    try:
        assert store.get_lock(PIPELINE) is None
    finally:
        store.close()
    assert not lab.finish()
