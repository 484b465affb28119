"""Work an observer starts when a run starts and needs only when it ends, done meanwhile on a thread.

Importing the exporters' libraries takes a few tenths of a second (openlineage the most); done
on a thread while the pump moves records, it costs the run's wall time next to nothing (the
runner waits on pipes most of the time). `finished` then waits for it, within a bound.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

from dpone_protocol.errors import TransientError

T = TypeVar("T")
# Held while a library is imported: two threads importing requests and urllib3 at once can see
# each other's modules half made (urllib3 then warns that PySocks is missing, on stderr).
IMPORTING = threading.Lock()


class Background(Generic[T]):
    """`fn` run once on a daemon thread (a hung exporter never keeps the process alive)."""

    def __init__(self, name: str, fn: Callable[[], T]) -> None:
        self.name = name
        self._fn = fn
        self._thread: threading.Thread | None = None
        self._value: T | None = None
        self._error: BaseException | None = None
        self._done = threading.Event()

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"observe-{self.name}", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        try:
            self._value = self._fn()
        except BaseException as exc:  # handed to whoever waits for the result
            self._error = exc
        finally:
            self._done.set()

    def result(self, timeout: float) -> T:
        """The value (started now if `start` was not called), or its error; TransientError past `timeout`."""
        self.start()
        if not self._done.wait(timeout):
            raise TransientError(f"{self.name}: not done after {timeout:g}s")
        if self._error is not None:
            raise self._error
        return self._value  # type: ignore[return-value]  # set when no error
