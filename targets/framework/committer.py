"""Background loading of batches on one or more lanes (connections), committed in order.

While batch N loads, the main thread encodes batch N+1. With two lanes, batch N+1 is also
copied into its staging table on the second connection while batch N's final statement (the
merge into the table) runs on the first: a batch's work calls `turn()` before its final step,
which waits on the future of the batch before it. So batches commit in submission order, and
at most `lanes` batches are in flight (a thread each): memory stays bounded.

An error in a batch is raised in the main thread at the next submit or wait. The batches after
a failed one never reach their final step (their `turn()` raises `Cancelled`), so nothing after
the failed batch is committed.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable
from collections.abc import Set as AbstractSet
from concurrent.futures import FIRST_COMPLETED, Future
from concurrent.futures import wait as _wait_for
from dataclasses import dataclass
from typing import Protocol


class Turn(Protocol):
    def __call__(self, timeout: float | None = None) -> bool:
        """Block until the previous batch has committed (True), or `timeout` seconds have passed
        (False). Raises Cancelled when it failed."""


def no_wait(timeout: float | None = None) -> bool:
    """The turn of a batch loaded in the foreground: nothing before it is in flight."""
    return True


# work(lane, turn): the lane to load on, and its turn (see Turn).
Work = Callable[[int, Turn], None]


class Cancelled(Exception):
    """An earlier batch failed: this one must not commit."""


def _start(run: Callable[[], None], name: str) -> Future[None]:
    """Run `run` on a thread of its own and return its future. A daemon thread: a process that
    exits with a batch in flight does not wait for it (the server rolls the batch back, and the
    state that would have covered it was never echoed). A pool's workers are joined at exit
    instead, which would keep a failing target alive for as long as a database call blocks."""
    future: Future[None] = Future()
    future.set_running_or_notify_cancel()

    def body() -> None:
        try:
            run()
        except BaseException as exc:  # the future carries it; the committer decides
            future.set_exception(exc)
        else:
            future.set_result(None)

    threading.Thread(target=body, name=name, daemon=True).start()
    return future


class _Done:
    """A batch's end, seen as an event (is_set, wait) over its future."""

    __slots__ = ("_future",)

    def __init__(self, future: Future[None]) -> None:
        self._future = future

    def is_set(self) -> bool:
        return self._future.done()

    def wait(self, timeout: float | None = None) -> bool:
        return not _wait_for((self._future,), timeout).not_done


@dataclass(slots=True)
class _InFlight:
    seq: int
    lane: int
    future: Future[None]

    @property
    def done(self) -> _Done:
        return _Done(self.future)

    @property
    def ok(self) -> bool:
        """Committed: finished without an error, and so had every batch before it (see turn)."""
        future = self.future
        return future.done() and not future.cancelled() and future.exception() is None


class Committer:
    def __init__(self, name: str = "committer", lanes: int = 1) -> None:
        self._name = name
        self.lanes = max(1, lanes)
        self._flight: deque[_InFlight] = deque()  # oldest first
        # Filled by the failing batch itself before its future completes, so whoever sees the
        # future done also sees the error.
        self._errors: dict[int, BaseException] = {}
        self.submitted = 0  # batches handed over so far
        self.committed = 0  # every batch up to this one (by submission count) has committed
        # What the last lanes-1 batches submitted write: (table, key texts, or None when unknown or
        # when the batch may change the table's schema). Only they may still be in flight when the
        # next batch starts (submit waits for a free lane; so should the caller of claim).
        self._claims: deque[tuple[str, AbstractSet[bytes] | None]] = deque(maxlen=self.lanes - 1)

    @property
    def busy(self) -> bool:
        """True while a batch is in flight, or after a failure not yet raised."""
        self._reap()
        return bool(self._flight or self._errors)

    def _reap(self) -> None:
        flight = self._flight
        while flight and flight[0].future.done():
            batch = flight.popleft()
            if batch.ok:
                self.committed = batch.seq

    def _raise_first_error(self) -> None:
        if self._errors:
            first = min(self._errors)
            error = self._errors[first]
            self._errors.clear()
            raise error

    def has_committed(self, mark: int) -> bool:
        """True once the first `mark` batches submitted have all committed."""
        self._reap()
        return self.committed >= mark

    def claim(self, table: str, keys: AbstractSet[bytes] | None) -> bool:
        """Note what the next batch writes (see _claims) and tell whether it is clear of every batch
        that may still be in flight: none of them writes `table` with unknown keys or a schema change,
        or any of `keys`. Such a batch may load before they commit (its commit still takes its turn)."""
        claims = self._claims
        clear = keys is not None and all(k is not None and keys.isdisjoint(k) for t, k in claims if t == table)
        claims.append((table, keys))
        return clear and self.lanes > 1

    def wait(self) -> None:
        """Block until every batch in flight has finished; raise the first error, if any."""
        _wait_for([batch.future for batch in self._flight])
        self._claims.clear()  # nothing is in flight
        self._reap()
        self._raise_first_error()

    def make_room(self) -> None:
        """Wait for a free lane (raising the first error, if any): what is in flight then is what the
        next batch will load beside."""
        self._reap()
        self._raise_first_error()
        if len(self._flight) >= self.lanes:
            # The lane this batch needs is still loading an older one.
            _wait_for((self._flight[0].future,), return_when=FIRST_COMPLETED)
            self._reap()
            self._raise_first_error()

    def submit(self, work: Work) -> None:
        self.make_room()
        self.submitted += 1
        seq = self.submitted
        busy = {b.lane for b in self._flight}
        lane = next(i for i in range(self.lanes) if i not in busy)
        before = self._flight[-1].future if self._flight else None
        errors = self._errors

        def turn(timeout: float | None = None) -> bool:
            if before is not None:
                if _wait_for((before,), timeout).not_done:
                    return False
                if before.cancelled() or before.exception() is not None:
                    raise Cancelled
            return True

        def run() -> None:
            try:
                work(lane, turn)
            except Cancelled:
                raise
            except BaseException as exc:  # handed to the main thread, which decides
                errors[seq] = exc
                raise

        self._flight.append(_InFlight(seq, lane, _start(run, f"{self._name}-{lane}")))

    def close(self) -> None:
        """Let the batches in flight finish. Errors not yet raised stay for wait()."""
        _wait_for([batch.future for batch in self._flight])
        self._reap()
