"""The partition manifest of one stream: its key ranges, who holds each, and how each ended.

A plan is one document per (pipeline, stream), kept by the state store and changed only through
`StateStore.change_partitions`, which reads, changes and writes it atomically (a row lock in
PostgreSQL, a write transaction in SQLite, a file lock for JSON). Every operation below is a pure
function of the document and the store's clock, so the rules (what may be claimed, when a lease
is lost) are written once for every backend.

Bounds: a range holds the keys `low <= key < high`; the first range has no low bound and also
holds the rows whose key is NULL, the last has no high bound. Bounds are the key's text form,
compared by the source in the column's own type and ordering.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import asdict, dataclass, field
from typing import Any

PENDING = "pending"
RUNNING = "running"
SUCCESS = "success"
FAILED = "failed"
SKIPPED = "skipped"
STATUSES = (PENDING, RUNNING, SUCCESS, FAILED, SKIPPED)
BOUNDS_POLICY = "low <= key < high; NULL keys in the first range"
# Past this, every claim rewrites a large document: plan fewer, bigger ranges.
MAX_RANGES = 10_000


def range_key(index: int) -> str:
    """The name a range goes by (an orchestrator's partition key)."""
    return f"r{index:04d}"


def index_of(key: str) -> int:
    text = key[1:] if key[:1] == "r" else key
    if not text.isdigit():
        raise ValueError(f"not a range key: {key!r} (expected r0000, r0001, ...)")
    return int(text)


@dataclass(slots=True)
class Artifact:
    uri: str
    rows: int | None = None
    sha256: str | None = None


@dataclass(slots=True)
class PartitionRange:
    index: int
    low: str | None  # inclusive; None: unbounded (and NULL keys belong here)
    high: str | None  # exclusive; None: unbounded
    estimated_rows: int | None = None
    status: str = PENDING
    attempts: int = 0
    worker: str | None = None
    lease_expires_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    rows_extracted: int = 0
    rows_loaded: int = 0
    last_error: str | None = None
    error_kind: str | None = None
    artifacts: list[Artifact] = field(default_factory=list)
    # Bumped when a loaded range is reset: its next load has a new ledger token, so it loads again.
    generation: int = 1
    not_before: str | None = None  # a transient failure is retried from then on (a backoff)

    @property
    def key(self) -> str:
        return range_key(self.index)

    def holds_nulls(self) -> bool:
        return self.index == 0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionRange:
        artifacts = [Artifact(**a) for a in data.get("artifacts") or []]
        return cls(**{**data, "artifacts": artifacts})


@dataclass(slots=True)
class PartitionPlan:
    pipeline_id: str
    stream: str
    plan_id: str
    column: str
    column_type: str  # the source's type name: bounds are cast to it
    method: str  # how the bounds were found: statistics, scan or even
    created_at: str
    ranges: list[PartitionRange]
    bookmark: Any = None  # the stream's bookmark once every range succeeded (None: leave it)
    replication_method: str | None = None
    target: str | None = None
    finalized_at: str | None = None
    bounds: str = BOUNDS_POLICY
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "ranges": [r.to_dict() for r in self.ranges]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PartitionPlan:
        ranges = [PartitionRange.from_dict(r) for r in data.get("ranges") or []]
        return cls(**{**data, "ranges": ranges})

    def token(self, index: int) -> str:
        """The range's name in the destination's ledger: unique to this plan (and to each reset of a loaded
        range), so a new plan or a reset loads again."""
        generation = self.ranges[index].generation
        suffix = f"/g{generation}" if generation > 1 else ""
        return f"{self.pipeline_id}/{self.stream}/{self.plan_id}/{range_key(index)}{suffix}"

    def counts(self) -> dict[str, int]:
        found = dict.fromkeys(STATUSES, 0)
        for r in self.ranges:
            found[r.status] += 1
        return found

    def complete(self) -> bool:
        return all(r.status == SUCCESS for r in self.ranges)

    def unfinished(self) -> bool:
        return self.finalized_at is None


def parse_time(text: str) -> dt.datetime:
    return dt.datetime.fromisoformat(text)


def iso(moment: dt.datetime) -> str:
    return moment.astimezone(dt.UTC).isoformat(timespec="milliseconds")


def lease_lost(r: PartitionRange, now: dt.datetime) -> bool:
    """A running range whose worker stopped renewing its lease: that worker is taken for dead."""
    return r.status == RUNNING and (r.lease_expires_at is None or parse_time(r.lease_expires_at) <= now)


@dataclass(frozen=True, slots=True)
class ClaimRules:
    worker: str
    lease_seconds: float
    max_attempts: int
    only: int | None = None  # claim this range (an orchestrator's partition), whatever its status


def _priority(r: PartitionRange, now: dt.datetime, rules: ClaimRules) -> int | None:
    """Which ranges a worker takes first: never-tried ones, then those of dead workers, then transient
    failures (they just failed: the others give them time). None: not claimable."""
    if rules.only is not None:
        # Asked for by name (an orchestrator retrying its partition): anything not done, not skipped
        # and not held by a live worker. A success is never loaded twice.
        return 0 if r.index == rules.only and (r.status in (PENDING, FAILED) or lease_lost(r, now)) else None
    if r.status == PENDING:
        return 0
    if lease_lost(r, now) and r.attempts < rules.max_attempts:
        return 1
    # A transient failure (a dropped connection, a deadlock) is worth another go by itself;
    # anything else waits for `dpone partitions reset` after someone looked at it.
    if r.status == FAILED and r.error_kind == "transient" and r.attempts < rules.max_attempts and due(r, now):
        return 2
    return None


def due(r: PartitionRange, now: dt.datetime) -> bool:
    return r.not_before is None or parse_time(r.not_before) <= now


# A transient failure waits before its next attempt: a restarting database or a failover takes seconds
# to minutes, and attempts in a row would all fail inside it.
RETRY_BACKOFF_SECONDS = 15.0
RETRY_BACKOFF_MAX_SECONDS = 300.0


def backoff(attempts: int, base: float = RETRY_BACKOFF_SECONDS) -> float:
    return float(min(RETRY_BACKOFF_MAX_SECONDS, base * 2 ** max(0, attempts - 1)))


def next_retry_in(plan: PartitionPlan, now: dt.datetime, rules: ClaimRules) -> float | None:
    """Seconds until a transient failure of the plan may be tried again (None: none will be)."""
    waits = [
        (parse_time(r.not_before) - now).total_seconds() if r.not_before else 0.0
        for r in plan.ranges
        if r.status == FAILED and r.error_kind == "transient" and r.attempts < rules.max_attempts
    ]
    return max(0.0, min(waits)) if waits else None


def claim(plan: PartitionPlan, now: dt.datetime, rules: ClaimRules) -> PartitionRange | None:
    """Take the best claimable range for `rules.worker`; ranges whose worker died too often fail."""
    for r in plan.ranges:
        if lease_lost(r, now) and r.attempts >= rules.max_attempts and rules.only != r.index:
            r.status, r.worker, r.lease_expires_at = FAILED, None, None
            r.error_kind = "fatal"
            r.last_error = f"its worker stopped renewing the lease {r.attempts} times (killed, or out of memory?)"
            r.finished_at = iso(now)
    ranked = [(rank, r.index) for r in plan.ranges if (rank := _priority(r, now, rules)) is not None]
    if not ranked:
        return None
    r = plan.ranges[min(ranked)[1]]
    if lease_lost(r, now):
        r.last_error = f"worker {r.worker} lost its lease (it stopped or died mid-range)"
    r.status = RUNNING
    r.worker = rules.worker
    r.not_before = None
    r.attempts += 1
    r.started_at = iso(now)
    r.finished_at = None
    r.lease_expires_at = iso(now + dt.timedelta(seconds=rules.lease_seconds))
    return r


def held_by(plan: PartitionPlan, index: int, worker: str) -> PartitionRange | None:
    r = plan.ranges[index] if 0 <= index < len(plan.ranges) else None
    return r if r is not None and r.status == RUNNING and r.worker == worker else None


def renew(plan: PartitionPlan, index: int, worker: str, now: dt.datetime, lease_seconds: float) -> bool:
    """Extend the worker's lease; False when the range is no longer its own (the lease was lost)."""
    r = held_by(plan, index, worker)
    if r is None:
        return False
    r.lease_expires_at = iso(now + dt.timedelta(seconds=lease_seconds))
    return True


@dataclass(frozen=True, slots=True)
class RangeResult:
    status: str  # success or failed
    rows_extracted: int = 0
    rows_loaded: int = 0
    error: str | None = None
    error_kind: str | None = None
    artifacts: tuple[Artifact, ...] = ()
    retry_backoff: float = RETRY_BACKOFF_SECONDS  # a transient failure's first wait, doubled per attempt


def finish(plan: PartitionPlan, index: int, worker: str, now: dt.datetime, result: RangeResult) -> bool:
    """Record how the worker's range ended. A success counts even when the lease was lost meanwhile:
    the destination's ledger proved that this load, and no other, committed the range."""
    r = plan.ranges[index]
    if r.status == SUCCESS:
        return False
    if held_by(plan, index, worker) is None and result.status != SUCCESS:
        return False  # another worker holds it now: its outcome is the one that counts
    r.status = result.status
    r.worker = worker
    r.lease_expires_at = None
    r.finished_at = iso(now)
    r.rows_extracted = result.rows_extracted
    r.rows_loaded = result.rows_loaded
    # A success keeps the error of the attempt before it: the manifest shows why it took two.
    r.last_error = result.error or (r.last_error if result.status == SUCCESS else None)
    r.error_kind = result.error_kind
    r.artifacts = list(result.artifacts)
    if result.status == FAILED and result.error_kind == "transient":
        r.not_before = iso(now + dt.timedelta(seconds=backoff(r.attempts, result.retry_backoff)))
    return True


def reset(plan: PartitionPlan, indexes: Iterable[int] | None, statuses: Iterable[str], now: dt.datetime) -> list[int]:
    """Back to pending: the given ranges (or every range in `statuses`); a live lease is never broken."""
    wanted = set(indexes) if indexes is not None else None
    chosen = set(statuses)
    changed = []
    for r in plan.ranges:
        if wanted is not None and r.index not in wanted:
            continue
        if wanted is None and r.status not in chosen:
            continue
        if r.status == RUNNING and not lease_lost(r, now):
            continue
        if r.status == SUCCESS:
            r.generation += 1  # loaded already: a new token, or the ledger would skip it
        r.status, r.worker, r.lease_expires_at, r.not_before = PENDING, None, None, None
        r.attempts = 0
        changed.append(r.index)
    if changed:
        plan.finalized_at = None if not plan.complete() else plan.finalized_at
    return changed


def skip(plan: PartitionPlan, indexes: Iterable[int]) -> list[int]:
    """Mark ranges as not to be loaded by this plan: the stream's bookmark then never moves."""
    changed = []
    for index in indexes:
        r = plan.ranges[index]
        if r.status in (PENDING, FAILED):
            r.status = SKIPPED
            changed.append(index)
    return changed
