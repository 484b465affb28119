"""`dpone partitions run`: claim ranges, load each through the ordinary pipeline, move the bookmark last.

A claim is a lease: while a range loads, a thread renews it; a worker that dies stops renewing,
and once the lease expires another worker claims the range again. The destination decides what
really happened: a range commits with its ledger row in one transaction, so a retried range whose
first load did commit (the worker died just after) is found there and is not loaded twice, and
two workers that both believe they hold a range cannot both commit it.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import socket
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

from dpone.state import partitions as p
from dpone.state.manifest import Manifest
from dpone.state.merge import merge_state
from dpone.state.store import LockedError, StateStore, new_lock
from dpone_protocol.catalog import Catalog
from dpone_protocol.config import Redactor
from dpone_protocol.errors import ConfigError, DponeError, ErrorKind, TransientError
from dpone_protocol.key_ranges import KeyRange
from dpone_protocol.ops import RANGE_LEDGER
from dpone_runner import ops_client
from dpone_runner.observe import Observer
from dpone_runner.partitions.plan import plugins
from dpone_runner.partitions.task import RangeTask
from dpone_runner.project import Pipeline, Project

log = logging.getLogger("dpone.partitions")


# PostgreSQL's DETAIL of a refused row quotes the row: the manifest (and what orchestrators show of
# it) keeps the reason, not the data.
_ROW_DETAIL = re.compile(r"\s*DETAIL:\s*Failing row contains \(.*\)\.?")


def stored_error(exc: DponeError, redactor: Redactor) -> str:
    return _ROW_DETAIL.sub("", redactor(" ".join(str(exc).split())))


def default_worker() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:4]}"


@dataclass(frozen=True, slots=True)
class WorkerOptions:
    worker: str
    lease_seconds: float = 120.0
    max_attempts: int = 3
    progress: bool = False
    retry_backoff: float = p.RETRY_BACKOFF_SECONDS


@dataclass(frozen=True, slots=True)
class RangeOutcome:
    key: str
    status: str  # success | failed | skipped | running (held by another live worker)
    rows_extracted: int
    rows_loaded: int
    attempts: int
    already_loaded: bool = False  # found committed in the destination: nothing was loaded now
    error: str | None = None
    error_kind: str | None = None

    @classmethod
    def of(cls, r: p.PartitionRange, already_loaded: bool = False) -> RangeOutcome:
        return cls(
            r.key, r.status, r.rows_extracted, r.rows_loaded, r.attempts, already_loaded, r.last_error, r.error_kind
        )


class RangeFailed(DponeError):
    """A range did not load; its kind is the failure's (the manifest keeps the error too)."""

    def __init__(self, outcome: RangeOutcome, kind: ErrorKind) -> None:
        self.kind = kind
        self.outcome = outcome
        super().__init__(f"range {outcome.key}: {outcome.error}")


class _Lease:
    """Renews the worker's lease on a range until stopped."""

    def __init__(self, manifest: Manifest, index: int, worker: str, seconds: float) -> None:
        self.manifest, self.index, self.worker, self.seconds = manifest, index, worker, seconds
        self.lost = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._renew, name=f"lease-{index}", daemon=True)

    def __enter__(self) -> _Lease:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _renew(self) -> None:
        while not self._stop.wait(self.seconds / 3):
            try:
                if not self.manifest.renew(self.index, self.worker, self.seconds):
                    # Another worker took it over: whichever load commits first wins in the ledger.
                    log.warning("range %s: the lease was lost to another worker", p.range_key(self.index))
                    self.lost = True
                    return
            except DponeError as exc:  # the store is down a moment: the next renewal may make it
                log.warning("range %s: renewing the lease failed: %s", p.range_key(self.index), exc)


class Worker:
    def __init__(
        self,
        project: Project,
        store: StateStore,
        pipeline: Pipeline,
        stream: str,
        options: WorkerOptions,
        redactor: Redactor,
        observers: Sequence[Observer] = (),
    ) -> None:
        self.project, self.store, self.pipeline, self.stream = project, store, pipeline, stream
        self.options, self.redactor, self.observers = options, redactor, observers
        self.tap, self.target = plugins(project, pipeline)
        self.manifest = Manifest(store, pipeline.id, stream)
        self._catalog: Catalog | None = None

    def catalog(self) -> Catalog:
        """The tap's selected catalog, discovered once for every range this worker loads."""
        if self._catalog is None:
            self._catalog = ops_client.selected_catalog(self.project, self.tap, self.redactor)
        return self._catalog

    def _rules(self, only: int | None = None) -> p.ClaimRules:
        return p.ClaimRules(self.options.worker, self.options.lease_seconds, self.options.max_attempts, only)

    # -- what the CLI and orchestrators call -------------------------------------------------------
    def run_all(self) -> list[RangeOutcome]:
        """Claim and load ranges until none is left to claim; then move the bookmark if all are in."""
        outcomes = []
        self.manifest.require()
        self.catalog()  # before any claim: a source that refuses the login holds no range
        while True:
            plan, claimed = self.manifest.claim(self._rules())
            if claimed is None:
                wait = p.next_retry_in(plan, dt.datetime.now(dt.UTC), self._rules())
                if wait is None:
                    break
                log.info("a range that failed transiently is tried again in %.0f s", wait)
                time.sleep(min(wait, p.RETRY_BACKOFF_MAX_SECONDS) + 0.5)
                continue
            outcome = self._load(plan, claimed)
            outcomes.append(outcome)
            if outcome.status == p.FAILED and outcome.error_kind == ErrorKind.CONFIG.value:
                break  # a setting to fix: every other range would fail the same way
        self.finalize()
        return outcomes

    def run_one(self, index: int) -> RangeOutcome:
        """Load the range `index` (an orchestrator's partition): claimed whatever its status but success."""
        self.catalog()  # before the claim: a source that refuses the login holds no range
        plan, claimed = self.manifest.claim(self._rules(index))
        if claimed is None:
            if not 0 <= index < len(plan.ranges):
                raise ConfigError(f"no range {p.range_key(index)} in the plan (it has {len(plan.ranges)})")
            r = plan.ranges[index]
            if r.status == p.RUNNING:
                raise TransientError(
                    f"range {r.key} is being loaded by worker {r.worker} (lease until {r.lease_expires_at}); try later"
                )
            outcome = RangeOutcome.of(r, already_loaded=r.status == p.SUCCESS)
        else:
            outcome = self._load(plan, claimed)
        self.finalize()
        return outcome

    def finalize(self) -> bool:
        """Once every range is in, move the stream's bookmark (under the pipeline's lock); idempotent."""
        plan = self.manifest.require()
        if not plan.unfinished():
            return True
        if not plan.complete():
            return False
        lock = new_lock(self.pipeline.id, f"partitions-{uuid.uuid4().hex[:8]}")
        try:
            self.store.acquire_lock(lock)
        except LockedError as exc:
            log.warning("every range is loaded, but the bookmark waits: %s; run `dpone partitions run` again", exc)
            return False
        try:
            if plan.bookmark is not None:
                stored = self.store.get(self.pipeline.id)
                value = merge_state(stored.value if stored else None, {"bookmarks": {self.stream: plan.bookmark}})
                self.store.put(self.pipeline.id, value)
            self.manifest.mark_finalized()
        finally:
            self.store.release_lock(self.pipeline.id, lock.owner)
        log.info("stream %s: every range is loaded; its bookmark moved to %s", self.stream, plan.bookmark)
        return True

    # -- one range ---------------------------------------------------------------------------------
    def _ledger(self, token: str) -> int | None:
        """The records of the committed range, or None; a failure to ask counts as not committed."""
        try:
            answer = ops_client.ask(self.project, self.target, {"op": RANGE_LEDGER, "token": token}, self.redactor)
        except DponeError as exc:
            log.warning("could not ask %s whether the range committed: %s", self.target.name, exc)
            return None
        return int(answer["rows"]) if answer.get("committed") else None

    def _load(self, plan: p.PartitionPlan, r: p.PartitionRange) -> RangeOutcome:
        from dpone_runner.pipeline import Run, RunOptions  # noqa: PLC0415 - pipeline imports this package

        token = plan.token(r.index)
        worker = self.options.worker
        if r.attempts > 1:
            committed = self._ledger(token)
            if committed is not None:
                log.info("range %s: committed by an earlier attempt (%d records); not loaded again", r.key, committed)
                result = p.RangeResult(p.SUCCESS, committed, committed)
                done = self.manifest.finish(r.index, worker, result)
                return RangeOutcome.of(done.ranges[r.index], already_loaded=True)
        key_range = KeyRange(plan.column, plan.column_type, r.low, r.high, nulls=r.holds_nulls())
        log.info("range %s (%s): attempt %d by %s", r.key, key_range.describe(), r.attempts, worker)
        task = RangeTask(self.stream, key_range, token, r.key)
        options = RunOptions(
            self.pipeline.id,
            progress=self.options.progress,
            observers=self.observers,
            key_range=task,
            catalog=self.catalog(),
        )
        run = Run(self.project, self.store, self.tap, [self.target], options, self.redactor)
        stop: DponeError | None = None
        with _Lease(self.manifest, r.index, worker, self.options.lease_seconds):
            already = False
            try:
                report = run.execute()
            except DponeError as exc:
                committed = self._ledger(token)  # it may have committed before something else failed
                if committed is None:
                    error = stored_error(exc, self.redactor)
                    # Ctrl-C or SIGTERM stops the worker; the range is worth another go by another one.
                    kind = ErrorKind.TRANSIENT.value if run.interrupted is not None else exc.kind.value
                    stop = exc if run.interrupted is not None else None
                    result = p.RangeResult(
                        p.FAILED, error=error, error_kind=kind, retry_backoff=self.options.retry_backoff
                    )
                else:
                    result = p.RangeResult(p.SUCCESS, committed, committed)
                    already = True
            else:
                counts = next((s for s in report.streams if s.stream == self.stream), None)
                extracted = counts.rows_in if counts else 0
                loaded = counts.rows_out if counts else 0
                files = tuple(p.Artifact(f["uri"], f.get("rows"), f.get("sha256")) for f in report.batch_files)
                result = p.RangeResult(p.SUCCESS, extracted, loaded, artifacts=files)
        done = self.manifest.finish(r.index, worker, result)
        outcome = RangeOutcome.of(done.ranges[r.index], already_loaded=already)
        if result.status == p.FAILED:
            log.error("range %s failed: %s", r.key, result.error)
        else:
            log.info("range %s loaded: %d rows", r.key, result.rows_loaded)
        if stop is not None:
            raise stop
        return outcome
