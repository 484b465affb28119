"""target-postgres COPYs a batch straight into a table this run created (a first load, an overwrite's
shadow) and through staging everywhere else: the cross product of load method, table (new or there
before the run) and the batches that must leave the direct path (a key an earlier batch loaded, a key
twice in one batch, a hard delete, a schema change between batches). Each case ends with the table
equal to what staging alone would have made, and the load times filled.

A batch whose keys meet none of the batch in flight's COPYs on the other lane before that one
commits ("ahead"), and commits after it: which batches go ahead, and that a failure of the batch
before takes back the one ahead of it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest
from psycopg.pq import TransactionStatus

from dpone.targets.postgres.loader import PostgresLoader
from dpone.targets.postgres.target import PostgresTarget

pytestmark = pytest.mark.service

PROPS = {"id": {"type": "integer"}, "name": {"type": ["string", "null"]}}


def schema(props: dict[str, Any] = PROPS, keys: tuple[str, ...] = ("id",)) -> dict[str, Any]:
    return {
        "type": "SCHEMA",
        "stream": "items",
        "schema": {"type": "object", "properties": props},
        "key_properties": list(keys),
    }


def record(i: int, name: str | None = None, **extra: Any) -> dict[str, Any]:
    return {"type": "RECORD", "stream": "items", "record": {"id": i, "name": name or f"n{i}", **extra}}


def state(n: int) -> dict[str, Any]:
    return {"type": "STATE", "value": {"bookmarks": {"items": {"at": n}}}}


def data(*messages: dict[str, Any]) -> bytes:
    return b"".join(orjson.dumps(m) + b"\n" for m in messages)


@pytest.fixture
def paths(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[str]]:
    """'direct' or 'staging' for every batch, in order."""
    taken: list[str] = []
    direct = PostgresLoader.load_direct

    def load_direct(self: PostgresLoader, *args: Any) -> bool:
        done = direct(self, *args)
        taken.append("direct" if done else "staging")
        return done

    monkeypatch.setattr(PostgresLoader, "load_direct", load_direct)
    yield taken


@pytest.fixture
def turns(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[tuple[str, bool, bool]]]:
    """For each direct load as it takes its turn: its first id, whether it was let ahead, and whether
    its COPY was already done then (its transaction open). A batch named "slow" first waits 0.5 s."""
    seen: list[tuple[str, bool, bool]] = []
    lock = threading.Lock()
    direct = PostgresLoader.load_direct

    def load_direct(
        self: PostgresLoader, plan: Any, table: str, rows: Any, schema: Any, turn: Any, ahead: bool
    ) -> bool:
        if b"\tslow" in rows.data:
            time.sleep(0.5)
        first = bytes(rows.data).split(b"\t", 1)[0].decode()  # its first id as written

        def traced(timeout: float | None = None) -> bool:
            with lock:
                if not any(t[0] == first for t in seen):
                    seen.append((first, ahead, self.conn.info.transaction_status != TransactionStatus.IDLE))
            return bool(turn(timeout))

        return direct(self, plan, table, rows, schema, traced, ahead)

    monkeypatch.setattr(PostgresLoader, "load_direct", load_direct)
    yield seen


@pytest.fixture
def load(pg: Any, run_target: Callable[..., Any]) -> Callable[..., Any]:
    def go(body: bytes, **config: Any) -> Any:
        run = run_target(PostgresTarget, pg.config(batch_size_rows=10, **config), body)
        assert run.rc == 0, run.stderr
        return run

    return go


def table(pg: Any, columns: str = "id, name") -> list[tuple[Any, ...]]:
    return pg.rows(f"SELECT {columns} FROM items ORDER BY id")


def load_times_filled(pg: Any) -> bool:
    return pg.scalar("SELECT count(*) FROM items WHERE _sdc_received_at IS NULL OR _sdc_batched_at IS NULL") == 0


@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_a_first_load_goes_straight_into_the_table(pg: Any, load: Any, paths: list[str], method: str) -> None:
    load(data(schema(), *(record(i) for i in range(1, 36)), state(35)), load_method=method)
    assert paths == ["direct"] * 4
    assert table(pg) == [(i, f"n{i}") for i in range(1, 36)]
    assert load_times_filled(pg)


@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_a_table_there_before_the_run_takes_staging(pg: Any, load: Any, paths: list[str], method: str) -> None:
    load(data(schema(), record(1), state(1)), load_method=method)
    paths.clear()
    load(data(schema(), *(record(i, "again") for i in range(1, 16)), state(15)), load_method=method)
    assert paths == ["staging", "staging"]
    expected = [(i, "again") for i in range(1, 16)]
    assert table(pg) == ([(1, "n1")] + expected if method == "append-only" else expected)


def test_a_key_an_earlier_batch_loaded_rolls_back_and_merges(pg: Any, load: Any, paths: list[str]) -> None:
    # Batch 2 updates id 3 (loaded by batch 1): its COPY fails on the key and the batch merges, as do later ones.
    body = data(
        schema(),
        *(record(i) for i in range(1, 11)),
        record(3, "updated"),
        *(record(i) for i in range(11, 20)),
        *(record(i) for i in range(20, 30)),
        state(29),
    )
    load(body, load_method="upsert")
    # The third batch merges too, unless it went ahead (its keys are new) before the second met id 3.
    assert paths[:2] == ["direct", "staging"]
    assert table(pg) == sorted([(i, "updated" if i == 3 else f"n{i}") for i in range(1, 30)])
    assert load_times_filled(pg)


def test_a_key_twice_in_one_batch_takes_staging_and_the_later_row_wins(pg: Any, load: Any, paths: list[str]) -> None:
    load(data(schema(), record(1), record(2), record(1, "later"), state(2)), load_method="upsert")
    assert paths == ["staging"]
    assert table(pg) == [(1, "later"), (2, "n2")]


def test_a_schema_change_between_batches_commits_with_the_direct_copy(pg: Any, load: Any, paths: list[str]) -> None:
    wider = {**PROPS, "size": {"type": ["integer", "null"]}}
    body = data(
        schema(),
        *(record(i) for i in range(1, 11)),
        schema(wider),
        *(record(i, size=i * 10) for i in range(11, 16)),
        state(15),
    )
    load(body, load_method="upsert")
    assert paths == ["direct", "direct"]
    assert table(pg, "id, size") == [(i, None if i < 11 else i * 10) for i in range(1, 16)]


def test_a_hard_delete_stream_takes_staging(pg: Any, load: Any, paths: list[str]) -> None:
    props = {**PROPS, "_sdc_deleted_at": {"type": ["string", "null"], "format": "date-time"}}
    body = data(schema(props), record(1), record(2), record(3, _sdc_deleted_at="2024-01-01T00:00:00Z"), state(3))
    load(body, load_method="upsert", hard_delete=True)
    assert paths == ["staging"]
    assert table(pg) == [(1, "n1"), (2, "n2")]


def test_an_overwrite_fills_its_shadow_directly_and_swaps_it_in(pg: Any, load: Any, paths: list[str]) -> None:
    load(data(schema(), *(record(i, "old") for i in range(1, 6)), state(5)), load_method="upsert")
    paths.clear()
    load(data(schema(), *(record(i) for i in range(3, 18)), state(17)), load_method="overwrite")
    assert paths == ["direct", "direct"]
    assert table(pg) == [(i, f"n{i}") for i in range(3, 18)]
    assert load_times_filled(pg)


def test_without_the_encoder_every_batch_takes_staging(
    pg: Any, load: Any, paths: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DPONE_PURE_PYTHON", "1")
    load(data(schema(), *(record(i) for i in range(1, 16)), state(15)), load_method="upsert")
    assert paths == []  # decoded batches never ask
    assert table(pg) == [(i, f"n{i}") for i in range(1, 16)]
    assert load_times_filled(pg)


# -- batches ahead -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_batches_with_new_keys_copy_while_the_batch_before_is_in_flight(
    pg: Any, load: Any, turns: list[tuple[str, bool, bool]], method: str
) -> None:
    load(data(schema(), *(record(i) for i in range(1, 46)), state(45)), load_method=method)
    # The first batch carries the CREATE TABLE, so the second waits for it to commit (and the third may:
    # the second counts as carrying it while it is still queued). The others COPY ahead.
    by_id = sorted(turns, key=lambda t: int(t[0]))
    assert by_id[:2] == [("1", False, False), ("11", False, False)]
    assert by_id[3:] == [("31", True, True), ("41", True, True)]
    assert table(pg) == [(i, f"n{i}") for i in range(1, 46)]
    assert load_times_filled(pg)


def test_a_batch_meeting_a_key_of_the_batch_before_waits_its_turn(
    pg: Any, load: Any, turns: list[tuple[str, bool, bool]]
) -> None:
    body = data(schema(), *(record(i) for i in range(1, 21)), *(record(i, "again") for i in range(15, 25)), state(1))
    load(body, load_method="upsert")
    assert ("15", False, False) in turns  # the third batch: 15..24, of which 15..20 are the second's
    assert table(pg) == [(i, "again" if i >= 15 else f"n{i}") for i in range(1, 25)]


def test_a_key_written_two_ways_gives_way_to_the_batch_before_and_merges(
    pg: Any, load: Any, paths: list[str], turns: list[tuple[str, bool, bool]]
) -> None:
    # 0 and -0 are one bigint under two texts. The third batch waits before its COPY, so the fourth,
    # ahead, holds the key 0 first: the third waits on it while it waits for the third to commit. The
    # fourth sees that, rolls back and loads again in its turn: its COPY meets the third's 0 and it
    # merges from staging.
    third = [record(0, "slow"), *(record(i) for i in range(21, 30))]
    fourth = b'{"type":"RECORD","stream":"items","record":{"id":-0,"name":"minus zero"}}\n' + data(
        *(record(i) for i in range(31, 40))
    )
    body = data(schema(), *(record(i) for i in range(1, 21)), *third) + fourth + data(state(1))
    run = load(body, load_method="upsert")
    assert "loaded ahead waited on the batch before" in run.stderr
    assert paths == ["direct", "direct", "direct", "staging"]
    assert ("-0", True, True) in turns
    assert table(pg)[:2] == [(0, "minus zero"), (1, "n1")]


@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_a_failing_batch_takes_back_the_batch_loaded_ahead_of_it(
    pg: Any, run_target: Callable[..., Any], turns: list[tuple[str, bool, bool]], method: str
) -> None:
    # The third batch waits, then fails on the server (a bigint out of range); the fourth has COPYed
    # meanwhile and waits for its turn: it rolls back, and no state past the second batch is echoed.
    body = data(
        schema(),
        *(record(i) for i in range(1, 11)),
        state(10),
        *(record(i) for i in range(11, 21)),
        state(20),
        *(record(i) for i in range(21, 30)),
        record(2**63, "slow"),
        state(30),
        *(record(i) for i in range(31, 41)),
        state(40),
    )
    run = run_target(PostgresTarget, pg.config(batch_size_rows=10, load_method=method), body)
    assert run.rc == 65, run.stderr
    assert "out of range" in run.stderr
    assert ("31", True, True) in turns
    assert run.states[-1] == {"bookmarks": {"items": {"at": 20}}}
    assert table(pg) == [(i, f"n{i}") for i in range(1, 21)]


# -- ACTIVATE_VERSION on a table this run created ------------------------------------------------------
@pytest.mark.parametrize(
    ("versions", "skipped"),
    [((7, 7), True), ((8, 9), True), ((5, 7), False), ((None, 7), False), ((7, None), False)],
    ids=["all-at-it", "all-newer", "an-older-batch", "unversioned-first", "unversioned-last"],
)
@pytest.mark.parametrize("hard", [False, True], ids=["soft", "hard"])
def test_activate_version_on_a_table_of_this_run_retires_exactly_the_older_rows(
    pg: Any, load: Any, versions: tuple[int | None, int | None], skipped: bool, hard: bool
) -> None:
    # The statement is left out only when every row this run loaded has the version or a newer one;
    # the rows that stay live are the same either way.
    def batch(first: int, version: int | None) -> list[dict[str, Any]]:
        return [
            {**record(i), **({"version": version} if version is not None else {})} for i in range(first, first + 10)
        ]

    activate = {"type": "ACTIVATE_VERSION", "stream": "items", "version": 7}
    body = data(schema(), *batch(1, versions[0]), *batch(11, versions[1]), activate, state(20))
    run = load(body, load_method="upsert", hard_delete=hard)
    assert ("holds no older rows" in run.stderr) == skipped, run.stderr
    kept = [
        i
        for v, first in zip(versions, (1, 11), strict=True)
        if v is not None and v >= 7
        for i in range(first, first + 10)
    ]
    assert pg.rows("SELECT id FROM items WHERE _sdc_deleted_at IS NULL ORDER BY id") == [(i,) for i in kept]
    assert pg.scalar("SELECT count(*) FROM items") == (len(kept) if hard else 20)


@pytest.mark.parametrize("method", ["append-only", "upsert"])
def test_three_lanes_load_ahead_and_keep_whole_batches_in_order(
    pg: Any, load: Any, turns: list[tuple[str, bool, bool]], method: str
) -> None:
    # Batch 5 repeats keys of batch 4, which may still be loading: it waits its turn; the rest go ahead.
    body = data(
        schema(),
        *(record(i) for i in range(1, 41)),
        *(record(i, "again") for i in range(35, 45)),
        *(record(i) for i in range(45, 81)),
        state(80),
    )
    run = load(body, load_method=method, load_connections=3)
    assert run.states == [{"bookmarks": {"items": {"at": 80}}}]
    assert any(ahead for _, ahead, _ in turns)
    if method == "upsert":
        assert ("35", False, False) in turns
        assert table(pg) == [(i, "again" if 35 <= i < 45 else f"n{i}") for i in range(1, 81)]
    else:
        assert pg.scalar("SELECT count(*) FROM items") == 86
