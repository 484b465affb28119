"""`dpone runs` as text: one line a run, newest first, columns sized to their content."""

from __future__ import annotations

from collections.abc import Sequence

from dpone_runner.history.records import RunView, duration_text, printable, when_text

HEADERS = ("WHEN (UTC)", "PIPELINE", "RUN", "DURATION", "ROWS", "STATE", "OUTCOME")
STREAMS_SHOWN = 3
ERROR_CHARS = 90


def rows_text(run: RunView) -> str:
    """Rows out to the targets per stream: `items 150, other 2 +1 more`."""
    if not run.streams:
        return "-"
    text = ", ".join(f"{s.stream} {s.rows_out:,}" for s in run.streams[:STREAMS_SHOWN])
    more = len(run.streams) - STREAMS_SHOWN
    if more > 0:
        text += f" +{more} more"
    if run.quarantined:
        text += f" ({run.quarantined:,} quarantined)"
    return text


def outcome_text(run: RunView, error_chars: int = ERROR_CHARS) -> str:
    text = run.status
    if run.attempt > 1:
        text += f" (attempt {run.attempt})"
    if run.error:
        error = " ".join(run.error.split())  # one line per run, whatever the error held
        if len(error) > error_chars:
            error = error[: error_chars - 1] + "…"
        text += f": {error}"
    return text


def render(runs: Sequence[RunView]) -> str:
    lines = [
        (
            when_text(r.when),
            r.pipeline_id,
            r.run_id,
            duration_text(r.duration_seconds),
            rows_text(r),
            r.state.describe(),
            outcome_text(r),
        )
        for r in runs
    ]
    widths = [max(len(row[i]) for row in [HEADERS, *lines]) for i in range(len(HEADERS) - 1)]
    out = []
    for row in [HEADERS, *lines]:
        # Control characters would move the cursor or clear the screen: a run record holds
        # whatever the connectors printed.
        cells = [printable(c).ljust(w) for c, w in zip(row, widths, strict=False)] + [printable(row[-1])]
        out.append("  ".join(cells).rstrip())
    return "\n".join(out) + "\n" + footer(runs) + "\n"


def footer(runs: Sequence[RunView]) -> str:
    pipelines = len({r.pipeline_id for r in runs})
    counts = {status: sum(1 for r in runs if r.status == status) for status in ("success", "failed", "interrupted")}
    told = ", ".join(f"{n} {status}" for status, n in counts.items() if n)
    return f"{len(runs)} run{'s' if len(runs) != 1 else ''} of {pipelines} pipeline{'s' if pipelines != 1 else ''}" + (
        f": {told}" if told else ""
    )
