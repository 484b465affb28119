"""`dpone partitions status`: the manifest as a table (or JSON)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from dpone.state import partitions as p


def _bound(value: str | None, width: int = 24) -> str:
    text = "-inf" if value is None else value
    return text if len(text) <= width else text[: width - 3] + "..."


def render_text(plans: list[p.PartitionPlan], now: dt.datetime) -> str:
    if not plans:
        return "no partition plans\n"
    out: list[str] = []
    for plan in plans:
        counts = plan.counts()
        lost = sum(1 for r in plan.ranges if p.lease_lost(r, now))
        if lost:
            counts = {**counts, p.RUNNING: counts[p.RUNNING] - lost, "lost": lost}
        done = "bookmark moved " + plan.finalized_at if plan.finalized_at else "bookmark not moved yet"
        summary = ", ".join(f"{n} {s}" for s, n in counts.items() if n)
        out.append(
            f"{plan.pipeline_id} / {plan.stream}: {len(plan.ranges)} ranges by {plan.column} ({plan.column_type}, "
            f"{plan.method}), plan {plan.plan_id}: {summary}; {done}"
        )
        out.append(f"  bounds: {plan.bounds}")
        out.append(
            f"  {'range':<6} {'status':<8} {'from':>24} {'to':>24} {'rows':>12} {'tries':>5}  worker / last error"
        )
        for r in plan.ranges:
            status = r.status
            if p.lease_lost(r, now):
                status = "lost"  # running, but its worker stopped renewing the lease
            high = "+inf" if r.high is None else _bound(r.high)
            rows = (
                f"{r.rows_loaded:,}" if r.status == p.SUCCESS else f"~{r.estimated_rows:,}" if r.estimated_rows else ""
            )
            detail = r.worker or ""
            if r.last_error and r.status != p.SUCCESS:
                detail = f"{detail}: {r.last_error}" if detail else r.last_error
            out.append(f"  {r.key:<6} {status:<8} {_bound(r.low):>24} {high:>24} {rows:>12} {r.attempts:>5}  {detail}")
        for note in plan.notes:
            out.append(f"  note: {note}")
    return "\n".join(out) + "\n"


def render_json(plans: list[p.PartitionPlan]) -> list[dict[str, Any]]:
    return [{**plan.to_dict(), "counts": plan.counts(), "complete": plan.complete()} for plan in plans]
