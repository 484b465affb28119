"""One stream's partition manifest in a state store, as typed operations (state/partitions.py)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from dpone.state import partitions as p
from dpone.state.store import StateStore
from dpone_protocol.errors import ConfigError

R = TypeVar("R")


class NoPlan(ConfigError):
    def __init__(self, pipeline_id: str, stream: str, planned: list[str] | None = None) -> None:
        others = f" (streams with a plan: {', '.join(planned)})" if planned else ""
        super().__init__(
            f"pipeline {pipeline_id!r} has no partition plan for stream {stream!r}{others}: make one with "
            f"`dpone partitions plan {pipeline_id} --stream {stream} --by COLUMN --ranges N`"
        )


class Manifest:
    def __init__(self, store: StateStore, pipeline_id: str, stream: str) -> None:
        self.store = store
        self.pipeline_id = pipeline_id
        self.stream = stream

    def _change(self, work: Callable[[p.PartitionPlan, dt.datetime], R]) -> R:
        """`work` on the stored plan, written back atomically."""

        def change(doc: dict[str, Any] | None, now: dt.datetime) -> tuple[dict[str, Any] | None, R]:
            if doc is None:
                raise NoPlan(self.pipeline_id, self.stream)
            plan = p.PartitionPlan.from_dict(doc)
            result = work(plan, now)
            return plan.to_dict(), result

        return self.store.change_partitions(self.pipeline_id, self.stream, change)

    def get(self) -> p.PartitionPlan | None:
        for doc in self.store.partition_plans(self.pipeline_id):
            if doc.get("stream") == self.stream:
                return p.PartitionPlan.from_dict(doc)
        return None

    def require(self) -> p.PartitionPlan:
        plan = self.get()
        if plan is None:
            planned = [str(doc.get("stream")) for doc in self.store.partition_plans(self.pipeline_id)]
            raise NoPlan(self.pipeline_id, self.stream, planned)
        return plan

    def save(self, plan: p.PartitionPlan, *, replace: bool) -> None:
        """Store a new plan; an unfinished one is replaced only when asked, and never while a range runs."""

        def change(doc: dict[str, Any] | None, now: dt.datetime) -> tuple[dict[str, Any] | None, None]:
            if doc is not None:
                old = p.PartitionPlan.from_dict(doc)
                live = [r.key for r in old.ranges if r.status == p.RUNNING and not p.lease_lost(r, now)]
                if live:
                    raise ConfigError(
                        f"stream {self.stream!r}: ranges {', '.join(live)} of the current plan are being loaded; "
                        "wait for them (see `dpone partitions status`) before planning again"
                    )
                if old.unfinished() and not replace:
                    counts = old.counts()
                    raise ConfigError(
                        f"stream {self.stream!r} has an unfinished partition plan ({counts[p.SUCCESS]} of "
                        f"{len(old.ranges)} ranges loaded): finish it with `dpone partitions run`, or plan again "
                        "with --replace (ranges already loaded are then loaded again)"
                    )
            return plan.to_dict(), None

        self.store.change_partitions(self.pipeline_id, self.stream, change)

    def claim(self, rules: p.ClaimRules) -> tuple[p.PartitionPlan, p.PartitionRange | None]:
        def work(plan: p.PartitionPlan, now: dt.datetime) -> tuple[p.PartitionPlan, p.PartitionRange | None]:
            return plan, p.claim(plan, now, rules)

        return self._change(work)

    def renew(self, index: int, worker: str, lease_seconds: float) -> bool:
        return self._change(lambda plan, now: p.renew(plan, index, worker, now, lease_seconds))

    def finish(self, index: int, worker: str, result: p.RangeResult) -> p.PartitionPlan:
        def work(plan: p.PartitionPlan, now: dt.datetime) -> p.PartitionPlan:
            p.finish(plan, index, worker, now, result)
            return plan

        return self._change(work)

    def reset(self, indexes: Iterable[int] | None, statuses: Iterable[str]) -> list[int]:
        chosen = list(indexes) if indexes is not None else None
        return self._change(lambda plan, now: p.reset(plan, self._checked(plan, chosen), statuses, now))

    def skip(self, indexes: Iterable[int]) -> list[int]:
        chosen = list(indexes)
        return self._change(lambda plan, now: p.skip(plan, self._checked(plan, chosen) or []))

    def mark_finalized(self) -> None:
        def work(plan: p.PartitionPlan, now: dt.datetime) -> None:
            plan.finalized_at = plan.finalized_at or p.iso(now)

        self._change(work)

    def drop(self) -> p.PartitionPlan:
        def change(doc: dict[str, Any] | None, now: dt.datetime) -> tuple[dict[str, Any] | None, p.PartitionPlan]:
            if doc is None:
                raise NoPlan(self.pipeline_id, self.stream)
            plan = p.PartitionPlan.from_dict(doc)
            live = [r.key for r in plan.ranges if r.status == p.RUNNING and not p.lease_lost(r, now)]
            if live:
                raise ConfigError(
                    f"ranges {', '.join(live)} are being loaded: drop the plan again once they end (or once "
                    "their lease expires)"
                )
            return None, plan

        return self.store.change_partitions(self.pipeline_id, self.stream, change)

    @staticmethod
    def _checked(plan: p.PartitionPlan, indexes: list[int] | None) -> list[int] | None:
        if indexes is not None:
            unknown = [i for i in indexes if not 0 <= i < len(plan.ranges)]
            if unknown:
                last = p.range_key(len(plan.ranges) - 1)
                raise ConfigError(f"no range {p.range_key(unknown[0])} in the plan (it has r0000 to {last})")
        return indexes


def unfinished_plans(store: StateStore, pipeline_id: str) -> list[p.PartitionPlan]:
    return [plan for doc in store.partition_plans(pipeline_id) if (plan := p.PartitionPlan.from_dict(doc)).unfinished()]
