"""One background thread that commits batches in submission order.

While it loads batch N (COPY, then the set-based statement: mostly waiting on the database),
the main thread decodes batch N+1. At most one batch is in flight, so memory stays bounded at
two batches. An error in the thread is raised in the main thread at the next submit or wait;
until then nothing after the failed batch counts as committed.
"""

from __future__ import annotations

import threading
from collections.abc import Callable


class Committer:
    def __init__(self, name: str = "committer") -> None:
        self._name = name
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None

    @property
    def busy(self) -> bool:
        """True while a batch is in flight, or after a failure not yet raised."""
        return self._error is not None or (self._thread is not None and self._thread.is_alive())

    def wait(self) -> None:
        """Block until the batch in flight is committed; raise its error if it failed."""
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        if self._error is not None:
            error, self._error = self._error, None
            raise error

    def submit(self, work: Callable[[], None]) -> None:
        self.wait()

        def run() -> None:
            try:
                work()
            except BaseException as exc:  # handed to the main thread, which decides
                self._error = exc

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
