"""target-postgres COPYs a batch straight into a table this run created (a first load, an overwrite's
shadow) and through staging everywhere else: the cross product of load method, table (new or there
before the run) and the batches that must leave the direct path (a key an earlier batch loaded, a key
twice in one batch, a hard delete, a schema change between batches). Each case ends with the table
equal to what staging alone would have made, and the load times filled."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import orjson
import pytest

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
    assert paths == ["direct", "staging", "staging"]
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
