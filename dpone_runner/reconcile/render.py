"""The reconcile report, as text for people or JSON for scripts."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import orjson

from dpone_runner.reconcile.compare import RangeDiff, StreamResult

SHOWN_KEYS = 20  # keys listed in the text report; the JSON report has them all
SHOWN_RANGES = 20  # differing ranges listed in the text report; the JSON report has them all


def _value(value: Any) -> str:
    return orjson.dumps(value).decode() if isinstance(value, str) else str(value)


def key_range(lo: Any, hi: Any) -> str:
    """A range as people read it: lo inclusive, hi exclusive, open ends infinite."""
    left = "(-inf" if lo is None else f"[{_value(lo)}"
    right = "+inf)" if hi is None else f"{_value(hi)})"
    return f"{left}, {right}"


def _rows(n: int) -> str:
    return f"{n} row" if n == 1 else f"{n} rows"


def _difference(diff: RangeDiff) -> str:
    where = key_range(diff.lo, diff.hi)
    if diff.source_rows == diff.destination_rows:
        return f"{where}: {_rows(diff.source_rows)} each, checksums differ (a changed value)"
    return f"{where}: source {_rows(diff.source_rows)}, destination {_rows(diff.destination_rows)}"


def _keys(keys: Sequence[list[Any]]) -> str:
    shown = ", ".join(orjson.dumps(k[0] if len(k) == 1 else k).decode() for k in keys[:SHOWN_KEYS])
    more = f" and {len(keys) - SHOWN_KEYS} more" if len(keys) > SHOWN_KEYS else ""
    return f"{shown}{more}"


def render_stream(result: StreamResult) -> str:
    lines = [f"{result.stream} -> {result.target}: {result.status}"]
    if result.unavailable:
        return f"{lines[0]} ({result.unavailable})\n"
    lines.append(
        f"  rows: source {result.source_rows} ({result.source_table}), "
        f"destination {result.destination_rows} ({result.destination_table or 'no table'})"
    )
    if result.keys:
        checked = "with checksums" if result.checksum else "counts only (add --checksum to compare values)"
        lines.append(f"  ranges on {result.keys[0]}: {result.ranges}, {checked}")
    if any(result.null_keys):
        lines.append(f"  rows with a NULL key: source {result.null_keys[0]}, destination {result.null_keys[1]}")
    if result.differences:
        lines.append("  differing ranges:")
        lines += [f"    {_difference(d)}" for d in result.differences[:SHOWN_RANGES]]
        if len(result.differences) > SHOWN_RANGES:
            lines.append(f"    ... and {len(result.differences) - SHOWN_RANGES} more (--format json lists them all)")
    deletes = result.deletes
    if deletes is not None:
        if deletes.refused:
            lines.append(f"  deletes not looked for: {deletes.refused}")
        else:
            lines.append(
                f"  keys in the destination, not at the source (deleted at the source): "
                f"{_keys(deletes.extra) if deletes.extra else 'none'}"
            )
            if deletes.missing:
                lines.append(f"  keys at the source, not in the destination: {_keys(deletes.missing)}")
        if deletes.applied is not None:
            applied = deletes.applied
            how = "soft-deleted (_sdc_deleted_at set)" if applied.get("mode") == "soft" else "deleted"
            lines.append(f"  applied: {how} {_rows(int(applied.get('deleted') or 0))} in {applied.get('table')}")
    if result.checksum:
        lines += [f"  not checksummed: {name} ({why})" for name, why in result.skipped.items()]
    lines += [f"  note: {note}" for note in result.notes]
    return "\n".join(lines) + "\n"


def render_text(pipeline: str, tap: str, results: Sequence[StreamResult]) -> str:
    head = f"reconcile {pipeline} (source {tap})\n"
    counts: dict[str, int] = {}
    for result in results:
        counts[result.status] = counts.get(result.status, 0) + 1
    summary = ", ".join(f"{n} {status}" for status, n in counts.items())
    return head + "".join(render_stream(r) for r in results) + f"summary: {summary}\n"


def render_json(pipeline: str, tap: str, results: Sequence[StreamResult]) -> str:
    document = {
        "pipeline": pipeline,
        "source": tap,
        "equal": all(r.status == "equal" for r in results),
        "streams": [r.to_dict() for r in results],
    }
    return orjson.dumps(document, option=orjson.OPT_INDENT_2).decode() + "\n"
