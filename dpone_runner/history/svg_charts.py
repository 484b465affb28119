"""Charts as inline SVG text: drawn here, on the server, so the page needs no script and fetches nothing.

Three shapes cover the page: bars (one a run: rows, duration), lines (one a stream, a point a run:
throughput) and a timeline (one lane a pipeline, a dot a run: failures over time). Every mark
carries `data-run-id` and a `<title>` tooltip; every text is escaped here, where it is written.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from dpone_runner.history.records import esc

MAX_LABELS = 6
LANE_HEIGHT = 30
LANE_LABEL_CHARS = 34
# Colour-blind-safe picks (Okabe-Ito) for streams; statuses keep the usual green/red/orange.
SERIES_COLOURS = ("#0072b2", "#e69f00", "#009e73", "#cc79a7", "#56b4e9", "#d55e00", "#f0e442", "#000000")

Format = Callable[[float], str]


@dataclass(frozen=True, slots=True)
class Frame:
    """A chart's size in SVG units and its margins; the page scales the SVG to its box, so a chart
    meant for a third of the page is drawn narrower than one across it, and its text stays legible."""

    width: float = 420
    height: float = 240
    left: float = 48
    right: float = 12
    top: float = 12
    bottom: float = 30

    @property
    def plot_width(self) -> float:
        return self.width - self.left - self.right

    @property
    def plot_height(self) -> float:
        return self.height - self.top - self.bottom


SMALL = Frame()
WIDE = Frame(width=1180, left=260, right=24, top=10, bottom=34)


@dataclass(frozen=True, slots=True)
class Bar:
    key: str  # the run id
    label: str  # under the axis
    value: float
    status: str
    tip: str


@dataclass(frozen=True, slots=True)
class Point:
    index: int  # the run's place on the x axis
    value: float
    key: str
    tip: str


@dataclass(frozen=True, slots=True)
class Series:
    name: str
    points: tuple[Point, ...]


@dataclass(frozen=True, slots=True)
class Mark:
    key: str
    lane: str
    at: dt.datetime | None
    status: str
    tip: str


def status_class(status: str) -> str:
    return f"status-{status}" if status in ("success", "failed", "interrupted") else "status-other"


def series_colour(index: int) -> str:
    return SERIES_COLOURS[index % len(SERIES_COLOURS)]


def nice_step(largest: float, *, whole: bool = False) -> float:
    """The gap between the y axis's 4 grid lines, a round number (1, 1.5, 2, 2.5, 3, 4, 5, 6 or 8 times a power of ten)
    so that 4 of them reach `largest`. `whole`: counts, whose grid lines must fall on whole numbers."""
    raw = largest / 4
    if raw <= 0:
        return 1.0
    power = 10 ** math.floor(math.log10(raw))
    step = next(f * power for f in (1, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10) if raw <= f * power * (1 + 1e-9))
    step = float(f"{step:.12g}")  # 0.15, not 0.15000000000000002
    return float(math.ceil(step)) if whole else step


def compact(value: float) -> str:
    """1234567 -> 1.23M; small values keep their decimals."""
    for size, suffix in ((1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= size:
            return f"{value / size:.3g}{suffix}"
    return f"{value:.3g}"


def _svg(kind: str, frame: Frame, height: float, label: str, body: list[str]) -> str:
    return (
        f'<svg class="chart-svg" data-chart="{esc(kind)}" viewBox="0 0 {frame.width:.0f} {height:.0f}" '
        f'role="img" aria-label="{esc(label)}" xmlns="http://www.w3.org/2000/svg">'
        f"<title>{esc(label)}</title>{''.join(body)}</svg>"
    )


def _empty(kind: str, frame: Frame, label: str, text: str) -> str:
    body = f'<text class="empty" x="{frame.width / 2}" y="{frame.height / 2}" text-anchor="middle">{esc(text)}</text>'
    return _svg(kind, frame, frame.height, label, [body])


def _y_axis(frame: Frame, largest: float, fmt: Format, whole: bool) -> tuple[list[str], Callable[[float], float]]:
    """Grid lines and labels from 0 up past `largest`, and the value-to-y function."""
    step = nice_step(largest, whole=whole)
    top = 4 * step

    def y(value: float) -> float:
        return frame.top + frame.plot_height * (1 - min(max(value, 0.0), top) / top)

    parts = []
    for i in range(5):
        at = y(step * i)
        parts.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" y1="{at:.1f}" y2="{at:.1f}"/>'
        )
        parts.append(
            f'<text class="tick" x="{frame.left - 6}" y="{at + 3.5:.1f}" text-anchor="end">{esc(fmt(step * i))}</text>'
        )
    return parts, y


def _x_axis(frame: Frame, labels: Sequence[str], x: Callable[[int], float], base: float) -> list[str]:
    step = max(1, math.ceil(len(labels) / MAX_LABELS))
    parts = [f'<line class="axis" x1="{frame.left}" x2="{frame.width - frame.right}" y1="{base:.1f}" y2="{base:.1f}"/>']
    parts += [
        f'<text class="tick" x="{x(i):.1f}" y="{frame.height - frame.bottom + 16}" text-anchor="middle">'
        f"{esc(label)}</text>"
        for i, label in enumerate(labels)
        if i % step == 0
    ]
    return parts


def _slots(frame: Frame, count: int) -> tuple[float, Callable[[int], float]]:
    """Each run's slot width, and the x of the middle of slot i."""
    width = frame.plot_width / max(count, 1)
    return width, lambda i: frame.left + width * (i + 0.5)


def bar_chart(
    kind: str, label: str, bars: Sequence[Bar], fmt: Format, *, whole: bool = False, frame: Frame = SMALL
) -> str:
    """One bar a run, oldest on the left, coloured by the run's outcome; `whole`: the values are counts."""
    if not bars:
        return _empty(kind, frame, label, "no runs")
    parts, y = _y_axis(frame, max(b.value for b in bars), fmt, whole)
    slot, x = _slots(frame, len(bars))
    bar_width = min(slot * 0.7, 36)
    base = y(0)
    for i, bar in enumerate(bars):
        # A bar of 0 (a run that failed before loading) still shows, as a sliver in its colour.
        height = max(base - y(bar.value), 2.0)
        parts.append(
            f'<rect class="bar {status_class(bar.status)}" data-run-id="{esc(bar.key)}" '
            f'data-value="{bar.value:g}" x="{x(i) - bar_width / 2:.1f}" y="{base - height:.1f}" '
            f'width="{bar_width:.1f}" height="{height:.1f}"><title>{esc(bar.tip)}</title></rect>'
        )
    parts += _x_axis(frame, [b.label for b in bars], x, base)
    return _svg(kind, frame, frame.height, label, parts)


def line_chart(
    kind: str, label: str, series: Sequence[Series], labels: Sequence[str], fmt: Format, *, frame: Frame = SMALL
) -> str:
    """One line a series over the runs (x: the run, oldest left); a point where a run has a value."""
    values = [p.value for s in series for p in s.points]
    if not values:
        return _empty(kind, frame, label, "no rows read")
    parts, y = _y_axis(frame, max(values), fmt, False)
    _, x = _slots(frame, len(labels))
    for n, line in enumerate(series):
        colour = series_colour(n)
        name = esc(line.name)
        if len(line.points) > 1:
            path = " ".join(f"{x(p.index):.1f},{y(p.value):.1f}" for p in line.points)
            parts.append(f'<polyline class="line" data-stream="{name}" points="{path}" stroke="{colour}"/>')
        for p in line.points:
            parts.append(
                f'<circle class="point" data-stream="{name}" data-run-id="{esc(p.key)}" data-value="{p.value:g}" '
                f'cx="{x(p.index):.1f}" cy="{y(p.value):.1f}" r="3.5" fill="{colour}">'
                f"<title>{esc(p.tip)}</title></circle>"
            )
    parts += _x_axis(frame, labels, x, y(0))
    return _svg(kind, frame, frame.height, label, parts)


def timeline(kind: str, label: str, marks: Sequence[Mark], lanes: Sequence[str], *, frame: Frame = WIDE) -> str:
    """A lane a pipeline, a dot a run at the time it started; failures drawn last, so on top."""
    if not marks:
        return _empty(kind, frame, label, "no runs")
    height = frame.top + LANE_HEIGHT * len(lanes) + frame.bottom
    known = [m.at for m in marks if m.at is not None]
    start, end = (min(known), max(known)) if known else (None, None)
    span = (end - start).total_seconds() if start and end else 0.0
    # Dots at the very ends would be cut in half by the edge of the plot.
    inset = 8.0
    plot = frame.plot_width - 2 * inset

    def x(at: dt.datetime | None) -> float:
        if at is None or start is None or span <= 0:
            return frame.left + inset + (plot / 2 if at is not None else 0)
        return frame.left + inset + plot * (at - start).total_seconds() / span

    def lane_y(lane: str) -> float:
        return frame.top + LANE_HEIGHT * (lanes.index(lane) + 0.5)

    parts = []
    for lane in lanes:
        at = lane_y(lane)
        short = lane if len(lane) <= LANE_LABEL_CHARS else lane[: LANE_LABEL_CHARS - 1] + "…"
        parts.append(
            f'<line class="grid" x1="{frame.left}" x2="{frame.width - frame.right}" y1="{at:.1f}" y2="{at:.1f}"/>'
        )
        parts.append(
            f'<text class="lane" x="{frame.left - 10}" y="{at + 4:.1f}" text-anchor="end">'
            f"<title>{esc(lane)}</title>{esc(short)}</text>"
        )
    failed_last = sorted(marks, key=lambda m: m.status == "failed")
    for mark in failed_last:
        radius = 6 if mark.status == "failed" else 4.5
        parts.append(
            f'<circle class="mark {status_class(mark.status)}" data-run-id="{esc(mark.key)}" '
            f'cx="{x(mark.at):.1f}" cy="{lane_y(mark.lane):.1f}" r="{radius}">'
            f"<title>{esc(mark.tip)}</title></circle>"
        )
    if start is not None and end is not None:
        parts += _time_ticks(start, end, x, height - frame.bottom + 20)
    return _svg(kind, frame, height, label, parts)


def _time_ticks(start: dt.datetime, end: dt.datetime, x: Callable[[dt.datetime | None], float], y: float) -> list[str]:
    span = (end - start).total_seconds()
    pattern = time_pattern(span)
    count = 5 if span > 0 else 1
    parts = []
    for i in range(count):
        tick = start + (end - start) * (i / max(count - 1, 1))
        # The end ticks lean inwards, so their text stays inside the chart.
        anchor = "middle" if count == 1 or 0 < i < count - 1 else "start" if i == 0 else "end"
        text = tick.astimezone(dt.UTC).strftime(pattern)
        parts.append(f'<text class="tick" x="{x(tick):.1f}" y="{y:.1f}" text-anchor="{anchor}">{text}</text>')
    return parts


def time_pattern(span_seconds: float) -> str:
    """How precisely to print times on an axis spanning this long."""
    if span_seconds < 3600:
        return "%H:%M:%S"
    return "%m-%d %H:%M" if span_seconds < 3 * 86400 else "%Y-%m-%d"
