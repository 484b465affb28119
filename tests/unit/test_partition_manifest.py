"""The partition manifest: its rules (state/partitions.py) and every store keeping it atomically.

ManifestBehaviour runs against SQLite and JSON here and PostgreSQL in tests/service/test_state_postgres.py:
claims race from several processes and each range goes to exactly one; a lost lease is claimed again;
a finish from a worker that lost its range does not overwrite the new holder's outcome.
"""

from __future__ import annotations

import datetime as dt
import multiprocessing
from collections.abc import Iterator
from pathlib import Path

import pytest

from dpone.state import partitions as p
from dpone.state.json_store import JsonFileStore
from dpone.state.manifest import Manifest, NoPlan, unfinished_plans
from dpone.state.sqlite_store import SqliteStore
from dpone.state.store import StateStore
from dpone_protocol.errors import ConfigError
from tests.unit.test_state_stores import Opener

NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def make_plan(ranges: int = 4, pipeline: str = "pipe", stream: str = "s") -> p.PartitionPlan:
    cuts = [str(100 * (i + 1)) for i in range(ranges - 1)]
    bounds = zip([None, *cuts], [*cuts, None], strict=True)
    return p.PartitionPlan(
        pipeline, stream, "plan1", "id", "bigint", "statistics", "2026-01-01T00:00:00.000+00:00",
        [p.PartitionRange(i, low, high) for i, (low, high) in enumerate(bounds)],
        bookmark={"replication_key": "u", "replication_key_value": 5},
    )  # fmt: skip


def rules(worker: str = "w1", only: int | None = None) -> p.ClaimRules:
    return p.ClaimRules(worker, lease_seconds=60, max_attempts=3, only=only)


class TestRules:
    def test_claims_in_order_and_never_twice(self) -> None:
        plan = make_plan(2)
        first, second = p.claim(plan, NOW, rules("a")), p.claim(plan, NOW, rules("b"))
        assert (first and first.index, second and second.index) == (0, 1)
        assert p.claim(plan, NOW, rules("c")) is None
        assert plan.ranges[0].worker == "a" and plan.ranges[0].attempts == 1

    def test_a_lost_lease_is_claimed_again_and_says_why(self) -> None:
        plan = make_plan(1)
        p.claim(plan, NOW, rules("dead"))
        assert p.claim(plan, NOW + dt.timedelta(seconds=59), rules("b")) is None
        retried = p.claim(plan, NOW + dt.timedelta(seconds=61), rules("b"))
        assert retried is not None and retried.worker == "b" and retried.attempts == 2
        assert "dead lost its lease" in (retried.last_error or "")

    def test_a_range_whose_workers_keep_dying_fails(self) -> None:
        plan = make_plan(1)
        later = NOW
        for _ in range(3):
            assert p.claim(plan, later, rules()) is not None
            later += dt.timedelta(seconds=61)
        assert p.claim(plan, later, rules()) is None
        assert plan.ranges[0].status == p.FAILED and "3 times" in (plan.ranges[0].last_error or "")

    def test_only_transient_failures_are_retried_by_themselves(self) -> None:
        plan = make_plan(2)
        for kind, r in zip(("transient", "data"), plan.ranges, strict=True):
            p.claim(plan, NOW, rules(only=r.index))
            p.finish(plan, r.index, "w1", NOW, p.RangeResult(p.FAILED, error="boom", error_kind=kind))
        plan.ranges.append(p.PartitionRange(2, "200", None))
        fresh = p.claim(plan, NOW, rules())
        assert fresh is not None and fresh.index == 2  # never-tried ranges first
        # The transient failure waits out its backoff (a restarting server), then is tried again.
        assert p.claim(plan, NOW, rules()) is None
        assert p.next_retry_in(plan, NOW, rules()) == p.RETRY_BACKOFF_SECONDS
        again = p.claim(plan, NOW + dt.timedelta(seconds=p.RETRY_BACKOFF_SECONDS), rules())
        assert again is not None and again.index == 0 and again.attempts == 2
        for done in (0, 2):
            p.finish(plan, done, "w1", NOW, p.RangeResult(p.SUCCESS, 1, 1))
        assert p.claim(plan, NOW + dt.timedelta(hours=1), rules()) is None  # the data error waits for a reset
        assert p.next_retry_in(plan, NOW, rules()) is None

    def test_the_backoff_grows_with_the_attempts_up_to_a_bound(self) -> None:
        assert [p.backoff(n) for n in (1, 2, 3)] == [15.0, 30.0, 60.0]
        assert p.backoff(20) == p.RETRY_BACKOFF_MAX_SECONDS

    def test_a_loaded_range_reset_loads_again_under_a_new_token(self) -> None:
        plan = make_plan(2)
        p.claim(plan, NOW, rules())
        p.finish(plan, 0, "w1", NOW, p.RangeResult(p.SUCCESS, 5, 5))
        first = plan.token(0)
        assert p.reset(plan, None, p.STATUSES, NOW) == [0, 1]
        assert plan.token(0) == first + "/g2" and plan.token(1) == "pipe/s/plan1/r0001"

    def test_a_named_range_is_claimed_whatever_failed_but_never_a_success(self) -> None:
        plan = make_plan(2)
        p.claim(plan, NOW, rules(only=1))
        p.finish(plan, 1, "w1", NOW, p.RangeResult(p.FAILED, error="bad row", error_kind="data"))
        assert p.claim(plan, NOW, rules(only=1)) is not None  # an orchestrator's retry
        p.finish(plan, 1, "w1", NOW, p.RangeResult(p.SUCCESS, 10, 10))
        assert p.claim(plan, NOW, rules(only=1)) is None
        p.skip(plan, [0])
        assert p.claim(plan, NOW, rules(only=0)) is None

    def test_a_worker_that_lost_its_range_cannot_record_a_failure_over_the_new_holder(self) -> None:
        plan = make_plan(1)
        p.claim(plan, NOW, rules("old"))
        p.claim(plan, NOW + dt.timedelta(seconds=61), rules("new"))
        assert not p.finish(plan, 0, "old", NOW, p.RangeResult(p.FAILED, error="late", error_kind="transient"))
        assert plan.ranges[0].status == p.RUNNING and plan.ranges[0].worker == "new"
        # Its success counts: the destination's ledger let only one load commit.
        assert p.finish(plan, 0, "old", NOW, p.RangeResult(p.SUCCESS, 7, 7))
        assert plan.ranges[0].status == p.SUCCESS and not p.renew(plan, 0, "new", NOW, 60)

    def test_reset_skips_live_leases(self) -> None:
        plan = make_plan(3)
        p.claim(plan, NOW, rules())
        p.claim(plan, NOW, rules())
        p.finish(plan, 1, "w1", NOW, p.RangeResult(p.FAILED, error="x", error_kind="data"))
        assert p.reset(plan, None, (p.FAILED,), NOW) == [1]
        assert p.reset(plan, [0], (), NOW) == []  # running with a live lease
        assert plan.ranges[1].status == p.PENDING and plan.ranges[1].attempts == 0

    def test_tokens_are_per_plan_and_range(self) -> None:
        plan = make_plan(2)
        assert plan.token(1) == "pipe/s/plan1/r0001"
        assert p.index_of("r0001") == 1 and p.index_of("12") == 12
        with pytest.raises(ValueError):
            p.index_of("first")

    def test_documents_round_trip(self) -> None:
        plan = make_plan(3)
        p.claim(plan, NOW, rules())
        p.finish(plan, 0, "w1", NOW, p.RangeResult(p.SUCCESS, 5, 5, artifacts=(p.Artifact("file:///x", 5, "ab"),)))
        assert p.PartitionPlan.from_dict(plan.to_dict()) == plan


def _claim_all(opener: Opener, barrier: multiprocessing.synchronize.Barrier, results, worker: str) -> None:
    store = opener()
    manifest = Manifest(store, "pipe", "s")
    barrier.wait(timeout=10)
    try:
        while True:
            _, claimed = manifest.claim(rules(worker))
            if claimed is None:
                return
            results.put((worker, claimed.index))
            manifest.finish(claimed.index, worker, p.RangeResult(p.SUCCESS, 1, 1))
    finally:
        store.close()


class ManifestBehaviour:
    @pytest.fixture
    def open_store_here(self) -> Opener:
        raise NotImplementedError

    @pytest.fixture
    def store(self, open_store_here: Opener) -> Iterator[StateStore]:
        store = open_store_here()
        yield store
        store.close()

    def test_save_get_and_refuse_to_replace_an_unfinished_plan(self, store: StateStore) -> None:
        manifest = Manifest(store, "pipe", "s")
        assert manifest.get() is None
        with pytest.raises(NoPlan, match="dpone partitions plan pipe --stream s"):
            manifest.require()
        manifest.save(make_plan(), replace=False)
        assert manifest.require() == make_plan()
        with pytest.raises(ConfigError, match="unfinished partition plan .0 of 4 ranges"):
            manifest.save(make_plan(), replace=False)
        manifest.save(make_plan(2), replace=True)
        assert len(manifest.require().ranges) == 2
        assert [plan.stream for plan in unfinished_plans(store, "pipe")] == ["s"]
        assert unfinished_plans(store, "other") == []

    def test_a_plan_with_a_live_range_is_neither_replaced_nor_dropped(self, store: StateStore) -> None:
        manifest = Manifest(store, "pipe", "s")
        manifest.save(make_plan(), replace=False)
        manifest.claim(rules())
        with pytest.raises(ConfigError, match="r0000"):
            manifest.save(make_plan(), replace=True)
        with pytest.raises(ConfigError, match="r0000"):
            manifest.drop()

    def test_plans_are_kept_per_pipeline_and_stream(self, store: StateStore) -> None:
        Manifest(store, "b", "s2").save(make_plan(pipeline="b", stream="s2"), replace=False)
        Manifest(store, "b", "s1").save(make_plan(pipeline="b", stream="s1"), replace=False)
        Manifest(store, "a", "s1").save(make_plan(pipeline="a", stream="s1"), replace=False)
        assert [(d["pipeline_id"], d["stream"]) for d in store.partition_plans()] == [
            ("a", "s1"),
            ("b", "s1"),
            ("b", "s2"),
        ]
        assert [d["stream"] for d in store.partition_plans("b")] == ["s1", "s2"]
        Manifest(store, "b", "s1").drop()
        assert [d["stream"] for d in store.partition_plans("b")] == ["s2"]

    def test_claim_renew_finish_finalize(self, store: StateStore) -> None:
        manifest = Manifest(store, "pipe", "s")
        manifest.save(make_plan(1), replace=False)
        _, claimed = manifest.claim(rules())
        assert claimed is not None and manifest.renew(0, "w1", 60) and not manifest.renew(0, "w2", 60)
        plan = manifest.finish(0, "w1", p.RangeResult(p.SUCCESS, 3, 3))
        assert plan.complete() and plan.unfinished()
        manifest.mark_finalized()
        assert not manifest.require().unfinished()
        assert unfinished_plans(store, "pipe") == []

    def test_workers_racing_in_processes_each_get_distinct_ranges(self, open_store_here: Opener) -> None:
        store = open_store_here()
        Manifest(store, "pipe", "s").save(make_plan(40), replace=False)
        store.close()
        ctx = multiprocessing.get_context("fork")
        barrier, results = ctx.Barrier(4), ctx.Queue()
        procs = [ctx.Process(target=_claim_all, args=(open_store_here, barrier, results, f"w{i}")) for i in range(4)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join(timeout=60)
            assert proc.exitcode == 0
        claims = [results.get(timeout=5) for _ in range(40)]
        assert sorted(index for _, index in claims) == list(range(40))
        assert results.empty()
        store = open_store_here()
        try:
            plan = Manifest(store, "pipe", "s").require()
        finally:
            store.close()
        assert plan.complete() and all(r.attempts == 1 for r in plan.ranges)


class TestSqliteManifest(ManifestBehaviour):
    @pytest.fixture
    def open_store_here(self, tmp_path: Path) -> Opener:
        return lambda: SqliteStore(tmp_path / "state.db")


class TestJsonManifest(ManifestBehaviour):
    @pytest.fixture
    def open_store_here(self, tmp_path: Path) -> Opener:
        return lambda: JsonFileStore(tmp_path / "state.json")
