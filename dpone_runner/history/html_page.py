"""`dpone report --html`: the run history as one self-contained HTML page.

Everything is inside the file: the style, the charts (inline SVG from svg_charts.py) and the data
itself as JSON in `<script type="application/json" id="dpone-runs">`, for tools to read. There is
no script to run, and a Content-Security-Policy tells the browser to fetch nothing. Every string
from a run record (pipeline ids, stream names, errors holding whatever a connector printed) is
escaped where it is written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from dpone_runner.history import svg_charts
from dpone_runner.history.records import RunView, duration_text, esc, parse_time, when_text
from dpone_runner.history.svg_charts import Bar, Mark, Point, Series
from dpone_runner.history.table import outcome_text, rows_text

DATA_ID = "dpone-runs"
STREAMS_CHARTED = len(svg_charts.SERIES_COLOURS)

STYLE = """
:root { --ok: #2e7d32; --bad: #c62828; --cut: #ef6c00; --other: #757575; --ink: #1f2328; --muted: #59636e;
        --line: #d0d7de; --soft: #f6f8fa; }
* { box-sizing: border-box; }
body { margin: 0; padding: 24px 32px 48px; font: 14px/1.45 "DejaVu Sans", system-ui, -apple-system, "Segoe UI",
       sans-serif; color: var(--ink); background: #fff; }
main { max-width: 1216px; margin: 0 auto; }
h1 { font-size: 24px; margin: 0 0 4px; }
h2 { font-size: 18px; margin: 32px 0 8px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
.meta { color: var(--muted); margin: 0 0 16px; }
.cards { display: flex; flex-wrap: wrap; gap: 12px; margin: 16px 0; }
.card { flex: 1 1 140px; border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px;
        background: var(--soft); }
.card .value { font-size: 22px; font-weight: 600; }
.card .name { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card.bad .value { color: var(--bad); }
.charts { display: grid; grid-template-columns: repeat(auto-fit, minmax(340px, 1fr)); gap: 14px; }
figure.chart { margin: 0; border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
figure.chart figcaption { font-weight: 600; margin-bottom: 4px; }
figure.chart.wide { grid-column: 1 / -1; }
.chart-svg { width: 100%; height: auto; display: block; font-size: 11px; fill: var(--ink); }
.chart-svg .grid { stroke: #eaeef2; stroke-width: 1; }
.chart-svg .axis { stroke: #8c959f; stroke-width: 1; }
.chart-svg .tick { fill: var(--muted); font-size: 10px; }
.chart-svg .lane { font-size: 12px; }
.chart-svg .empty { fill: var(--muted); font-size: 14px; }
.chart-svg .line { fill: none; stroke-width: 2; }
.status-success { fill: var(--ok); } .status-failed { fill: var(--bad); }
.status-interrupted { fill: var(--cut); } .status-other { fill: var(--other); }
.chart-svg .mark { stroke: #fff; stroke-width: 1.5; }
.legend { list-style: none; padding: 0; margin: 6px 0 0; display: flex; flex-wrap: wrap; gap: 4px 14px;
          font-size: 12px; color: var(--muted); }
.legend .swatch { display: inline-block; width: 10px; height: 10px; border-radius: 2px; margin-right: 5px; }
.note { color: var(--muted); font-size: 12px; }
table.runs { width: 100%; border-collapse: collapse; font-size: 13px; }
table.runs th { text-align: left; background: var(--soft); border-bottom: 2px solid var(--line); padding: 6px 8px; }
table.runs td { border-bottom: 1px solid var(--line); padding: 6px 8px; vertical-align: top; }
table.runs td.num { text-align: right; white-space: nowrap; font-variant-numeric: tabular-nums; }
table.runs td.when, table.runs td.run, table.runs td.pipeline { white-space: nowrap;
                                                              font-variant-numeric: tabular-nums; }
table.runs tr.status-failed td { background: #fff5f5; }
.pill { display: inline-block; padding: 0 8px; border-radius: 10px; color: #fff; font-size: 12px; font-weight: 600; }
.pill.status-success { background: var(--ok); } .pill.status-failed { background: var(--bad); }
.pill.status-interrupted { background: var(--cut); } .pill.status-other { background: var(--other); }
.error { white-space: pre-wrap; overflow-wrap: anywhere; margin: 4px 0 0; font: 12px/1.4 "DejaVu Sans Mono",
         ui-monospace, monospace; color: #82071e; }
ul.attempts { margin: 4px 0 0; padding-left: 18px; color: var(--muted); font-size: 12px; }
code { font: 12px "DejaVu Sans Mono", ui-monospace, monospace; }
"""


@dataclass(frozen=True, slots=True)
class PageInfo:
    generated_at: str
    store: str  # where the runs came from, redacted
    pipeline: str | None  # --pipeline, if given
    last: int


def render(runs: Sequence[RunView], info: PageInfo) -> str:
    """The page for `runs` (newest first, as the store returns them)."""
    pipelines = sorted({r.pipeline_id for r in runs})
    body = [
        "<header><h1>dpone run history</h1>",
        f'<p class="meta">{esc(_scope(runs, pipelines, info))}</p></header>',
        _cards(runs),
        _failures(runs, pipelines),
        *(_pipeline_section(p, [r for r in runs if r.pipeline_id == p]) for p in pipelines),
        _runs_table(runs),
    ]
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        # Self-contained by policy too: a browser opening this file loads nothing else and runs nothing.
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; style-src 'unsafe-inline'\">"
        f"<title>dpone run history</title><style>{STYLE}</style></head>\n<body><main>\n"
        + "\n".join(body)
        + "\n</main>\n"
        + data_script(runs, info)
        + "\n</body></html>\n"
    )


def data_script(runs: Sequence[RunView], info: PageInfo) -> str:
    document = {
        "generated_at": info.generated_at,
        "store": info.store,
        "pipeline": info.pipeline,
        "last": info.last,
        "runs": [r.document() for r in runs],
    }
    text = orjson.dumps(document).decode()
    # In JSON these characters occur only inside strings, where \\u escapes mean the same; escaped,
    # no error text can close the script element or open a comment.
    for char, code in (("&", "\\u0026"), ("<", "\\u003c"), (">", "\\u003e")):
        text = text.replace(char, code)
    return f'<script type="application/json" id="{DATA_ID}">{text}</script>'


def _scope(runs: Sequence[RunView], pipelines: list[str], info: PageInfo) -> str:
    which = f"pipeline {info.pipeline}" if info.pipeline else f"{len(pipelines)} pipeline(s)"
    span = ""
    if runs:
        span = f", {when_text(runs[-1].when)} to {when_text(runs[0].when)} UTC"
    return (
        f"The last {len(runs)} run(s) of {which}{span} (at most {info.last}). "
        f"State store: {info.store}. Generated {when_text(info.generated_at)} UTC."
    )


def _cards(runs: Sequence[RunView]) -> str:
    failed = sum(1 for r in runs if r.status == "failed")
    cards = [
        ("runs", f"{len(runs):,}", ""),
        ("succeeded", f"{sum(1 for r in runs if r.status == 'success'):,}", ""),
        ("failed", f"{failed:,}", " bad" if failed else ""),
        ("interrupted", f"{sum(1 for r in runs if r.status == 'interrupted'):,}", ""),
        ("rows out", f"{sum(r.rows_out for r in runs):,}", ""),
        ("time running", duration_text(sum(r.duration_seconds for r in runs)), ""),
    ]
    items = "".join(
        f'<div class="card{extra}" data-card="{esc(name)}"><div class="value">{esc(value)}</div>'
        f'<div class="name">{esc(name)}</div></div>'
        for name, value, extra in cards
    )
    return f'<section class="cards">{items}</section>'


def _figure(kind: str, caption: str, svg: str, extra: str = "", wide: bool = False, pipeline: str = "") -> str:
    cls = "chart wide" if wide else "chart"
    data = f' data-pipeline="{esc(pipeline)}"' if pipeline else ""
    return (
        f'<figure class="{cls}" data-chart="{esc(kind)}"{data}><figcaption>{esc(caption)}</figcaption>'
        f"{svg}{extra}</figure>"
    )


def _failures(runs: Sequence[RunView], pipelines: list[str]) -> str:
    marks = []
    for r in runs:
        why = f"\n{r.error}" if r.error else ""
        tip = f"{r.pipeline_id} · {when_text(r.when)} UTC · {r.run_id} · {r.status}{why}"
        marks.append(Mark(r.run_id, r.pipeline_id, parse_time(r.when), r.status, tip))
    svg = svg_charts.timeline("failures", "Runs over time, failures in red", marks, pipelines)
    legend = _legend([("success", "var(--ok)"), ("failed", "var(--bad)"), ("interrupted", "var(--cut)")])
    return (
        '<section id="failures"><h2>Failures over time</h2>'
        + _figure("failures", "Each run by start time; one lane per pipeline", svg, legend, wide=True)
        + "</section>"
    )


def _pipeline_section(pipeline: str, newest_first: Sequence[RunView]) -> str:
    runs = list(reversed(newest_first))  # charts read left to right, oldest first
    labels = _labels(runs)
    rows = [
        Bar(
            r.run_id, label, r.rows_out, r.status, f"{_head(r)}\n{r.rows_out:,} rows out to the targets: {rows_text(r)}"
        )
        for r, label in zip(runs, labels, strict=True)
    ]
    durations = [
        Bar(r.run_id, label, r.duration_seconds, r.status, f"{_head(r)}\n{duration_text(r.duration_seconds)}")
        for r, label in zip(runs, labels, strict=True)
    ]
    series, hidden = _throughput(runs)
    legend = _legend([(s.name, svg_charts.series_colour(n)) for n, s in enumerate(series)])
    if hidden:
        legend += f'<p class="note">{hidden} more stream(s) with fewer rows are not drawn.</p>'
    failed = sum(1 for r in runs if r.status == "failed")
    last = newest_first[0]
    summary = f"{len(runs)} run(s), {failed} failed; the last {when_text(last.when)} UTC: {outcome_text(last, 120)}"
    charts = "".join(
        [
            _figure(
                "rows",
                "Rows per run (out to the targets)",
                svg_charts.bar_chart("rows", f"Rows out per run of {pipeline}", rows, svg_charts.compact, whole=True),
                pipeline=pipeline,
            ),
            _figure(
                "duration",
                "Duration per run",
                svg_charts.bar_chart("duration", f"Duration per run of {pipeline}", durations, _seconds),
                pipeline=pipeline,
            ),
            _figure(
                "throughput",
                "Throughput per stream (rows read/s)",
                svg_charts.line_chart(
                    "throughput", f"Throughput per stream of {pipeline}", series, labels, svg_charts.compact
                ),
                legend,
                pipeline=pipeline,
            ),
        ]
    )
    return (
        f'<section class="pipeline" data-pipeline="{esc(pipeline)}">'
        f"<h2>Pipeline <code>{esc(pipeline)}</code></h2>"
        f'<p class="meta">{esc(summary)}</p><div class="charts">{charts}</div></section>'
    )


def _throughput(runs: Sequence[RunView]) -> tuple[list[Series], int]:
    """A series per stream (the busiest first, as many as there are colours) and how many were left out."""
    totals: dict[str, int] = {}
    for r in runs:
        for s in r.streams:
            totals[s.stream] = totals.get(s.stream, 0) + s.rows_in
    names = sorted(totals, key=lambda name: (-totals[name], name))
    series = []
    for name in names[:STREAMS_CHARTED]:
        points = tuple(
            Point(
                i,
                r.stream_rate(s),
                r.run_id,
                f"{name}: {r.stream_rate(s):,.0f} rows/s ({s.rows_in:,} rows)\n{_head(r)}",
            )
            for i, r in enumerate(runs)
            for s in r.streams
            if s.stream == name and r.duration_seconds > 0
        )
        series.append(Series(name, points))
    return series, max(len(names) - STREAMS_CHARTED, 0)


def _labels(runs: Sequence[RunView]) -> list[str]:
    times = [parse_time(r.when) for r in runs]
    known = [t for t in times if t is not None]
    span = (max(known) - min(known)).total_seconds() if known else 0.0
    pattern = svg_charts.time_pattern(span)
    return [t.astimezone(dt.UTC).strftime(pattern) if t else "?" for t in times]


def _head(r: RunView) -> str:
    return f"{when_text(r.when)} UTC · run {r.run_id} · {r.status}"


def _seconds(value: float) -> str:
    return duration_text(value) if value else "0s"


def _legend(items: Sequence[tuple[str, str]]) -> str:
    entries = "".join(
        f'<li><span class="swatch" style="background:{colour}"></span>{esc(name)}</li>' for name, colour in items
    )
    return f'<ul class="legend">{entries}</ul>'


def _runs_table(runs: Sequence[RunView]) -> str:
    head = "".join(
        f"<th>{esc(h)}</th>"
        for h in ("When (UTC)", "Pipeline", "Run", "Duration", "Rows out", "Rows out per stream", "State", "Outcome")
    )
    rows = "".join(_run_row(r) for r in runs)
    empty = '<tr><td colspan="8">No runs recorded.</td></tr>' if not runs else ""
    return (
        f'<section id="runs"><h2>Runs, newest first</h2><table class="runs"><thead><tr>{head}</tr></thead>'
        f"<tbody>{rows}{empty}</tbody></table></section>"
    )


def _run_row(r: RunView) -> str:
    streams = ", ".join(f"{s.stream} {s.rows_out:,}" for s in r.streams) or "-"
    if r.quarantined:
        streams += f" ({r.quarantined:,} quarantined)"
    moved = ", ".join(r.state.streams)
    status = esc(r.status) + (f" (attempt {r.attempt})" if r.attempt > 1 else "")
    outcome = f'<span class="pill {svg_charts.status_class(r.status)}">{status}</span>'
    if r.error:
        outcome += f'<pre class="error">{esc(r.error)}</pre>'
    earlier = [a for a in r.attempts if a.get("run_id") != r.run_id]
    if earlier:
        outcome += '<ul class="attempts">' + "".join(f"<li>{esc(_attempt_text(a))}</li>" for a in earlier) + "</ul>"
    return (
        f'<tr class="run {svg_charts.status_class(r.status)}" data-run-id="{esc(r.run_id)}" '
        f'data-pipeline="{esc(r.pipeline_id)}">'
        f'<td class="when">{esc(when_text(r.when))}</td><td class="pipeline">{esc(r.pipeline_id)}</td>'
        f'<td class="run"><code>{esc(r.run_id)}</code></td>'
        f'<td class="num">{esc(duration_text(r.duration_seconds))}</td><td class="num">{r.rows_out:,}</td>'
        f"<td>{esc(streams)}</td>"
        f'<td title="{esc(moved)}">{esc(r.state.describe())}</td><td>{outcome}</td></tr>'
    )


def _attempt_text(attempt: Mapping[str, Any]) -> str:
    code = attempt.get("exit_code")
    error = " ".join(str(attempt.get("error") or "").split())
    exit_text = f" (exit {code})" if code is not None else ""
    return f"attempt {attempt.get('attempt', '?')} {attempt.get('status', '?')}{exit_text}" + (
        f": {error}" if error else ""
    )
