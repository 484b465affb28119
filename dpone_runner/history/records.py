"""Run records read into one shape, for the table and the page.

A record's report is what `RunReport.to_dict()` wrote when the run ended. Older versions wrote
fewer keys (no `attempt` or `attempts`) and a hand-edited store may hold anything, so every field
is read with a default: one odd record never hides the others.
"""

from __future__ import annotations

import datetime as dt
import html
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from dpone.state.store import RunRecord, StateStore
from dpone_protocol.config import Redactor

STATUSES = ("success", "failed", "interrupted")


@dataclass(frozen=True, slots=True)
class StreamRows:
    stream: str
    rows_in: int
    rows_out: int
    quarantined: int


@dataclass(frozen=True, slots=True)
class StateMove:
    """Did the run save a new state, and whose bookmarks moved (none named when only keys outside
    `bookmarks` changed, as in a tap's own state shape)."""

    moved: bool
    streams: tuple[str, ...] = ()

    def describe(self, shown: int = 3) -> str:
        if not self.moved:
            return "unchanged"
        if not self.streams:
            return "moved"
        names = ", ".join(self.streams[:shown])
        more = len(self.streams) - shown
        return f"moved: {names}" + (f" +{more}" if more > 0 else "")


@dataclass(frozen=True, slots=True)
class RunView:
    record: RunRecord  # as stored, after redaction
    status: str
    started_at: str
    ended_at: str
    duration_seconds: float
    bytes_in: int
    rows_per_second: float
    streams: tuple[StreamRows, ...]
    state: StateMove
    error: str | None
    attempt: int
    attempts: tuple[Mapping[str, Any], ...]

    @property
    def pipeline_id(self) -> str:
        return self.record.pipeline_id

    @property
    def run_id(self) -> str:
        return self.record.run_id

    @property
    def when(self) -> str:
        return self.started_at or self.record.created_at

    @property
    def rows_in(self) -> int:
        return sum(s.rows_in for s in self.streams)

    @property
    def rows_out(self) -> int:
        return sum(s.rows_out for s in self.streams)

    @property
    def quarantined(self) -> int:
        return sum(s.quarantined for s in self.streams)

    def stream_rate(self, stream: StreamRows) -> float:
        """Rows read per second for one stream over the whole run (0 for a run of no duration)."""
        return stream.rows_in / self.duration_seconds if self.duration_seconds > 0 else 0.0

    def summary(self) -> dict[str, Any]:
        """What the table shows, as data: for scripts reading `--format json` or the page's JSON."""
        return {
            "status": self.status,
            "started_at": self.started_at,
            "ended_at": self.ended_at,
            "duration_seconds": self.duration_seconds,
            "rows_in": self.rows_in,
            "rows_out": self.rows_out,
            "quarantined": self.quarantined,
            "rows_per_stream": {s.stream: s.rows_out for s in self.streams},
            "rows_per_second": self.rows_per_second,
            "state_moved": self.state.moved,
            "moved_streams": list(self.state.streams),
            "attempt": self.attempt,
            "attempts": len(self.attempts),
            "error": self.error,
        }

    def document(self) -> dict[str, Any]:
        record = self.record
        return {
            "pipeline_id": record.pipeline_id,
            "run_id": record.run_id,
            "created_at": record.created_at,
            "report": record.report,
            "summary": self.summary(),
        }


def load_runs(store: StateStore, limit: int, pipeline_id: str | None, redactor: Redactor) -> list[RunView]:
    """The newest `limit` runs (of one pipeline, or of all), newest first."""
    return [view(redact_record(r, redactor)) for r in store.recent_runs(limit, pipeline_id)]


def redact_record(record: RunRecord, redactor: Redactor) -> RunRecord:
    """The record with every string masked: reports were redacted when saved, but an error may quote
    a DSN, and a store written by an older version or by hand promises nothing."""
    report = _redacted(record.report, redactor)
    return RunRecord(
        redactor(record.pipeline_id),
        redactor(record.run_id),
        redactor(record.created_at),
        report if isinstance(report, dict) else {},
    )


def _redacted(value: Any, redactor: Redactor) -> Any:
    if isinstance(value, str):
        return redactor(value)
    if isinstance(value, dict):
        return {k: _redacted(v, redactor) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v, redactor) for v in value]
    return value


def view(record: RunRecord) -> RunView:
    report = record.report if isinstance(record.report, dict) else {}
    attempts = report.get("attempts")
    error = report.get("error")
    return RunView(
        record=record,
        status=_text(report.get("status")) or "unknown",
        started_at=_text(report.get("started_at")),
        ended_at=_text(report.get("ended_at")) or record.created_at,
        duration_seconds=_number(report.get("duration_seconds")),
        bytes_in=int(_number(report.get("bytes_in"))),
        rows_per_second=_number(report.get("rows_per_second")),
        streams=tuple(_streams(report.get("streams"))),
        state=moved_state(report.get("state_before"), report.get("state_after")),
        error=str(error) if error not in (None, "") else None,
        attempt=max(int(_number(report.get("attempt"), 1)), 1),
        attempts=tuple(a for a in attempts if isinstance(a, dict)) if isinstance(attempts, list) else (),
    )


def moved_state(before: Any, after: Any) -> StateMove:
    # A run that saved nothing keeps state_after equal to state_before (None when there was none).
    if after is None or after == before:
        return StateMove(False)
    old, new = _bookmarks(before), _bookmarks(after)
    return StateMove(True, tuple(sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))))


def _bookmarks(state: Any) -> dict[str, Any]:
    bookmarks = state.get("bookmarks") if isinstance(state, dict) else None
    return {str(k): v for k, v in bookmarks.items()} if isinstance(bookmarks, dict) else {}


def _streams(value: Any) -> list[StreamRows]:
    if not isinstance(value, list):
        return []
    return [
        StreamRows(
            _text(item.get("stream")) or "?",
            int(_number(item.get("rows_in"))),
            int(_number(item.get("rows_out"))),
            int(_number(item.get("quarantined"))),
        )
        for item in value
        if isinstance(item, dict)
    ]


def _text(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _number(value: Any, default: float = 0.0) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return default
    return float(value) if math.isfinite(value) else default


# -- how times and durations read ----------------------------------------------------------------


def parse_time(text: str) -> dt.datetime | None:
    try:
        parsed = dt.datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def when_text(text: str) -> str:
    """`2024-05-01 06:54:55` in UTC; an unreadable stamp as it is."""
    parsed = parse_time(text)
    return parsed.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S") if parsed else text or "?"


def duration_text(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.2f}s"
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    if whole < 3600:
        return f"{whole // 60}m {whole % 60:02d}s"
    return f"{whole // 3600}h {whole % 3600 // 60:02d}m"


def printable(text: str, keep: str = "") -> str:
    """`text` with control characters (a terminal escape, a bell) shown as `?`, but those in `keep`."""
    return "".join(c if c.isprintable() or c in keep else "?" for c in text)


def esc(text: str) -> str:
    """`text` for HTML or SVG: escaped, and no control character (HTML forbids them) but line breaks."""
    return html.escape(printable(text, keep="\n\t"))
