"""Background loading of batches on one or more lanes (connections), committed in order.

While batch N loads, the main thread encodes batch N+1. With two lanes, batch N+1 is also
copied into its staging table on the second connection while batch N's final statement (the
merge into the table) runs on the first: a batch's work calls `turn()` before its final step,
which waits until the batch before it has committed. So batches commit in submission order,
and at most `lanes` batches are in flight: memory stays bounded.

An error in a batch is raised in the main thread at the next submit or wait. The batches after
a failed one never reach their final step (their `turn()` raises `Cancelled`), so nothing after
the failed batch is committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field

# work(lane, turn): the lane to load on; turn() blocks until the previous batch has committed.
Work = Callable[[int, Callable[[], None]], None]


class Cancelled(Exception):
    """An earlier batch failed: this one must not commit."""


@dataclass(slots=True)
class _InFlight:
    seq: int
    lane: int
    thread: threading.Thread | None = None
    done: threading.Event = field(default_factory=threading.Event)
    ok: bool = False


class Committer:
    def __init__(self, name: str = "committer", lanes: int = 1) -> None:
        self._name = name
        self.lanes = max(1, lanes)
        self._flight: list[_InFlight] = []  # oldest first
        self._errors: dict[int, BaseException] = {}
        self.submitted = 0  # batches handed over so far
        self.committed = 0  # every batch up to this one (by submission count) has committed

    @property
    def busy(self) -> bool:
        """True while a batch is in flight, or after a failure not yet raised."""
        self._reap()
        return bool(self._flight or self._errors)

    def _reap(self) -> None:
        while self._flight and self._flight[0].done.is_set():
            batch = self._flight.pop(0)
            if batch.thread is not None:
                batch.thread.join()
            if batch.ok:  # ok means every batch before it committed too (see turn)
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

    def wait(self) -> None:
        """Block until every batch in flight has finished; raise the first error, if any."""
        for batch in list(self._flight):
            batch.done.wait()
        self._reap()
        self._raise_first_error()

    def submit(self, work: Work) -> None:
        self._reap()
        self._raise_first_error()
        if len(self._flight) >= self.lanes:
            # The lane this batch needs is still loading an older one.
            self._flight[0].done.wait()
            self._reap()
            self._raise_first_error()
        self.submitted += 1
        busy = {b.lane for b in self._flight}
        lane = next(i for i in range(self.lanes) if i not in busy)
        before = self._flight[-1] if self._flight else None
        batch = _InFlight(self.submitted, lane)

        def turn() -> None:
            if before is not None:
                before.done.wait()
                if not before.ok:
                    raise Cancelled

        def run() -> None:
            try:
                work(lane, turn)
                batch.ok = True
            except Cancelled:
                pass
            except BaseException as exc:  # handed to the main thread, which decides
                self._errors[batch.seq] = exc
            finally:
                batch.done.set()

        batch.thread = threading.Thread(target=run, name=f"{self._name}-{lane}", daemon=True)
        self._flight.append(batch)
        batch.thread.start()
