"""The background committer: lanes load side by side, final steps commit in submission order."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from collections.abc import Callable

import pytest

from dpone.targets.framework.committer import Committer


class Log:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.events: list[str] = []

    def add(self, event: str) -> None:
        with self.lock:
            self.events.append(event)


def batch(log: Log, name: str, *, load_s: float = 0.0, final_s: float = 0.0, fail: str = "") -> Callable:
    def work(lane: int, turn: Callable[[], None]) -> None:
        log.add(f"{name} load on {lane}")
        time.sleep(load_s)
        if fail == "load":
            raise RuntimeError(f"{name} failed loading")
        turn()
        time.sleep(final_s)
        if fail == "final":
            raise RuntimeError(f"{name} failed committing")
        log.add(f"{name} commit")

    return work


def commits(log: Log) -> list[str]:
    return [e.split()[0] for e in log.events if e.endswith("commit")]


def test_final_steps_commit_in_submission_order_even_when_a_later_load_is_faster() -> None:
    log, committer = Log(), Committer(lanes=2)
    committer.submit(batch(log, "a", load_s=0.2))
    committer.submit(batch(log, "b"))  # loads at once on the other lane, then waits its turn
    committer.wait()
    assert commits(log) == ["a", "b"]
    assert log.events.index("b load on 1") < log.events.index("a commit")  # the loads overlapped
    assert committer.submitted == committer.committed == 2


def test_at_most_lanes_batches_are_in_flight() -> None:
    log, committer = Log(), Committer(lanes=2)
    running = []
    for name in "abcde":
        committer.submit(batch(log, name, load_s=0.02, final_s=0.02))
        running.append(sum(1 for b in committer._flight if not b.done.is_set()))
    committer.wait()
    assert max(running) <= 2
    assert commits(log) == list("abcde")


def test_one_lane_loads_one_batch_at_a_time() -> None:
    log, committer = Log(), Committer(lanes=1)
    for name in "abc":
        committer.submit(batch(log, name, load_s=0.01))
    committer.wait()
    assert log.events == ["a load on 0", "a commit", "b load on 0", "b commit", "c load on 0", "c commit"]


@pytest.mark.parametrize("fail", ["load", "final"])
def test_a_failed_batch_cancels_the_ones_after_it_and_is_raised(fail: str) -> None:
    log, committer = Log(), Committer(lanes=2)
    committer.submit(batch(log, "a"))
    committer.wait()
    committer.submit(batch(log, "b", load_s=0.1, fail=fail))
    committer.submit(batch(log, "c"))  # loaded, but must never commit after b failed
    with pytest.raises(RuntimeError, match="b failed"):
        committer.wait()
    assert commits(log) == ["a"]
    assert committer.committed == 1 and committer.has_committed(1) and not committer.has_committed(2)
    assert not committer.busy  # the error was raised once; the committer is usable again


def test_an_error_is_raised_at_the_next_submit() -> None:
    log, committer = Log(), Committer(lanes=2)
    committer.submit(batch(log, "a", fail="final"))
    committer._flight[0].done.wait()
    with pytest.raises(RuntimeError, match="a failed"):
        committer.submit(batch(log, "b"))
    assert commits(log) == []


def test_the_first_error_in_submission_order_wins() -> None:
    log, committer = Log(), Committer(lanes=2)
    committer.submit(batch(log, "a", load_s=0.15, fail="load"))
    committer.submit(batch(log, "b", fail="load"))  # fails first in time, second in order
    with pytest.raises(RuntimeError, match="a failed"):
        committer.wait()


def test_marks_tell_which_batches_have_committed() -> None:
    log, committer = Log(), Committer(lanes=2)
    gate = threading.Event()

    def held(lane: int, turn: Callable[[], None]) -> None:
        turn()
        gate.wait(5)

    committer.submit(batch(log, "a"))
    committer.wait()
    committer.submit(held)
    mark = committer.submitted
    assert committer.has_committed(1) and not committer.has_committed(mark)
    assert committer.busy
    gate.set()
    committer.wait()
    assert committer.has_committed(mark) and not committer.busy


# -- the pool under the committer: what the executor makes possible to get wrong --------------------------


def _lane_threads(committer: Committer) -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith(committer._name)]


def test_a_chain_waiting_on_a_failed_batch_is_cancelled_whole() -> None:
    log, committer = Log(), Committer("chain", lanes=3)
    gate = threading.Event()

    def fails_late(lane: int, turn: Callable[[], None]) -> None:
        turn()
        gate.wait(5)
        raise RuntimeError("a failed committing")

    committer.submit(fails_late)
    committer.submit(batch(log, "b"))  # waits on a; cancelled when a fails
    committer.submit(batch(log, "c"))  # waits on b, which was cancelled: cancelled too
    gate.set()
    with pytest.raises(RuntimeError, match="a failed"):
        committer.wait()
    assert commits(log) == []
    assert sorted(log.events) == ["b load on 1", "c load on 2"]  # loaded, never committed
    assert committer.committed == 0 and not committer.busy


def test_a_keyboard_interrupt_in_a_batch_reaches_the_main_thread_and_cancels_the_next() -> None:
    log, committer = Log(), Committer(lanes=2)

    def interrupted(lane: int, turn: Callable[[], None]) -> None:
        time.sleep(0.05)
        raise KeyboardInterrupt

    committer.submit(interrupted)
    committer.submit(batch(log, "b"))
    with pytest.raises(KeyboardInterrupt):
        committer.wait()
    assert commits(log) == [] and committer.committed == 0


def test_no_more_lane_threads_than_lanes_and_all_of_them_daemons() -> None:
    log, committer = Log(), Committer("pool-size", lanes=2)
    seen: list[threading.Thread] = []
    for name in "abcdef":
        committer.submit(batch(log, name, load_s=0.005))
        threads = _lane_threads(committer)
        assert len(threads) <= 2
        seen += threads
    committer.wait()
    assert seen and all(t.daemon for t in seen)
    assert commits(log) == list("abcdef")


def test_close_lets_the_batches_in_flight_commit_and_their_threads_end() -> None:
    log, committer = Log(), Committer("closing", lanes=2)
    committer.submit(batch(log, "a", load_s=0.1))
    committer.submit(batch(log, "b"))
    threads = _lane_threads(committer)
    committer.close()
    assert commits(log) == ["a", "b"] and committer.has_committed(2)
    for thread in threads:
        thread.join(5)
        assert not thread.is_alive()


def test_close_keeps_an_error_not_yet_raised_for_wait() -> None:
    log, committer = Log(), Committer(lanes=1)
    committer.submit(batch(log, "a", fail="final"))
    committer.close()
    assert committer.busy
    with pytest.raises(RuntimeError, match="a failed"):
        committer.wait()


_EXIT_WITH_A_BATCH_IN_FLIGHT = """
import sys, threading
from dpone.targets.framework.committer import Committer

committer = Committer(lanes=2)
committer.submit(lambda lane, turn: threading.Event().wait())  # a database call that never returns
committer.submit(lambda lane, turn: turn())  # and one waiting its turn behind it
if sys.argv[1] == "raise":
    raise RuntimeError("the main thread failed")
sys.exit(3)
"""


@pytest.mark.parametrize(("how", "code"), [("raise", 1), ("exit", 3)])
def test_a_process_exits_at_once_with_a_batch_in_flight(how: str, code: int) -> None:
    # ThreadPoolExecutor joins its workers at exit: a stuck batch must not keep a failing target alive.
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _EXIT_WITH_A_BATCH_IN_FLIGHT, how], capture_output=True, timeout=30, check=False
    )
    assert done.returncode == code, done.stderr
    assert time.monotonic() - started < 15


# -- claims: which batch may load while the ones before it are in flight ------------------------------
def test_a_batch_is_clear_when_its_keys_meet_none_of_the_batches_that_may_be_in_flight() -> None:
    committer = Committer(lanes=2)
    assert committer.claim("t", {b"1", b"2"})  # nothing before it
    assert committer.claim("t", {b"3"})
    assert not committer.claim("t", {b"3", b"4"})  # meets the batch before
    assert committer.claim("t", {b"1"})  # only the last lanes-1 batches may still be in flight
    assert committer.claim("other", {b"1"})  # another table's keys never meet


def test_unknown_keys_or_a_schema_change_hold_back_the_next_batch_of_that_table_only() -> None:
    committer = Committer(lanes=2)
    assert not committer.claim("t", None)  # unknown itself: never ahead
    assert not committer.claim("t", {b"1"})  # the batch before may write any key, or alter the table
    assert committer.claim("t", frozenset())  # an append: meets nothing
    committer.claim("t", None)
    assert committer.claim("u", {b"1"})


def test_more_lanes_look_back_further_and_one_lane_never_lets_a_batch_ahead() -> None:
    three = Committer(lanes=3)
    three.claim("t", {b"1"})
    three.claim("t", {b"2"})
    assert not three.claim("t", {b"1"})  # two batches may be in flight before it
    one = Committer(lanes=1)
    assert not one.claim("t", {b"1"})
    assert not one.claim("t", frozenset())


def test_nothing_is_in_flight_after_wait_so_nothing_holds_a_batch_back() -> None:
    committer = Committer(lanes=2)
    committer.claim("t", None)
    committer.submit(lambda lane, turn: None)
    committer.wait()
    assert committer.claim("t", {b"1"})
