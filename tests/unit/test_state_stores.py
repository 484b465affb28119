"""The state store contract, run against every file-based backend.

StoreBehaviour holds the behaviour every StateStore must have; a subclass supplies
`open_store_here`, a callable opening the same store each time it is called (so tests can
reopen it, or open it from other processes). tests/service/test_state_postgres.py reuses it.
"""

from __future__ import annotations

import multiprocessing
import os
import socket
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from dpone.state.json_store import JsonFileStore
from dpone.state.sqlite_store import SqliteStore
from dpone.state.store import LockedError, LockInfo, RunRecord, StateStore, new_lock, open_store, utc_now
from dpone_protocol.errors import ConfigError, DataError

Opener = Callable[[], StateStore]


def _lock(pipeline_id: str, owner: str, pid: int | None = None, host: str | None = None) -> LockInfo:
    return LockInfo(pipeline_id, owner, pid or os.getpid(), host or socket.gethostname(), utc_now())


def _exited_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def _race_for_lock(opener: Opener, barrier: multiprocessing.synchronize.Barrier, results, index: int) -> None:
    store = opener()
    barrier.wait(timeout=10)
    try:
        store.acquire_lock(_lock("race", f"run-{index}"))
        results.put("won")
    except LockedError:
        results.put("lost")
    finally:
        store.close()


class StoreBehaviour:
    @pytest.fixture
    def open_store_here(self) -> Opener:
        raise NotImplementedError

    @pytest.fixture
    def store(self, open_store_here: Opener) -> Iterator[StateStore]:
        store = open_store_here()
        yield store
        store.close()

    # -- values

    def test_get_put_delete_round_trip(self, store: StateStore):
        assert store.get("p1") is None
        value = {"bookmarks": {"orders": {"replication_key": "id", "replication_key_value": 7}}, "note": "é ✓"}
        store.put("p1", value)
        got = store.get("p1")
        assert got is not None
        assert got.pipeline_id == "p1"
        assert got.value == value
        assert got.updated_at.endswith("+00:00")
        store.put("p1", {"bookmarks": {}})
        assert store.get("p1").value == {"bookmarks": {}}
        store.delete("p1")
        assert store.get("p1") is None
        store.delete("p1")  # deleting nothing is fine

    def test_list_every_pipeline_sorted_by_id(self, store: StateStore):
        assert store.list() == []
        for pid in ("b", "c", "a"):
            store.put(pid, {"id": pid})
        assert [(s.pipeline_id, s.value) for s in store.list()] == [
            ("a", {"id": "a"}),
            ("b", {"id": "b"}),
            ("c", {"id": "c"}),
        ]

    def test_values_survive_reopening(self, store: StateStore, open_store_here: Opener):
        store.put("p1", {"bookmarks": {"s": {"xmin": 5}}})
        other = open_store_here()
        try:
            assert other.get("p1").value == {"bookmarks": {"s": {"xmin": 5}}}
        finally:
            other.close()

    def test_a_put_that_fails_leaves_the_old_value(self, store: StateStore):
        store.put("p1", {"v": 1})
        with pytest.raises(DataError):
            store.put("p1", {"v": 2, "bad": object()})
        assert store.get("p1").value == {"v": 1}

    def test_delete_keeps_lock_and_runs(self, store: StateStore):
        store.put("p1", {"v": 1})
        store.acquire_lock(_lock("p1", "r1"))
        store.save_run(RunRecord("p1", "r1", utc_now()))
        store.delete("p1")
        assert store.get_lock("p1") is not None
        assert [r.run_id for r in store.runs("p1")] == ["r1"]

    # -- locks

    def test_lock_acquire_conflict_release(self, store: StateStore):
        first = new_lock("p1", "run-1")
        store.acquire_lock(first)
        assert store.get_lock("p1") == first
        with pytest.raises(LockedError) as caught:
            store.acquire_lock(new_lock("p1", "run-2"))
        assert caught.value.lock == first
        message = str(caught.value)
        assert "run-1" in message
        assert "dpone state unlock p1" in message
        assert "stale" not in message
        store.release_lock("p1", "run-2")  # not the owner: nothing happens
        assert store.get_lock("p1") == first
        store.release_lock("p1", "run-1")
        assert store.get_lock("p1") is None
        store.acquire_lock(new_lock("p1", "run-2"))
        assert store.get_lock("p1").owner == "run-2"

    def test_locks_are_per_pipeline(self, store: StateStore):
        store.acquire_lock(new_lock("p1", "run-1"))
        store.acquire_lock(new_lock("p2", "run-1"))
        assert store.get_lock("p2").pipeline_id == "p2"

    def test_break_lock_removes_any_lock(self, store: StateStore):
        assert store.break_lock("p1") is None
        lock = _lock("p1", "run-1", pid=_exited_pid())
        store.acquire_lock(lock)
        assert store.break_lock("p1") == lock
        assert store.get_lock("p1") is None
        store.acquire_lock(new_lock("p1", "run-2"))

    def test_stale_lock_is_reported_but_not_broken(self, store: StateStore):
        store.acquire_lock(_lock("p1", "dead-run", pid=_exited_pid()))
        with pytest.raises(LockedError) as caught:
            store.acquire_lock(new_lock("p1", "run-2"))
        assert caught.value.lock.is_stale()
        assert "stale" in str(caught.value)
        assert "dpone state unlock p1" in str(caught.value)
        assert store.get_lock("p1").owner == "dead-run"

    def test_lock_of_another_host_is_never_called_stale(self, store: StateStore):
        lock = _lock("p1", "remote", pid=_exited_pid(), host="some-other-host.invalid")
        store.acquire_lock(lock)
        assert not store.get_lock("p1").is_stale()

    def test_processes_racing_for_a_lock_exactly_one_wins(self, open_store_here: Opener):
        # Every racer opens the store itself, so first-time setup races too.
        ctx = multiprocessing.get_context("fork")
        racers = 4
        barrier, results = ctx.Barrier(racers), ctx.Queue()
        procs = [ctx.Process(target=_race_for_lock, args=(open_store_here, barrier, results, i)) for i in range(racers)]
        for proc in procs:
            proc.start()
        outcomes = sorted(results.get(timeout=10) for _ in procs)
        for proc in procs:
            proc.join(timeout=10)
        assert outcomes == ["lost"] * (racers - 1) + ["won"]

    # -- runs

    def test_runs_newest_first_with_limit(self, store: StateStore):
        for i, stamp in enumerate(
            ["2024-01-02T00:00:00+00:00", "2024-01-03T00:00:00+00:00", "2024-01-01T00:00:00+00:00"]
        ):
            store.save_run(RunRecord("p1", f"r{i}", stamp, {"rows": i}))
        store.save_run(RunRecord("p2", "other", utc_now()))
        assert [r.run_id for r in store.runs("p1")] == ["r1", "r0", "r2"]
        assert [r.run_id for r in store.runs("p1", limit=2)] == ["r1", "r0"]
        assert store.runs("p1")[0].report == {"rows": 1}
        assert store.runs("nope") == []

    def test_saving_a_run_again_replaces_it(self, store: StateStore):
        store.save_run(RunRecord("p1", "r1", "2024-01-01T00:00:00+00:00", {"status": "running"}))
        store.save_run(RunRecord("p1", "r1", "2024-01-01T00:00:00+00:00", {"status": "ok"}))
        assert [(r.run_id, r.report) for r in store.runs("p1")] == [("r1", {"status": "ok"})]

    def test_runs_with_equal_timestamps_latest_saved_first(self, store: StateStore):
        stamp = utc_now()
        for run_id in ("a", "b", "c"):
            store.save_run(RunRecord("p1", run_id, stamp))
        assert [r.run_id for r in store.runs("p1")] == ["c", "b", "a"]

    def test_recent_runs_across_pipelines_newest_first(self, store: StateStore):
        for pipeline, run_id, stamp in [
            ("p1", "a", "2024-01-02T00:00:00+00:00"),
            ("p2", "b", "2024-01-04T00:00:00+00:00"),
            ("p1", "c", "2024-01-03T00:00:00+00:00"),
            ("p3", "d", "2024-01-01T00:00:00+00:00"),
        ]:
            store.save_run(RunRecord(pipeline, run_id, stamp, {"run": run_id}))
        recent = store.recent_runs()
        assert [(r.pipeline_id, r.run_id) for r in recent] == [("p2", "b"), ("p1", "c"), ("p1", "a"), ("p3", "d")]
        assert [r.report for r in recent] == [{"run": "b"}, {"run": "c"}, {"run": "a"}, {"run": "d"}]
        assert recent[0].created_at == "2024-01-04T00:00:00+00:00"
        assert [r.run_id for r in store.recent_runs(2)] == ["b", "c"]
        assert store.recent_runs(0) == []

    def test_recent_runs_of_one_pipeline_are_its_runs(self, store: StateStore):
        for i, pipeline in enumerate(["p1", "p2", "p1", "p2", "p1"]):
            store.save_run(RunRecord(pipeline, f"r{i}", f"2024-01-0{i + 1}T00:00:00+00:00"))
        assert [r.run_id for r in store.recent_runs(pipeline_id="p1")] == ["r4", "r2", "r0"]
        assert [r.run_id for r in store.recent_runs(2, "p1")] == ["r4", "r2"]
        assert {r.pipeline_id for r in store.recent_runs(pipeline_id="p2")} == {"p2"}
        assert store.recent_runs(pipeline_id="p1") == store.runs("p1")
        assert store.recent_runs(pipeline_id="nope") == []

    def test_recent_runs_with_equal_timestamps_latest_saved_first(self, store: StateStore):
        stamp = utc_now()
        for pipeline, run_id in (("p1", "a"), ("p1", "b"), ("p2", "c")):
            store.save_run(RunRecord(pipeline, run_id, stamp))
        assert [r.run_id for r in store.recent_runs(pipeline_id="p1")] == ["b", "a"]
        assert {r.run_id for r in store.recent_runs()} == {"a", "b", "c"}


class TestSqliteStore(StoreBehaviour):
    @pytest.fixture
    def open_store_here(self, tmp_path: Path) -> Opener:
        return lambda: SqliteStore(tmp_path / "nested" / "state.db")

    def test_creates_tables_in_wal_mode(self, store: SqliteStore, tmp_path: Path):
        import sqlite3

        conn = sqlite3.connect(tmp_path / "nested" / "state.db")
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert {"dpone_state", "dpone_locks", "dpone_runs"} <= tables
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        conn.close()

    def test_a_transaction_that_fails_midway_is_rolled_back(self, store: SqliteStore):
        store.put("p1", {"v": 1})
        with pytest.raises(RuntimeError), store._write() as conn:
            conn.execute("UPDATE dpone_state SET value = '{\"v\": 2}'")
            raise RuntimeError("crash between statements")
        assert store.get("p1").value == {"v": 1}

    def test_not_a_database_is_a_config_error(self, tmp_path: Path):
        path = tmp_path / "junk.db"
        path.write_bytes(b"this is not sqlite" * 100)
        with pytest.raises(ConfigError, match="junk.db"):
            SqliteStore(path)


class TestJsonFileStore(StoreBehaviour):
    @pytest.fixture
    def open_store_here(self, tmp_path: Path) -> Opener:
        return lambda: JsonFileStore(tmp_path / "nested" / "state.json")

    def test_a_write_that_fails_midway_leaves_the_old_file(self, store: JsonFileStore, monkeypatch):
        store.put("p1", {"v": 1})
        before = store.path.read_bytes()

        def crash(*args: object) -> None:
            raise OSError("disk vanished")

        monkeypatch.setattr(os, "replace", crash)
        with pytest.raises(OSError, match="disk vanished"):
            store.put("p1", {"v": 2})
        monkeypatch.undo()
        assert store.path.read_bytes() == before
        assert store.get("p1").value == {"v": 1}
        assert sorted(p.name for p in store.path.parent.iterdir()) == ["state.json", "state.json.lock"]

    def test_keeps_only_the_last_runs(self, tmp_path: Path):
        assert JsonFileStore(tmp_path / "s.json").keep_runs == 100
        store = JsonFileStore(tmp_path / "s.json", keep_runs=3)
        for i in range(5):
            store.save_run(RunRecord("p1", f"r{i}", f"2024-01-0{i + 1}T00:00:00+00:00"))
        assert [r.run_id for r in store.runs("p1", limit=10)] == ["r4", "r3", "r2"]

    def test_corrupt_file_is_a_config_error(self, tmp_path: Path):
        path = tmp_path / "state.json"
        path.write_text("{not json")
        with pytest.raises(ConfigError, match="not valid JSON"):
            JsonFileStore(path).get("p1")
        path.write_text("[1, 2]")
        with pytest.raises(ConfigError, match="not a dpone state file"):
            JsonFileStore(path).list()


# -- choosing a backend from a URI


@pytest.fixture
def in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("DPONE_STATE_BACKEND", raising=False)
    return tmp_path


def test_sqlite_uri_with_relative_path(in_tmp: Path):
    store = open_store("sqlite:///rel/path.db")
    assert isinstance(store, SqliteStore)
    assert store.path == Path("rel/path.db")
    assert (in_tmp / "rel" / "path.db").exists()
    store.close()


def test_sqlite_uri_with_absolute_path(in_tmp: Path):
    target = in_tmp / "abs" / "path.db"
    store = open_store(f"sqlite:///{target}")
    assert f"sqlite:///{target}".startswith("sqlite:////")
    assert isinstance(store, SqliteStore)
    assert store.path == target
    assert target.exists()
    store.close()


def test_file_uri_is_a_json_store(in_tmp: Path):
    store = open_store("file:///rel.json")
    assert isinstance(store, JsonFileStore)
    assert store.path == Path("rel.json")
    store.put("p", {"v": 1})
    assert (in_tmp / "rel.json").exists()


def test_default_backend_and_environment(in_tmp: Path, monkeypatch: pytest.MonkeyPatch):
    store = open_store()
    assert isinstance(store, SqliteStore)
    assert store.path == Path(".dpone/state.db")
    store.close()
    monkeypatch.setenv("DPONE_STATE_BACKEND", "file:///from-env.json")
    assert isinstance(open_store(), JsonFileStore)


@pytest.mark.parametrize("uri", ["redis://localhost/0", "state.db", "mysql://u@h/db"])
def test_unknown_scheme_is_a_config_error(uri: str, in_tmp: Path):
    with pytest.raises(ConfigError, match="unknown state backend"):
        open_store(uri)
