"""The run report: per-stream rows, bytes, duration, throughput, state before and after, exit codes,
and what the data contracts did."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import IO, Any

import orjson

progress_log = logging.getLogger("dpone.progress")


@dataclass(slots=True)
class StreamReport:
    stream: str
    rows_in: int
    rows_out: int
    quarantined: int = 0


@dataclass(slots=True)
class RunReport:
    pipeline_id: str
    run_id: str
    status: str = "running"  # success | failed | interrupted
    started_at: str = ""
    ended_at: str = ""
    duration_seconds: float = 0.0
    bytes_in: int = 0
    rows_per_second: float = 0.0
    streams: list[StreamReport] = field(default_factory=list)
    states_received: int = 0
    state_before: dict[str, Any] | None = None
    state_after: dict[str, Any] | None = None
    exit_codes: dict[str, int | None] = field(default_factory=dict)
    error: str | None = None
    exit_code: int = 0  # what `dpone run` exits with for this run (attempt)
    # Per contracted stream: mode, quarantined, warned, violations by rule, where bad rows went.
    contracts: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Runner retries: this attempt's number, and every attempt's summary up to this one.
    attempt: int = 1
    attempts: list[dict[str, Any]] = field(default_factory=list)
    key_range: dict[str, str] | None = None  # a partitioned load's range: {stream, range}
    batch_files: list[dict[str, Any]] = field(default_factory=list)  # a range's BATCH files (uri, rows, sha256)

    def attempt_summary(self) -> dict[str, Any]:
        return {
            "attempt": self.attempt,
            "run_id": self.run_id,
            "status": self.status,
            "started_at": self.started_at,
            "duration_seconds": self.duration_seconds,
            "exit_code": self.exit_code if self.status != "success" else None,
            "error": self.error,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> bytes:
        return orjson.dumps(self.to_dict(), option=orjson.OPT_INDENT_2) + b"\n"

    def render_text(self) -> str:
        width = max([len(s.stream) for s in self.streams] + [6])
        lines = [
            f"pipeline {self.pipeline_id}: {self.status} in {self.duration_seconds:.2f}s "
            f"({self.rows_per_second:,.0f} rows/s, {self.bytes_in / 1e6:,.1f} MB)"
        ]
        if self.streams:
            lines.append(f"  {'stream':<{width}}  {'rows in':>12}  {'rows out':>12}  {'quarantined':>11}")
            for s in self.streams:
                lines.append(f"  {s.stream:<{width}}  {s.rows_in:>12,}  {s.rows_out:>12,}  {s.quarantined:>11,}")
        lines.extend(self._render_contracts())
        codes = ", ".join(f"{name} {'-' if code is None else code}" for name, code in self.exit_codes.items())
        if codes:
            lines.append(f"  exit codes: {codes}")
        changed = self.state_after is not None and self.state_after != self.state_before
        lines.append(f"  state: {'saved' if changed else 'unchanged'} ({self.states_received} received from the tap)")
        if len(self.attempts) > 1:
            tries = "; ".join(f"{a['attempt']} {a['status']}" for a in self.attempts)
            lines.append(f"  attempts: {len(self.attempts)} ({tries})")
        if self.error:
            lines.append(f"  error: {self.error}")
        return "\n".join(lines) + "\n"

    def _render_contracts(self) -> list[str]:
        lines = []
        for stream, found in self.contracts.items():
            rules = ", ".join(f"{rule} {n:,}" for rule, n in sorted(found["violations"].items()))
            if found.get("stopped_at") is not None:
                lines.append(
                    f"  contract {stream} ({found['mode']}): stopped the run at line {found['stopped_at']:,} ({rules})"
                )
                continue
            if not rules:
                lines.append(f"  contract {stream} ({found['mode']}): all rows passed")
                continue
            what = f"{found['quarantined']:,} quarantined" if found["mode"] == "quarantine" else ""
            what = what or f"{found['warned']:,} warned"
            where = f" -> {found['quarantine']}" if found.get("quarantine") else ""
            lines.append(f"  contract {stream} ({found['mode']}): {what} ({rules}){where}")
        return lines


class Progress:
    """Progress while a run goes. On a terminal: a live line (rows per stream, rate), redrawn in place.
    Elsewhere (cron, CI, an orchestrator's log): one log line every `log_every` seconds (0: none),
    so a long run shows it is alive and how far it got."""

    def __init__(
        self,
        rows: Callable[[], dict[str, int]],
        stream: IO[str] | None = None,
        interval: float = 0.5,
        *,
        saved: Callable[[], int] = lambda: 0,
        log_every: float = 0.0,
    ) -> None:
        self.rows = rows  # the pump's live counts
        self.saved = saved  # states saved so far
        self.out = stream or sys.stderr
        self.interval = interval
        self.log_every = log_every
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self.out.isatty():
            self._thread = threading.Thread(target=self._live, name="progress", daemon=True)
        elif self.log_every > 0:
            self._thread = threading.Thread(target=self._log, name="progress", daemon=True)
        if self._thread is not None:
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        if thread is None:
            return
        self._stop.set()
        thread.join()
        if self.out.isatty():
            self.out.write("\r\x1b[K")
            self.out.flush()

    def _live(self) -> None:
        started = time.monotonic()
        while not self._stop.wait(self.interval):
            snapshot = self.rows()
            total = sum(snapshot.values())
            rate = total / max(time.monotonic() - started, 1e-6)
            parts = "  ".join(f"{k} {v:,}" for k, v in sorted(snapshot.items()))
            self.out.write(f"\r\x1b[K{parts}  ({rate:,.0f} rows/s)")
            self.out.flush()

    def _log(self) -> None:
        started = last_at = time.monotonic()
        last_total = 0
        while not self._stop.wait(self.log_every):
            now = time.monotonic()
            snapshot = self.rows()
            total = sum(snapshot.values())
            rate = (total - last_total) / max(now - last_at, 1e-6)
            last_total, last_at = total, now
            streams = ", ".join(f"{k} {v:,}" for k, v in sorted(snapshot.items())) or "no records yet"
            saved = self.saved()
            progress_log.info(
                "progress after %ds: %s records (%s); %s rows/s; %d state%s saved",
                round(now - started),
                f"{total:,}",
                streams,
                f"{rate:,.0f}",
                saved,
                "" if saved == 1 else "s",
            )
