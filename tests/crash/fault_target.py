#!/usr/bin/env python3
"""target-duckdb that SIGKILLs itself at a chosen point: the crash tests' misbehaving target.

    python tests/crash/fault_target.py --config FILE

It is dpone's real target-duckdb (`DuckDBTarget` run by `target_cli.run`); only a sink
subclass and a stdout wrapper are added, so everything up to the fault is the real code path.
Settings on top of target-duckdb's:

* ``fault_point``: ``none`` (default), ``mid_batch``, ``after_commit_before_echo`` or
  ``while_echoing``.
* ``fault_after_records`` (``mid_batch``): die when the Nth record arrives, before it is added
  to the batch, so the batch in memory is lost.
* ``fault_after_commits`` (the other two): after the Kth batch commit (a finalize transaction),
  ``after_commit_before_echo`` dies at once, before the state that commit covers goes out;
  ``while_echoing`` dies at the first STATE echoed after it, having written and flushed only
  the first half of the line.
* ``echo_log``: a file each echoed STATE value is appended to (one JSON line, written just
  before the echo itself; a torn echo is not logged), so a test can tell which states a
  target echoed.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Mapping
from typing import IO, Any, ClassVar

import orjson

from dpone.targets.duckdb.target import DuckDBTarget
from dpone.targets.framework.batching import BatchPolicy
from dpone.targets.framework.loader import Loader, SchemaQueue
from dpone.targets.framework.loader_sink import LoaderSink
from dpone.targets.framework.sink import Sink
from dpone.targets.framework.target_cli import run
from dpone_protocol.messages import SchemaMessage
from dpone_protocol.settings import Setting

NONE = "none"
MID_BATCH = "mid_batch"
AFTER_COMMIT_BEFORE_ECHO = "after_commit_before_echo"
WHILE_ECHOING = "while_echoing"
FAULT_POINTS = (MID_BATCH, AFTER_COMMIT_BEFORE_ECHO, WHILE_ECHOING)


def die() -> None:
    """SIGKILL: no finally blocks, no flush, no atexit; exactly what a crash looks like."""
    os.kill(os.getpid(), signal.SIGKILL)


class Fault:
    """Counts records and commits across every stream of the target."""

    def __init__(self, config: Mapping[str, Any]) -> None:
        self.point = str(config.get("fault_point") or NONE)
        self.after_records = int(config.get("fault_after_records") or 0)
        self.after_commits = int(config.get("fault_after_commits") or 0)
        self.records = 0
        self.commits = 0

    def on_record(self) -> None:
        self.records += 1
        if self.point == MID_BATCH and self.records == self.after_records:
            die()

    def on_commit(self) -> None:
        self.commits += 1
        if self.point == AFTER_COMMIT_BEFORE_ECHO and self.commits == self.after_commits:
            die()

    def dies_while_echoing(self) -> bool:
        return self.point == WHILE_ECHOING and self.commits >= self.after_commits > 0


class FaultSink(LoaderSink):
    def __init__(
        self,
        config: Mapping[str, Any],
        schema: SchemaMessage,
        policy: BatchPolicy,
        loader: Loader,
        queue: SchemaQueue,
        *,
        fault: Fault,
    ) -> None:
        self.fault = fault
        super().__init__(config, schema, policy, loader, queue)

    def add_record(
        self, record: dict[str, Any], version: int | None, time_extracted: str | None, size: int, line: int
    ) -> bool:
        self.fault.on_record()
        return super().add_record(record, version, time_extracted, size, line)

    def write_batch(self, records: list[dict[str, Any]]) -> None:
        super().write_batch(records)  # returns once the finalize transaction has committed
        self.fault.on_commit()


class FaultStdout:
    """The target's stdout: logs each echoed STATE, and tears the one the fault point names."""

    def __init__(self, out: IO[bytes], fault: Fault, echo_log: str | None) -> None:
        self._out = out
        self._fault = fault
        self._echo_log = echo_log

    def write(self, data: bytes) -> int:
        if data.startswith(b"{"):  # a target prints nothing but the state values it echoes
            if self._fault.dies_while_echoing():
                self._out.write(data[: len(data) // 2])
                self._out.flush()
                die()
            if self._echo_log:
                value = orjson.loads(data)
                with open(self._echo_log, "ab") as fh:
                    fh.write(orjson.dumps(value) + b"\n")
        return self._out.write(data)

    def flush(self) -> None:
        self._out.flush()


class FaultTarget(DuckDBTarget):
    name = "target-duckdb-fault"
    description = "target-duckdb that kills itself with SIGKILL at a configured point (crash tests)."
    settings: ClassVar[tuple[Setting, ...]] = (
        *DuckDBTarget.settings,
        Setting("fault_point", "string", "Where to die.", default=NONE, choices=(NONE, *FAULT_POINTS)),
        Setting("fault_after_records", "integer", "mid_batch: die when this record (1-based) arrives."),
        Setting("fault_after_commits", "integer", "Die after this batch commit (1-based)."),
        Setting("echo_log", "string", "Append each echoed STATE value to this file."),
    )

    def __init__(self, config: Mapping[str, Any]) -> None:
        super().__init__(config)
        self.fault = Fault(config)

    def make_sink(self, schema: SchemaMessage) -> Sink:
        return FaultSink(self.config, schema, self.policy, self._shared_loader(), self.schema_queue, fault=self.fault)

    def run(self, stdin: IO[bytes], stdout: IO[bytes]) -> None:
        echo_log = self.config.get("echo_log")
        super().run(stdin, FaultStdout(stdout, self.fault, str(echo_log) if echo_log else None))  # type: ignore[arg-type]


def main(argv: list[str] | None = None) -> int:
    return run(FaultTarget, argv)


if __name__ == "__main__":
    sys.exit(main())
