"""Target's state holding, in process: a STATE goes out only once every batch before it committed.

The sinks here load nothing: a batch handed over (write_batch) is "in flight" until the test
commits it, as a background committer would. The input is a generator, so a test can commit
batches, fail one, or look at what was echoed between two lines.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import orjson
import pytest

from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.sink import Sink
from dpone.targets.framework.target import Target
from dpone_protocol.errors import DataError, InputCutError
from dpone_protocol.messages import SchemaMessage


class Destination:
    """What the fake sinks share: batches in flight, which of them committed, and what to fail."""

    def __init__(self) -> None:
        self.sinks: dict[str, FakeSink] = {}
        self.events: list[str] = []
        self.commit_on_settle = True  # settle() waits for batches in flight: they commit

    def commit(self, stream: str, upto: int | None = None) -> None:
        self.sinks[stream].commit(upto)

    def fail(self, stream: str, batch: int) -> None:
        self.sinks[stream].failing = batch


class FakeSink(Sink):
    def __init__(self, config: Mapping[str, Any], schema: SchemaMessage, policy: BatchPolicy, dest: Destination):
        self.dest = dest
        self.handed: list[list[dict[str, Any]]] = []  # batches handed over, in order
        self.committed = 0  # batches 1..committed are committed
        self.failing = 0  # this batch fails in flight; its error surfaces at the next hand-over or settle
        self.failed: DataError | None = None
        self.finished = False
        self.shadow = False  # a full refresh not swapped in yet: pending_commit()
        super().__init__(config, schema, policy)
        dest.sinks[self.stream] = self

    def write_batch(self, records: list[dict[str, Any]]) -> None:
        self._raise_failure()
        self.handed.append([dict(r) for r in records])
        self.dest.events.append(f"{self.stream}: batch {len(self.handed)} handed over")

    def commit(self, upto: int | None = None) -> None:
        upto = len(self.handed) if upto is None else upto
        for n in range(self.committed + 1, upto + 1):
            if n == self.failing:
                self.failed = DataError(f"stream {self.stream!r}: batch {n} failed")
                self.dest.events.append(f"{self.stream}: batch {n} failed")
                return
            self.committed = n
            self.dest.events.append(f"{self.stream}: batch {n} committed")

    def _raise_failure(self) -> None:
        if self.failed is not None:
            error, self.failed = self.failed, None
            self.failing = -1  # raised once; nothing after it commits
            raise error

    def commit_mark(self) -> int:
        return len(self.handed)

    def is_committed(self, mark: int) -> bool:
        return not self.pending_commit() and self.committed >= mark

    def pending_commit(self) -> bool:
        return self.shadow

    def settle(self) -> None:
        if self.dest.commit_on_settle and self.failing != -1:
            self.commit()
        self._raise_failure()

    def finish(self) -> None:
        self.finished = True
        self.shadow = False
        self.dest.events.append(f"{self.stream}: finished")


class FakeTarget(Target):
    name = "target-fake"

    def __init__(self, config: Mapping[str, Any], dest: Destination) -> None:
        super().__init__(config)
        self.dest = dest
        self.closed = False

    def make_sink(self, schema: SchemaMessage) -> Sink:
        return FakeSink(self.config, schema, self.policy, self.dest)

    def close(self) -> None:
        self.closed = True


def schema(stream: str) -> bytes:
    msg = {
        "type": "SCHEMA",
        "stream": stream,
        "schema": {"properties": {"id": {"type": "integer"}}},
        "key_properties": [],
    }
    return orjson.dumps(msg) + b"\n"


def record(stream: str, n: int) -> bytes:
    return orjson.dumps({"type": "RECORD", "stream": stream, "record": {"id": n}}) + b"\n"


def state(n: int) -> bytes:
    return orjson.dumps({"type": "STATE", "value": {"n": n}}) + b"\n"


Step = bytes | Callable[[], None]


def feed(steps: list[Step]) -> Iterator[bytes]:
    """The input: lines, with actions run when the target asks for the line after them."""
    for step in steps:
        if isinstance(step, bytes):
            yield step
        else:
            step()


class Run:
    def __init__(self, batch_rows: int = 2, **config: Any) -> None:
        self.dest = Destination()
        self.out = io.BytesIO()
        config = {"add_record_metadata": False, "batch_size_rows": batch_rows, **config}
        self.target = FakeTarget(config, self.dest)

    def echoed(self) -> list[int]:
        return [orjson.loads(line)["n"] for line in self.out.getvalue().splitlines()]

    def expect_echoed(self, expected: list[int]) -> Callable[[], None]:
        def check() -> None:
            assert self.echoed() == expected, self.dest.events

        return check

    def commit(self, stream: str, upto: int | None = None) -> Callable[[], None]:
        return lambda: self.dest.commit(stream, upto)

    def __call__(self, steps: list[Step]) -> list[int]:
        self.target.run(feed(steps), self.out)
        return self.echoed()


# -- one stream ------------------------------------------------------------------------------------------


def test_a_state_waits_for_the_batch_in_flight_before_it() -> None:
    run = Run()
    echoed = run(
        [
            schema("a"),
            record("a", 1),
            record("a", 2),  # full: batch 1 handed over, in flight
            state(1),
            run.expect_echoed([]),  # batch 1 has not committed
            run.commit("a"),
            state(2),  # no batch between the two: the newer replaces the older
            run.expect_echoed([2]),
        ]
    )
    assert echoed == [2]


def test_a_state_with_records_still_in_memory_waits_for_their_drain_and_commit() -> None:
    run = Run(batch_rows=3)
    echoed = run(
        [
            schema("a"),
            record("a", 1),
            state(1),  # record 1 is only in memory
            run.expect_echoed([]),
            record("a", 2),
            record("a", 3),  # full: batch 1 (records 1-3) handed over; state 1 waits for its commit
            run.expect_echoed([]),
            run.commit("a"),
            record("a", 4),
            state(2),  # covers record 4, only in memory: waits; state 1 goes out now
            run.expect_echoed([1]),
        ]
    )
    assert echoed == [1, 2]  # the end of the input commits record 4
    assert run.dest.sinks["a"].handed == [[{"id": 1}, {"id": 2}, {"id": 3}], [{"id": 4}]]


def test_a_state_goes_out_between_states_once_its_batch_commits_in_the_background() -> None:
    # No STATE or full batch after the commit: the loop looks again every 4096 records.
    run = Run(batch_rows=10_000)
    steps: list[Step] = [schema("a"), schema("b"), record("b", 0)]
    steps += [run.commit("b"), state(1)]  # b's record is only in memory: state 1 waits for a drain
    steps += [record("a", n) for n in range(1, 10_001)]  # a fills: every sink drains, state 1 waits for commits
    steps += [run.expect_echoed([]), run.commit("a"), run.commit("b")]
    steps += [record("a", n) for n in range(10_001, 14_200)]
    steps += [run.expect_echoed([1])]
    assert run(steps) == [1]


def test_each_batch_covers_only_the_states_before_it() -> None:
    run = Run()
    echoed = run(
        [
            schema("a"),
            record("a", 1),
            record("a", 2),  # batch 1
            state(1),
            record("a", 3),
            record("a", 4),  # batch 2
            state(2),
            run.commit("a", 1),
            state(3),  # a no-op state: nothing handed over since state 2, so it replaces it
            run.expect_echoed([1]),  # batch 2 is still in flight: neither state 2 nor 3
            run.commit("a", 2),
            record("a", 5),
            record("a", 6),  # batch 3: a full batch drains and echoes what committed
            run.expect_echoed([1, 3]),
        ]
    )
    assert echoed == [1, 3]  # state 3 was the newest; nothing followed batch 3


# -- several streams --------------------------------------------------------------------------------------


def test_a_state_waits_for_every_stream_it_covers() -> None:
    run = Run()
    echoed = run(
        [
            schema("a"),
            schema("b"),
            record("a", 1),
            record("b", 1),
            record("a", 2),  # a is full: both streams drain (the state covers them all)
            state(1),
            run.commit("a"),
            state(2),
            run.expect_echoed([]),  # b's batch is still in flight
            run.commit("b"),
            state(3),
            run.expect_echoed([3]),
        ]
    )
    assert echoed == [3]


def test_a_stream_that_started_after_a_state_does_not_hold_it() -> None:
    run = Run()
    echoed = run(
        [
            schema("a"),
            record("a", 1),
            record("a", 2),
            state(1),  # covers a's batch 1 only
            schema("b"),
            record("b", 1),
            record("b", 2),  # b's batch 1, in flight
            run.commit("a"),
            state(2),  # state 2 covers b's batch 1: it waits; state 1 does not
            run.expect_echoed([1]),
        ]
    )
    assert echoed == [1, 2]


# -- states without records, and the end of the input ------------------------------------------------------


def test_states_with_nothing_in_flight_are_echoed_at_once() -> None:
    run = Run()
    echoed = run(
        [
            state(1),  # before any SCHEMA: it covers nothing
            run.expect_echoed([1]),
            schema("a"),
            state(2),
            run.expect_echoed([1, 2]),
            state(3),
            run.expect_echoed([1, 2, 3]),
        ]
    )
    assert echoed == [1, 2, 3]


def test_the_end_of_the_input_commits_what_is_in_memory_then_echoes_the_last_state() -> None:
    run = Run(batch_rows=100)
    echoed = run([schema("a"), schema("b"), record("a", 1), record("b", 1), state(1), record("a", 2), state(2)])
    assert echoed == [2]
    sinks = run.dest.sinks
    assert sinks["a"].handed == [[{"id": 1}, {"id": 2}]] and sinks["b"].handed == [[{"id": 1}]]
    assert sinks["a"].finished and sinks["b"].finished and run.target.closed
    # The state went out after the commits and the finish, never before.
    assert run.dest.events[-2:] == ["a: finished", "b: finished"]


def test_pending_commit_holds_every_state_until_finish() -> None:
    # The documented hook (a full refresh into a shadow table): nothing is visible before the swap.
    run = Run()

    def open_shadow() -> None:
        run.dest.sinks["a"].shadow = True

    echoed = run(
        [schema("a"), open_shadow, record("a", 1), record("a", 2), state(1), run.commit("a"), state(2)]
        + [run.expect_echoed([]), record("a", 3), state(3)]
    )
    assert echoed == [3]  # finish() swapped it in; then the newest state went out


# -- failures ---------------------------------------------------------------------------------------------


def test_a_failed_batch_echoes_the_newest_state_before_it_and_never_a_later_one() -> None:
    run = Run()
    run.dest.commit_on_settle = False
    steps: list[Step] = [
        schema("a"),
        record("a", 1),
        record("a", 2),  # batch 1
        state(1),
        record("a", 3),
        record("a", 4),  # batch 2
        state(2),
        lambda: run.dest.fail("a", 2),
        run.commit("a"),  # batch 1 commits, batch 2 fails in flight
        record("a", 5),
        record("a", 6),  # handing over batch 3 raises batch 2's error
        state(3),
    ]
    with pytest.raises(DataError, match="batch 2 failed"):
        run(steps)
    assert run.echoed() == [1]
    assert run.dest.sinks["a"].handed == [[{"id": 1}, {"id": 2}], [{"id": 3}, {"id": 4}]]
    assert not run.dest.sinks["a"].finished and run.target.closed


def test_a_failure_while_another_stream_is_in_flight_echoes_what_committed() -> None:
    run = Run()
    steps: list[Step] = [
        schema("a"),
        schema("b"),
        record("a", 1),
        record("a", 2),  # a's batch 1 (b has nothing)
        state(1),
        record("b", 1),
        record("b", 2),  # b's batch 1
        state(2),
        run.commit("a"),
        b'{"type":"RECORD","stream":"nope","record":{}}\n',  # a data error stops the run
    ]
    with pytest.raises(Exception, match="before any SCHEMA"):
        run(steps)
    # b's batch never committed (these sinks' close() waits for nothing): only state 1 went out.
    assert run.echoed() == [1]


def test_records_in_memory_at_a_failure_hold_their_state_back() -> None:
    run = Run(batch_rows=100)
    steps: list[Step] = [
        schema("a"),
        record("a", 1),
        state(1),  # record 1 is only in memory when the run fails
        b"{not json}\n",
    ]
    with pytest.raises(Exception, match="malformed JSON"):
        run(steps)
    assert run.echoed() == []
    assert run.dest.sinks["a"].handed == []


# -- a cut input -------------------------------------------------------------------------------------------


def test_a_cut_input_commits_the_whole_records_and_echoes_the_state_covering_them() -> None:
    run = Run(batch_rows=100)
    steps: list[Step] = [
        schema("a"),
        record("a", 1),
        state(1),
        record("a", 2),
        b'{"type":"RECORD","stream":"a","rec',  # the writer died inside a line
    ]
    with pytest.raises(InputCutError):
        run(steps)
    sink = run.dest.sinks["a"]
    assert sink.handed == [[{"id": 1}, {"id": 2}]] and sink.committed == 1
    assert run.echoed() == [1]  # never a state after the cut, and no finish (no full refresh swapped in)
    assert not sink.finished


def test_a_cut_input_holds_a_state_whose_batch_did_not_commit() -> None:
    run = Run(batch_rows=100)
    run.dest.commit_on_settle = False
    steps: list[Step] = [schema("a"), record("a", 1), state(1), b'{"type":"STA']
    with pytest.raises(InputCutError):
        run(steps)
    assert run.dest.sinks["a"].handed == [[{"id": 1}]]
    assert run.echoed() == []
