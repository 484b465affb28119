"""Which state may be saved: the latest tap STATE that every target has echoed.

The pump numbers each STATE it forwards; each target's echoes are matched back to those
numbers. A state is committed once the slowest target has echoed it (or a later one).
"""

from __future__ import annotations

import collections
import logging
import threading
from collections.abc import Callable
from typing import Any

from dpone.state.merge import canonical

log = logging.getLogger("dpone.state")


class StateLedger:
    def __init__(
        self,
        targets: int,
        commit: Callable[[dict[str, Any]], None],
        delete_files: Callable[[list[str]], None] | None = None,
    ) -> None:
        self._commit = commit
        # BATCH files whose deletion waits for the state after them to be committed by every target
        # (cleanup: delete_on_success with several targets): (seq of that state, URLs).
        self._delete_files = delete_files
        self._files: collections.deque[tuple[int, list[str]]] = collections.deque()
        self._lock = threading.Lock()
        self._offered: collections.deque[tuple[int, bytes, dict[str, Any]]] = collections.deque()
        self._seq = 0
        self._acked = [0] * targets
        self._committed_seq = 0
        self.offered_count = 0
        self.committed: dict[str, Any] | None = None
        self.saved_count = 0

    def offer(self, value: dict[str, Any]) -> None:
        """The pump forwarded this tap STATE to every target."""
        with self._lock:
            self._seq += 1
            self.offered_count += 1
            self._offered.append((self._seq, canonical(value), value))

    def hold_files(self, uris: list[str]) -> None:
        """BATCH files the pump forwarded: deleted once the next state is committed everywhere."""
        if self._delete_files is not None:
            with self._lock:
                self._files.append((self._seq + 1, uris))

    def echo(self, target: int, value: dict[str, Any]) -> None:
        """Target number `target` echoed a STATE: everything before it is committed there."""
        key = canonical(value)
        with self._lock:
            seq = next((s for s, k, _ in self._offered if s > self._acked[target] and k == key), None)
            if seq is None:
                if len(self._acked) == 1:
                    # A target that rewrites states: with one target its word is all we have.
                    log.debug("target echoed a state the tap did not send; saving it as is")
                    self._save(value)
                else:
                    log.warning("target %d echoed a state the tap never sent; ignored", target + 1)
                return
            self._acked[target] = seq
            floor = min(self._acked)
            if floor <= self._committed_seq:
                return
            value_at_floor = next(v for s, _, v in self._offered if s == floor)
            self._committed_seq = floor
            while self._offered and self._offered[0][0] < floor:
                self._offered.popleft()
            self._save(value_at_floor)
            done: list[str] = []
            while self._files and self._files[0][0] <= floor:
                done += self._files.popleft()[1]
        if done and self._delete_files is not None:
            self._delete_files(done)

    def _save(self, value: dict[str, Any]) -> None:
        self._commit(value)
        self.committed = value
        self.saved_count += 1
